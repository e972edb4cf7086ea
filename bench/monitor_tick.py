"""The live monitor's work for a long run, timed: 100,000 training steps (with an evaluation every 500),
20,000 system samples of 2 GPUs (11 hours at one per 2 s).

- re-attach: a reloaded page reads the whole run (run_library.Series from offset 0) and builds the loss,
  training and system charts once;
- steady tick: 10 new metric rows are read from the stored byte offset and the two step charts rebuilt
  (thinned to ≤ 1,500 points a trace), which is what every 1.5 s gr.Timer tick does while a run logs.

Run: python bench/monitor_tick.py   → bench/results/monitor_tick.json
Targets (issue: live training monitor): steady tick ≤ 150 ms and ≤ 400 kB of chart JSON; re-attach ≤ 3 s.
"""

from __future__ import annotations

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
STEPS, EVAL_EVERY, SYSTEM_ROWS, NEW_ROWS, TICKS = 100_000, 500, 20_000, 10, 20
TARGET_TICK_MS, TARGET_TICK_KB, TARGET_ATTACH_S = 150.0, 400.0, 3.0


def write_run(run_dir: Path) -> None:
    """Metrics and system files shaped like the worker's."""
    with open(run_dir / "metrics.jsonl", "w", encoding="utf-8") as handle:
        for step in range(1, STEPS + 1):
            handle.write(json.dumps({"step": step, "total_steps": 2 * STEPS, "epoch": step / 1000, "loss": 2 / (1 + step / 5000),
                                     "learning_rate": 2e-4, "grad_norm": 1.23, "tokens_per_s": 6519.7, "elapsed": step * 0.4, "eta": 4e4}) + "\n")
            if step % EVAL_EVERY == 0:
                handle.write(json.dumps({"step": step, "eval_loss": 2 / (1 + step / 5000) + 0.1, "elapsed": step * 0.4}) + "\n")
    gpus = [{"index": k, "name": "NVIDIA H100 80GB HBM3", "memory_used_mb": 61000, "memory_total_mb": 81559,
             "utilization_percent": 97, "temperature_c": 64, "power_w": 510} for k in range(2)]
    with open(run_dir / "system.jsonl", "w", encoding="utf-8") as handle:
        for i in range(SYSTEM_ROWS):
            handle.write(json.dumps({"time": 1.7e9 + 2 * i, "elapsed": 2 * i, "cpu_percent": 55, "ram_used_gb": 40.2, "ram_total_gb": 128, "gpus": gpus}) + "\n")


def main() -> None:
    from studio.run_library import load_series
    from studio.ui import charts

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        write_run(run_dir)
        started = time.perf_counter()
        series = load_series(run_dir)
        figures = [charts.loss_chart(series).html(), charts.training_chart(series).html(), charts.system_chart(series).html()]
        attach_kb = sum(len(f) for f in figures) / 1024
        attach_s = time.perf_counter() - started

        tick_ms, tick_kb = [], 0.0
        for tick in range(TICKS):
            with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
                for k in range(NEW_ROWS):
                    step = STEPS + tick * NEW_ROWS + k + 1
                    handle.write(json.dumps({"step": step, "total_steps": 2 * STEPS, "loss": 0.1, "learning_rate": 2e-4, "grad_norm": 1.0, "tokens_per_s": 6500.0}) + "\n")
            started = time.perf_counter()
            series.read_new(run_dir)
            step_figures = [charts.loss_chart(series).html(), charts.training_chart(series).html()]
            tick_kb = sum(len(f) for f in step_figures) / 1024  # what Gradio sends
            tick_ms.append((time.perf_counter() - started) * 1000)

    result = {
        "command": "python bench/monitor_tick.py",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "training_steps": STEPS, "system_samples": SYSTEM_ROWS, "new_rows_per_tick": NEW_ROWS, "ticks": TICKS,
        "reattach_s": round(attach_s, 2), "reattach_chart_kb": round(attach_kb),
        "tick_ms_median": round(statistics.median(tick_ms), 1), "tick_ms_max": round(max(tick_ms), 1), "tick_chart_kb": round(tick_kb),
        "targets": {"tick_ms": TARGET_TICK_MS, "tick_kb": TARGET_TICK_KB, "reattach_s": TARGET_ATTACH_S},
    }
    result["meets_targets"] = (result["tick_ms_median"] <= TARGET_TICK_MS and tick_kb <= TARGET_TICK_KB and attach_s <= TARGET_ATTACH_S)
    out = ROOT / "bench" / "results" / "monitor_tick.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
