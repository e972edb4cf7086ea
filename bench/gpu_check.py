"""One GPU check: every path only a GPU shows, measured through the studio's own worker in one time-boxed run.

Steps, in order, each under its share of the time budget (rows that no longer fit are marked skipped, and the
JSON is rewritten after every row, so a run cut short still leaves its figures):
  environment   GPU, driver, package versions, `pip check`
  calibration   the VRAM estimate against torch.cuda.max_memory_reserved and the NVML peak (dry runs, random
                weights built from the catalog's numbers: 0.5B/1.5B/7B/8B × LoRA/QLoRA/full × cutoff 512/2048 ×
                gradient checkpointing on/off, bench/vram_calibration.py's matrix)
  throughput    tokens/s and model FLOPs utilisation, 1.5B and 7B LoRA/QLoRA at cutoff 2048, with and without
                padding-free packing and Liger
  paths         QLoRA 8-bit, 8-bit and paged optimizers, bf16 + sdpa, Liger, GPU sampling, the dry run, an
                out-of-memory run reported as "won't fit" with fixes
  distributed   single-GPU FSDP and DeepSpeed ZeRO-2 smoke runs (bench/distributed_smoke.py)
  gpu_tests     the tests marked `gpu`

    bench/gpu_check.sh                                   # on a GPU: install carried wheels, run, copy results to $OUT
    python bench/gpu_check.py [--budget-s 450] [--steps calibration,throughput]
    python bench/gpu_check.py --cpu-rehearsal --out /tmp/rehearsal.json   # the same plan, tiny shapes, on a CPU

Writes bench/results/gpu_check.json. A rehearsal's figures are CPU figures (peak RSS, CPU tokens/s) and say so.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import distributed_smoke
import gpu_check_runs as runs
import vram_calibration

from studio import config as cfg
from studio.memory import GiB, estimate, from_run_config
from studio.models.architecture import Architecture
from studio.models.catalog import load_catalog

ROOT = runs.ROOT
RESULTS = ROOT / "bench" / "results" / "gpu_check.json"
GOAL_PCT = 10.0
STEPS = ("environment", "calibration", "throughput", "paths", "distributed", "gpu_tests")
SHARES = {"environment": 0.02, "calibration": 0.38, "throughput": 0.26, "paths": 0.12, "distributed": 0.12, "gpu_tests": 0.10}
PACKAGES = ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "bitsandbytes", "liger-kernel", "deepspeed",
            "pyarrow", "fsspec", "huggingface-hub", "tokenizers", "nvidia-ml-py")
GPU_KIND = "torch.cuda.max_memory_reserved"
# bench/vram_calibration.py's rows in the order a run cut short should have them: each size and method early
CALIBRATION_ORDER = [9, 10, 0, 3, 6, 5, 7, 1, 14, 12, 8, 11, 2, 4, 13, 15]
# (model, method, packing, liger) at cutoff 2048, micro-batch 4, gradient checkpointing on; most telling first
GPU_THROUGHPUT = [("qwen2.5-7b-instruct", "lora", False, False), ("qwen2.5-7b-instruct", "lora", True, True),
                  ("qwen2.5-1.5b-instruct", "lora", False, False), ("qwen2.5-1.5b-instruct", "lora", True, True),
                  ("qwen2.5-7b-instruct", "qlora", False, False), ("qwen2.5-7b-instruct", "qlora", True, True),
                  ("qwen2.5-7b-instruct", "lora", True, False), ("qwen2.5-1.5b-instruct", "qlora", False, False),
                  ("qwen2.5-1.5b-instruct", "qlora", True, True), ("qwen2.5-1.5b-instruct", "lora", True, False)]


class Plan:
    """The shapes of one check: real model sizes on a GPU, tiny ones in the CPU rehearsal."""

    def __init__(self, rehearsal: bool):
        self.rehearsal = rehearsal
        if rehearsal:
            self.calibration = [("tiny-qwen2", "lora", 128, 2, True), ("tiny-llama", "full", 256, 2, False)]
            self.throughput = [("tiny-qwen2", "lora", True, False)]
            self.throughput_shape = (256, 2)  # cutoff, micro-batch
            self.long_rows, self.row_words = 24, 200
            self.min_run_s = 5.0
        else:
            self.calibration = [vram_calibration.MATRIX[i] for i in CALIBRATION_ORDER]
            self.throughput = GPU_THROUGHPUT
            self.throughput_shape = (2048, 4)
            self.long_rows, self.row_words = 32, 1500
            self.min_run_s = 25.0

    def architecture(self, name: str) -> tuple[str, Architecture]:
        """(transformers model type, architecture numbers) of a model the plan names."""
        if name in runs.TINY_ARCHITECTURES:
            return runs.TINY_ARCHITECTURES[name]
        return runs.model_type_of(name), Architecture.from_dict(load_catalog()[name].architecture)


class Check:
    """The results being gathered, the time budget, the models built so far; `save` rewrites the JSON."""

    def __init__(self, plan: Plan, out: Path, budget_s: float, steps: list[str], command: str, previous: dict):
        self.plan, self.out, self.steps = plan, out, steps
        self.deadline = time.monotonic() + budget_s
        self.step_deadline = self.deadline
        self.workspace = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.models: dict[str, Path] = {}
        write_datasets(self.workspace / "datasets", plan)
        self.gpu = _gpu()
        self.result = {**previous, "command": command, "mode": "cpu-rehearsal" if plan.rehearsal else "gpu", "gpu": self.gpu,
                       "device": self.gpu["name"] if self.gpu else "CPU rehearsal: tiny shapes; every figure is a CPU figure, not a GPU one",
                       "budget_s": budget_s, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "finished": False,
                       "goal": f"|predicted_gb - measured_gb| <= {GOAL_PCT:g}% of measured_gb on every GPU calibration row",
                       "steps": dict(previous.get("steps", {}))}

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.result, indent=2, default=str) + "\n", encoding="utf-8")

    def time_left(self) -> float:
        """Seconds left to the current step (never beyond the whole run's deadline)."""
        return min(self.step_deadline, self.deadline) - time.monotonic()

    def model_dir(self, name: str) -> Path:
        """The random-weight model `name`, built on first use (models stay on disk for later steps)."""
        if name not in self.models:
            from studio.models.catalog import resolve_model
            from studio.workspace import Workspace

            model_type, arch = self.plan.architecture(name)
            folder = self.workspace / "models" / name
            tokenizer = Path(resolve_model(Workspace(self.workspace), "tiny-demo"))
            runs.build_in_subprocess(arch, model_type, folder, tokenizer, self.deadline - time.monotonic())
            self.models[name] = folder
        return self.models[name]

    def worker(self, model: str, overrides: dict) -> dict:
        """One dry run of `model` through the worker, within the current step's time (a model that could not be
        built is a failed row, not a failed step)."""
        try:
            folder = self.model_dir(model)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            return {"state": "failed", "phase": None, "exit_code": None, "seconds": 0.0, "dry_run": {}, "precision_line": None,
                    "error": f"the random-weight model was not built: {str(error)[-800:]}", "log_tail": "", "gpu_samples": {}}
        return runs.run_worker(self.workspace, {"model": str(folder), "dry_run": True, **overrides}, self.time_left())


def _gpu() -> dict | None:
    """GPU 0 as NVML sees it (None without one). Read through NVML, not torch, so this process never holds a CUDA
    context: NVML's memory figure is the whole device's, and the workers' peaks must not include ours."""
    import torch

    from studio.hardware import detect_gpus

    gpus = detect_gpus()
    if not gpus:
        return None
    peak = runs.peak_bf16_flops(gpus[0].name)
    return {"name": gpus[0].name, "memory_gb": round(gpus[0].total / GiB, 2), "count": len(gpus), "cuda": torch.version.cuda,
            "compute_capability": ".".join(map(str, gpus[0].compute_capability)), "peak_bf16_tflops": peak / 1e12 if peak else None}


def predicted_gb(row: dict) -> dict:
    """The estimator's prediction now for a calibration row (its recorded architecture and settings): predicted_gb
    is what torch's allocator should hold at the peak on a GPU (the whole peak RAM on a CPU); predicted_total_gb
    adds the CUDA context, the NVML figure's counterpart."""
    config = cfg.apply_overrides(cfg.RunConfig(), {"method": row["method"], "cutoff_len": row["cutoff_len"], "batch_size": row["batch_size"],
                                                   "gradient_checkpointing": row["gradient_checkpointing"]})
    result = estimate(from_run_config(config, gpu=True if row["device"] == "cuda" else None, arch=Architecture.from_dict(row["architecture"])))
    return {"predicted_gb": round(result.reserved / GiB, 3), "predicted_total_gb": round(result.total / GiB, 3)}


def calibration_misses(rows: list[dict], goal_pct: float = GOAL_PCT) -> list[str]:
    """The GPU-measured rows on which today's estimator misses torch.cuda.max_memory_reserved by more than
    `goal_pct`, one line each (CPU rows are no test of a GPU estimate and are left out)."""
    misses = []
    for row in rows:
        if row.get("measured_kind") != GPU_KIND or not row.get("measured_gb"):
            continue
        now, measured = predicted_gb(row)["predicted_gb"], row["measured_gb"]
        error = 100 * (now - measured) / measured
        if abs(error) > goal_pct:
            misses.append(f"{row['model']} {row['method']} cutoff {row['cutoff_len']} batch {row['batch_size']} "
                          f"checkpointing {row['gradient_checkpointing']}: predicted {now} GB, measured {measured} GB ({error:+.1f}%)")
    return misses


def step_environment(check: Check) -> None:
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    pip = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=60, check=False)
    check.result["environment"] = {"python": platform.python_version(), "machine": platform.machine(), "torch_cuda": torch.version.cuda,
                                   "packages": versions, "pip_check": (pip.stdout + pip.stderr).strip()[-3000:]}


def _measured_before(check: Check, step: str, keys: tuple[str, ...]) -> dict[tuple, dict]:
    """Rows an earlier run on this same GPU measured (a second try continues where the first was cut short)."""
    return {tuple(r[k] for k in keys): r for r in check.result.get(step, []) if r.get("state") in ("completed", "out of memory")}


def step_calibration(check: Check) -> None:
    before = _measured_before(check, "calibration", ("model", "method", "cutoff_len", "batch_size", "gradient_checkpointing"))
    rows = check.result["calibration"] = []
    for model, method, cutoff, batch, checkpointing in check.plan.calibration:
        if (model, method, cutoff, batch, checkpointing) in before:
            rows.append(before[(model, method, cutoff, batch, checkpointing)])
            continue
        model_type, arch = check.plan.architecture(model)
        row = {"model": model, "model_type": model_type, "architecture": arch.to_dict(), "method": method, "cutoff_len": cutoff,
               "batch_size": batch, "gradient_checkpointing": checkpointing, "device": "cuda" if check.gpu else "cpu"}
        row.update(predicted_gb(row))
        if check.time_left() < check.plan.min_run_s:
            rows.append({**row, "state": "skipped", "error": "the step's time budget was spent"})
            check.save()
            continue
        outcome = check.worker(model, {"method": method, "cutoff_len": cutoff, "batch_size": batch, "gradient_checkpointing": checkpointing,
                                       "dataset": "datasets/calibration.jsonl", "run_name": f"cal-{method}-{cutoff}"})
        rows.append({**row, **_calibration_figures(row, outcome)})
        check.save()


def write_datasets(datasets_dir: Path, plan: Plan) -> None:
    """The data files the plan trains on: rows that fill any cutoff, and rows of mixed lengths (what padding costs)."""
    datasets_dir.mkdir(parents=True, exist_ok=True)
    runs.write_rows(datasets_dir / "calibration.jsonl", plan.long_rows, plan.row_words, plan.row_words)
    runs.write_rows(datasets_dir / "mixed.jsonl", plan.long_rows * 2, plan.row_words // 12, plan.row_words // 2)


def _calibration_figures(row: dict, outcome: dict) -> dict:
    dry = outcome["dry_run"]
    figures = {"state": outcome["state"], "seconds": outcome["seconds"], "precision": outcome["precision_line"],
               "measured_gb": dry.get("measured_peak_gb"), "measured_kind": dry.get("measured_kind"),
               "nvml_peak_gb": dry.get("nvml_peak_gb"), "tokens_per_s": dry.get("tokens_per_s"), "gpu_samples": outcome["gpu_samples"]}
    if dry.get("out_of_memory"):
        figures.update(state="out of memory", measured_gb=None, error=dry.get("error"))
    elif outcome["state"] != "completed" or figures["measured_gb"] is None:
        figures["error"] = outcome["error"] or outcome["log_tail"][-600:]
    elif figures["measured_kind"] == GPU_KIND:
        error = 100 * (row["predicted_gb"] - figures["measured_gb"]) / figures["measured_gb"]
        figures.update(error_pct=round(error, 1), within_goal=abs(error) <= GOAL_PCT)
    else:  # peak RSS counts the interpreter and every library besides the training tensors: no test of the estimate
        figures.update(error_pct=None, within_goal=None, note="CPU figure (peak RSS of the worker), not comparable with a GPU estimate")
    return figures


def step_throughput(check: Check) -> None:
    before = _measured_before(check, "throughput", ("model", "method", "packing", "use_liger"))
    rows = check.result["throughput"] = []
    cutoff, batch = check.plan.throughput_shape
    for model, method, packing, liger in check.plan.throughput:
        if (model, method, packing, liger) in before:
            rows.append(before[(model, method, packing, liger)])
            continue
        _, arch = check.plan.architecture(model)
        row = {"model": model, "method": method, "cutoff_len": cutoff, "batch_size": batch, "packing": packing, "use_liger": liger,
               "gradient_checkpointing": True, "data": "mixed lengths (what padding costs)"}
        if check.time_left() < check.plan.min_run_s:
            rows.append({**row, "state": "skipped", "error": "the step's time budget was spent"})
            check.save()
            continue
        outcome = check.worker(model, {"method": method, "cutoff_len": cutoff, "batch_size": batch, "gradient_checkpointing": True,
                                       "packing": packing, "use_liger": liger, "dataset": "datasets/mixed.jsonl", "run_name": f"tp-{method}"})
        dry = outcome["dry_run"]
        tokens_per_s = dry.get("tokens_per_s")
        rows.append({**row, "state": "out of memory" if dry.get("out_of_memory") else outcome["state"], "seconds": outcome["seconds"],
                     "tokens_per_s": tokens_per_s, "tokens_per_s_kind": "GPU" if check.gpu else "CPU (tiny shapes)",
                     "mfu": runs.mfu(tokens_per_s, arch, cutoff, check.gpu and check.gpu["name"]),
                     "peak_gb": dry.get("measured_peak_gb"), "precision": outcome["precision_line"],
                     **({"error": outcome["error"] or outcome["log_tail"][-600:]} if outcome["state"] != "completed" else {})})
        check.save()
    check.result["mfu_convention"] = ("6 × non-embedding parameters + 12 × layers × heads × head_dim × cutoff FLOPs per token over the "
                                      "GPU's dense bf16 peak; LoRA/QLoRA execute about 2/3 of those FLOPs (no frozen-weight gradients)")


def step_paths(check: Check) -> None:
    rows = check.result["paths"] = []
    cal = [r for r in check.result.get("calibration", []) if r.get("state") == "completed"]
    tp = [r for r in check.result.get("throughput", []) if r.get("state") == "completed"]
    on_gpu = check.gpu is not None

    def add(name: str, state: str, detail: str, seconds: float | None = None) -> None:
        rows.append({"name": name, "state": state, "detail": detail, "seconds": seconds})
        check.save()

    def seen(name: str, ok: bool, detail: str, gpu_only: bool = True) -> None:
        add(name, ("ok" if ok else "failed") if on_gpu or not gpu_only else "not applicable on a CPU", detail)

    seen("dry_run", bool(cal), f"{len(cal)} calibration dry runs completed, measured by {cal[0]['measured_kind'] if cal else '-'}", gpu_only=False)
    seen("qlora_4bit", any(r["method"] == "qlora" for r in cal + tp), "completed QLoRA 4-bit rows in calibration/throughput")
    line = cal[0]["precision"] if cal else None
    seen("bf16_sdpa", bool(line and "bf16" in line and "sdpa" in line), f"worker log: {line}")
    seen("liger", any(r["use_liger"] for r in tp), f"{sum(r['use_liger'] for r in tp)} completed throughput rows with Liger")
    samples = cal[0]["gpu_samples"] if cal else {}
    seen("gpu_sampling", bool(samples.get("samples_with_gpu") and samples.get("peak_memory_used_mb")), f"system.jsonl: {samples}")
    extra = [("qlora_8bit_paged_adamw_8bit", "qwen2.5-1.5b-instruct", {"method": "qlora", "quant_bits": 8, "optim": "paged_adamw_8bit"},
              "bitsandbytes' 8-bit weights and paged optimizer need a CUDA GPU"),
             ("adamw_8bit", "qwen2.5-0.5b-instruct", {"method": "lora", "optim": "adamw_8bit"}, "bitsandbytes' 8-bit optimizer is a GPU path"),
             ("out_of_memory_wont_fit", "qwen2.5-7b-instruct", {"method": "full", "batch_size": 8, "gradient_checkpointing": False},
              "running out of memory needs a GPU's fixed memory")]
    for name, model, overrides, cpu_reason in extra:
        if not on_gpu:
            add(name, "skipped", cpu_reason)
        elif check.time_left() < check.plan.min_run_s:
            add(name, "skipped", "the step's time budget was spent")
        else:
            outcome = check.worker(model, {"cutoff_len": 2048 if "memory" in name else 512, "batch_size": 4, "dataset": "datasets/calibration.jsonl",
                                           "run_name": name, **overrides})
            add(name, *_judge_path(name, outcome), outcome["seconds"])


def _judge_path(name: str, outcome: dict) -> tuple[str, str]:
    dry = outcome["dry_run"]
    if name == "out_of_memory_wont_fit":
        ok = outcome["state"] == "completed" and dry.get("verdict") == "won't fit" and bool(dry.get("fixes"))
        return ("ok" if ok else "failed"), f"{outcome['phase']} (estimated {dry.get('estimated_gb')} GB; {len(dry.get('fixes') or [])} fixes)"
    ok = outcome["state"] == "completed" and dry.get("measured_kind") == GPU_KIND
    detail = f"peak {dry.get('measured_peak_gb')} GB, {dry.get('tokens_per_s')} tokens/s" if ok else (outcome["error"] or outcome["log_tail"][-600:])
    return ("ok" if ok else "failed"), detail


def step_distributed(check: Check) -> None:
    rows = check.result["distributed"] = []
    from studio.workspace import Workspace

    for strategy in ("fsdp", "deepspeed_zero2"):
        if check.gpu is None:
            rows.append({"strategy": strategy, "state": "skipped", "error": "single-GPU FSDP and ZeRO need a GPU "
                         "(bench/distributed_smoke.py runs DDP/FSDP over CPU processes)"})
        elif strategy.startswith("deepspeed") and not cfg.package_installed("deepspeed"):
            rows.append({"strategy": strategy, "state": "skipped", "error": "deepspeed is not installed (carry its wheel: bench/gpu_wheels.py)"})
        elif check.time_left() < check.plan.min_run_s:
            rows.append({"strategy": strategy, "state": "skipped", "error": "the step's time budget was spent"})
        else:
            rows.append(distributed_smoke.smoke(Workspace(check.workspace), "tiny-demo", strategy, "0", max_steps=10, timeout_s=check.time_left()))
        check.save()


def step_gpu_tests(check: Check) -> None:
    if check.gpu is None:
        check.result["gpu_tests"] = {"state": "skipped", "summary": "the gpu-marked tests skip themselves without a CUDA GPU"}
        return
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-n", "0", "-v", "-p", "no:cacheprovider", "tests/test_distributed.py", "tests/test_methods.py"]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=max(1.0, check.time_left()), check=False)
        lines = (done.stdout + done.stderr).strip().splitlines()
        check.result["gpu_tests"] = {"state": "passed" if done.returncode == 0 else "failed", "summary": lines[-1] if lines else "",
                                     "output_tail": "\n".join(lines[-40:])}
    except subprocess.TimeoutExpired as error:  # what pytest printed so far names the tests that ran
        printed = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else (error.stdout or "")
        check.result["gpu_tests"] = {"state": "timed out", "summary": "stopped at the step's time budget",
                                     "output_tail": "\n".join(printed.strip().splitlines()[-40:])}


def run(check: Check) -> None:
    """Each chosen step under its share of the time left; a step that raises is recorded and the next one runs."""
    chosen = [s for s in STEPS if s in check.steps]
    for index, step in enumerate(chosen):
        remaining = check.deadline - time.monotonic()
        share = SHARES[step] / sum(SHARES[s] for s in chosen[index:])
        check.step_deadline = time.monotonic() + remaining * share
        started = time.monotonic()
        state = "done"
        try:
            globals()[f"step_{step}"](check)
        except Exception as error:  # one broken step must not cost the figures of the others
            state = f"failed: {type(error).__name__}: {str(error)[:500]}"
        check.result["steps"][step] = {"state": state, "seconds": round(time.monotonic() - started, 1),
                                       "budget_s": round(remaining * share, 1)}
        check.save()
        print(f"[gpu check] {step}: {state} in {check.result['steps'][step]['seconds']} s", flush=True)
    shutil.rmtree(check.workspace, ignore_errors=True)  # the random-weight models: up to 35 GB on a GPU run
    check.result["finished"] = True
    check.result["elapsed_s"] = round(time.monotonic() - (check.deadline - check.result["budget_s"]), 1)
    check.save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-rehearsal", action="store_true", help="the same plan with tiny shapes on a CPU")
    parser.add_argument("--budget-s", type=float, default=450.0, help="whole run, seconds (default 450)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of: {', '.join(STEPS)}")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        print(f"error: --steps names unknown steps {unknown}; known: {', '.join(STEPS)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    previous = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    gpu = _gpu()
    if gpu is None and not args.cpu_rehearsal:
        print("error: no CUDA GPU here: run this on a GPU machine, or add --cpu-rehearsal for the tiny-shape rehearsal", file=sys.stderr)
        return 2
    if args.cpu_rehearsal and previous.get("gpu"):
        print(f"error: {out} holds GPU results; a rehearsal would overwrite them: pass --out ANOTHER.json", file=sys.stderr)
        return 2
    same_device = previous.get("gpu") == gpu and previous.get("mode") == ("cpu-rehearsal" if args.cpu_rehearsal else "gpu")
    command = " ".join(["python bench/gpu_check.py", *(sys.argv[1:] if argv is None else argv)])
    check = Check(Plan(args.cpu_rehearsal), out, args.budget_s, steps, command, previous if same_device else {})
    run(check)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
