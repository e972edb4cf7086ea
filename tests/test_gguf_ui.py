"""The studio's GGUF controls, through the handlers the Model, Chat and Export tabs call: an uploaded GGUF becomes a
model the dropdowns offer, any model loads into the chat without a run, and the Export tab writes GGUF in the
background."""

from __future__ import annotations

import pytest


def test_model_tab_imports_an_uploaded_gguf_and_chat_tab_loads_it_without_a_run(workspace, tiny_demo_dir, tmp_path):
    from studio.chat import GenerationSettings
    from studio.models.catalog import model_choices
    from studio.models.gguf_writer import write_gguf
    from studio.ui.chat_tab import load_model_into_chat
    from studio.ui.context import UIContext
    from studio.ui.model_tab import import_gguf_file

    uploads = tmp_path / "gradio-upload"
    uploads.mkdir()
    path = write_gguf(tiny_demo_dir, uploads / "My Model.gguf", "f16")
    ctx = UIContext(workspace)
    steps = []
    message, name = import_gguf_file(ctx, str(path), "", "", "en", lambda fraction, desc: steps.append(desc))
    assert name == "My-Model" and "Imported **My-Model** (llama, 2.0M parameters, float16)" in message
    assert "de-quantizing weights" in steps and "saving safetensors" in steps
    assert "My-Model" in model_choices(workspace) and "tiny-demo" in model_choices(workspace)

    again, none = import_gguf_file(ctx, str(path), "", "", "en", lambda fraction, desc: None)
    assert none is None and again.startswith("Not imported:") and "already exists" in again
    typed, none = import_gguf_file(ctx, None, str(path), "", "en", lambda fraction, desc: None)  # typed: outside the workspace
    assert none is None and "outside the workspace" in typed
    empty, none = import_gguf_file(ctx, None, "", "", "en", lambda fraction, desc: None)
    assert none is None and "Upload a .gguf" in empty

    assert load_model_into_chat(ctx, "My-Model", "en").startswith("Loaded model **My-Model**")
    reply = ctx.chat.model.reply([{"role": "user", "content": "Hello"}], GenerationSettings(max_new_tokens=4))
    assert isinstance(reply, str) and ctx.chat.run_id == ""
    assert load_model_into_chat(ctx, "no-such/thing/here", "en").startswith("**PathError**")


@pytest.mark.slow
def test_export_tab_writes_gguf_in_the_background(demo_run, tmp_path):
    from studio import export, export_jobs
    from studio.workspace import Workspace
    from tests.conftest import copy_demo_run, wait_for

    root, run_id = copy_demo_run(demo_run, tmp_path / "ws")
    workspace = Workspace(root)
    with pytest.raises(export.ExportError, match="GGUF type 'q4' is not one of f16, bf16, q8_0"):
        export_jobs.start_export(workspace, run_id, "exports/bad", gguf="q4")
    job = export_jobs.start_export(workspace, run_id, "exports/gguf", gguf="q8_0")
    wait_for(lambda: job.state != "running", 300, "the GGUF export")
    assert job.state == "done", job.error
    assert job.result.kind == "gguf" and (job.result.out_dir / "demo.gguf").stat().st_size > 1e6
    assert "FROM ./demo.gguf" in job.result.modelfile.read_text()
