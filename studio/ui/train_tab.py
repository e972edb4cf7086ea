"""Train tab: hyperparameters, Start/Stop, and a live view of the run (progress, loss chart, log tail).

The live view polls the run folder every 1.5 s (gr.Timer): metrics.jsonl is read from the byte offset
reached last time, so each tick costs only the new lines.
"""

from __future__ import annotations

import html
import time
from typing import Any

import gradio as gr

from studio import config as cfg
from studio import jobs
from studio.data.loading import DataError
from studio.models.catalog import recommended_overrides
from studio.train.status import FINAL_STATES
from studio.ui.context import UIContext
from studio.ui.locales import lang_code, t
from studio.workspace import LOG_FILE, PathError, tail_text

TRAIN_KEYS = ("epochs", "max_steps", "learning_rate", "batch_size", "grad_accum", "cutoff_len", "seed")
# Every config key the UI sets, in the order the Start handler receives them.
CONFIG_KEYS = ("run_name", "model", "trust_remote_code", "dataset", "method", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets", *TRAIN_KEYS)
POLL_SECONDS = 1.5
NOTHING_SEEN: dict = {"points": [], "last": None}


def config_from_values(values: dict[str, Any]) -> tuple[cfg.RunConfig | None, list[str]]:
    """The RunConfig the controls describe, or None and every problem found (as lines to show)."""
    cleaned = {k: v for k, v in values.items() if v is not None and v != ""}
    cleaned.setdefault("run_name", "")
    try:
        config = cfg.apply_overrides(cfg.RunConfig(), cleaned)
    except cfg.ConfigError as error:
        return None, [str(p) for p in error.problems]
    problems = [str(p) for p in cfg.validate(config)]
    return (None if problems else config), problems


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def progress_html(run_id: str, status: dict, last: dict | None, lang: str) -> str:
    """The progress block: state and phase, a bar, step/total, elapsed, ETA and the latest loss."""
    state = status.get("state", "queued")
    step, total = (last or {}).get("step", 0), (last or {}).get("total_steps", 0)
    fraction = 1.0 if state == "completed" else (step / total if total else 0.0)
    started = status.get("started")
    elapsed = ((status.get("ended") or time.time()) - started) if started else None
    parts = [t("train.step", lang, step=step, total=total or "?"), t("train.elapsed", lang, elapsed=_duration(elapsed))]
    if state == "running" and last:
        parts.append(t("train.eta", lang, eta=_duration(last.get("eta"))))
    if last and last.get("loss") is not None:
        parts.append(t("train.loss", lang, loss=f"{last['loss']:.4f}"))
    colour = {"failed": "#d9534f", "stopped": "#f0ad4e", "completed": "#5cb85c"}.get(state, "#3b82f6")
    error = status.get("error")
    error_html = f"<pre class='run-error'>{html.escape(error)}</pre>" if error else ""
    phase = t("train.phase", lang, state=t(f"state.{state}", lang), phase=status.get("phase", ""))
    return (
        f"<div id='run-progress' data-state='{state}' data-step='{step}'>"
        f"<div><b>{html.escape(run_id)}</b> · {html.escape(phase)}</div>"
        f"<div style='background:#e5e7eb;border-radius:6px;height:14px;margin:6px 0'>"
        f"<div style='width:{fraction * 100:.1f}%;background:{colour};height:14px;border-radius:6px'></div></div>"
        f"<div>{' · '.join(parts)}</div>{error_html}</div>"
    )


def loss_figure(points: list[list[float]], title: str):
    """A Plotly line chart of training loss against step."""
    import plotly.graph_objects as go

    figure = go.Figure(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers", marker={"size": 3}, name="loss"))
    figure.update_layout(title=title, xaxis_title="step", yaxis_title="loss", height=320, margin={"l": 50, "r": 20, "t": 40, "b": 40})
    return figure


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
    controls["run_name"] = L.add(gr.Textbox(value="", max_length=80, **L.field("run_name")), "field.run_name", "run_name")
    with gr.Row():
        for key in ("epochs", "max_steps", "learning_rate", "batch_size"):
            precision = None if key in ("epochs", "learning_rate") else 0
            controls[key] = L.add(gr.Number(value=getattr(train, key), precision=precision, elem_id=f"train-{key}", **L.field(key)), f"field.{key}", key)
    with gr.Row():
        for key in ("grad_accum", "cutoff_len", "seed"):
            controls[key] = L.add(gr.Number(value=getattr(train, key), precision=0, elem_id=f"train-{key}", **L.field(key)), f"field.{key}", key)
    with gr.Row():
        start = L.add(gr.Button(t("train.start"), variant="primary", elem_id="start-button"), "train.start")
        stop = L.add(gr.Button(t("train.stop"), variant="stop", elem_id="stop-button"), "train.stop")
        chat_button = L.add(gr.Button(t("train.chat"), visible=False, elem_id="chat-with-run"), "train.chat")
    message = gr.Markdown(t("train.no_run"), elem_id="train-message")
    progress = gr.HTML("", elem_id="train-progress")
    chart = L.add(gr.Plot(label=t("train.loss_chart"), elem_id="loss-chart"), "train.loss_chart")
    log = L.add(gr.Textbox(label=t("train.log"), lines=10, max_lines=10, interactive=False, autoscroll=True, elem_id="train-log"), "train.log")
    watched = gr.State("")  # run id shown in this browser session
    offset = gr.State(0)  # bytes of metrics.jsonl already read
    points = gr.State(NOTHING_SEEN)  # [step, loss] pairs read so far and the latest metrics row
    timer = gr.Timer(POLL_SECONDS)

    all_controls = {**ctx.shared, **controls}
    inputs = [all_controls[k] for k in CONFIG_KEYS]

    def on_start(*values):
        *config_values, lang_choice = values
        lang = lang_code(lang_choice)
        config, problems = config_from_values(dict(zip(CONFIG_KEYS, config_values)))
        run_dir = None
        if config is not None:
            try:
                run_dir = jobs.launch(ctx.workspace, config)
            except (DataError, PathError) as error:
                problems = [f"dataset: {error}"]
        if run_dir is None:
            listed = "\n".join(f"- {p}" for p in problems)
            return t("train.invalid", lang) + "\n\n" + listed, gr.skip(), gr.skip(), gr.skip()
        return t("train.started", lang, run=run_dir.name), run_dir.name, 0, NOTHING_SEEN

    def on_stop(run_id: str, lang_choice: str):
        if run_id and jobs.request_stop(ctx.workspace.runs_dir / run_id):
            return t("train.stopping", lang_code(lang_choice), run=run_id)
        return gr.skip()

    def on_tick(run_id: str, read_offset: int, seen: dict, lang_choice: str):
        if not run_id:
            return gr.skip(), gr.skip(), gr.skip(), read_offset, seen, gr.skip()
        lang = lang_code(lang_choice)
        run_dir = ctx.workspace.runs_dir / run_id
        status = jobs.run_status(run_dir)
        rows, new_offset = jobs.read_metrics(run_dir, read_offset)
        if rows:
            points = seen["points"] + [[r["step"], r["loss"]] for r in rows if r.get("loss") is not None]
            seen = {"points": points, "last": rows[-1]}
        figure = loss_figure(seen["points"], t("train.loss_chart", lang)) if rows else gr.skip()
        done = status.get("state") in FINAL_STATES
        chat_visible = gr.update(visible=done and status.get("output") is not None)
        return progress_html(run_id, status, seen["last"], lang), figure, tail_text(run_dir / LOG_FILE, 60), new_offset, seen, chat_visible

    def on_model_change(name: str):
        recommended = recommended_overrides(name or "")
        updates = []
        for key in ("lora_rank", "lora_alpha", *TRAIN_KEYS):
            updates.append(gr.update(value=recommended[key]) if key in recommended else gr.skip())
        return updates

    def on_page_load():
        return latest_active_run(ctx), 0, NOTHING_SEEN

    start.click(on_start, [*inputs, ctx.language], [message, watched, offset, points])
    stop.click(on_stop, [watched, ctx.language], [message])
    timer.tick(on_tick, [watched, offset, points, ctx.language], [progress, chart, log, offset, points, chat_button], show_progress="hidden")
    ctx.shared["model"].change(on_model_change, [ctx.shared["model"]], [all_controls[k] for k in ("lora_rank", "lora_alpha", *TRAIN_KEYS)])
    ctx.shared.update(controls)
    ctx.shared["watched_run"] = watched
    return {"start": start, "stop": stop, "chat_button": chat_button, "watched": watched, "page_load": (on_page_load, [watched, offset, points])}

