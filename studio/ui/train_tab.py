"""Train tab: the run's settings, Start, and the live monitor (studio/ui/monitor.py) of the watched run.

The settings are built from the config fields' metadata (studio/ui/train_form.py): the basics up front, then
one folded group per method or stage condition (shown only while it applies) and one per config section.
Every change re-validates the whole config and shows each problem under its field. "Preview command" shows
the YAML and the exact `python -m studio train` line; Save/Load config write and read that YAML.

A page that loads (or reloads, or a second browser tab) re-attaches to the newest queued or running run,
and the monitor rebuilds its charts from that run's whole series before following it incrementally.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from studio import config as cfg
from studio import fit, hardware, jobs, run_folder
from studio.data.loading import DataError
from studio.models.catalog import recommended_keys
from studio.presets import preset_names
from studio.train import grpo
from studio.train.status import FINAL_STATES
from studio.ui import train_form as form
from studio.ui.context import UIContext, bind, for_viewers, in_turn, operator_view, refuse_viewer
from studio.ui.form_snapshot import collect_step, read_snapshot, snapshot_box
from studio.ui.locales import lang_code, t
from studio.ui.monitor import create_monitor, create_run_buttons
from studio.ui.nodes_panel import create_nodes_panel, wire_nodes_panel
from studio.ui.train_controls import build_cells, group_title
from studio.workspace import PathError

# Every config key, in the order the Start handler receives them (controls of the Data and Model tabs
# included): the Runs tab's clone and Load config write to all of them.
CONFIG_KEYS = tuple(cfg.flat_keys())
# the events that set the module pickers (context.in_turn)
PICKERS_IN_TURN = in_turn("module-pickers")
# the checks of the form that draw its problem lines: the page load's check cannot answer after a user's change
# and clear the problem that change showed
CHECKS_IN_TURN = in_turn("train-checks")


def latest_active_run(ctx: UIContext) -> str:
    """The newest run that is queued or running, or "" if none (so a reloaded page re-attaches to it)."""
    for summary in run_folder.list_runs(ctx.workspace):
        if summary.state not in FINAL_STATES:
            return summary.run_id
    return ""


def problem_list(problems: list[cfg.Problem]) -> str:
    """The problems as a Markdown list, one `key`: message per line."""
    return "\n".join(f"- `{p.key}`: {p.message}" for p in problems)


def problems_text(problems: list[cfg.Problem], lang: str) -> str:
    """The problems under a "fix these" heading, or a short all-clear line."""
    return t("train.invalid", lang) + "\n\n" + problem_list(problems) if problems else t("train.ready", lang)


@dataclass(frozen=True)
class FormLayout:
    """What a Train tab's settings were built with, as its handlers need it."""

    starting: dict[str, Any]  # every config key's value as the page was built
    specs: dict[str, form.FieldSpec]  # every config key's field
    problem_keys: list[str]  # the settings with a problem line under them, in page order
    conditional: list[str]  # the settings shown only while they apply
    folded: list[form.Group]  # the groups in an accordion (all but the basics), in page order
    recommendable: list[str]  # the keys the catalog recommends a value of for some model

    def read(self, text: str | None) -> dict[str, Any]:
        """The form's values from the snapshot box's text (the starting value for any key it lacks)."""
        return read_snapshot(text, self.starting)

    def visible_flags(self, current: dict[str, Any]) -> list[bool]:
        """Whether each conditional setting, then each folded group, applies to the values `current`."""
        cells = [form.applies(self.specs[key], current) for key in self.conditional]
        return cells + [form.group_applies(group, self.specs, current) for group in self.folded]

    def visibility(self, current: dict[str, Any], shown_flags: list[bool] | None) -> list:
        """An update for each conditional setting and group whose visibility changes (a skip for the others: every
        visibility update makes the browser walk that part of the page), then the flags now shown."""
        now = self.visible_flags(current)
        before = shown_flags if shown_flags is not None and len(shown_flags) == len(now) else self.visible_flags(self.starting)
        return [gr.skip() if was == is_now else gr.update(visible=is_now) for was, is_now in zip(before, now)] + [now]

    @property
    def check_parts(self) -> int:
        """How many outputs a check gives: the summary, the problems shown, each problem line, the values."""
        return len(self.problem_keys) + 3

    @property
    def visibility_parts(self) -> int:
        """How many outputs `visibility` gives."""
        return len(self.conditional) + len(self.folded) + 1


def checked(ctx: UIContext, layout: FormLayout, values: dict[str, Any], shown: dict | None, lang_choice: str) -> list:
    """The summary, the problems now shown, each field's problem line (sent only where it changed) and the
    values checked."""
    config, problems = form.config_from_values(values)
    if config is not None:  # a grpo run's reward file and schema, read (never run) from the workspace
        problems += grpo.reward_problems(ctx.workspace, config)
    grouped = {key: "\n".join(f"⚠ {m}" for m in messages) for key, messages in form.problems_by_key(problems).items()}
    now = {key: grouped[key] for key in layout.problem_keys if key in grouped}
    shown = shown or {}
    # only the problem lines that changed are sent: a Load or a clone sets every control at once
    boxes = [
        gr.skip() if now.get(key) == shown.get(key) else gr.update(value=now.get(key, ""), visible=key in now)
        for key in layout.problem_keys
    ]
    return [problems_text(problems, lang_code(lang_choice)), now, *boxes, values]


def on_validate(ctx: UIContext, layout: FormLayout, text: str, shown: dict | None, lang_choice: str) -> list:
    """Check the form's values (from the snapshot box): see `checked`."""
    return checked(ctx, layout, layout.read(text), shown, lang_choice)


def on_switch(ctx: UIContext, layout: FormLayout, text: str, shown_flags: list[bool] | None, shown: dict | None,
              lang_choice: str) -> list:
    """After a setting that shows or hides others changed: what shows now, then the check."""
    values = layout.read(text)
    return [*layout.visibility(values, shown_flags), *checked(ctx, layout, values, shown, lang_choice)]


def on_preview(ctx: UIContext, layout: FormLayout, text: str, lang_choice: str):
    """The preview box shown with the config's YAML and its command line, and the summary."""
    config, problems = form.config_from_values(layout.read(text))
    if config is None:
        return gr.skip(), gr.skip(), gr.skip(), problems_text(problems, lang_code(lang_choice))
    line = form.cli_line(config, workspace=str(ctx.workspace.root))
    return gr.update(visible=True), cfg.to_yaml(config), line, problems_text(problems, lang_code(lang_choice))


def on_save(layout: FormLayout, text: str, lang_choice: str):
    """The config written to a YAML file to download, and the summary (or why it cannot be saved)."""
    config, problems = form.config_from_values(layout.read(text))
    lang = lang_code(lang_choice)
    if config is None:
        return gr.skip(), t("train.cannot_save", lang) + "\n\n" + problem_list(problems)
    name = re.sub(r"[^\w.-]+", "_", config.run_name).strip("._") or "config"
    path = Path(tempfile.mkdtemp(prefix="studio-config-")) / f"{name}.yaml"
    path.write_text(cfg.to_yaml(config), encoding="utf-8")
    return gr.update(value=str(path), visible=True), problems_text(problems, lang)


def on_load(layout: FormLayout, uploaded: str | None, lang_choice: str, shown_flags: list[bool] | None) -> list:
    """An uploaded config YAML: a message, the config (for keys without a control), every control's value and what
    shows; only the message when it cannot be read."""
    lang = lang_code(lang_choice)
    skipped = [gr.skip()] * (len(CONFIG_KEYS) + 1 + layout.visibility_parts)
    if not uploaded:
        return [gr.skip(), *skipped]
    name = Path(uploaded).name
    try:
        config = form.read_config_file(Path(uploaded))
    except cfg.ConfigError as error:
        return [t("train.load_failed", lang, name=name) + "\n\n" + problem_list(error.problems), *skipped]
    flat = cfg.to_flat(config)
    # the visibility comes with the values, not a round trip later
    return [t("train.loaded", lang, name=name), config, *(flat[key] for key in CONFIG_KEYS), *layout.visibility(flat, shown_flags)]


def start_run(ctx: UIContext, layout: FormLayout, request: gr.Request, text: str, base: dict | None, lang_choice: str,
              confirmed: bool):
    """Start the run the form's values (`text`, from the snapshot box) describe; unless `confirmed`, first ask
    when the estimate says it won't fit. Returns the message, the run watched and Start anyway's visibility."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    config, problems = form.config_from_values(layout.read(text), base)
    if config is None or problems:
        return problems_text(problems, lang), gr.skip(), gr.update(visible=False)
    if not config.train.dry_run and not confirmed:
        verdict, message = fit.fit_check(config, hardware.detect(ctx.workspace.root), ctx.workspace, allow_download=False)
        if verdict == fit.WONT_FIT:  # a dry run is how one finds out for sure, so it is never held back
            return t("train.wont_fit", lang, details=message), gr.skip(), gr.update(visible=True)
    try:
        run_dir = jobs.launch(ctx.workspace, config)
    except cfg.ConfigError as error:  # e.g. lora_targets naming a layer the model does not have
        return problems_text(error.problems, lang), gr.skip(), gr.update(visible=False)
    except (DataError, PathError) as error:
        return problems_text([cfg.Problem("dataset", str(error))], lang), gr.skip(), gr.update(visible=False)
    return t("train.started", lang, run=run_dir.name), run_dir.name, gr.update(visible=False)


def on_start(ctx: UIContext, layout: FormLayout, request: gr.Request, text: str, base: dict | None, lang_choice: str):
    """Start: see `start_run`, asking first when it won't fit."""
    return start_run(ctx, layout, request, text, base, lang_choice, confirmed=False)


def on_start_anyway(ctx: UIContext, layout: FormLayout, request: gr.Request, text: str, base: dict | None, lang_choice: str):
    """Start anyway, after the estimate said it won't fit: see `start_run`."""
    return start_run(ctx, layout, request, text, base, lang_choice, confirmed=True)


def on_model_change(layout: FormLayout, name: str, method: str, stage: str) -> list:
    """The new model's starting values of every key the catalog recommends for some model."""
    # each gets what the new model starts with (its own recommendation, or the default), so nothing the previous
    # model recommended is left behind
    starting = form.starting_values(name or "", method, stage)
    return [gr.update(value=starting[key]) if key in starting else gr.skip() for key in layout.recommendable]


def on_method_change(method: str, stage: str, model: str, learning_rate: float | None):
    """The learning rate the new method starts with, unless the user chose their own."""
    rate = form.learning_rate_for_method(model or "", method, learning_rate, stage)
    return gr.skip() if rate is None else rate


def on_preset(name: str | None, method: str) -> list:
    """The picked preset's value of each config key it sets."""
    values = form.preset_values(name, method) if name else {}
    return [gr.update(value=values[key]) if key in values else gr.skip() for key in CONFIG_KEYS]


def picker_update(ctx: UIContext, model: str | None, text: str | None):
    """A module picker showing the names in the config's `text` among `model`'s layer names."""
    # every name shown is among the choices: Gradio draws a picked name that is not as "[object Object]"
    names = form.names_from_text(text)
    return gr.update(choices=form.offered_with(names, form.module_choices(ctx.workspace, model or "")), value=names)


def on_module_text(ctx: UIContext, model: str | None, *texts: str):
    """Each module picker following its config text, after a Load, clone, preset or catalog recommendation set it."""
    updates = [picker_update(ctx, model, text) for text in texts]
    # one output takes the return value whole: a list of one update would become the multiselect's value
    return updates[0] if len(updates) == 1 else updates


@for_viewers
def on_page_load(ctx: UIContext, layout: FormLayout, request: gr.Request, text: str, shown: dict | None, lang_choice: str):
    """Re-attach to the active run; check the settings the page starts with."""
    run_id = latest_active_run(ctx)
    watching = t("train.watching", lang_code(lang_choice), run=run_id) if run_id else gr.skip()
    # a viewer has no settings to check, and the studio reads none it sends
    checks = [gr.skip()] * layout.check_parts if ctx.is_viewer(request) else on_validate(ctx, layout, text, shown, lang_choice)
    return [run_id, watching, *checks]


def on_reward_file(ctx: UIContext, path_text: str | None):
    """The reward file's code, shown (never run) under its setting; hidden when there is none to read."""
    code = form.reward_file_text(ctx.workspace, path_text)
    return gr.update(value=code or "", visible=code is not None, label=path_text)


def on_reward_upload(ctx: UIContext, uploaded: str | None, lang_choice: str, request: gr.Request):
    """An uploaded reward .py kept in the workspace: its path for the setting, or why it was refused."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    try:
        return form.save_reward_upload(ctx.workspace, uploaded) if uploaded else gr.skip(), gr.skip()
    except (ValueError, OSError) as error:
        return gr.skip(), str(error)


def create_train_tab(ctx: UIContext) -> dict:
    """Build the Train tab; needs the Data and Model tabs' shared components (it builds a control for every
    config key they do not already have)."""
    L = ctx.localizer
    initial = cfg.to_flat(ctx.initial)
    own_keys = [key for key in CONFIG_KEYS if key not in ctx.shared]
    specs = {key: form.field_spec(key) for key in CONFIG_KEYS}
    groups = form.plan_groups(own_keys)
    built: dict[str, dict] = {"controls": {}, "problems": {}, "cells": {}, "pickers": {}}
    accordions: dict[str, Any] = {}
    # While the watched run is live, its view comes first: the settings fold away behind this toggle (CSS in ui/__init__)
    settings_toggle = L.add(gr.Button(t("train.settings_toggle"), size="sm", elem_id="train-settings-toggle"), "train.settings_toggle")
    settings_toggle.click(None, None, None, js="() => { document.querySelector('.gradio-container').classList.toggle('settings-open'); }")
    with gr.Column(elem_id="train-settings") as settings:
        preset = None
        if preset_names():
            preset = L.add(gr.Dropdown(choices=preset_names(), value=None, label=t("train.preset"), elem_id="train-preset"), "train.preset")
        for group in groups:
            if group.group_id == "basic":
                build_cells(ctx, group.keys, specs, initial, built)
                continue
            title_key, title_values = group_title(group)
            elem_id = "train-more" if group.group_id == "validation" else "train-group-" + re.sub(r"[^\w-]+", "-", group.group_id)
            accordion = gr.Accordion(
                t(title_key, **title_values), open=bool(group.switch), elem_id=elem_id,
                visible=form.group_applies(group, specs, initial),
            )
            with L.add(accordion, title_key, **title_values):
                build_cells(ctx, group.keys, specs, initial, built)
            accordions[group.group_id] = accordion
        summary = gr.Markdown("", elem_id="train-problems")
        with gr.Row():
            preview = L.add(gr.Button(t("train.preview"), elem_id="train-preview", scale=1), "train.preview")
            save = L.add(gr.Button(t("train.save"), elem_id="train-save", scale=1), "train.save")
            load = L.add(gr.UploadButton(t("train.load"), file_types=[".yaml", ".yml"], elem_id="train-load", scale=1), "train.load")
            saved_file = L.add(gr.File(label=t("train.saved_file"), visible=False, interactive=False, elem_id="train-saved", scale=2), "train.saved_file")
        with gr.Column(visible=False, elem_id="train-preview-box") as preview_box:
            yaml_view = L.add(gr.Code(language="yaml", label=t("train.preview_yaml"), interactive=False, max_lines=24, elem_id="train-yaml"), "train.preview_yaml")
            cli_view = L.add(gr.Textbox(label=t("train.preview_cli"), interactive=False, buttons=["copy"], elem_id="train-cli"), "train.preview_cli")
        nodes_panel = create_nodes_panel(ctx)
    with gr.Row() as actions:
        start = L.add(gr.Button(t("train.start"), variant="primary", elem_id="start-button", scale=2), "train.start")
        start_anyway = L.add(gr.Button(t("train.start_anyway"), variant="stop", visible=False, elem_id="start-anyway", scale=2), "train.start_anyway")
        buttons = create_run_buttons(ctx)
    ctx.operator_only += [settings_toggle, settings, actions]
    shown_problems = gr.State({})  # key → problem text shown under that field in this browser session
    # whether each conditional setting and group is shown on this page, as last sent (None: as the page was built)
    shown_visibility = gr.State(None)
    watched = gr.State("")  # run id shown in this browser session
    base_config = gr.State(None)  # the config a clone or Load came from, for keys without a control
    # key → value of every config control, as of the last check: what follows the settings (the memory estimate)
    # listens to this one state rather than reading all the controls from the browser again at every change
    form_values = gr.State({})
    monitor = create_monitor(ctx, watched, buttons)

    controls = built["controls"]
    all_controls = {**ctx.shared, **controls}
    inputs = [all_controls[k] for k in CONFIG_KEYS]

    # the form's events read its values from one box a js-only step fills just before (ui/form_snapshot)
    snapshot = snapshot_box()
    collect = collect_step(inputs, list(CONFIG_KEYS), snapshot)

    layout = FormLayout(starting={key: initial[key] for key in CONFIG_KEYS}, specs=specs, problem_keys=list(built["problems"]),
                        conditional=[key for key in own_keys if specs[key].show_when],
                        folded=[group for group in groups if group.group_id in accordions],
                        recommendable=[key for key in CONFIG_KEYS if key in recommended_keys()])
    validated, module_texts_followed = bind(on_validate, ctx, layout), bind(on_module_text, ctx)

    quiet = {"show_progress": "hidden", "trigger_mode": "always_last"}
    checking = {**quiet, **CHECKS_IN_TURN}
    visibility_outputs = [built["cells"][k] for k in layout.conditional] + [accordions[g.group_id] for g in layout.folded]
    validation_outputs = [summary, shown_problems, *built["problems"].values(), form_values]
    check_inputs = [snapshot, shown_problems, ctx.language]
    # a control that shows or hides others (the method, the stage…) is checked in the same server call that sets
    # what shows: one call per change, not two
    switches = [all_controls[key] for key in form.trigger_keys([specs[k] for k in layout.conditional]) if key in all_controls]
    plain = [c for c in inputs if all(c is not switch for switch in switches)]
    gr.on([c.change for c in plain], **collect).then(validated, check_inputs, validation_outputs, **checking)
    # the summary line in the new language (a viewer's page has no settings to check)
    ctx.language.change(**collect).then(operator_view(ctx, validated), check_inputs, validation_outputs, **checking)
    if switches:
        gr.on([c.change for c in switches], **collect).then(
            bind(on_switch, ctx, layout), [snapshot, shown_visibility, shown_problems, ctx.language],
            [*visibility_outputs, shown_visibility, *validation_outputs], **checking)
    preview.click(**collect).then(bind(on_preview, ctx, layout), [snapshot, ctx.language], [preview_box, yaml_view, cli_view, summary], **CHECKS_IN_TURN)
    save.click(**collect).then(bind(on_save, layout), [snapshot, ctx.language], [saved_file, summary], **CHECKS_IN_TURN)
    # The multiselects follow the config's text only after the events that write it, chained with .then: a
    # .change on the text would also fire for the user's own picks and could undo a pick made meanwhile.
    module_texts, pickers = [controls[key] for key in built["pickers"]], list(built["pickers"].values())
    # Every event that sets them takes its turn in one queue: the page load's, sent as the page opens, is answered
    # before any later one, so it cannot put the first model's targets back after the user has picked another.
    sync_pickers = {"fn": module_texts_followed, "inputs": [ctx.shared["model"], *module_texts], "outputs": pickers,
                    "show_progress": "hidden", **PICKERS_IN_TURN}
    load.upload(bind(on_load, layout), [load, ctx.language, shown_visibility],
                [monitor["message"], base_config, *inputs, *visibility_outputs, shown_visibility]).then(**sync_pickers)
    start_outputs = [monitor["message"], watched, start_anyway]
    start.click(**collect).then(bind(on_start, ctx, layout), [snapshot, base_config, ctx.language], start_outputs, api_name="start").then(**monitor["follow"])
    start_anyway.click(**collect).then(bind(on_start_anyway, ctx, layout), [snapshot, base_config, ctx.language], start_outputs).then(**monitor["follow"])
    wire_nodes_panel(ctx, nodes_panel, (collect, snapshot, layout.read), base_config)
    # .input, not .change: a model set by "Clone config" or Load config keeps that run's settings.
    ctx.shared["model"].input(bind(on_model_change, layout), [ctx.shared["model"], all_controls["method"], all_controls["stage"]],
                              [all_controls[k] for k in layout.recommendable]).then(**sync_pickers)
    # .input: only a method or stage the user picks moves a learning rate they have not chosen themselves.
    rate_inputs = [all_controls["method"], all_controls["stage"], ctx.shared["model"], all_controls["learning_rate"]]
    gr.on([all_controls["method"].input, all_controls["stage"].input], on_method_change, rate_inputs, [all_controls["learning_rate"]])
    if preset is not None:
        preset.input(on_preset, [preset, all_controls["method"]], inputs).then(**sync_pickers)
    if "reward_code" in built:
        controls["reward_file"].change(operator_view(ctx, bind(on_reward_file, ctx)), [controls["reward_file"]], [built["reward_code"]], **quiet)
        built["reward_upload"].upload(bind(on_reward_upload, ctx), [built["reward_upload"], ctx.language], [controls["reward_file"], summary],
                                      **CHECKS_IN_TURN)
    for key, picker in built["pickers"].items():
        picker.input(None, [picker], [controls[key]], js=form.TEXT_FROM_NAMES_JS, **quiet)
    # The pickers offer the model's own layer names after each event that sets the model, chained with .then (a
    # model picked here, a Load, a clone, a preset; build_app adds the page load and a GGUF import). Not on the
    # model's .change: that call would carry the module text from before the new model's recommendation was
    # written, and when it answered last it put the old model's targets back.
    page_load = {"fn": bind(on_page_load, ctx, layout), "inputs": check_inputs, "outputs": [watched, monitor["message"], *validation_outputs],
                 **CHECKS_IN_TURN}
    ctx.shared.update(controls)
    ctx.shared.update(collect_form=collect, form_snapshot=snapshot, read_form=layout.read)
    ctx.shared.update(watched_run=watched, follow_run=monitor["follow"], base_config=base_config, form_values=form_values, train_message=monitor["message"], sync_pickers=sync_pickers)
    return {"start": start, "start_anyway": start_anyway, "chat_button": buttons["chat"], "watched": watched,
            "sync_pickers": {**sync_pickers, "fn": operator_view(ctx, module_texts_followed)},
            "collect_form": collect, "page_load": page_load, "follow_run": monitor["follow"]}
