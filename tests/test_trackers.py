"""A run can report to an experiment tracker besides the studio's monitor: TensorBoard's event files land in
the run folder with the same losses as metrics.jsonl; a tracker that is not installed is refused up front."""

from __future__ import annotations

import json
import threading

import pytest

from studio import config as cfg
from studio import jobs
from studio.workspace import PRESETS_DIR

STEPS = 4


def _config(workspace, **overrides) -> cfg.RunConfig:
    data = workspace.root / "tiny.jsonl"
    lines = (PRESETS_DIR / "datasets" / "demo-chat.jsonl").read_text(encoding="utf-8").splitlines()[:8]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cfg.apply_overrides(cfg.RunConfig(), {
        "dataset": "tiny.jsonl", "max_steps": STEPS, "batch_size": 4, "cutoff_len": 128, "save_steps": 0,
        "probe_steps": 0, **overrides})


@pytest.mark.slow
def test_tensorboard_gets_the_same_losses_as_the_monitor(workspace, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from studio.train import worker

    config = _config(workspace, report_to="tensorboard")
    run_dir = jobs.create_run(workspace, config)
    status = worker.train(workspace, run_dir, config, threading.Event())
    assert status["state"] == "completed", status
    assert "reporting to TensorBoard too" in capsys.readouterr().out

    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file in the run folder"
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    logged = {event.step: event.value for event in accumulator.Scalars("train/loss")}
    monitored = {row["step"]: row["loss"] for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
                 if row.get("loss") is not None}
    assert sorted(logged) == sorted(monitored) == list(range(1, STEPS + 1))
    assert all(abs(logged[step] - monitored[step]) < 1e-4 for step in logged)


def test_a_tracker_that_is_not_installed_is_refused_before_any_run_folder(workspace, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(cfg.ConfigError) as refused:
        jobs.create_run(workspace, _config(workspace, report_to="wandb"))
    assert "report_to" in str(refused.value) and "pip install wandb" in str(refused.value)
    assert not list(workspace.runs_dir.glob("*"))
