"""The GGUF verbs of `python -m studio`: `model import FILE.gguf` and `export RUN --gguf TYPE` (see studio/cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from studio.workspace import Workspace


def add_model_parser(verbs, common) -> None:
    """The `model` verb's arguments (`model import FILE.gguf`)."""
    from studio.models.gguf_import import DTYPES

    model = verbs.add_parser("model", parents=[common], help="bring a model into the workspace")
    actions = model.add_subparsers(dest="action", required=True)
    imp = actions.add_parser("import", parents=[common], help="import a GGUF file as a model folder in workspace/models")
    imp.add_argument("file", metavar="FILE.gguf", help="a GGUF file (llama.cpp / Ollama format)")
    imp.add_argument("--name", default="", help="the model's name and folder (default: the file name without .gguf)")
    imp.add_argument("--dtype", default="auto", choices=list(DTYPES),
                     help="dtype of the saved safetensors (auto: the file's float type; bf16 for a quantized file)")


def cmd_model(args, workspace: Workspace) -> int:
    """`model import`: de-quantize a GGUF file into workspace/models/NAME and say how to use it (exit 2: bad file)."""
    from studio.models.gguf_import import import_gguf, import_note

    typed = Path(args.file).expanduser()
    if typed.is_file():  # a file typed in the operator's own shell may lie outside the workspace
        workspace = Workspace(workspace.root, allowed=(*workspace.allowed, typed.resolve().parent))
    path = workspace.confine(args.file)

    def progress(fraction: float, step: str) -> None:
        print(f"[{fraction:4.0%}] {step}", flush=True)

    folder = import_gguf(workspace, path, args.name, args.dtype, progress)
    note = import_note(folder) or {}
    print(f"imported {note.get('name', path.name)} ({note.get('architecture')}, {note.get('parameters', 0) / 1e6:.1f}M "
          f"parameters, {note.get('saved_dtype')}) into {folder} in {note.get('seconds')} s")
    print(f"use it as model `{folder.name}`: python -m studio chat --model {folder.name} --prompt 'Hello'; "
          f"python -m studio train model={folder.name} …")
    return 0


def export_gguf(args, workspace: Workspace, target: str) -> int:
    """`export --gguf TYPE`: the merged run as one GGUF file with a Modelfile (exit 2: no GGUF mapping)."""
    from studio.export_gguf import export_run_gguf

    if args.merge or args.ollama or args.zip or args.push:
        print("error: --gguf writes the merged model and its Modelfile by itself; leave out --merge, --ollama, --zip "
              "and --push", file=sys.stderr)
        return 2
    result = export_run_gguf(workspace, args.run, target, args.gguf, progress=lambda step: print(f"{step}…", flush=True))
    print(f"exported the GGUF to {result.out_dir}")
    print(f"Ollama: ollama create NAME -f {result.modelfile}")
    for note in result.notes:
        print(f"note: {note}")
    print(result.serving)
    return 0
