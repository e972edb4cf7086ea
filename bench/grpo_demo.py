"""GRPO on tiny-demo, from reward alone: does the mean reward rise? Runs `python -m studio train stage=grpo` on the
bundled demo-math prompts with the built-in `length` reward (answers of about 24 characters, which the random
model produces only by chance) beside `number_match` (which it cannot reach), several seeds, and reports the mean
total reward of the first and last 10% of steps, the steps and the seconds.

Run: python bench/grpo_demo.py [--steps 40] [--seeds 3]   → bench/results/grpo_demo.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ["stage=grpo", "dataset=demo-math", "reward_funcs=length,number_match", "reward_length_target=24",
            "batch_size=8", "grpo_generations=4", "grpo_max_completion_len=16", "learning_rate=1e-3", "probe_steps=0",
            "save_steps=0", "val_size=0"]


def one_run(workspace: Path, steps: int, seed: int) -> dict:
    """Train once; the run's reward curve summarised."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "studio", "--workspace", str(workspace), "train", *SETTINGS,
                           f"max_steps={steps}", f"seed={seed}", f"run_name=grpo-seed-{seed}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"seed {seed} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    run_dir = max((workspace / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    rewards = [row["reward"] for row in rows if "reward" in row]
    tenth = max(1, len(rewards) // 10)
    return {"seed": seed, "steps": len(rewards), "seconds": round(seconds, 1),
            "reward_first_10pct": round(sum(rewards[:tenth]) / tenth, 4),
            "reward_last_10pct": round(sum(rewards[-tenth:]) / tenth, 4),
            "number_match_last_10pct": round(sum(row.get("reward/number_match", 0) for row in rows[-tenth:]) / tenth, 4),
            "rewards": [round(r, 3) for r in rewards]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runs = [one_run(Path(folder), args.steps, seed) for seed in range(1, args.seeds + 1)]
    summary = {key: round(sum(run[key] for run in runs) / len(runs), 4)
               for key in ("reward_first_10pct", "reward_last_10pct", "seconds")}
    result = {"what": "GRPO on tiny-demo with the length reward (target 24 characters) and number_match, demo-math",
              "command": "python -m studio train " + " ".join(SETTINGS) + f" max_steps={args.steps} seed=N",
              "machine": f"{platform.machine()}, {platform.system()}, CPU only", "steps": args.steps,
              **summary, "runs": runs}
    out = ROOT / "bench" / "results" / "grpo_demo.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
