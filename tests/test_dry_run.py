"""Dry run (dry_run=true): a few real steps on tiny-demo (CPU), the measurements next to the estimate,
nothing saved; out-of-memory in a dry run is "won't fit" with the fixes, in a real run a failure with cause."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

from studio import config as cfg
from studio import jobs
from studio.hardware import cuda_gpus
from studio.train import dry_run, worker
from studio.train.status import read_status
from studio.workspace import (
    ADAPTER_DIR,
    DRY_RUN_FILE,
    ESTIMATE_FILE,
    FULL_MODEL_DIR,
    Workspace,
)


@pytest.mark.slow
def test_dry_run_measures_a_few_real_steps_and_saves_nothing(tmp_path):
    result = run_cli("train", "dry_run=true", "batch_size=2", "cutoff_len=64", "run_name=dry", workspace=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "dry run finished: peak" in result.stdout and "peak RSS (CPU)" in result.stdout
    run_dir = next((tmp_path / "runs").iterdir())
    status = read_status(run_dir)
    assert status["state"] == "completed" and status["steps"] == dry_run.DRY_RUN_STEPS
    measured = json.loads((run_dir / DRY_RUN_FILE).read_text(encoding="utf-8"))
    assert measured == status["dry_run"]
    on_gpu = bool(cuda_gpus())
    assert (measured["measured_kind"] == "peak RSS (CPU)") != on_gpu and measured["measured_peak_gb"] > 0
    assert measured["tokens_per_s"] > 0 and not measured["out_of_memory"]
    estimate = json.loads((run_dir / ESTIMATE_FILE).read_text(encoding="utf-8"))
    assert measured["estimated_gb"] == estimate["total_gb"] > 0
    assert estimate["device"].startswith("GPU 0") if on_gpu else estimate["device"] == "CPU (RAM)"
    assert not (run_dir / ADAPTER_DIR).exists() and not (run_dir / FULL_MODEL_DIR).exists()
    assert not list((run_dir / "checkpoints").glob("checkpoint-*")) if (run_dir / "checkpoints").exists() else True


def test_prepare_keeps_the_shape_of_the_run_and_drops_the_extras():
    config = cfg.apply_overrides(cfg.RunConfig(), {"dry_run": True, "batch_size": 3, "cutoff_len": 300, "val_size": 0.2, "eval_steps": 5, "probe_steps": 10})
    prepared = dry_run.prepare(config)
    assert (prepared.train.batch_size, prepared.train.cutoff_len, prepared.model.model, prepared.method.method) == (3, 300, "tiny-demo", "lora")
    assert prepared.train.max_steps == dry_run.DRY_RUN_STEPS
    assert (prepared.train.save_steps, prepared.train.eval_steps, prepared.train.probe_steps, prepared.data.val_size) == (0, 0, 0, 0)


def _run_that_runs_out_of_memory(tmp_path, monkeypatch, dry: bool):
    import torch

    workspace = Workspace(tmp_path)
    config = cfg.apply_overrides(cfg.RunConfig(), {"dry_run": dry, "model": "qwen2.5-7b-instruct", "cutoff_len": 4096, "gradient_checkpointing": False})
    run_dir = jobs.create_run(workspace, config)

    def out_of_memory(*_args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(worker, "train", out_of_memory)
    return run_dir, worker.run_worker(workspace, run_dir)


def test_out_of_memory_in_a_dry_run_is_wont_fit_with_fixes(tmp_path, monkeypatch):
    run_dir, exit_code = _run_that_runs_out_of_memory(tmp_path, monkeypatch, dry=True)
    status = read_status(run_dir)
    assert exit_code == 0 and status["state"] == "completed"
    assert status["dry_run"]["verdict"] == "won't fit" and status["dry_run"]["out_of_memory"]
    assert status["phase"].startswith("dry run: won't fit (out of memory). Try:")
    assert status["dry_run"]["fixes"] and all("change" in f for f in status["dry_run"]["fixes"])


def test_out_of_memory_in_a_real_run_fails_with_the_cause_and_the_fixes(tmp_path, monkeypatch):
    run_dir, exit_code = _run_that_runs_out_of_memory(tmp_path, monkeypatch, dry=False)
    status = read_status(run_dir)
    assert exit_code == 1 and status["state"] == "failed" and status["cause"] == "out of memory"
    assert status["error"].startswith("out of memory: CUDA out of memory") and "estimate.json" in status["error"]
    estimate = json.loads((run_dir / ESTIMATE_FILE).read_text(encoding="utf-8"))
    assert status["fixes"] == estimate["fixes"]


def test_other_errors_are_not_called_out_of_memory(tmp_path):
    assert dry_run.failure_fields(tmp_path, ValueError("bad value")) is None


def test_every_run_saves_its_estimate(tmp_path):
    run_dir = jobs.create_run(Workspace(tmp_path), cfg.RunConfig())
    estimate = json.loads((run_dir / ESTIMATE_FILE).read_text(encoding="utf-8"))
    assert estimate["verdict"] == "fits" and estimate["components"]["weights"] > 0


def test_a_hub_model_not_cached_gets_a_reason_instead_of_a_download(tmp_path):
    from studio.fit import save_estimate

    run_dir = tmp_path / "runs" / "x"
    run_dir.mkdir(parents=True)
    data = save_estimate(Workspace(tmp_path), run_dir, cfg.apply_overrides(cfg.RunConfig(), {"model": "Org/not-cached"}))
    assert data["error"].startswith("no memory estimate: config.json of Org/not-cached is not cached")
