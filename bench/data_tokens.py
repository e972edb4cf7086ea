"""The token report on 100,000 rows with the tiny-demo tokenizer, timed: rows written to /tmp (the bundled
demo-chat conversations, varied and repeated), loaded and checked, then measured through the chat template
with the trainer's masking (batched fast tokenizer; worker processes, one per usable core).

Run: python bench/data_tokens.py   → bench/results/data_tokens.json
Target (issue: data studio): the token report for 100,000 rows finishes in ≤ 60 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ROWS = 100_000
TARGET_S = 60.0


def main() -> None:
    from studio.data.inspect import load_tokenizer
    from studio.data.loading import load_dataset_file
    from studio.data.tokens import token_report
    from studio.workspace import Workspace

    demo = [json.loads(line) for line in (ROOT / "presets/datasets/demo-chat.jsonl").read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp) / "ws")
        path = Path(tmp) / "rows-100k.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for i in range(ROWS):
                row = demo[i % len(demo)]
                messages = [dict(m) for m in row["messages"]]
                messages[-1]["content"] += f" (note {i})" * (1 + i % 5)
                handle.write(json.dumps({"messages": messages}) + "\n")
        tokenizer = load_tokenizer(workspace, "tiny-demo")
        started = time.perf_counter()
        loaded = load_dataset_file(path)
        loaded_s = time.perf_counter() - started
        t = time.perf_counter()
        report = token_report(tokenizer, loaded.examples)
        tokens_s = time.perf_counter() - t
        total_s = time.perf_counter() - started
        stats = report.stats(256)
    result = {
        "command": "python bench/data_tokens.py",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "rows": ROWS,
        "processes": len(os.sched_getaffinity(0)),
        "load_and_check_s": round(loaded_s, 2),
        "token_report_s": round(tokens_s, 2),
        "total_s": round(total_s, 2),
        "rows_per_s": round(ROWS / tokens_s),
        "stats_at_cutoff_256": stats,
        "target_s": TARGET_S,
        "meets_target": total_s <= TARGET_S,
    }
    out = ROOT / "bench" / "results" / "data_tokens.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
