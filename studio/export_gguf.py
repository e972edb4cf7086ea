"""Export a run as one GGUF file for llama.cpp and Ollama.

The run's merged model (studio/export.py's merge_into, in float32) is written to a scratch folder inside the
export folder, converted with studio/models/gguf_writer.py (f16, bf16 or q8_0, tokenizer and chat template
embedded), and removed again. Beside NAME.gguf: a Modelfile `FROM ./NAME.gguf` with the run's TEMPLATE, stop
tokens and system prompt, and SERVING.md with the llama.cpp and Ollama commands.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from studio import run_folder
from studio.export import (
    MODELFILE,
    SERVING_FILE,
    ExportError,
    ExportResult,
    check_out_dir,
    merge_into,
    served_name,
    trained_dir,
    write_modelfile,
)
from studio.models.catalog import resolve_model
from studio.models.gguf_import import import_note
from studio.models.gguf_writer import OUT_TYPES, check_exportable, write_gguf
from studio.workspace import FULL_MODEL_DIR, Workspace

SCRATCH_DIR = ".merged"  # the merged safetensors, inside the export folder while the GGUF is written


def check_gguf_exportable(workspace: Workspace, run_dir: Path, out_type: str) -> None:
    """Refuse up front (ExportError) an out type or a base model with no GGUF mapping, before any merging."""
    if out_type not in OUT_TYPES:
        raise ExportError(f"GGUF type {out_type!r} is not one of {', '.join(OUT_TYPES)}")
    config = run_folder.load_config(run_dir)
    if config.method.method not in ("lora", "qlora", "ia3", "full", "freeze"):
        raise ExportError(f"a {config.method.method} adapter adds learned virtual tokens and cannot be merged into "
                          "the weights, so it cannot be written as GGUF; export the adapter instead")
    trained = trained_dir(run_dir)
    source = Path(trained if trained.name == FULL_MODEL_DIR else resolve_model(workspace, config.model.model))
    if (source / "config.json").is_file():  # a Hub id is checked once its merged config is written
        check_exportable(json.loads((source / "config.json").read_text(encoding="utf-8")))


def tokenizer_pre_name(workspace: Workspace, run_dir: Path, merged: Path) -> str:
    """llama.cpp's pre-tokenizer name: the one of the GGUF the base model was imported from, "gpt-2" for a
    byte-level BPE with GPT-2's split pattern (tiny-demo), "default" otherwise."""
    source = resolve_model(workspace, run_folder.load_config(run_dir).model.model)
    note = import_note(Path(source)) if Path(source).is_dir() else None
    if note and note.get("tokenizer_pre"):
        return note["tokenizer_pre"]
    try:
        pre = json.loads((merged / "tokenizer.json").read_text(encoding="utf-8")).get("pre_tokenizer") or {}
    except (OSError, ValueError):
        return "default"
    return "gpt-2" if pre.get("type") == "ByteLevel" and pre.get("use_regex", True) else "default"


def _serving_text(name: str, gguf_name: str) -> str:
    return (f"# Serving {name}\n\nllama.cpp (OpenAI-compatible API on port 8080):\n\n```\nllama-server -m {gguf_name} "
            f"--jinja\n```\n\nOllama (the Modelfile carries the run's template and system prompt):\n\n```\nollama create "
            f"{name} -f {MODELFILE}\nollama run {name}\n```\n")


def export_run_gguf(workspace: Workspace, run: str, to: str, out_type: str = "f16",
                    progress: Callable[[str], None] = lambda step: None) -> ExportResult:
    """Export run `run` into the new folder `to` as NAME.gguf (`out_type` f16, bf16 or q8_0) with a Modelfile and
    SERVING.md. `progress` hears "merge", "gguf", "modelfile". Returns what was written (kind "gguf")."""
    run_dir = workspace.run_dir(run)
    check_gguf_exportable(workspace, run_dir, out_type)
    out_dir = check_out_dir(workspace, to)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = served_name(run_dir)
    scratch = out_dir / SCRATCH_DIR
    try:
        progress("merge")
        merge_into(workspace, run_dir, scratch, "fp32")
        progress("gguf")
        gguf_path = write_gguf(scratch, out_dir / f"{name}.gguf", out_type, name, tokenizer_pre_name(workspace, run_dir, scratch))
        progress("modelfile")
        result = ExportResult(out_dir, "gguf")
        try:
            modelfile, result.notes = write_modelfile(workspace, run_dir, scratch, "merged")
            text = modelfile.read_text(encoding="utf-8").replace("\nFROM .\n", f"\nFROM ./{gguf_path.name}\n")
        except ExportError as error:  # no Ollama TEMPLATE for this template family: the GGUF is still usable
            text = f"FROM ./{gguf_path.name}\n"
            result.notes.append(f"the Modelfile has no TEMPLATE: {error}")
        result.modelfile = out_dir / MODELFILE
        result.modelfile.write_text(text, encoding="utf-8")
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)  # no half-written export left behind
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.serving = _serving_text(name, gguf_path.name)
    (out_dir / SERVING_FILE).write_text(result.serving, encoding="utf-8")
    result.notes.append(f"{gguf_path.name}: {gguf_path.stat().st_size / 1e6:.1f} MB, {out_type}")
    return result
