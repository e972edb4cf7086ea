"""Train tab: hyperparameters and Start, above the live monitor (studio/ui/monitor.py) of the watched run.

A page that loads (or reloads, or a second browser tab) re-attaches to the newest queued or running run,
and the monitor rebuilds its charts from that run's whole series before following it incrementally.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from studio import config as cfg
from studio import jobs
from studio.data.loading import DataError
from studio.models.catalog import recommended_overrides
from studio.train.status import FINAL_STATES
from studio.ui.context import UIContext, refuse_viewer
from studio.ui.locales import lang_code, t
from studio.ui.monitor import create_monitor, create_run_buttons
from studio.workspace import PathError

TRAIN_KEYS = ("epochs", "max_steps", "learning_rate", "batch_size", "grad_accum", "cutoff_len", "seed")
# Validation, checkpoints and probes (a folded section of the Train tab).
MORE_KEYS = ("val_size", "eval_steps", "early_stop_patience", "save_steps", "save_total_limit", "probe_steps", "probe_prompts")
# Every config key the UI sets, in the order the Start handler receives them.
CONFIG_KEYS = ("run_name", "model", "trust_remote_code", "dataset", "method", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets", *TRAIN_KEYS, *MORE_KEYS)
# Keys a catalog model may recommend values for (applied when the user picks the model).
RECOMMENDABLE = ("lora_rank", "lora_alpha", *TRAIN_KEYS, *MORE_KEYS)


def config_from_values(values: dict[str, Any], base: cfg.RunConfig | None = None) -> tuple[cfg.RunConfig | None, list[str]]:
    """The RunConfig the controls describe (on top of `base`, e.g. a cloned run's config, for keys the
    controls do not show), or None and every problem found (as lines to show)."""
    cleaned = {k: v for k, v in values.items() if v is not None and v != ""}
    cleaned.setdefault("run_name", "")
    try:
        config = cfg.apply_overrides(base or cfg.RunConfig(), cleaned)
    except cfg.ConfigError as error:
        return None, [str(p) for p in error.problems]
    problems = [str(p) for p in cfg.validate(config)]
    return (None if problems else config), problems


def latest_active_run(ctx: UIContext) -> str:
    """The newest run that is queued or running, or "" if none (so a reloaded page re-attaches to it)."""
    for summary in jobs.list_runs(ctx.workspace):
        if summary.state not in FINAL_STATES:
            return summary.run_id
    return ""


def create_train_tab(ctx: UIContext) -> dict:
    """Build the Train tab; needs the Data and Model tabs' shared components."""
    L = ctx.localizer
    train = ctx.initial.train
    controls: dict[str, Any] = {}
    with gr.Column() as settings:
        controls["run_name"] = L.add(gr.Textbox(value="", max_length=80, elem_id="train-run_name", **L.field("run_name")), "field.run_name", "run_name")
        with gr.Row():
            for key in ("epochs", "max_steps", "learning_rate", "batch_size"):
                precision = None if key in ("epochs", "learning_rate") else 0
                controls[key] = L.add(gr.Number(value=getattr(train, key), precision=precision, elem_id=f"train-{key}", **L.field(key)), f"field.{key}", key)
        with gr.Row():
            for key in ("grad_accum", "cutoff_len", "seed"):
                controls[key] = L.add(gr.Number(value=getattr(train, key), precision=0, elem_id=f"train-{key}", **L.field(key)), f"field.{key}", key)
        with L.add(gr.Accordion(t("train.more"), open=False, elem_id="train-more"), "train.more"):
            with gr.Row():
                controls["val_size"] = L.add(gr.Number(value=ctx.initial.data.val_size, minimum=0, elem_id="train-val_size", **L.field("val_size")), "field.val_size", "val_size")
                for key in ("eval_steps", "early_stop_patience"):
                    controls[key] = L.add(gr.Number(value=getattr(train, key), precision=0, minimum=0, elem_id=f"train-{key}", **L.field(key)), f"field.{key}", key)
            with gr.Row():
                for key in ("save_steps", "save_total_limit", "probe_steps"):
                    controls[key] = L.add(gr.Number(value=getattr(train, key), precision=0, minimum=0, elem_id=f"train-{key}", **L.field(key)), f"field.{key}", key)
            controls["probe_prompts"] = L.add(gr.Textbox(value=train.probe_prompts, lines=3, elem_id="train-probe_prompts", **L.field("probe_prompts")), "field.probe_prompts", "probe_prompts")
    with gr.Row() as actions:
        start = L.add(gr.Button(t("train.start"), variant="primary", elem_id="start-button", scale=2), "train.start")
        buttons = create_run_buttons(ctx)
    ctx.operator_only += [settings, actions]
    watched = gr.State("")  # run id shown in this browser session
    watch = gr.State(None)  # monitor.Watch: what this session has drawn of it (None: draw it all afresh)
    base_config = gr.State(None)  # the config a "Clone config" loaded, for keys the controls do not show
    monitor = create_monitor(ctx, watched, watch, buttons)

    all_controls = {**ctx.shared, **controls}
    inputs = [all_controls[k] for k in CONFIG_KEYS]

    def on_start(request: gr.Request, *values):  # the request first: Gradio fills only positional ones
        *config_values, base, lang_choice = values
        lang = lang_code(lang_choice)
        refuse_viewer(ctx, request, lang)
        config, problems = config_from_values(dict(zip(CONFIG_KEYS, config_values)), base)
        run_dir = None
        if config is not None:
            try:
                run_dir = jobs.launch(ctx.workspace, config)
            except (DataError, PathError) as error:
                problems = [f"dataset: {error}"]
        if run_dir is None:
            listed = "\n".join(f"- {p}" for p in problems)
            return t("train.invalid", lang) + "\n\n" + listed, gr.skip(), gr.skip()
        return t("train.started", lang, run=run_dir.name), run_dir.name, None

    def on_model_change(name: str):
        recommended = recommended_overrides(name or "")
        return [gr.update(value=recommended[key]) if key in recommended else gr.skip() for key in RECOMMENDABLE]

    def on_page_load(lang_choice: str):
        run_id = latest_active_run(ctx)
        return run_id, None, t("train.watching", lang_code(lang_choice), run=run_id) if run_id else gr.skip()

    start.click(on_start, [*inputs, base_config, ctx.language], [monitor["message"], watched, watch], api_name="start")
    # .input, not .change: a model set by "Clone config" keeps the cloned run's settings.
    ctx.shared["model"].input(on_model_change, [ctx.shared["model"]], [all_controls[k] for k in RECOMMENDABLE])
    ctx.shared.update(controls)
    ctx.shared.update(watched_run=watched, watch=watch, base_config=base_config, train_message=monitor["message"])
    return {"start": start, "chat_button": buttons["chat"], "watched": watched, "page_load": (on_page_load, [ctx.language], [watched, watch, monitor["message"]])}
