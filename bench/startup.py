"""How fast `python app.py` serves its first page, and how much memory the idle studio holds.

Run: python bench/startup.py [--repeats 5]   → bench/results/startup.json
Targets (issue: whole flow): first page in ≤ 3.5 s on a 2-core machine; idle RSS ≤ 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
TARGET_FIRST_PAGE_S = 3.5
TARGET_IDLE_RSS_MB = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_start(workspace: Path) -> tuple[float, float]:
    """Seconds from process start to the first HTTP 200 on /, and RSS (MB) after 5 s idle."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--workspace", str(workspace)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    response.read()
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError("app.py exited")
                time.sleep(0.02)
        first_page = time.perf_counter() - started
        time.sleep(5)
        rss_mb = psutil.Process(process.pid).memory_info().rss / 2**20
    finally:
        process.terminate()
        process.wait(timeout=20)
    return first_page, rss_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one_start(Path(tmp))  # warm the OS file cache, as a second launch would be
        samples = [one_start(Path(tmp)) for _ in range(args.repeats)]
    first_pages = [s[0] for s in samples]
    rss = [s[1] for s in samples]
    result = {
        "command": "python bench/startup.py --repeats %d" % args.repeats,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "first_page_s": {"median": round(statistics.median(first_pages), 2), "max": round(max(first_pages), 2), "all": [round(x, 2) for x in first_pages]},
        "idle_rss_mb": {"median": round(statistics.median(rss), 1), "max": round(max(rss), 1)},
        "targets": {"first_page_s": TARGET_FIRST_PAGE_S, "idle_rss_mb": TARGET_IDLE_RSS_MB},
        "meets_targets": statistics.median(first_pages) <= TARGET_FIRST_PAGE_S and max(rss) <= TARGET_IDLE_RSS_MB,
    }
    out = ROOT / "bench/results/startup.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
