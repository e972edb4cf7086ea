"""One live-chart poll on a long run, timed: metrics.jsonl holds 100,000 rows; the poll reads the 10 rows
appended since the byte offset the UI stored last time, via run_folder.read_metrics (the UI's gr.Timer path).

Run: python bench/metrics_poll.py   → bench/results/metrics_poll.json
Target (issue: live training monitor): one poll ≤ 20 ms, whatever the length of the file.
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
TARGET_MS = 20.0
ROWS = 100_000
NEW_ROWS = 10
POLLS = 50


def row(step: int) -> dict:
    """A metrics row shaped like the worker's."""
    return {"step": step, "total_steps": ROWS + NEW_ROWS * POLLS, "epoch": round(step / 1000, 4), "loss": 2.0 / (1 + step / 5000),
            "learning_rate": 2e-4, "grad_norm": 1.234567, "tokens_per_s": 6519.7, "elapsed": step * 0.05, "eta": 100.0}


def main() -> None:
    from studio import run_folder
    from studio.workspace import METRICS_FILE, append_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        path = run_dir / METRICS_FILE
        with open(path, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row(step)) + "\n" for step in range(1, ROWS + 1))
        size_mb = path.stat().st_size / 2**20
        _, offset = run_folder.read_metrics(run_dir, path.stat().st_size)  # the UI's stored offset: the end of the file
        step, timings = ROWS, []
        for _ in range(POLLS):
            for _ in range(NEW_ROWS):  # the worker appends 10 rows between two polls
                step += 1
                append_jsonl(path, row(step))
            started = time.perf_counter()
            rows, offset = run_folder.read_metrics(run_dir, offset)
            timings.append((time.perf_counter() - started) * 1000)
            assert [r["step"] for r in rows] == list(range(step - NEW_ROWS + 1, step + 1))
        full_started = time.perf_counter()
        all_rows, _ = run_folder.read_metrics(run_dir, 0)
        full_ms = (time.perf_counter() - full_started) * 1000
        assert len(all_rows) == ROWS + NEW_ROWS * POLLS
    median = statistics.median(timings)
    result = {
        "command": "python bench/metrics_poll.py",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "metrics_rows": ROWS,
        "metrics_file_mb": round(size_mb, 1),
        "new_rows_per_poll": NEW_ROWS,
        "polls": POLLS,
        "poll_ms_median": round(median, 3),
        "poll_ms_max": round(max(timings), 3),
        "full_reread_ms_for_comparison": round(full_ms, 1),
        "target_ms": TARGET_MS,
        "meets_target": median <= TARGET_MS,
    }
    out = ROOT / "bench/results/metrics_poll.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
