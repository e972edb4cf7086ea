"""Runs tab: every run with its state, model, final loss; pick one to see its config and status."""

from __future__ import annotations

import json
import time

import gradio as gr

from studio import jobs
from studio.ui.context import UIContext
from studio.ui.locales import lang_code, t
from studio.workspace import CONFIG_FILE, PathError

COLUMNS = ("run", "name", "state", "model", "dataset", "method", "loss", "created", "error")


def runs_table(ctx: UIContext, lang: str) -> dict:
    """The runs list as a table value (headers in the chosen language)."""
    rows = []
    for r in jobs.list_runs(ctx.workspace):
        rows.append([
            r.run_id, r.run_name, t(f"state.{r.state}", lang), r.model, r.dataset, r.method,
            f"{r.final_loss:.4f}" if r.final_loss is not None else "", time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)), r.error,
        ])
    return {"headers": [t(f"runs.col.{c}", lang) for c in COLUMNS], "data": rows}


def run_details(ctx: UIContext, run_id: str) -> tuple[str, str]:
    """A run's config.yaml text and its status as JSON text."""
    if not run_id:
        return "", ""
    try:
        run_dir = ctx.workspace.run_dir(run_id)
    except PathError as error:
        return str(error), ""
    return (run_dir / CONFIG_FILE).read_text(encoding="utf-8"), json.dumps(jobs.run_status(run_dir), indent=2, ensure_ascii=False)


def create_runs_tab(ctx: UIContext) -> dict:
    """Build the Runs tab; returns `refresh`, a handler the app also runs on page load."""
    L = ctx.localizer
    refresh = L.add(gr.Button(t("runs.refresh"), elem_id="runs-refresh"), "runs.refresh")
    table = L.add(gr.Dataframe(label=t("runs.table"), interactive=False, wrap=True, elem_id="runs-table"), "runs.table")
    pick = L.add(gr.Dropdown(choices=[], label=t("runs.pick"), elem_id="runs-pick"), "runs.pick")
    with gr.Row():
        config_view = L.add(gr.Code(language="yaml", label=t("runs.config"), interactive=False), "runs.config")
        status_view = L.add(gr.Code(language="json", label=t("runs.status"), interactive=False), "runs.status")

    def on_refresh(lang_choice: str):
        table_value = runs_table(ctx, lang_code(lang_choice))
        return table_value, gr.update(choices=[row[0] for row in table_value["data"]])

    def on_pick(run_id: str):
        return run_details(ctx, run_id)

    refresh.click(on_refresh, [ctx.language], [table, pick])
    pick.change(on_pick, [pick], [config_view, status_view])
    return {"refresh": (on_refresh, [ctx.language], [table, pick])}
