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
from studio.ui.context import UIContext, for_viewers, in_turn, operator_view, refuse_viewer
from studio.ui.form_snapshot import collect_step, read_snapshot, snapshot_box
from studio.ui.locales import TEXT, lang_code, t
from studio.ui.monitor import create_monitor, create_run_buttons
from studio.ui.nodes_panel import create_nodes_panel, wire_nodes_panel
from studio.workspace import PathError

# Every config key, in the order the Start handler receives them (controls of the Data and Model tabs
# included): the Runs tab's clone and Load config write to all of them.
CONFIG_KEYS = tuple(cfg.flat_keys())
CELLS_PER_ROW = 4
RADIO_MAX_CHOICES = 8  # more choices than this get a dropdown
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


def group_title(group: form.Group) -> tuple[str, dict[str, str]]:
    """The text key (and its placeholder values) that titles a group's accordion."""
    if group.group_id == "validation":
        return "train.more", {}
    if group.switch:
        return f"train.group.{group.switch}", {"names": " / ".join(form.VALUE_NAMES.get(v, v) for v in group.values)}
    section = group.group_id.split("=", 1)[1]
    if f"train.group.section.{section}" in TEXT:
        return f"train.group.section.{section}", {}
    return "train.group.section.other", {"section": section}


def _make_control(ctx: UIContext, spec: form.FieldSpec, value: Any) -> Any:
    """The widget for one config field: checkbox, radio for choices, number or text box."""
    L = ctx.localizer
    if spec.key in form.MODULE_KEYS:  # the config's text, kept out of sight behind _make_module_picker's
        # multiselect by the page's CSS: visible="hidden" was undone when its cell was shown again (a method switch)
        return gr.Textbox(value=value, elem_classes=["kept-out-of-sight"], elem_id=f"train-{spec.key}-text", **L.field(spec.key))
    options = {"value": value, "elem_id": f"train-{spec.key}", **L.field(spec.key)}
    if spec.kind == "bool":
        control = gr.Checkbox(**options)
    elif spec.choices:
        widget = gr.Radio if len(spec.choices) <= RADIO_MAX_CHOICES else gr.Dropdown
        control = widget(choices=list(spec.choices), **options)
    elif spec.kind in ("int", "float"):
        control = gr.Number(precision=0 if spec.kind == "int" else None, **options)
    else:
        control = gr.Textbox(lines=3 if spec.key in form.MULTILINE_KEYS else 1, **options)
    return L.add(control, f"field.{spec.key}", spec.key)


def _make_module_picker(ctx: UIContext, key: str, text: str) -> gr.Dropdown:
    """A multiselect of the model's linear layer names (and all-linear) for module field `key`; the layer names
    arrive once the page has loaded (reading them needs torch, which the studio imports only when a page asks),
    and names typed by hand are kept."""
    L = ctx.localizer
    names = form.names_from_text(text)
    picker = gr.Dropdown(
        choices=form.offered_with(names, [form.ALL_LINEAR]), value=names, multiselect=True, allow_custom_value=True,
        elem_id=f"train-{key}", **L.field(key),
    )
    return L.add(picker, f"field.{key}", key)


def _is_wide(spec: form.FieldSpec) -> bool:
    return spec.kind == "str" and (not spec.choices or len(spec.choices) > CELLS_PER_ROW)


def _build_cells(ctx: UIContext, keys: list[str], specs: dict, values: dict, built: dict) -> None:
    """Lay out the controls of `keys`: narrow ones side by side, text and long choice lists on their own row;
    each in a cell with its problem line under it."""
    rows: list[list[str]] = []
    for key in keys:
        if _is_wide(specs[key]) or not rows or _is_wide(specs[rows[-1][-1]]) or len(rows[-1]) == CELLS_PER_ROW:
            rows.append([key])
        else:
            rows[-1].append(key)
    for row in rows:
        with gr.Row(equal_height=False):
            for key in row:
                with gr.Column(min_width=180, visible=form.applies(specs[key], values), elem_id=f"train-{key}-cell") as cell:
                    built["controls"][key] = _make_control(ctx, specs[key], values[key])
                    if key in form.MODULE_KEYS:
                        built["pickers"][key] = _make_module_picker(ctx, key, values[key])
                    if key == "reward_file":  # a .py upload lands in workspace/rewards; its code is shown before
                        # anyone allows it to run
                        built["reward_upload"] = ctx.localizer.add(gr.UploadButton(t("train.reward_upload"), file_types=[".py"], size="sm",
                                                                       elem_id="train-reward_file-upload"), "train.reward_upload")
                        built["reward_code"] = gr.Code(language="python", visible=False, interactive=False,
                                                       elem_id="train-reward_file-code")
                    built["problems"][key] = gr.Markdown("", visible=False, elem_id=f"train-{key}-problem", elem_classes=["field-problem"])
                built["cells"][key] = cell


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
                _build_cells(ctx, group.keys, specs, initial, built)
                continue
            title_key, title_values = group_title(group)
            elem_id = "train-more" if group.group_id == "validation" else "train-group-" + re.sub(r"[^\w-]+", "-", group.group_id)
            accordion = gr.Accordion(
                t(title_key, **title_values), open=bool(group.switch), elem_id=elem_id,
                visible=form.group_applies(group, specs, initial),
            )
            with L.add(accordion, title_key, **title_values):
                _build_cells(ctx, group.keys, specs, initial, built)
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
    conditional = [key for key in own_keys if specs[key].show_when]
    problem_keys = list(built["problems"])

    # the form's events read its values from one box a js-only step fills just before (ui/form_snapshot)
    snapshot = snapshot_box()
    collect = collect_step(inputs, list(CONFIG_KEYS), snapshot)
    starting = {key: initial[key] for key in CONFIG_KEYS}

    def read_form(text: str | None) -> dict[str, Any]:
        return read_snapshot(text, starting)

    def read(text: str | None) -> tuple[cfg.RunConfig | None, list[cfg.Problem]]:
        return form.config_from_values(read_form(text))

    def on_validate(text: str, shown: dict | None, lang_choice: str):
        return checked(read_form(text), shown, lang_choice)

    def checked(values: dict[str, Any], shown: dict | None, lang_choice: str) -> list:
        """The summary, the problems now shown, each field's problem line (sent only where it changed) and the
        values checked."""
        config, problems = form.config_from_values(values)
        if config is not None:  # a grpo run's reward file and schema, read (never run) from the workspace
            problems += grpo.reward_problems(ctx.workspace, config)
        grouped = {key: "\n".join(f"⚠ {m}" for m in messages) for key, messages in form.problems_by_key(problems).items()}
        now = {key: grouped[key] for key in problem_keys if key in grouped}
        shown = shown or {}
        # only the problem lines that changed are sent: a Load or a clone sets every control at once
        boxes = [
            gr.skip() if now.get(key) == shown.get(key) else gr.update(value=now.get(key, ""), visible=key in now)
            for key in problem_keys
        ]
        return [problems_text(problems, lang_code(lang_choice)), now, *boxes, values]

    def on_switch(text: str, shown_flags: list[bool] | None, shown: dict | None, lang_choice: str):
        values = read_form(text)
        return [*visibility(values, shown_flags), *checked(values, shown, lang_choice)]

    def visible_flags(current: dict[str, Any]) -> list[bool]:
        cells = [form.applies(specs[key], current) for key in conditional]
        return cells + [form.group_applies(g, specs, current) for g in groups if g.group_id in accordions]

    built_flags = visible_flags(initial)

    def visibility(current: dict[str, Any], shown_flags: list[bool] | None) -> list:
        """An update for each conditional setting and group whose visibility changes (a skip for the others: every
        visibility update makes the browser walk that part of the page), then the flags now shown."""
        now = visible_flags(current)
        before = shown_flags if shown_flags is not None and len(shown_flags) == len(now) else built_flags
        return [gr.skip() if was == is_now else gr.update(visible=is_now) for was, is_now in zip(before, now)] + [now]

    def on_preview(text: str, lang_choice: str):
        config, problems = read(text)
        if config is None:
            return gr.skip(), gr.skip(), gr.skip(), problems_text(problems, lang_code(lang_choice))
        line = form.cli_line(config, workspace=str(ctx.workspace.root))
        return gr.update(visible=True), cfg.to_yaml(config), line, problems_text(problems, lang_code(lang_choice))

    def on_save(text: str, lang_choice: str):
        config, problems = read(text)
        lang = lang_code(lang_choice)
        if config is None:
            return gr.skip(), t("train.cannot_save", lang) + "\n\n" + problem_list(problems)
        name = re.sub(r"[^\w.-]+", "_", config.run_name).strip("._") or "config"
        path = Path(tempfile.mkdtemp(prefix="studio-config-")) / f"{name}.yaml"
        path.write_text(cfg.to_yaml(config), encoding="utf-8")
        return gr.update(value=str(path), visible=True), problems_text(problems, lang)

    def on_load(uploaded: str | None, lang_choice: str, shown_flags: list[bool] | None):
        lang = lang_code(lang_choice)
        skipped = [gr.skip()] * (len(CONFIG_KEYS) + 1 + len(visibility_outputs) + 1)
        if not uploaded:
            return [gr.skip(), *skipped]
        name = Path(uploaded).name
        try:
            config = form.read_config_file(Path(uploaded))
        except cfg.ConfigError as error:
            return [t("train.load_failed", lang, name=name) + "\n\n" + problem_list(error.problems), *skipped]
        flat = cfg.to_flat(config)
        # the visibility comes with the values, not a round trip later
        return [t("train.loaded", lang, name=name), config, *(flat[key] for key in CONFIG_KEYS), *visibility(flat, shown_flags)]

    def start_run(request: gr.Request, text: str, base: dict | None, lang_choice: str, confirmed: bool):
        """Start the run the form's values (`text`, from the snapshot box) describe; unless `confirmed`, first ask
        when the estimate says it won't fit."""
        lang = lang_code(lang_choice)
        refuse_viewer(ctx, request, lang)
        config, problems = form.config_from_values(read_form(text), base)
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

    def on_start(request: gr.Request, text: str, base: dict | None, lang_choice: str):
        return start_run(request, text, base, lang_choice, confirmed=False)

    def on_start_anyway(request: gr.Request, text: str, base: dict | None, lang_choice: str):
        return start_run(request, text, base, lang_choice, confirmed=True)

    catalog_keys = recommended_keys()
    recommendable = [key for key in CONFIG_KEYS if key in catalog_keys]

    def on_model_change(name: str, method: str, stage: str):
        # every key the catalog recommends for some model gets what the new model starts with (its own
        # recommendation, or the default), so nothing the previous model recommended is left behind
        starting = form.starting_values(name or "", method, stage)
        return [gr.update(value=starting[key]) if key in starting else gr.skip() for key in recommendable]

    def on_method_change(method: str, stage: str, model: str, learning_rate: float | None):
        rate = form.learning_rate_for_method(model or "", method, learning_rate, stage)
        return gr.skip() if rate is None else rate

    def on_preset(name: str | None, method: str):
        values = form.preset_values(name, method) if name else {}
        return [gr.update(value=values[key]) if key in values else gr.skip() for key in CONFIG_KEYS]

    def picker_update(model: str | None, text: str | None):
        # every name shown is among the choices: Gradio draws a picked name that is not as "[object Object]"
        names = form.names_from_text(text)
        return gr.update(choices=form.offered_with(names, form.module_choices(ctx.workspace, model or "")), value=names)

    def on_module_text(model: str | None, *texts: str):  # after a Load, clone, preset or catalog recommendation set the text
        updates = [picker_update(model, text) for text in texts]
        # one output takes the return value whole: a list of one update would become the multiselect's value
        return updates[0] if len(updates) == 1 else updates

    @for_viewers
    def on_page_load(request: gr.Request, text: str, shown: dict | None, lang_choice: str):
        """Re-attach to the active run; check the settings the page starts with."""
        run_id = latest_active_run(ctx)
        watching = t("train.watching", lang_code(lang_choice), run=run_id) if run_id else gr.skip()
        # a viewer has no settings to check, and the studio reads none it sends
        checked = [gr.skip()] * len(validation_outputs) if ctx.is_viewer(request) else on_validate(text, shown, lang_choice)
        return [run_id, watching, *checked]

    quiet = {"show_progress": "hidden", "trigger_mode": "always_last"}
    checking = {**quiet, **CHECKS_IN_TURN}
    visibility_outputs = [built["cells"][k] for k in conditional] + [accordions[g.group_id] for g in groups if g.group_id in accordions]
    validation_outputs = [summary, shown_problems, *built["problems"].values(), form_values]
    check_inputs = [snapshot, shown_problems, ctx.language]
    # a control that shows or hides others (the method, the stage…) is checked in the same server call that sets
    # what shows: one call per change, not two
    switches = [all_controls[key] for key in form.trigger_keys([specs[k] for k in conditional]) if key in all_controls]
    plain = [c for c in inputs if all(c is not switch for switch in switches)]
    gr.on([c.change for c in plain], **collect).then(on_validate, check_inputs, validation_outputs, **checking)
    # the summary line in the new language (a viewer's page has no settings to check)
    ctx.language.change(**collect).then(operator_view(ctx, on_validate), check_inputs, validation_outputs, **checking)
    if switches:
        gr.on([c.change for c in switches], **collect).then(
            on_switch, [snapshot, shown_visibility, shown_problems, ctx.language],
            [*visibility_outputs, shown_visibility, *validation_outputs], **checking)
    preview.click(**collect).then(on_preview, [snapshot, ctx.language], [preview_box, yaml_view, cli_view, summary], **CHECKS_IN_TURN)
    save.click(**collect).then(on_save, [snapshot, ctx.language], [saved_file, summary], **CHECKS_IN_TURN)
    # The multiselects follow the config's text only after the events that write it, chained with .then: a
    # .change on the text would also fire for the user's own picks and could undo a pick made meanwhile.
    module_texts, pickers = [controls[key] for key in built["pickers"]], list(built["pickers"].values())
    # Every event that sets them takes its turn in one queue: the page load's, sent as the page opens, is answered
    # before any later one, so it cannot put the first model's targets back after the user has picked another.
    sync_pickers = {"fn": on_module_text, "inputs": [ctx.shared["model"], *module_texts], "outputs": pickers,
                    "show_progress": "hidden", **PICKERS_IN_TURN}
    load.upload(on_load, [load, ctx.language, shown_visibility],
                [monitor["message"], base_config, *inputs, *visibility_outputs, shown_visibility]).then(**sync_pickers)
    start_outputs = [monitor["message"], watched, start_anyway]
    start.click(**collect).then(on_start, [snapshot, base_config, ctx.language], start_outputs, api_name="start").then(**monitor["follow"])
    start_anyway.click(**collect).then(on_start_anyway, [snapshot, base_config, ctx.language], start_outputs).then(**monitor["follow"])
    wire_nodes_panel(ctx, nodes_panel, (collect, snapshot, read_form), base_config)
    # .input, not .change: a model set by "Clone config" or Load config keeps that run's settings.
    ctx.shared["model"].input(on_model_change, [ctx.shared["model"], all_controls["method"], all_controls["stage"]],
                              [all_controls[k] for k in recommendable]).then(**sync_pickers)
    # .input: only a method or stage the user picks moves a learning rate they have not chosen themselves.
    rate_inputs = [all_controls["method"], all_controls["stage"], ctx.shared["model"], all_controls["learning_rate"]]
    gr.on([all_controls["method"].input, all_controls["stage"].input], on_method_change, rate_inputs, [all_controls["learning_rate"]])
    if preset is not None:
        preset.input(on_preset, [preset, all_controls["method"]], inputs).then(**sync_pickers)
    if "reward_code" in built:
        def on_reward_file(path_text: str | None):
            code = form.reward_file_text(ctx.workspace, path_text)
            return gr.update(value=code or "", visible=code is not None, label=path_text)

        controls["reward_file"].change(operator_view(ctx, on_reward_file), [controls["reward_file"]], [built["reward_code"]], **quiet)

        def on_reward_upload(uploaded: str | None, lang_choice: str, request: gr.Request):
            refuse_viewer(ctx, request, lang_code(lang_choice))
            try:
                return form.save_reward_upload(ctx.workspace, uploaded) if uploaded else gr.skip(), gr.skip()
            except (ValueError, OSError) as error:
                return gr.skip(), str(error)

        built["reward_upload"].upload(on_reward_upload, [built["reward_upload"], ctx.language], [controls["reward_file"], summary],
                                      **CHECKS_IN_TURN)
    for key, picker in built["pickers"].items():
        picker.input(None, [picker], [controls[key]], js=form.TEXT_FROM_NAMES_JS, **quiet)
    # The pickers offer the model's own layer names after each event that sets the model, chained with .then (a
    # model picked here, a Load, a clone, a preset; build_app adds the page load and a GGUF import). Not on the
    # model's .change: that call would carry the module text from before the new model's recommendation was
    # written, and when it answered last it put the old model's targets back.
    page_load = {"fn": on_page_load, "inputs": check_inputs, "outputs": [watched, monitor["message"], *validation_outputs],
                 **CHECKS_IN_TURN}
    ctx.shared.update(controls)
    ctx.shared.update(collect_form=collect, form_snapshot=snapshot, read_form=read_form)
    ctx.shared.update(watched_run=watched, follow_run=monitor["follow"], base_config=base_config, form_values=form_values, train_message=monitor["message"], sync_pickers=sync_pickers)
    return {"start": start, "start_anyway": start_anyway, "chat_button": buttons["chat"], "watched": watched,
            "sync_pickers": {**sync_pickers, "fn": operator_view(ctx, on_module_text)},
            "collect_form": collect, "page_load": page_load, "follow_run": monitor["follow"]}
