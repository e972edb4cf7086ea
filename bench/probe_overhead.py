"""What watching the model learn costs: the demo training with probe answers every N steps vs none.

Run: python bench/probe_overhead.py   → bench/results/probe_overhead.json
Each variant trains tiny-demo on demo-chat with the same settings (checkpoints off in both, so only the
probes differ); the training-loop time comes from the last metrics row's `elapsed`. Two figures: the difference
between the loop times (what a user waits longer; noisy on a shared machine), and the seconds the probes
themselves took as samples.jsonl records them, as a share of the loop (what the probes cost, measured directly).
The probe answers are generated in one batch per probe (studio.chat.ChatModel.replies).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def training_seconds(probe_steps: int) -> tuple[float, int, float]:
    """Training-loop seconds, probe answers written and seconds spent probing, for one demo run with `probe_steps`."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "studio", "--workspace", tmp, "train", f"probe_steps={probe_steps}", "save_steps=0",
             "probe_prompts=What is Amberlee known for?\nWho is the mayor of Dunmere?\nWhen was Brightwater founded?"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
        run_dir = Path(done.stdout.strip().splitlines()[-1].split(": ", 1)[1])
        last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
        samples = run_dir / "samples.jsonl"
        rows = [json.loads(line) for line in samples.read_text().splitlines()] if samples.exists() else []
        per_probe = {row["step"]: row["seconds"] for row in rows}  # the answers of one probe share its time
        return float(last["elapsed"]), len(rows), sum(per_probe.values())


def main() -> None:
    rounds = []
    for _ in range(3):  # alternate, so drift in machine load hits both variants alike
        rounds.append({"off": training_seconds(0), "every_50": training_seconds(50)})
    off = min(r["off"][0] for r in rounds)
    on = min(r["every_50"][0] for r in rounds)
    shares = [r["every_50"][2] / r["every_50"][0] for r in rounds]
    result = {
        "command": "python bench/probe_overhead.py",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
        "run": "tiny-demo + demo-chat, 405 steps, 3 probe prompts answered in one batch, greedy, 48 new tokens max",
        "training_loop_s_without_probes": round(off, 2),
        "training_loop_s_probes_every_50_steps": round(on, 2),
        "probe_answers_written": rounds[0]["every_50"][1],
        "overhead_percent": round(100 * (on - off) / off, 1),
        "probe_seconds_share_of_loop_percent": round(100 * sorted(shares)[len(shares) // 2], 1),
        "all_rounds": [{"off_s": r["off"][0], "every_50_s": r["every_50"][0], "probing_s": round(r["every_50"][2], 2)}
                       for r in rounds],
    }
    out = ROOT / "bench/results/probe_overhead.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
