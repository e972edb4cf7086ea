"""The Data tab's preview on a big file, timed: a 1,000,000-row (~500 MB) JSONL written to /tmp, then in a
fresh process: the first page (open + page 0, as the tab shows it), resident memory, the background line index,
a deep page turn once indexed, and a search to the end of the file.

Run: python bench/data_preview.py   → bench/results/data_preview.json
Target (issue: data studio): first page ≤ 1 s and resident memory ≤ 1 GB; no whole-file load to show a page.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ROWS = 1_000_000
BIG_FILE = Path("/tmp/studio-bench/big-1m.jsonl")
TARGET_FIRST_PAGE_S = 1.0
TARGET_RSS_MB = 1024
TOWNS = ["Amberlee", "Brightwater", "Cobbleford", "Dunmere", "Elmstead", "Fernhollow", "Glimmerby", "Harrowick"]


def write_big_file(path: Path) -> None:
    """1,000,000 chat rows of about 500 bytes each (the last row holds a unique word to search for)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    filler = "The lanterns are blown by hand in the old glassworks by the harbour, and each one carries a mark. "
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(ROWS):
            town = TOWNS[i % len(TOWNS)]
            answer = f"{town} row {i}: " + filler * 4 + ("zebraquartz" if i == ROWS - 1 else "")
            row = {"messages": [{"role": "user", "content": f"Tell me about {town}, item {i}."},
                                {"role": "assistant", "content": answer}]}
            handle.write(json.dumps(row) + "\n")


def measure(path: str) -> None:
    """In a fresh process: print one JSON line of timings and memory."""
    started = time.perf_counter()
    from studio.data.preview import open_preview

    imported = time.perf_counter()
    preview = open_preview(Path(path))
    first = preview.page(0)
    first_page_s = time.perf_counter() - started
    rss_first_mb = psutil.Process().memory_info().rss / 2**20
    preview.index.wait()
    index_s = time.perf_counter() - started
    t = time.perf_counter()
    deep = preview.page(ROWS // 10 - 1)  # the last page
    deep_page_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    hits, _more = preview.search("zebraquartz")
    search_s = time.perf_counter() - t
    peak_mb = psutil.Process().memory_info().rss / 2**20
    print(json.dumps({
        "first_page_s": round(first_page_s, 3), "import_s": round(imported - started, 3),
        "first_page_rows": len(first), "first_page_format": preview.detected.format,
        "rss_after_first_page_mb": round(rss_first_mb, 1),
        "index_complete_s": round(index_s, 2), "rows_indexed": preview.rows_known()[0],
        "last_page_ms": round(deep_page_ms, 2), "last_page_first_row": deep[0].location if deep else None,
        "search_to_end_s": round(search_s, 2), "search_hit": hits[0].location if hits else None,
        "rss_at_end_mb": round(peak_mb, 1),
    }))


def main() -> None:
    if not BIG_FILE.exists() or BIG_FILE.read_bytes().count(b"\n") != ROWS:
        write_big_file(BIG_FILE)
    process = subprocess.Popen([sys.executable, __file__, "--measure", str(BIG_FILE)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    peak_rss = 0.0
    while process.poll() is None:  # sample the child's memory from outside, so nothing is missed between calls
        try:
            peak_rss = max(peak_rss, psutil.Process(process.pid).memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    measured = json.loads(process.stdout.read().strip().splitlines()[-1])
    result = {
        "command": "python bench/data_preview.py",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "file_rows": ROWS,
        "file_mb": round(BIG_FILE.stat().st_size / 2**20, 1),
        **measured,
        "peak_rss_mb": round(peak_rss, 1),
        "target_first_page_s": TARGET_FIRST_PAGE_S,
        "target_rss_mb": TARGET_RSS_MB,
        "meets_target": measured["first_page_s"] <= TARGET_FIRST_PAGE_S and peak_rss <= TARGET_RSS_MB,
    }
    out = ROOT / "bench" / "results" / "data_preview.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        measure(sys.argv[2])
    else:
        main()
