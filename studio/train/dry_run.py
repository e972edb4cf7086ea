"""Dry run (`dry_run=true`): the exact configuration for a few real optimizer steps, to measure instead of
guess. It records the true peak memory and the speed next to the estimate, saves no weights, and the
worker process ends right after (which frees the GPU).

Measured: on a GPU, torch.cuda.max_memory_reserved (what torch's allocator held at its peak) plus the
highest GPU memory NVML reported (system.jsonl, what nvidia-smi shows, CUDA context included); on a CPU,
the worker's peak resident memory (peak RSS). Written to the run folder's dry_run.json and to status.json
under `dry_run`.

An out-of-memory error, in a dry run or a real run, is recorded with the estimate's fixes
(`failure_fields`): a dry run that runs out of memory completes with the verdict "won't fit"; a real run
fails with cause "out of memory".
"""

from __future__ import annotations

import dataclasses
import gc
import json
import resource
import time
from pathlib import Path
from typing import Any

from studio import config as cfg
from studio.workspace import (
    CONFIG_FILE,
    DRY_RUN_FILE,
    ESTIMATE_FILE,
    SYSTEM_FILE,
    read_jsonl_from,
)

DRY_RUN_STEPS = 5
GiB = 2**30
OUT_OF_MEMORY = "out of memory"


def prepare(config: cfg.RunConfig) -> cfg.RunConfig:
    """The config a dry run trains with: the same model, data, method and batch shape, but a few steps and
    no checkpoints, validation or probe answers."""
    train = dataclasses.replace(config.train, max_steps=DRY_RUN_STEPS, save_steps=0, eval_steps=0, early_stop_patience=0, probe_steps=0)
    data = dataclasses.replace(config.data, val_size=0.0)
    if hasattr(data, "val_file"):
        data = dataclasses.replace(data, val_file="")
    return dataclasses.replace(config, train=train, data=data)


class _StepClock:
    """Times optimizer steps after the first (which includes warm-up and the optimizer's first allocation)."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.tokens_at_start = 0

    def on_step_end(self, trainer) -> None:
        if self.started is None and trainer.state.global_step >= 1:
            self.started = time.perf_counter()
            self.tokens_at_start = trainer.state.num_input_tokens_seen


def start(trainer) -> None:
    """Before trainer.train(): count input tokens, reset the GPU's peak counters, time the steps."""
    from transformers import TrainerCallback

    trainer.args.include_num_input_tokens_seen = "non_padding"
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    except ImportError:
        pass
    clock = _StepClock()

    class ClockCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.on_step_end(trainer)

    trainer.add_callback(ClockCallback())
    trainer._studio_dry_run_clock = clock


def _nvml_peak_gb(run_dir: Path) -> float | None:
    rows, _ = read_jsonl_from(run_dir / SYSTEM_FILE, 0)
    used = [g.get("memory_used_mb") or 0 for row in rows for g in row.get("gpus", []) if g.get("index", 0) == 0]
    return round(max(used) / 1024, 3) if used else None


def _estimated_gb(run_dir: Path) -> float | None:
    try:
        return json.loads((run_dir / ESTIMATE_FILE).read_text(encoding="utf-8")).get("total_gb")
    except (OSError, ValueError):
        return None


def measure(run_dir: Path, trainer) -> dict[str, Any]:
    """The dry run's measurements after trainer.train(): peak memory (and what kind), tokens/s, the estimate."""
    import torch

    clock = getattr(trainer, "_studio_dry_run_clock", None)
    tokens_per_s = None
    if clock is not None and clock.started is not None:
        seconds = time.perf_counter() - clock.started
        tokens = trainer.state.num_input_tokens_seen - clock.tokens_at_start
        tokens_per_s = round(tokens / seconds, 1) if seconds > 0 and tokens > 0 else None
    if torch.cuda.is_available():
        peak_gb = torch.cuda.max_memory_reserved() / GiB
        kind = "torch.cuda.max_memory_reserved"
    else:
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB  # Linux reports KiB
        kind = "peak RSS (CPU)"
    estimated = _estimated_gb(run_dir)
    return {
        "steps": trainer.state.global_step,
        "measured_peak_gb": round(peak_gb, 3),
        "measured_kind": kind,
        "nvml_peak_gb": _nvml_peak_gb(run_dir),
        "estimated_gb": estimated,
        "tokens_per_s": tokens_per_s,
        "out_of_memory": False,
    }


def finish(run_dir: Path, trainer) -> dict[str, Any]:
    """After a dry run's trainer.train(): write dry_run.json, free what it can of the device, and return the
    final status fields (completed; no weights saved)."""
    result = measure(run_dir, trainer)
    (run_dir / DRY_RUN_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
    trainer.model = trainer.model_wrapped = trainer.optimizer = None
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
    speed = f", {result['tokens_per_s']:,.0f} tokens/s" if result["tokens_per_s"] else ""
    estimate = f" (estimated {result['estimated_gb']:.2f} GB)" if result["estimated_gb"] is not None else ""
    phase = f"dry run finished: peak {result['measured_peak_gb']:.2f} GB by {result['measured_kind']}{estimate}{speed}; nothing saved"
    return {"state": "completed", "phase": phase, "dry_run": result, "steps": result["steps"], "output": None}


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA (or CPU allocator) out-of-memory errors."""
    try:
        import torch

        if isinstance(error, torch.OutOfMemoryError):
            return True
    except ImportError:
        pass
    return "out of memory" in str(error).lower()


def failure_fields(run_dir: Path, error: BaseException) -> dict[str, Any] | None:
    """Status fields for an out-of-memory error in the worker (None for any other error). A dry run
    completes with verdict "won't fit"; a real run fails with cause "out of memory". Both name the fixes the
    run's estimate.json lists."""
    if not is_out_of_memory(error):
        return None
    try:
        estimate = json.loads((run_dir / ESTIMATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        estimate = {}
    fixes = estimate.get("fixes") or []
    from studio.fit import change_text

    advice = "; ".join(f"{f['title']} ({change_text(f['change'], ', ')})" for f in fixes[:3])
    advice = advice or "lower batch_size or cutoff_len, turn on gradient_checkpointing, or use lora/qlora"
    try:
        dry = cfg.read_config(run_dir / CONFIG_FILE).train.dry_run
    except (OSError, cfg.ConfigError, AttributeError):
        dry = False
    if dry:
        result = {"verdict": "won't fit", "out_of_memory": True, "error": str(error).split("\n")[0][:300],
                  "estimated_gb": estimate.get("total_gb"), "fixes": fixes}
        (run_dir / DRY_RUN_FILE).write_text(json.dumps(result, indent=2), encoding="utf-8")
        return {"state": "completed", "phase": f"dry run: won't fit (out of memory). Try: {advice}", "dry_run": result}
    return {"state": "failed", "phase": "failed", "cause": OUT_OF_MEMORY, "fixes": fixes,
            "error": f"out of memory: {str(error).split(chr(10))[0][:300]} — the estimate ({ESTIMATE_FILE}) suggests: {advice}"}
