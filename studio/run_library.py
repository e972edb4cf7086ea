"""Runs you never lose: a run's tags and notes, its whole metric series, clone, config diff and delete.

The live monitor and the Runs page read a run through here. A `Series` grows from the byte offsets it
reached last time (metrics.jsonl, system.jsonl, samples.jsonl), so a monitor that polls every 1.5 s
reads only the new lines; `load_series` is the same thing started from offset 0 (a whole run, or a page
that re-attaches). Nothing here imports gradio.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio import config as cfg
from studio import run_folder
from studio.train.status import FAILED, FINAL_STATES, STOPPED, read_status
from studio.workspace import (
    META_FILE, METRICS_FILE, SAMPLES_FILE, SYSTEM_FILE, Workspace, read_json, read_jsonl_from, write_json_atomic,
)


MAX_TAGS, MAX_TAG_CHARS, MAX_NOTES_CHARS = 20, 40, 5000


class RunBusyError(ValueError):
    """The run is queued or running, so it cannot be deleted."""


class MetaError(ValueError):
    """Tags or notes that cannot be stored (too many, too long); the message says which and the limit."""


# ---------------------------------------------------------------- tags and notes (meta.json)


def read_meta(run_dir: Path) -> dict[str, Any]:
    """The run's {"tags": [...], "notes": "..."}; empty ones when meta.json is missing or unreadable."""
    data = read_json(Path(run_dir) / META_FILE) or {}
    tags = data.get("tags") if isinstance(data.get("tags"), list) else []
    notes = data.get("notes") if isinstance(data.get("notes"), str) else ""
    return {"tags": [str(tag) for tag in tags], "notes": notes}


def parse_tags(text: str | list[str]) -> list[str]:
    """Tags from comma-separated text (or a list): trimmed, blanks dropped, duplicates removed, order kept."""
    items = text if isinstance(text, list) else str(text or "").split(",")
    tags: list[str] = []
    for item in items:
        tag = " ".join(str(item).split())
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def write_meta(run_dir: Path, tags: str | list[str], notes: str) -> dict[str, Any]:
    """Store the run's tags and notes in meta.json; MetaError when there are too many or they are too long."""
    run_dir = Path(run_dir)
    tag_list, notes = parse_tags(tags), str(notes or "").strip()
    if len(tag_list) > MAX_TAGS:
        raise MetaError(f"{len(tag_list)} tags: use at most {MAX_TAGS}")
    too_long = [tag for tag in tag_list if len(tag) > MAX_TAG_CHARS]
    if too_long:
        raise MetaError(f"tag {too_long[0]!r} is {len(too_long[0])} characters: use at most {MAX_TAG_CHARS}")
    if len(notes) > MAX_NOTES_CHARS:
        raise MetaError(f"notes are {len(notes)} characters: use at most {MAX_NOTES_CHARS}")
    meta = {"tags": tag_list, "notes": notes}
    write_json_atomic(run_dir / META_FILE, meta)
    return meta


# ---------------------------------------------------------------- the runs list


@dataclass
class RunRecord:
    """One row of the Runs page."""

    run_id: str
    run_name: str
    state: str
    model: str
    dataset: str
    method: str
    created: float
    duration: float | None  # seconds from start to end (or to now while it runs)
    final_loss: float | None
    best_eval_loss: float | None
    steps: int | None
    tags: list[str]
    notes: str
    error: str
    resumable: bool


def duration_of(status: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds the run has been (or was) running; None before it started."""
    started = status.get("started")
    if not started:
        return None
    return max(0.0, float(status.get("ended") or now or time.time()) - float(started))


def is_resumable(run_dir: Path, status: dict[str, Any]) -> bool:
    """A stopped or failed run with a complete checkpoint can be resumed (jobs.resume_run)."""
    return status.get("state") in (STOPPED, FAILED) and run_folder.latest_checkpoint(Path(run_dir)) is not None


def list_records(workspace: Workspace) -> list[RunRecord]:
    """Every run, newest first, with its state, duration, losses, tags and notes."""
    records = []
    for summary in run_folder.list_runs(workspace):  # also marks runs whose worker died as failed
        run_dir = workspace.runs_dir / summary.run_id
        status = {**read_status(run_dir), "state": summary.state}
        meta = read_meta(run_dir)
        records.append(RunRecord(
            run_id=summary.run_id, run_name=summary.run_name, state=summary.state, model=summary.model,
            dataset=summary.dataset, method=summary.method, created=summary.created, duration=duration_of(status),
            final_loss=summary.final_loss, best_eval_loss=status.get("best_eval_loss"), steps=status.get("steps"),
            tags=meta["tags"], notes=meta["notes"], error=summary.error, resumable=is_resumable(run_dir, status),
        ))
    return records


# ---------------------------------------------------------------- delete, clone, diff


def delete_run(workspace: Workspace, run_id: str) -> None:
    """Delete a finished run's folder and everything in it; RunBusyError while it is queued or running.

    PathError when `run_id` is not a run of this workspace."""
    run_dir = workspace.run_dir(run_id)
    state = run_folder.run_status(run_dir).get("state")
    if state not in FINAL_STATES:
        raise RunBusyError(f"run {run_dir.name} is {state}: stop it (or kill it) before deleting it")
    shutil.rmtree(run_dir)


def clone_name(run_name: str) -> str:
    """The name for a copy of a run: `name-copy`, then `name-copy2`, `name-copy3`…"""
    base = run_name.strip() or "run"
    match = re.fullmatch(r"(.*)-copy(\d*)", base)
    if match:
        base, suffix = match.group(1), f"-copy{int(match.group(2) or 1) + 1}"
    else:
        suffix = "-copy"
    return base[: 80 - len(suffix)] + suffix


def clone_config(workspace: Workspace, run_id: str) -> cfg.RunConfig:
    """Run `run_id`'s config with its name suffixed, ready to edit and start as a new run."""
    config = run_folder.load_config(workspace.run_dir(run_id))
    return dataclasses.replace(config, run_name=clone_name(config.run_name))


def config_diff(configs: list[tuple[str, cfg.RunConfig]]) -> list[list[Any]]:
    """Rows `[key, value in run 1, value in run 2, …]` for every config key whose values differ (run names aside)."""
    flats = [cfg.to_flat(config) for _run, config in configs]
    keys = [k for k in cfg.flat_keys() if k != "run_name"]
    keys += [k for flat in flats for k in flat if k not in keys and k != "run_name"]
    rows = []
    for key in keys:
        values = [flat.get(key) for flat in flats]
        if any(v != values[0] for v in values[1:]):
            rows.append([key, *values])
    return rows


# ---------------------------------------------------------------- a run's series


@dataclass
class GpuSeries:
    """One GPU's readings over time (values may be None where the driver did not report them)."""

    name: str = ""
    minutes: list[float] = field(default_factory=list)
    memory_used_gb: list[float | None] = field(default_factory=list)
    memory_total_gb: float | None = None
    utilization: list[float | None] = field(default_factory=list)
    temperature: list[float | None] = field(default_factory=list)
    power: list[float | None] = field(default_factory=list)


def _number(value: Any) -> float | None:
    """`value` when it is a finite number, else None (a damaged metrics line must not break a chart)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def _gb(mb: Any) -> float | None:
    return round(float(mb) / 1024, 3) if _number(mb) is not None else None


def _rewind(steps: list[int], step: int, *columns: list) -> None:
    """Drop the points at or after `step` (a resumed run logs those steps again)."""
    cut = next((i for i, s in enumerate(steps) if s >= step), len(steps))
    for column in (steps, *columns):
        del column[cut:]


def _is_stage_chart_key(key: str) -> bool:
    """Whether a metrics.jsonl key is one of the stage metrics the training chart draws (GRPO's rewards)."""
    return key in ("reward", "reward_std", "completion_length", "kl", "clip_ratio") or key.startswith(("reward/", "reward_std/"))


@dataclass
class Series:
    """Everything a run's charts and probe panel show, in columns, grown incrementally from byte offsets."""

    run_id: str = ""
    # training rows (x = step)
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    learning_rate: list[float | None] = field(default_factory=list)
    grad_norm: list[float | None] = field(default_factory=list)
    tokens_per_s: list[float | None] = field(default_factory=list)
    last: dict[str, Any] | None = None  # the latest training row as written
    # what the stage's trainer logs (GRPO's reward, reward/NAME, completion_length, kl, clip_ratio), each a column
    # beside `steps` (None where a row lacks it)
    stage: dict[str, list[float | None]] = field(default_factory=dict)
    # evaluation rows (x = step)
    eval_steps: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    # system rows (x = minutes since the first reading)
    sys_minutes: list[float] = field(default_factory=list)
    cpu_percent: list[float | None] = field(default_factory=list)
    ram_used_gb: list[float | None] = field(default_factory=list)
    ram_total_gb: float | None = None
    gpus: dict[int, GpuSeries] = field(default_factory=dict)
    system_seen: bool = False
    last_system: dict[str, Any] | None = None
    # probe answers: prompt index -> {"prompt": text, "answers": {step: (answer, seconds, rewards or None)}}
    probes: dict[int, dict[str, Any]] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=lambda: {METRICS_FILE: 0, SYSTEM_FILE: 0, SAMPLES_FILE: 0})
    _t0: float | None = None

    def read_new(self, run_dir: Path) -> set[str]:
        """Read the lines appended since last time; returns which of "metrics", "system", "samples" changed."""
        run_dir = Path(run_dir)
        changed = set()
        for name, kind, add in ((METRICS_FILE, "metrics", self._add_metric), (SYSTEM_FILE, "system", self._add_system), (SAMPLES_FILE, "samples", self._add_sample)):
            rows, self.offsets[name] = read_jsonl_from(run_dir / name, self.offsets[name])
            for row in rows:
                add(row)
            if rows:
                changed.add(kind)
        return changed

    def _add_metric(self, row: dict[str, Any]) -> None:
        step = row.get("step")
        if _number(step) is None:
            return
        if isinstance(row.get("loss"), (int, float)):
            if self.steps and step <= self.steps[-1]:
                _rewind(self.steps, step, self.loss, self.learning_rate, self.grad_norm, self.tokens_per_s, *self.stage.values())
            for key in (k for k in row if k not in self.stage and _is_stage_chart_key(k)):
                self.stage[key] = [None] * len(self.steps)
            for key, column in self.stage.items():
                column.append(_number(row.get(key)))
            self.steps.append(step)
            self.loss.append(float(row["loss"]))
            self.learning_rate.append(_number(row.get("learning_rate")))
            self.grad_norm.append(_number(row.get("grad_norm")))
            self.tokens_per_s.append(_number(row.get("tokens_per_s")))
            self.last = row
        elif isinstance(row.get("eval_loss"), (int, float)):
            if self.eval_steps and step <= self.eval_steps[-1]:
                _rewind(self.eval_steps, step, self.eval_loss)
            self.eval_steps.append(step)
            self.eval_loss.append(float(row["eval_loss"]))

    def _add_system(self, row: dict[str, Any]) -> None:
        moment = _number(row.get("time", row.get("elapsed")))
        if moment is None:
            return
        if self._t0 is None:
            self._t0 = float(moment)
        minutes = round((float(moment) - self._t0) / 60, 4)
        self.system_seen, self.last_system = True, row
        self.sys_minutes.append(minutes)
        self.cpu_percent.append(_number(row.get("cpu_percent")))
        self.ram_used_gb.append(_number(row.get("ram_used_gb")))
        self.ram_total_gb = _number(row.get("ram_total_gb")) or self.ram_total_gb
        for position, gpu in enumerate(row.get("gpus") or []):
            if not isinstance(gpu, dict):
                continue
            index = gpu.get("index", position)
            series = self.gpus.setdefault(index if isinstance(index, int) else position, GpuSeries())
            series.name = str(gpu.get("name") or series.name)
            series.minutes.append(minutes)
            series.memory_used_gb.append(_gb(gpu.get("memory_used_mb")))
            series.memory_total_gb = _gb(gpu.get("memory_total_mb")) or series.memory_total_gb
            series.utilization.append(_number(gpu.get("utilization_percent")))
            series.temperature.append(_number(gpu.get("temperature_c")))
            series.power.append(_number(gpu.get("power_w")))

    def _add_sample(self, row: dict[str, Any]) -> None:
        step, index = row.get("step"), row.get("prompt_index")
        if _number(step) is None or not isinstance(index, int):
            return
        probe = self.probes.setdefault(index, {"prompt": str(row.get("prompt", "")), "answers": {}})
        rewards = row.get("rewards") if isinstance(row.get("rewards"), dict) else None
        probe["answers"][int(step)] = (str(row.get("answer", "")), row.get("seconds"), rewards)


def load_series(run_dir: Path) -> Series:
    """A run's whole series, read from the start of its files."""
    series = Series(run_id=Path(run_dir).name)
    series.read_new(run_dir)
    return series
