"""The Train tab's "Several machines" panel: for the settings on screen, make a run folder and show the exact
command to run on each machine (what `python -m studio launch-cmd` prints), with the shared-storage requirement.

`create_nodes_panel` builds the components inside the Train tab's layout; `wire_nodes_panel` connects them to
the config controls once they all exist.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from studio import config as cfg
from studio import jobs
from studio.data.loading import DataError
from studio.train import distributed
from studio.ui import train_form as form
from studio.ui.context import UIContext, bind, refuse_viewer
from studio.ui.locales import lang_code, t
from studio.workspace import PathError


def create_nodes_panel(ctx: UIContext) -> dict:
    """Build the folded panel: machines, processes per machine, the main machine's address and port, a button
    and the commands box."""
    L = ctx.localizer
    with L.add(gr.Accordion(t("dist.nodes_title"), open=False, elem_id="train-nodes"), "dist.nodes_title"):
        L.add(gr.Markdown(t("dist.nodes_intro")), "dist.nodes_intro")
        with gr.Row():
            nodes = L.add(gr.Number(value=2, precision=0, minimum=1, label=t("dist.nodes"), elem_id="nodes-count"), "dist.nodes")
            per_node = L.add(gr.Number(value=8, precision=0, minimum=1, label=t("dist.per_node"), elem_id="nodes-per-node"), "dist.per_node")
            main_ip = L.add(gr.Textbox(label=t("dist.main_ip"), placeholder="10.0.0.5", max_lines=1, elem_id="nodes-main-ip"), "dist.main_ip")
            port = L.add(gr.Number(value=distributed.DEFAULT_PORT, precision=0, label=t("dist.port"), elem_id="nodes-port"), "dist.port")
        make = L.add(gr.Button(t("dist.make_commands"), elem_id="nodes-make"), "dist.make_commands")
        commands = gr.Code(language="shell", interactive=False, elem_id="nodes-commands", max_lines=30)
    ctx.operator_only.append(make)
    return {"nodes": nodes, "per_node": per_node, "main_ip": main_ip, "port": port, "make": make, "commands": commands}


def on_make(ctx: UIContext, read_form: Callable[[str | None], dict], request: gr.Request, nodes, per_node, main_ip, port, base,
            lang_choice, text):
    """Make the run folder for the settings in the snapshot `text`: every machine's command, or the problems."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    config, problems = form.config_from_values(read_form(text), base)
    if config is not None and config.train.strategy == "single":
        problems = [*problems, cfg.Problem("strategy", t("dist.needs_strategy", lang))]
    if not (main_ip or "").strip():
        problems = [*problems, cfg.Problem("main_ip", t("dist.needs_ip", lang))]
    if config is None or problems:
        return "\n".join(f"# {p}" for p in problems)
    try:
        run_dir = jobs.create_multi_node_run(ctx.workspace, config)
        return distributed.node_instructions(ctx.workspace.root, run_dir, config, int(nodes or 1), None,
                                             main_ip.strip(), int(port or distributed.DEFAULT_PORT), int(per_node or 1))
    except cfg.ConfigError as error:
        return "\n".join(f"# {p}" for p in error.problems)
    except (DataError, PathError, ValueError) as error:
        return f"# {error}"


def wire_nodes_panel(ctx: UIContext, panel: dict, form_io: tuple, base_config) -> None:
    """Connect the button: validate the settings (`form_io`: the Train form's collect step, its snapshot box and
    the reader of the box's values as {config key: value}), make the run folder, show every machine's command
    (or the problems)."""
    collect, snapshot, read_form = form_io

    panel["make"].click(**collect).then(
        bind(on_make, ctx, read_form),
        [panel["nodes"], panel["per_node"], panel["main_ip"], panel["port"], base_config, ctx.language, snapshot],
        [panel["commands"]])
