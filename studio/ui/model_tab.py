"""Model tab: choose the model (catalog, Hugging Face id or local folder). The method and its settings are in
the Train tab (studio/ui/train_tab.py), built from the config fields."""

from __future__ import annotations

import gradio as gr

from studio.models.catalog import load_catalog
from studio.ui.context import UIContext
from studio.ui.estimate_panel import create_estimate_panel
from studio.ui.locales import lang_code, t


def model_info(name: str, lang: str) -> str:
    """One line about the chosen model: catalog facts, or how a custom choice is read."""
    preset = load_catalog().get(name)
    if preset is None:
        return t("model.info.custom", lang, name=name)
    return t(
        "model.info.catalog", lang, name=preset.name, hub=preset.hub_id or "built-in, offline",
        license=preset.license, template=preset.template,
    )


def create_model_tab(ctx: UIContext) -> dict:
    """Build the Model tab; shares `model` and `trust_remote_code`."""
    L = ctx.localizer
    default_model = ctx.initial.model.model
    catalog = list(load_catalog())
    with gr.Row():
        model = L.add(
            gr.Dropdown(choices=catalog, value=default_model, allow_custom_value=True, elem_id="model-name", scale=3, **L.field("model")),
            "field.model", "model",
        )
        trust = L.add(gr.Checkbox(value=False, scale=1, **L.field("trust_remote_code")), "field.trust_remote_code", "trust_remote_code")
    info = gr.Markdown(model_info(default_model, "en"), elem_id="model-info")
    estimate = create_estimate_panel(ctx)  # wired in build_app once the Train tab's controls exist

    def on_model_change(name: str, lang_choice: str):
        return model_info(name or "", lang_code(lang_choice))

    model.change(on_model_change, [model, ctx.language], [info])
    ctx.shared.update(model=model, trust_remote_code=trust, model_info=info)
    return {"model": model, "info": info, "estimate": estimate}
