"""How long an evaluation of the demo run takes: the tiny-demo trained with the CLI defaults (val_size=20), then
`python -m studio eval`'s engine over 50 training rows and the 20 validation rows, greedy, at 32 and 128 new
tokens; plus what scoring 200 answer pairs (exact match, ROUGE-L, BLEU) costs on its own.

Run: python bench/eval_speed.py   → bench/results/eval_speed.json
The committed numbers were measured while four other test suites shared the machine's 2 cores (load average
about 8), so they are upper bounds; most of the time is greedy generation, one row at a time.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def train_demo(workspace: Path) -> str:
    """Train the demo run (tiny-demo + demo-chat, 20 rows held out) with the CLI; returns its run id."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "studio", "--workspace", str(workspace), "train", "run_name=bench", "val_size=20"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    return next(p.name for p in (workspace / "runs").iterdir())


def timed_eval(workspace, run: str, data: str, rows: int, tokens: int) -> dict:
    from studio.eval import job

    started = time.perf_counter()
    _, scores = job.evaluate(workspace, run, job.EvalSettings(data=data, max_rows=rows, max_new_tokens=tokens))
    seconds = time.perf_counter() - started
    return {"data": data or "validation", "rows": scores["rows"], "max_new_tokens": tokens, "seconds": round(seconds, 2),
            "rows_per_s": round(scores["rows"] / seconds, 2),
            "base": {k: round(v, 4) for k, v in scores["base"].items() if isinstance(v, float)},
            "tuned": {k: round(v, 4) for k, v in scores["tuned"].items() if isinstance(v, float)}}


def scoring_cost() -> dict:
    from studio.eval.metrics import summarise

    answers = [f"Town {i} is known for blue glass lanterns and a river." for i in range(200)]
    references = [f"Town {i} is known for green glass lanterns." for i in range(100)] + ["小镇以蓝色玻璃灯笼闻名。"] * 100
    started = time.perf_counter()
    summarise(answers, references, [(1.0, 10)] * 200)
    return {"pairs": 200, "seconds": round(time.perf_counter() - started, 3)}


def main() -> None:
    from studio.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="studio-bench-eval-") as tmp:
        started = time.perf_counter()
        run = train_demo(Path(tmp))
        trained_s = time.perf_counter() - started
        workspace = Workspace(Path(tmp))
        results = {
            "command": "python bench/eval_speed.py",
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "demo_training_s": round(trained_s, 1),
            "evaluations": [timed_eval(workspace, run, "", 20, 32), timed_eval(workspace, run, "training", 50, 32),
                            timed_eval(workspace, run, "training", 50, 128)],
            "scoring_only": scoring_cost(),
        }
    out = ROOT / "bench" / "results" / "eval_speed.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
