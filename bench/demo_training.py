"""The offline demo, timed: `python -m studio train` with its defaults (tiny-demo + demo-chat on CPU),
then every training prompt asked of the tuned model (greedy) to count exact trained answers.

Run: python bench/demo_training.py   → bench/results/demo_training.json
Target (issue: whole flow): the demo training finishes in ≤ 60 s on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_S = 60


def main() -> None:
    from studio.chat import GenerationSettings, load_run
    from studio.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "studio", "--workspace", tmp, "train", "run_name=bench"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
        wall = time.perf_counter() - started
        run_dir = Path(done.stdout.strip().splitlines()[-1].split(": ", 1)[1])
        status = json.loads((run_dir / "status.json").read_text())
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        model = load_run(Workspace(Path(tmp)), run_dir.name)
        rows = [json.loads(line) for line in (ROOT / "presets/datasets/demo-chat.jsonl").read_text(encoding="utf-8").splitlines()]
        exact = sum(
            model.reply(r["messages"][:-1], GenerationSettings(max_new_tokens=64)) == r["messages"][-1]["content"] for r in rows
        )
    result = {
        "command": "python bench/demo_training.py",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, no GPU",
        "wall_s_from_command_to_saved_adapter": round(wall, 1),
        "training_loop_s": metrics[-1]["elapsed"],
        "steps": status["steps"],
        "first_loss": round(metrics[0]["loss"], 3),
        "final_loss": round(status["final_loss"], 4),
        "tokens_per_s_median": sorted(m["tokens_per_s"] for m in metrics if m["tokens_per_s"])[len(metrics) // 2],
        "training_prompts_answered_exactly": f"{exact}/{len(rows)}",
        "target_s": TARGET_S,
        "meets_target": wall <= TARGET_S,
    }
    out = ROOT / "bench/results/demo_training.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
