"""Multi-process smoke runs, timed: tiny-demo + demo-chat for a few steps under each strategy this machine can
run, started exactly as the studio starts them (`accelerate launch` through studio.jobs). Records tokens/s
(median of the logged steps after the first), the peak GPU memory the system sampler saw, and wall time.

Run: python bench/distributed_smoke.py [MODEL]   → bench/results/distributed_smoke.json
On a GPU machine: single-GPU DeepSpeed ZeRO-2 (when deepspeed is installed) and FSDP, plus DDP over every GPU;
without GPUs: DDP and fsdp (which Accelerate runs as DDP on CPUs) over 2 CPU processes (gloo).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def smoke(workspace, model: str, strategy: str, gpus: str, max_steps: int = 30, timeout_s: float | None = None) -> dict:
    """One run of `strategy`: its outcome, tokens/s, peak GPU memory (MiB, from system.jsonl) and wall time. A run
    still going after `timeout_s` is killed and reported as timed out."""
    from studio import config as cfg
    from studio import jobs
    from studio import run_folder

    overrides = {"run_name": strategy, "model": model, "dataset": "demo-chat", "max_steps": max_steps, "batch_size": 4,
                 "cutoff_len": 256, "save_steps": 0, "probe_steps": 0, "strategy": strategy, "gpus": gpus, "processes": 2}
    started = time.perf_counter()
    run_dir = jobs.launch(workspace, cfg.check(cfg.apply_overrides(cfg.RunConfig(), overrides)))
    status = _wait(run_dir, timeout_s)
    wall = time.perf_counter() - started
    rows = [r for r in run_folder.read_metrics(run_dir)[0] if r.get("tokens_per_s")]
    samples = run_folder.read_system(run_dir)[0]
    peak = max((g["memory_used_mb"] for s in samples for g in s.get("gpus", []) if g.get("memory_used_mb")), default=None)
    return {"strategy": strategy, "gpus": gpus or None, "state": status.get("state"), "error": status.get("error"),
            "processes": status.get("processes"), "effective_batch": status.get("effective_batch"),
            "steps": status.get("steps"), "final_loss": status.get("final_loss"),
            "tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in rows[1:]) if len(rows) > 1 else None,
            "peak_gpu_memory_mib": peak, "wall_s": round(wall, 1)}


def _wait(run_dir: Path, timeout_s: float | None) -> dict:
    """The run's final status; after `timeout_s` the run is killed and its state reads "timed out"."""
    from studio import jobs
    from studio import run_folder
    from studio.train.status import FINAL_STATES

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while (status := run_folder.run_status(run_dir)).get("state") not in FINAL_STATES:
        if deadline is not None and time.monotonic() > deadline:
            jobs.kill_run(run_dir)
            return {**run_folder.run_status(run_dir), "state": "timed out", "error": f"killed after the time limit of {timeout_s:.0f} s"}
        time.sleep(0.5)
    return status


def main() -> None:
    import torch

    from studio.workspace import Workspace

    model = sys.argv[1] if len(sys.argv) > 1 else "tiny-demo"
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        plan = [("fsdp", "0"), ("ddp", "")]
        if importlib.util.find_spec("deepspeed"):
            plan.insert(0, ("deepspeed_zero2", "0"))
    else:
        plan = [("ddp", ""), ("fsdp", "")]
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp))
        runs = [smoke(workspace, model, strategy, chosen) for strategy, chosen in plan]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
    machine += ", ".join(torch.cuda.get_device_name(i) for i in range(gpus)) if gpus else "no GPU"
    result = {"command": " ".join(["python", "bench/distributed_smoke.py", *sys.argv[1:]]), "machine": machine,
              "model": model, "deepspeed_installed": importlib.util.find_spec("deepspeed") is not None, "runs": runs}
    if not gpus:
        result["note"] = ("no GPU here: the single-GPU DeepSpeed ZeRO-2 and FSDP smoke runs (tokens/s, peak GPU memory) "
                          "are still to be run on a GPU machine; fsdp on CPU processes runs as DDP (Accelerate's FSDP needs GPUs)")
    out = ROOT / "bench" / "results" / "distributed_smoke.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
