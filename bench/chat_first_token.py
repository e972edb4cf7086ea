"""How soon the first piece of a streamed chat reply arrives: the tiny demo run loaded once, then ~20 sends, each
timed from calling ChatModel.stream() to its first yielded piece (the engine), and ~20 sends through the running
studio's Chat endpoint (the Send button's own handler, over HTTP with gradio_client: the engine plus Gradio's queue
and streaming), each timed from the request to the first update holding reply text. Target ≤ 0.5 s on CPU.

Run: python bench/chat_first_token.py                        → bench/results/chat_first_token.json
     (trains a short demo run in a temporary workspace first; or pass --workspace WS --run RUN_ID to use one)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_S = 0.5
SENDS = 20
WARM_UP = 2  # the first generate() calls pay one-off setup (kernels, caches); a user pays it once per load
PROMPTS = ["What is Amberlee known for?", "Which river runs through Cobbleford?", "Who is the mayor of Cobbleford?",
           "Hello", "Tell me about the Lantern Coast."]


def demo_run(workspace: Path) -> str:
    """Train a short demo run (the tiny demo model with LoRA, as `python -m studio train` makes it); its run id."""
    command = [sys.executable, "-m", "studio", "--workspace", str(workspace), "train", "run_name=bench", "max_steps=20",
               "probe_steps=0", "save_steps=0"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return next(p.name for p in (workspace / "runs").iterdir() if p.is_dir())


def first_piece_seconds(chat_model, prompt: str) -> float:
    """Seconds from calling stream() to its first yielded piece (the rest of the reply is read and dropped)."""
    from studio.chat import GenerationSettings

    start = time.perf_counter()
    stream = chat_model.stream([{"role": "user", "content": prompt}], GenerationSettings(max_new_tokens=64))
    next(stream)
    elapsed = time.perf_counter() - start
    for _ in stream:
        pass
    return elapsed


def studio_first_update_seconds(workspace: Path, run: str) -> list[float]:
    """Seconds from a Send (the studio's chat_send endpoint) to the first streamed update with reply text, per send."""
    from gradio_client import Client

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import start_studio, stop_studio

    server, url = start_studio(workspace)
    try:
        client = Client(url, verbose=False)
        client.predict(run, "final", False, "English", api_name="/chat_load")
        times = []
        for i in range(WARM_UP + SENDS):
            start = time.perf_counter()
            job = client.submit(PROMPTS[i % len(PROMPTS)], [], "", 64, 0.0, 1.0, 0, 1.0, None, "English",
                                api_name="/chat_send")
            first = None
            while first is None and not job.done():
                updates = job.outputs()
                if updates and updates[-1][0] and updates[-1][0][-1]["content"]:
                    first = time.perf_counter() - start
                time.sleep(0.002)
            job.result()
            if first is None:
                first = time.perf_counter() - start
            if i >= WARM_UP:
                times.append(first)
        return sorted(times)
    finally:
        stop_studio(server)


def _p95(times: list[float]) -> float:
    return times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--run", default=None)
    args = parser.parse_args()
    from studio.chat import load_run
    from studio.workspace import Workspace

    with tempfile.TemporaryDirectory() as scratch:
        workspace = args.workspace or Path(scratch)
        run = args.run or demo_run(workspace)
        chat_model = load_run(Workspace(workspace), run)
        for prompt in PROMPTS[:WARM_UP]:
            first_piece_seconds(chat_model, prompt)
        times = sorted(first_piece_seconds(chat_model, PROMPTS[i % len(PROMPTS)]) for i in range(SENDS))
        del chat_model
        studio_times = studio_first_update_seconds(workspace, run)
    p95, studio_p95 = _p95(times), _p95(studio_times)
    result = {
        "command": "python bench/chat_first_token.py" + (f" --workspace {args.workspace} --run {args.run}" if args.run else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),  # the machine is shared: other work slows this
        "model": "tiny-demo + LoRA (demo run)",
        "sends": SENDS,
        "first_piece_s_median": round(statistics.median(times), 4),
        "first_piece_s_p95": round(p95, 4),
        "first_piece_s_max": round(times[-1], 4),
        "studio_send_to_first_update_s_median": round(statistics.median(studio_times), 4),
        "studio_send_to_first_update_s_p95": round(studio_p95, 4),
        "studio_send_to_first_update_s_max": round(studio_times[-1], 4),
        "target_s": TARGET_S,
        "meets_target": max(p95, studio_p95) <= TARGET_S,
    }
    out = ROOT / "bench/results/chat_first_token.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
