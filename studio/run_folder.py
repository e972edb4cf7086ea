"""A run folder as data: its status (with a dead worker noticed), config, metrics, probe answers, system
readings, checkpoints, and the list of runs in a workspace.

Whoever reads a run's status checks that a `running` or `queued` worker is still alive (same pid *and* same
process start time, so a reused pid is not mistaken for ours); a dead one is marked failed with the cause and
the last lines of its log, unless the user killed it (a KILLED marker), which is recorded as stopped. Starting,
stopping and resuming workers is `studio.jobs`; the modules that only read runs import this one.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio import config as cfg
from studio.train import distributed
from studio.train.status import COMPLETED, FAILED, FINAL_STATES, QUEUED, RUNNING, STOPPED, read_status, update_status
from studio.workspace import (
    ADAPTER_DIR,
    CONFIG_FILE,
    FULL_MODEL_DIR,
    KILLED_FILE,
    LOG_FILE,
    METRICS_FILE,
    REWARD_MODEL_DIR,
    SAMPLES_FILE,
    SYSTEM_FILE,
    Workspace,
    checkpoint_folders,
    process_alive,
    read_jsonl_from,
    tail_text,
)


KILLED_PHASE = "killed by the user"


@dataclass
class RunSummary:
    """One row of the runs list."""

    run_id: str
    state: str
    model: str
    dataset: str
    method: str
    created: float
    final_loss: float | None
    error: str
    run_name: str


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def record_killed(run_dir: Path) -> dict[str, Any]:
    """Record the run as stopped, killed by the user; returns the new status."""
    return update_status(run_dir, state=STOPPED, phase=KILLED_PHASE, killed=True, ended=time.time(), progress=None)


def record_exit(run_dir: Path, returncode: int, pid: int) -> None:
    """After worker `pid` exits: if it did not record an outcome itself, record that it died and how (or that
    the user killed it). Nothing is written when the run has a newer worker by now (it was resumed)."""
    status = read_status(run_dir)
    if status.get("pid") != pid:
        return
    # several processes: the launcher's summary names the rank that failed first (a rank killed by a signal
    # could not say so itself, and the others then fail only because it went)
    first = distributed.launcher_root_cause(tail_text(run_dir / LOG_FILE, 60)) if returncode else None
    if status.get("state") in FINAL_STATES:
        error = status.get("error") or ""
        if first and status.get("state") == FAILED and not error.startswith(f"rank {first[0]} "):
            update_status(run_dir, error=f"{first[1]}; then {error}")
        return
    if (run_dir / KILLED_FILE).exists():
        record_killed(run_dir)
        return
    how = f"was killed by {_signal_name(returncode)}" if returncode < 0 else f"exited with code {returncode}"
    cause = f"{first[1]}; " if first else ""
    update_status(run_dir, state=FAILED, phase="failed", ended=time.time(), progress=None, error=f"{cause}the worker process {how} before finishing; last log lines:\n{tail_text(run_dir / LOG_FILE, 8)}")


started_workers: dict[int, subprocess.Popen] = {}  # workers started by this process, by pid


def worker_alive(status: dict[str, Any]) -> bool:
    """True when the worker recorded in `status` still runs (same pid and the same process start time)."""
    return bool(status.get("pid")) and process_alive(status["pid"], status.get("pid_started"))


def run_status(run_dir: Path) -> dict[str, Any]:
    """The run's status, after marking it failed if its worker died without recording an outcome. A damaged
    status.json is left as it is (the worker rewrites it whole on its next update): the state is inferred from
    the run's files and the error says what is damaged."""
    status = read_status(run_dir)
    if status.get("damaged"):
        return _inferred_status(run_dir, status)
    if status.get("state") in FINAL_STATES:
        return status
    queued_at = float(status.get("queued_at") or status.get("created") or 0)
    fresh = (time.time() - queued_at < 10 or status.get("awaiting_machines")) and not status.get("pid")
    if not fresh and not worker_alive(status):
        # it may have ended between the two reads: a worker records its outcome before it exits
        ended = read_status(run_dir)
        if ended.get("state") in FINAL_STATES:
            return ended
        if (run_dir / KILLED_FILE).exists():
            return record_killed(run_dir)
        child = started_workers.get(int(status.get("pid") or 0))
        if child is not None:  # our own child: its exit code says exactly how it died (e.g. SIGKILL)
            try:
                record_exit(run_dir, child.wait(timeout=5), child.pid)
                return read_status(run_dir)
            except subprocess.TimeoutExpired:
                pass
        return update_status(
            run_dir, state=FAILED, phase="failed", ended=time.time(), progress=None,
            error="the worker process is gone (killed, out of memory, or the machine restarted); last log lines:\n"
            + tail_text(run_dir / LOG_FILE, 8),
        )
    return status


def _inferred_status(run_dir: Path, status: dict[str, Any]) -> dict[str, Any]:
    """`status` (read from a damaged status.json) with the state the run's files show: running while its worker
    lives, stopped when the user killed it, completed when its trained weights were saved, else failed."""
    if worker_alive(status):
        state = status["state"] if status.get("state") in (QUEUED, RUNNING) else RUNNING
    elif (run_dir / KILLED_FILE).exists():
        state = STOPPED
    elif any((run_dir / name).is_dir() and any((run_dir / name).iterdir()) for name in (ADAPTER_DIR, FULL_MODEL_DIR, REWARD_MODEL_DIR)):
        state = COMPLETED
    elif status.get("state") in FINAL_STATES:
        state = status["state"]
    else:
        state = FAILED
    note = f"{status['damaged']}; the state shown ({state}) is inferred from the run's files"
    error = status.get("error") or ""
    return {**status, "state": state, "error": f"{note}\n{error}" if error else note}


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's newest complete checkpoint folder (checkpoints/checkpoint-N with its trainer state), or None."""
    complete = checkpoint_folders(run_dir, holding=("trainer_state.json",))
    return complete[-1] if complete else None


def load_config(run_dir: Path) -> cfg.RunConfig:
    """The config a run was started with."""
    return cfg.read_config(run_dir / CONFIG_FILE)


def read_metrics(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Metric rows logged since byte `offset` of metrics.jsonl, and the next offset."""
    return read_jsonl_from(run_dir / METRICS_FILE, offset)


def read_samples(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Probe answers written since byte `offset` of samples.jsonl, and the next offset."""
    return read_jsonl_from(run_dir / SAMPLES_FILE, offset)


def read_system(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """System samples (CPU, RAM, GPUs) written since byte `offset` of system.jsonl, and the next offset."""
    return read_jsonl_from(run_dir / SYSTEM_FILE, offset)


def list_runs(workspace: Workspace) -> list[RunSummary]:
    """Every run in the workspace, newest first, with its current state."""
    summaries = []
    for run_id in workspace.run_ids():
        run_dir = workspace.runs_dir / run_id
        status = run_status(run_dir)
        error = (status.get("error") or "").split("\n")[0]
        try:
            config = load_config(run_dir)
        except (cfg.ConfigError, OSError) as problem:  # listed all the same, with what is wrong with its config
            config, error = None, f"{CONFIG_FILE} is damaged: {_first_line(problem)}" + (f"; {error}" if error else "")
        summaries.append(
            RunSummary(
                run_id=run_id,
                state=status.get("state", QUEUED),
                model=config.model.model if config else "?",
                dataset=config.data.dataset if config else "?",
                method=config.method.method if config else "?",
                created=float(status.get("created") or (run_dir / CONFIG_FILE).stat().st_mtime),
                final_loss=status.get("final_loss"),
                error=error,
                run_name=config.run_name if config else "",
            )
        )
    return summaries


def _first_line(error: Exception) -> str:
    """The first problem an error names (a ConfigError's first problem), on one line of at most 300 characters."""
    problems = getattr(error, "problems", None)
    text = " ".join(str(problems[0] if problems else error).split())
    return text if len(text) <= 300 else text[:300] + "…"


def wait(run_dir: Path, poll_s: float = 0.5, timeout_s: float | None = None) -> dict[str, Any]:
    """Block until the run reaches a final state; returns its status. Raises TimeoutError naming the run and its
    last state when `timeout_s` passes first."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = run_status(run_dir)
        if status.get("state") in FINAL_STATES:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run_dir.name} still {status.get('state')} after {timeout_s:g} s")
        time.sleep(poll_s)


def run_has_weights(run_dir: Path) -> bool:
    """True when the run saved trained weights that can be chatted with (a reward model cannot)."""
    return any((run_dir / d).is_dir() for d in (ADAPTER_DIR, FULL_MODEL_DIR))
