"""Data tab: pick a bundled sample or upload a file, see how many rows were read and the first rows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import gradio as gr

from studio.data.loading import SUPPORTED_SUFFIXES, DataError, list_samples, load_dataset_file, resolve_dataset
from studio.ui.context import UIContext, refuse_viewer
from studio.ui.locales import lang_code, t
from studio.workspace import PathError, Workspace

PREVIEW_ROWS = 10


def _preview_table(dataset, lang: str) -> dict:
    headers = [t(k, lang) for k in ("data.col.where", "data.col.turns", "data.col.prompt", "data.col.reply")]
    rows = []
    for location, conversation in list(zip(dataset.locations, dataset.conversations))[:PREVIEW_ROWS]:
        prompt = next((m["content"] for m in conversation if m["role"] == "user"), "")
        reply = next((m["content"] for m in conversation if m["role"] == "assistant"), "")
        rows.append([location, len(conversation), prompt, reply])
    return {"headers": headers, "data": rows}


def describe(workspace: Workspace, ref: str, lang: str) -> tuple[str, dict | None]:
    """A message about dataset `ref` (rows read, or what is wrong and where) and its preview table."""
    try:
        dataset = load_dataset_file(resolve_dataset(workspace, ref))
    except (DataError, PathError) as error:
        return f"{t('data.error', lang)}\n\n```\n{error}\n```", None
    message = t("data.loaded", lang, rows=len(dataset), name=dataset.path.name, format=dataset.format)
    return message, _preview_table(dataset, lang)


def save_upload(workspace: Workspace, temp_path: str) -> str:
    """Copy an uploaded file into workspace/datasets under a safe name; returns its workspace-relative path."""
    source = Path(temp_path)
    if source.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DataError(f"{source.name}: unsupported file type; upload {', '.join(SUPPORTED_SUFFIXES)}")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.stem).strip("._") or "dataset"
    target = workspace.datasets_dir / f"{stem}{source.suffix.lower()}"
    shutil.copyfile(source, target)
    return str(target.relative_to(workspace.root))


def create_data_tab(ctx: UIContext) -> dict:
    """Build the Data tab; returns its components (the chosen dataset is shared as `dataset`)."""
    L = ctx.localizer
    with gr.Row():
        sample = L.add(gr.Dropdown(choices=list_samples(), value="demo-chat", label=t("data.sample"), scale=1), "data.sample")
        upload = L.add(
            gr.File(label=t("data.upload"), file_types=list(SUPPORTED_SUFFIXES), type="filepath", scale=2, elem_id="data-upload"),
            "data.upload",
        )
    dataset = L.add(gr.Textbox(value="demo-chat", interactive=False, elem_id="dataset-ref", **L.field("dataset")), "field.dataset", "dataset")
    message, table = describe(ctx.workspace, "demo-chat", "en")
    summary = gr.Markdown(message, elem_id="data-summary")
    preview = L.add(gr.Dataframe(value=table, label=t("data.preview"), wrap=True, interactive=False, elem_id="data-preview"), "data.preview")

    def on_sample_change(name: str, lang_choice: str):
        text, table = describe(ctx.workspace, name, lang_code(lang_choice))
        return name if table else gr.skip(), text, table if table else gr.skip()

    def on_upload(temp_path: str | None, lang_choice: str, request: gr.Request):
        lang = lang_code(lang_choice)
        refuse_viewer(ctx, request, lang)
        if not temp_path:
            return gr.skip(), gr.skip(), gr.skip()
        try:
            ref = save_upload(ctx.workspace, temp_path)
        except DataError as error:
            return gr.skip(), f"{t('data.error', lang)}\n\n```\n{error}\n```", gr.skip()
        text, table = describe(ctx.workspace, ref, lang)
        return (ref if table else gr.skip()), text, (table if table else gr.skip())

    sample.change(on_sample_change, [sample, ctx.language], [dataset, summary, preview])
    upload.upload(on_upload, [upload, ctx.language], [dataset, summary, preview], api_name="upload_dataset")
    ctx.shared["dataset"] = dataset
    return {"sample": sample, "upload": upload, "dataset": dataset, "summary": summary, "preview": preview}
