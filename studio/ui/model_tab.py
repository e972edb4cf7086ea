"""Model tab: choose the model (catalog, imported, Hugging Face id or local folder), or import a GGUF file as a
model. The method and its settings are in the Train tab (studio/ui/train_tab.py), built from the config fields."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from studio.models.catalog import load_catalog, model_choices
from studio.ui.context import UIContext, bind, operator_view, refuse_viewer
from studio.ui.estimate_panel import create_estimate_panel
from studio.ui.locales import lang_code, t
from studio.workspace import PathError, Workspace


def model_info(name: str, lang: str) -> str:
    """One line about the chosen model: catalog facts, or how a custom choice is read."""
    preset = load_catalog().get(name)
    if preset is None:
        return t("model.info.custom", lang, name=name)
    return t(
        "model.info.catalog", lang, name=preset.name, hub=preset.hub_id or "built-in, offline",
        license=preset.license, template=preset.template,
    )


def import_gguf_file(ctx: UIContext, uploaded: str | None, typed: str, name: str, lang: str, progress) -> tuple[str, str | None]:
    """Import an uploaded .gguf (or one at a workspace path) as a model; (message, the new model's name or None)."""
    from studio.models.gguf_import import import_gguf, import_note

    workspace = ctx.workspace
    try:
        if uploaded:  # Gradio's upload folder is the operator's own, not a user path
            workspace = Workspace(ctx.workspace.root, allowed=(*ctx.workspace.allowed, Path(uploaded).parent))
            path = workspace.confine(uploaded)
        elif (typed or "").strip():
            path = workspace.confine(typed)
        else:
            return t("model.import.none", lang), None
        folder = import_gguf(workspace, path, (name or "").strip(), progress=lambda f, step: progress(f, desc=step))
    except (PathError, OSError, ValueError) as error:
        return t("model.import.failed", lang, error=error), None
    note = import_note(folder) or {}
    return t("model.import.done", lang, name=folder.name, arch=note.get("architecture"), params=note.get("parameters", 0) / 1e6,
             dtype=note.get("saved_dtype"), seconds=note.get("seconds"), folder=folder), folder.name


def on_model_change(name: str, lang_choice: str):
    """The line about the chosen model, in the page's language."""
    return model_info(name or "", lang_code(lang_choice))


def on_import(ctx: UIContext, uploaded, path_text, model_name, lang_choice, request: gr.Request, progress=gr.Progress()):
    """Import the GGUF file as a model: a message, and the model picker on the imported model (unchanged on failure)."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    message, imported = import_gguf_file(ctx, uploaded, path_text, model_name, lang, progress)
    if imported is None:
        return message, gr.skip()
    return message, gr.update(choices=model_choices(ctx.workspace), value=imported)


def create_model_tab(ctx: UIContext) -> dict:
    """Build the Model tab; shares `model` and `trust_remote_code`."""
    L = ctx.localizer
    default_model = ctx.initial.model.model
    catalog = model_choices(ctx.workspace)
    with gr.Row():
        model = L.add(
            gr.Dropdown(choices=catalog, value=default_model, allow_custom_value=True, elem_id="model-name", scale=3, **L.field("model")),
            "field.model", "model",
        )
        trust = L.add(gr.Checkbox(value=False, scale=1, **L.field("trust_remote_code")), "field.trust_remote_code", "trust_remote_code")
    info = gr.Markdown(model_info(default_model, "en"), elem_id="model-info")
    with L.add(gr.Accordion(t("model.import.open"), open=False, elem_id="model-import"), "model.import.open"):
        L.add(gr.Markdown(t("model.import.title")), "model.import.title")
        with gr.Row(equal_height=True):
            upload = L.add(gr.File(label=t("model.import.file"), file_types=[".gguf"], type="filepath", scale=2,
                                   elem_id="model-import-file"), "model.import.file")
            with gr.Column(scale=2):
                typed = L.add(gr.Textbox(label=t("model.import.path"), max_lines=1, elem_id="model-import-path"), "model.import.path")
                name = L.add(gr.Textbox(label=t("model.import.name"), max_lines=1, elem_id="model-import-name"), "model.import.name")
                start = L.add(gr.Button(t("model.import.start"), variant="primary", elem_id="model-import-start"), "model.import.start")
        import_status = gr.Markdown("", elem_id="model-import-status")
    ctx.operator_only.append(start)
    estimate = create_estimate_panel(ctx)  # wired in build_app once the Train tab's controls exist

    model.change(on_model_change, [model, ctx.language], [info])
    ctx.language.change(operator_view(ctx, on_model_change), [model, ctx.language], [info], show_progress="hidden")
    imported = start.click(bind(on_import, ctx), [upload, typed, name, ctx.language], [import_status, model],
                           api_name="import_gguf")
    ctx.shared.update(model=model, trust_remote_code=trust, model_info=info)
    return {"model": model, "info": info, "estimate": estimate, "imported": imported}
