"""Calibrate the VRAM estimate (studio/memory.py) against real peaks on a GPU.

For each row of the matrix (0.5B/1.5B/7B/8B × LoRA/QLoRA/full where it fits × cutoff 512/2048 ×
gradient checkpointing on/off) it builds the catalog model from its architecture numbers with random
weights (no download; the tiny-demo tokenizer, whose ids all lie inside the model's vocabulary), writes
rows long enough to fill the cutoff, and runs our own worker (`python -m studio train --config …`) as a
dry run: real optimizer steps of the exact configuration. It records the prediction next to
torch.cuda.max_memory_reserved (compared with the predicted reserved memory) and the NVML peak
(nvidia-smi, compared with the predicted total), and writes bench/results/vram_calibration.json.

    python bench/vram_calibration.py                 # on a GPU: measure every row (about 20 minutes on an H100)
    python bench/vram_calibration.py --predict-only  # anywhere: predictions only, rows marked unmeasured
    python bench/vram_calibration.py --rows 0,1      # only these rows (others keep their previous result)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpu_check_runs import build_random_model, model_type_of, write_rows

from studio import config as cfg
from studio.memory import GiB, estimate, from_run_config
from studio.models.architecture import Architecture
from studio.models.catalog import load_catalog

RESULTS = ROOT / "bench" / "results" / "vram_calibration.json"
GOAL_PCT = 10.0
# (catalog model, method, cutoff, micro-batch, gradient checkpointing)
MATRIX = [
    ("qwen2.5-0.5b-instruct", "lora", 512, 4, True),
    ("qwen2.5-0.5b-instruct", "lora", 2048, 4, False),
    ("qwen2.5-0.5b-instruct", "qlora", 2048, 4, True),
    ("qwen2.5-0.5b-instruct", "full", 512, 4, False),
    ("qwen2.5-0.5b-instruct", "full", 2048, 2, True),
    ("qwen2.5-1.5b-instruct", "lora", 2048, 2, True),
    ("qwen2.5-1.5b-instruct", "qlora", 512, 8, False),
    ("qwen2.5-1.5b-instruct", "full", 512, 2, True),
    ("qwen2.5-7b-instruct", "lora", 512, 4, True),
    ("qwen2.5-7b-instruct", "lora", 2048, 2, True),
    ("qwen2.5-7b-instruct", "qlora", 2048, 2, True),
    ("qwen2.5-7b-instruct", "qlora", 512, 4, False),
    ("llama-3.1-8b-instruct", "lora", 2048, 1, True),
    ("llama-3.1-8b-instruct", "lora", 512, 2, False),
    ("llama-3.1-8b-instruct", "qlora", 2048, 2, True),
    ("llama-3.1-8b-instruct", "qlora", 512, 4, True),
]


def row_config(model_ref: str, method: str, cutoff: int, batch: int, checkpointing: bool) -> cfg.RunConfig:
    """The run config of one row (model_ref: the catalog name, or the random-weight folder on a GPU)."""
    return cfg.apply_overrides(cfg.RunConfig(), {
        "model": model_ref, "method": method, "cutoff_len": cutoff, "batch_size": batch, "gradient_checkpointing": checkpointing,
        "dataset": "calibration.jsonl", "dry_run": True, "run_name": f"{method}-{cutoff}",
    })


def predict(name: str, method: str, cutoff: int, batch: int, checkpointing: bool) -> dict:
    """The estimator's numbers for a row on a GPU."""
    arch = Architecture.from_dict(load_catalog()[name].architecture)
    result = estimate(from_run_config(row_config(name, method, cutoff, batch, checkpointing), gpu=True, arch=arch))
    return {"predicted_total_gb": round(result.total / GiB, 3), "predicted_reserved_gb": round(result.reserved / GiB, 3)}


def write_long_rows(path: Path, rows: int = 64) -> None:
    """Conversations longer than 2048 tokens, so every sequence is cut at exactly the cutoff."""
    write_rows(path, rows, 1500, 1500)


def measure_row(workspace: Path, model_dir: Path, row: tuple) -> dict:
    """Run one row's dry run through our worker in its own process; returns the measurements."""
    from studio import jobs
    from studio.workspace import DRY_RUN_FILE, ESTIMATE_FILE, Workspace

    _name, method, cutoff, batch, checkpointing = row
    ws = Workspace(workspace)
    run_dir = jobs.create_run(ws, row_config(str(model_dir), method, cutoff, batch, checkpointing))
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "studio", "--workspace", str(workspace), "train", "--config", str(run_dir / "config.yaml")],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    measured = json.loads((run_dir / DRY_RUN_FILE).read_text()) if (run_dir / DRY_RUN_FILE).exists() else {}
    in_run = json.loads((run_dir / ESTIMATE_FILE).read_text())
    return {"exit_code": done.returncode, "seconds": round(time.time() - started, 1), "dry_run": measured,
            "estimate_in_run_gb": in_run.get("total_gb"), "log_tail": (run_dir / "train.log").read_text()[-1500:] if done.returncode else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predict-only", action="store_true")
    parser.add_argument("--rows", default="", help="comma-separated row numbers to (re)measure")
    args = parser.parse_args()
    previous = {r["row"]: r for r in json.loads(RESULTS.read_text())["rows"]} if RESULTS.exists() else {}
    chosen = {int(i) for i in args.rows.split(",") if i.strip()} or set(range(len(MATRIX)))
    rows = []
    gpu_name = None
    if not args.predict_only:
        import torch

        if not torch.cuda.is_available():
            print("no GPU here: use --predict-only", file=sys.stderr)
            return 2
        gpu_name = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        built: dict[str, Path] = {}
        for index, row in enumerate(MATRIX):
            name, method, cutoff, batch, checkpointing = row
            entry = {"row": index, "model": name, "method": method, "cutoff_len": cutoff, "batch_size": batch,
                     "gradient_checkpointing": checkpointing, **predict(*row)}
            if args.predict_only or index not in chosen:
                old = previous.get(index, {})
                entry.update(measured=old.get("measured"), status=old.get("status", "unmeasured (no GPU in this session)"))
                rows.append(entry)
                continue
            if name not in built:
                from studio.models.catalog import resolve_model
                from studio.workspace import Workspace

                for folder in built.values():
                    shutil.rmtree(folder, ignore_errors=True)
                built = {name: workspace / "models" / name}
                (workspace / "datasets").mkdir(parents=True, exist_ok=True)
                write_long_rows(workspace / "datasets" / "calibration.jsonl")
                arch = Architecture.from_dict(load_catalog()[name].architecture)
                build_random_model(arch, model_type_of(name), built[name], Path(resolve_model(Workspace(workspace), "tiny-demo")))
            result = measure_row(workspace, built[name], row)
            dry = result["dry_run"]
            if dry.get("out_of_memory") or "measured_peak_gb" not in dry:
                entry.update(measured=None, status=f"failed: {dry.get('error') or result['log_tail'][-300:]}")
            else:
                reserved, smi = dry["measured_peak_gb"], dry.get("nvml_peak_gb")
                entry.update(measured={"max_memory_reserved_gb": reserved, "nvidia_smi_gb": smi, "tokens_per_s": dry.get("tokens_per_s")},
                             error_pct=round(100 * (entry["predicted_reserved_gb"] - reserved) / reserved, 1), status=f"measured on {gpu_name}")
            rows.append(entry)
            print(json.dumps(entry), flush=True)
    measured = [r for r in rows if r.get("measured")]
    RESULTS.write_text(json.dumps({
        "command": "python bench/vram_calibration.py" + (" --predict-only" if args.predict_only else ""),
        "goal": f"|predicted reserved - torch.cuda.max_memory_reserved| <= {GOAL_PCT:g}% of measured on every row",
        "compare": "predicted_reserved_gb vs measured.max_memory_reserved_gb; predicted_total_gb vs measured.nvidia_smi_gb",
        "measured_rows": len(measured), "unmeasured_rows": len(rows) - len(measured),
        "rows": rows,
    }, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}: {len(measured)} of {len(rows)} rows measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
