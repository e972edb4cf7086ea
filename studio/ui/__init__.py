"""The studio's web UI: `build_app(workspace)` returns the Gradio Blocks with every tab wired."""

from __future__ import annotations

import gradio as gr

from studio.ui.chat_tab import create_chat_tab
from studio.ui.context import UIContext
from studio.ui.data_tab import create_data_tab
from studio.ui.locales import LANGUAGES, t
from studio.ui.model_tab import create_model_tab
from studio.ui.runs_tab import create_runs_tab
from studio.ui.train_tab import create_train_tab
from studio.workspace import Workspace


def build_app(workspace: Workspace) -> gr.Blocks:
    """Build the whole UI over `workspace`: Data, Model, Train, Chat and Runs tabs and the language switch."""
    ctx = UIContext(workspace=workspace)
    L = ctx.localizer
    with gr.Blocks(title="Fine-tuning Studio") as app:
        with gr.Row():
            with gr.Column(scale=4):
                L.add(gr.Markdown(t("title")), "title")
                L.add(gr.Markdown(t("subtitle")), "subtitle")
            ctx.language = L.add(
                gr.Radio(choices=list(LANGUAGES), value="English", label=t("language"), scale=1, elem_id="language"), "language"
            )
        with gr.Tabs() as tabs:
            with L.add(gr.Tab(t("tab.data"), id="data"), "tab.data"):
                create_data_tab(ctx)
            with L.add(gr.Tab(t("tab.model"), id="model"), "tab.model"):
                create_model_tab(ctx)
            with L.add(gr.Tab(t("tab.train"), id="train"), "tab.train"):
                train = create_train_tab(ctx)
            with L.add(gr.Tab(t("tab.chat"), id="chat"), "tab.chat"):
                chat = create_chat_tab(ctx)
            with L.add(gr.Tab(t("tab.runs"), id="runs"), "tab.runs") as runs_tab:
                runs = create_runs_tab(ctx)

        ctx.language.change(L.relabel, [ctx.language], L.components())

        # One click from a finished run to chatting with it.
        def on_chat_with_run(run_id: str, lang_choice: str):
            return gr.Tabs(selected="chat"), gr.update(choices=chat["on_refresh"](lang_choice)["choices"], value=run_id)

        train["chat_button"].click(on_chat_with_run, [train["watched"], ctx.language], [tabs, chat["run"]]).then(
            chat["on_load"], [chat["run"], chat["base"], ctx.language], [chat["status"], chat["chatbot"]]
        )
        refresh_runs, refresh_inputs, refresh_outputs = runs["refresh"]
        runs_tab.select(refresh_runs, refresh_inputs, refresh_outputs)
        train["start"].click(refresh_runs, refresh_inputs, refresh_outputs)
        page_load, page_outputs = train["page_load"]
        app.load(page_load, None, page_outputs)
        app.load(refresh_runs, refresh_inputs, refresh_outputs)
        app.load(chat["on_refresh"], [ctx.language], [chat["run"]])
    return app
