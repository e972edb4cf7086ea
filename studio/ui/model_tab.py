"""Model tab: choose the model (catalog, Hugging Face id or local folder) and the method with its settings."""

from __future__ import annotations

import gradio as gr

from studio import config as cfg
from studio.models.catalog import load_catalog
from studio.ui.context import UIContext
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
    """Build the Model tab; shares `model`, `trust_remote_code`, `method` and the LoRA fields."""
    L = ctx.localizer
    m = ctx.initial.method
    default_model = ctx.initial.model.model
    catalog = list(load_catalog())
    with gr.Row():
        model = L.add(
            gr.Dropdown(choices=catalog, value=default_model, allow_custom_value=True, elem_id="model-name", scale=3, **L.field("model")),
            "field.model", "model",
        )
        trust = L.add(gr.Checkbox(value=False, scale=1, **L.field("trust_remote_code")), "field.trust_remote_code", "trust_remote_code")
    info = gr.Markdown(model_info(default_model, "en"), elem_id="model-info")
    method = L.add(gr.Radio(choices=list(cfg.METHODS), value=m.method, elem_id="method", **L.field("method")), "field.method", "method")
    with gr.Group(visible=m.method == "lora") as lora_group:
        lora_title = L.add(gr.Markdown(t("model.lora")), "model.lora")
        with gr.Row():
            rank = L.add(gr.Number(value=m.lora_rank, precision=0, minimum=1, **L.field("lora_rank")), "field.lora_rank", "lora_rank")
            alpha = L.add(gr.Number(value=m.lora_alpha, precision=0, minimum=1, **L.field("lora_alpha")), "field.lora_alpha", "lora_alpha")
            dropout = L.add(gr.Number(value=m.lora_dropout, minimum=0, maximum=0.99, step=0.05, **L.field("lora_dropout")), "field.lora_dropout", "lora_dropout")
        targets = L.add(gr.Textbox(value=m.lora_targets, **L.field("lora_targets")), "field.lora_targets", "lora_targets")

    def on_model_change(name: str, lang_choice: str):
        return model_info(name or "", lang_code(lang_choice))

    def on_method_change(choice: str):
        return gr.update(visible=choice == "lora")

    model.change(on_model_change, [model, ctx.language], [info])
    method.change(on_method_change, [method], [lora_group])
    ctx.shared.update(model=model, trust_remote_code=trust, method=method, lora_rank=rank, lora_alpha=alpha, lora_dropout=dropout, lora_targets=targets, model_info=info)
    return {"model": model, "info": info, "method": method, "lora_title": lora_title}
