"""bench/gpu_check.py: the CPU rehearsal runs the whole plan through the worker and writes every section the GPU
run writes, with its figures labelled as CPU figures; the committed results hold the estimator to its goal on
every row measured on a GPU; the carried wheels fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402
import gpu_check_runs  # noqa: E402

PATHS = {"dry_run", "qlora_4bit", "bf16_sdpa", "liger", "gpu_sampling", "qlora_8bit_paged_adamw_8bit", "adamw_8bit", "out_of_memory_wont_fit"}


def _check_calibration_row(row: dict) -> None:
    assert {"model", "architecture", "method", "cutoff_len", "batch_size", "gradient_checkpointing", "device", "predicted_gb",
            "predicted_total_gb", "state"} <= set(row), row
    assert row["predicted_gb"] <= row["predicted_total_gb"]
    if row["state"] == "completed":
        assert row["measured_gb"] > 0 and row["measured_kind"] in (gpu_check.GPU_KIND, "peak RSS (CPU)")


@pytest.mark.slow
def test_cpu_rehearsal_runs_the_plan_through_the_worker_and_labels_its_figures_as_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--cpu-rehearsal", "--out", str(out), "--budget-s", "900"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["mode"] == "cpu-rehearsal" and data["gpu"] is None and "CPU figure" in data["device"] and data["finished"]
    assert {step: s["state"] for step, s in data["steps"].items()} == {step: "done" for step in gpu_check.STEPS}
    assert data["environment"]["packages"]["torch"] and data["environment"]["python"]

    rows = data["calibration"]
    assert {r["model_type"] for r in rows} == {"qwen2", "llama"} and {r["method"] for r in rows} == {"lora", "full"}
    for row in rows:
        _check_calibration_row(row)
        assert row["state"] == "completed" and row["measured_kind"] == "peak RSS (CPU)" and row["device"] == "cpu"
        assert row["within_goal"] is None and "not comparable" in row["note"], "a CPU figure never passes for a GPU one"
        assert gpu_check.predicted_gb(row) == {k: row[k] for k in ("predicted_gb", "predicted_total_gb")}, "the row reproduces its prediction"
        assert row["gpu_samples"]["samples"] > 0 and row["gpu_samples"]["samples_with_gpu"] == 0
    assert gpu_check.calibration_misses(rows) == []

    (speed,) = data["throughput"]
    assert speed["state"] == "completed" and speed["tokens_per_s"] > 0 and speed["packing"]
    assert speed["tokens_per_s_kind"] == "CPU (tiny shapes)" and speed["mfu"] is None
    paths = {p["name"]: p["state"] for p in data["paths"]}
    assert set(paths) == PATHS and paths["dry_run"] == "ok"
    assert {paths[n] for n in PATHS - {"dry_run"}} <= {"not applicable on a CPU", "skipped"}
    assert [(r["strategy"], r["state"]) for r in data["distributed"]] == [("fsdp", "skipped"), ("deepspeed_zero2", "skipped")]
    assert data["gpu_tests"]["state"] == "skipped"


@pytest.mark.slow
def test_the_wrapper_runs_the_check_and_copies_its_json_and_log_to_out(tmp_path):
    out_dir, written = tmp_path / "out", tmp_path / "check.json"
    out_dir.mkdir()
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--cpu-rehearsal", "--out", str(written), "--steps", "environment"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "OUT": str(out_dir)}, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    copied = json.loads((out_dir / "check.json").read_text(encoding="utf-8"))
    assert copied == json.loads(written.read_text(encoding="utf-8")) and copied["steps"]["environment"]["state"] == "done"
    assert copied["environment"]["packages"]["trl"] and "environment: done" in (out_dir / "gpu_check.log").read_text(encoding="utf-8")


def test_a_rehearsal_never_overwrites_gpu_results_and_no_gpu_without_rehearsal_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "_gpu", lambda: None)
    assert gpu_check.main(["--out", str(tmp_path / "x.json")]) == 2
    assert "no CUDA GPU here" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
    measured = tmp_path / "gpu.json"
    measured.write_text(json.dumps({"mode": "gpu", "gpu": {"name": "NVIDIA H100 80GB HBM3"}}), encoding="utf-8")
    assert gpu_check.main(["--cpu-rehearsal", "--out", str(measured)]) == 2
    assert "holds GPU results" in capsys.readouterr().err and json.loads(measured.read_text())["gpu"]
    assert gpu_check.main(["--cpu-rehearsal", "--steps", "calibration,warmup"]) == 2
    assert "unknown steps ['warmup']" in capsys.readouterr().err


def _gpu_row(measured_gb_of_prediction: float) -> dict:
    """A row of the 7B LoRA shape as the GPU run writes it, its measurement a multiple of today's prediction."""
    from studio.models.architecture import Architecture
    from studio.models.catalog import load_catalog

    arch = Architecture.from_dict(load_catalog()["qwen2.5-7b-instruct"].architecture)
    row = {"model": "qwen2.5-7b-instruct", "architecture": arch.to_dict(), "method": "lora", "cutoff_len": 2048, "batch_size": 2,
           "gradient_checkpointing": True, "device": "cuda", "measured_kind": gpu_check.GPU_KIND, "state": "completed"}
    return {**row, "measured_gb": round(gpu_check.predicted_gb(row)["predicted_gb"] * measured_gb_of_prediction, 3)}


def test_calibration_misses_name_the_gpu_rows_the_estimate_misses_by_more_than_ten_percent():
    assert gpu_check.calibration_misses([_gpu_row(1.0), _gpu_row(1.08)]) == []
    (miss,) = gpu_check.calibration_misses([_gpu_row(1.0), _gpu_row(1.25)])
    assert miss.startswith("qwen2.5-7b-instruct lora cutoff 2048 batch 2") and "(-20.0%)" in miss
    cpu_row = {**_gpu_row(3.0), "measured_kind": "peak RSS (CPU)"}
    assert gpu_check.calibration_misses([cpu_row]) == [], "a CPU row is no test of the GPU estimate"


def test_the_committed_results_hold_the_estimate_to_its_goal_on_every_gpu_row():
    """bench/results/gpu_check.json: on GPU rows the estimator of today must be within 10%; a rehearsal's file
    must not pass off a CPU figure as a GPU one."""
    data = json.loads((ROOT / "bench" / "results" / "gpu_check.json").read_text(encoding="utf-8"))
    assert data["command"].startswith("python bench/gpu_check.py") and set(data["steps"]) == set(gpu_check.STEPS)
    rows = data["calibration"]
    for row in rows:
        _check_calibration_row(row)
    gpu_rows = [r for r in rows if r.get("measured_kind") == gpu_check.GPU_KIND]
    if data["mode"] == "gpu":
        assert data["gpu"]["name"] and len(rows) >= 12
        assert gpu_check.calibration_misses(rows) == []
    else:
        assert data["mode"] == "cpu-rehearsal" and data["gpu"] is None and gpu_rows == []
        assert all(r["tokens_per_s_kind"].startswith("CPU") and r["mfu"] is None for r in data["throughput"])


def test_the_carried_wheels_fit_and_answer_each_others_needs():
    data = json.loads((ROOT / "bench" / "results" / "gpu_wheels.json").read_text(encoding="utf-8"))
    assert data["total_mb"] <= data["limit_mb"] == 60 and data["trial_install_py312"] == "ok"
    assert data["needs_not_carried"] == []
    carried = {name.split("-")[0].lower() for name in data["wheels_mb"]}
    assert {"trl", "datasets", "bitsandbytes", "liger_kernel", "deepspeed"} <= carried
    assert any(name.startswith("fallback/datasets-") for name in data["wheels_mb"]), "datasets for an older pyarrow"


def test_mfu_needs_a_known_gpu_and_counts_the_model_flops_of_each_token():
    from studio.models.architecture import Architecture
    from studio.models.catalog import load_catalog

    arch = Architecture.from_dict(load_catalog()["qwen2.5-7b-instruct"].architecture)
    assert gpu_check_runs.mfu(3000.0, arch, 2048, None) is None and gpu_check_runs.mfu(3000.0, arch, 2048, "Some Future GPU") is None
    sxm = gpu_check_runs.mfu(3000.0, arch, 2048, "NVIDIA H100 80GB HBM3")
    assert 0.1 < sxm < 0.2, "7B at 3000 tokens/s is about 14% of an H100's 989 TFLOP/s"
    assert gpu_check_runs.mfu(3000.0, arch, 2048, "NVIDIA H100 PCIe") > sxm, "the PCIe card's lower peak"
    assert gpu_check_runs.model_flops_per_token(arch, 4096) > gpu_check_runs.model_flops_per_token(arch, 2048)


def test_the_out_of_memory_path_passes_on_what_the_worker_writes_for_a_dry_run_that_runs_out(tmp_path):
    import torch

    from studio import config as cfg
    from studio import jobs
    from studio.train import dry_run
    from studio.workspace import DRY_RUN_FILE, Workspace

    config = cfg.apply_overrides(cfg.RunConfig(), {"dry_run": True, "model": "qwen2.5-7b-instruct", "method": "full", "batch_size": 8,
                                                   "cutoff_len": 2048, "gradient_checkpointing": False})
    run_dir = jobs.create_run(Workspace(tmp_path), config)
    status = dry_run.failure_fields(run_dir, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB"))
    outcome = {"state": status["state"], "phase": status["phase"], "dry_run": json.loads((run_dir / DRY_RUN_FILE).read_text())}
    state, detail = gpu_check._judge_path("out_of_memory_wont_fit", outcome)
    assert state == "ok" and detail.startswith("dry run: won't fit (out of memory). Try:") and "fixes)" in detail
    assert gpu_check._judge_path("out_of_memory_wont_fit", {**outcome, "dry_run": {"measured_peak_gb": 70.0}})[0] == "failed"
