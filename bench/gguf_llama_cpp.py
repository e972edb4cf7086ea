"""Does llama.cpp (through llama-cpp-python) load the studio's GGUF export and give the studio's greedy answer?

Run: python bench/gguf_llama_cpp.py WORKSPACE RUN [--type f16|bf16|q8_0]   → bench/results/gguf_llama_cpp.json
The run is exported with `python -m studio export RUN --gguf TYPE`; llama.cpp answers "Who are you?" greedily with
the chat template embedded in the file, and the studio answers the same with the run (base + adapter).
llama-cpp-python is not a dependency of the studio: build it from PyPI (`pip install llama-cpp-python`) or point
PYTHONPATH at a folder it was installed into.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
QUESTION = "Who are you?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workspace")
    parser.add_argument("run")
    parser.add_argument("--type", default="f16", choices=("f16", "bf16", "q8_0"))
    args = parser.parse_args()
    from studio.chat import GenerationSettings, load_run
    from studio.workspace import Workspace

    result = {"question": QUESTION, "type": args.type}
    try:
        import llama_cpp
    except ImportError as error:
        result["llama_cpp"] = f"not importable: {error}"
        print(json.dumps(result, indent=2))
        return
    result["llama_cpp_python"] = llama_cpp.__version__
    workspace = Workspace(Path(args.workspace))
    studio_answer = load_run(workspace, args.run).reply([{"role": "user", "content": QUESTION}],
                                                        GenerationSettings(max_new_tokens=40))
    with tempfile.TemporaryDirectory(dir=workspace.root) as tmp:
        out = Path(tmp) / "export"
        subprocess.run([sys.executable, "-m", "studio", "--workspace", str(workspace.root), "export", args.run, "--to",
                        str(out), "--gguf", args.type], cwd=ROOT, check=True, capture_output=True)
        gguf_file = next(out.glob("*.gguf"))
        started = time.perf_counter()
        model = llama_cpp.Llama(model_path=str(gguf_file), n_ctx=512, verbose=False, seed=0)
        reply = model.create_chat_completion([{"role": "user", "content": QUESTION}], max_tokens=40, temperature=0.0,
                                             top_k=1)
        result["llama_cpp_seconds"] = round(time.perf_counter() - started, 2)
    llama_answer = reply["choices"][0]["message"]["content"]
    result.update(studio_answer=studio_answer, llama_cpp_answer=llama_answer,
                  matches=llama_answer.strip() == studio_answer.strip())
    path = ROOT / "bench" / "results" / "gguf_llama_cpp.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
