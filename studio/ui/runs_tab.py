"""Runs tab: every run with its state, duration, losses, tags and notes. Select one run to open its charts
(the monitor's chart builders, fed with the whole series), edit its tags and notes, clone its config into
the Train tab, watch it live or delete it; select two or more to overlay their loss curves and see which
config keys differ. Deleting is refused for a queued or running run by the engine (run_library), and every
change refuses a read-only viewer server-side.
"""

from __future__ import annotations

import json

import gradio as gr

from studio import config as cfg
from studio import run_folder
from studio import run_library as library
from studio.ui import charts
from studio.ui.context import UIContext, bind, for_viewers, refuse_viewer, top_copy
from studio.ui.locales import lang_code, t
from studio.ui.run_views import format_duration, probes_html
from studio.ui.visits import TabRefresh
from studio.workspace import CONFIG_FILE, PathError, read_head_bytes

MAX_SHOWN_BYTES = 100_000  # a run's config and status shown in the page: a damaged or huge file is cut here
COLUMNS = ("run", "name", "state", "duration", "best", "loss", "tags", "notes", "model", "dataset", "error")
# wide enough that no header word is broken at 1280 px ("duration" took two lines at 6%)
WIDTHS = ["18%", "9%", "8%", "8%", "6%", "6%", "9%", "10%", "8%", "9%", "9%"]


def _loss(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else ""


def runs_table(ctx: UIContext, lang: str, query: str = "") -> dict:
    """The runs list as a table value (headers in the chosen language), keeping rows that match `query`."""
    needle = (query or "").strip().lower()
    rows = []
    for r in library.list_records(ctx.workspace):
        haystack = " ".join([r.run_id, r.run_name, r.state, r.model, r.dataset, r.method, *r.tags, r.notes]).lower()
        if needle and needle not in haystack:
            continue
        rows.append([
            r.run_id, r.run_name, t(f"state.{r.state}", lang), format_duration(r.duration) if r.duration is not None else "",
            _loss(r.best_eval_loss), _loss(r.final_loss), ", ".join(r.tags), r.notes[:120], r.model, r.dataset, r.error,
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
    config_text = (read_head_bytes(run_dir / CONFIG_FILE, MAX_SHOWN_BYTES) or b"").decode("utf-8", errors="replace")
    return config_text, json.dumps(run_folder.run_status(run_dir), indent=2, ensure_ascii=False)[:MAX_SHOWN_BYTES]


def run_summary(run_id: str, status: dict, config: cfg.RunConfig | None, lang: str) -> str:
    """One line about a run: name, state, duration, steps, final and best validation loss (and its error)."""
    name = f"· {config.run_name}" if config and config.run_name else ""
    line = t(
        "runs.summary", lang, run=run_id, name=name, state=t(f"state.{status.get('state', 'queued')}", lang),
        duration=format_duration(library.duration_of(status)), steps=status.get("steps", "–"),
        final=_loss(status.get("final_loss")) or "–", best=_loss(status.get("best_eval_loss")) or "–",
    )
    error = status.get("error")
    return line + (f"\n\n```\n{error}\n```" if error else "")


def compare(ctx: UIContext, run_ids: list[str], lang: str) -> tuple:
    """The overlay chart of the runs' losses and the table of config keys whose values differ."""
    loaded = []
    for run_id in run_ids:
        try:
            run_dir = ctx.workspace.run_dir(run_id)
            loaded.append((run_id, run_folder.load_config(run_dir), library.load_series(run_dir)))
        except (PathError, cfg.ConfigError):
            continue
    labels = [config.run_name or run_id for run_id, config, _series in loaded]
    labels = [label if labels.count(label) == 1 else f"{label} ({run_id})" for label, (run_id, _c, _s) in zip(labels, loaded)]
    chart = charts.overlay_chart([(label, series) for label, (_r, _c, series) in zip(labels, loaded)], lang).html()
    rows = library.config_diff([(run_id, config) for run_id, config, _series in loaded])
    rows = [[key, *(str(v) for v in values)] for key, *values in rows] or [[t("runs.no_diff", lang), *[""] * len(loaded)]]
    return chart, {"headers": [t("runs.col.key", lang), *labels], "data": rows}


def one_picked(selected: list[str] | None) -> str:
    """The picked run's id when exactly one run is picked, else ""."""
    return selected[0] if selected and len(selected) == 1 else ""


@for_viewers
def on_refresh(ctx: UIContext, filter_text: str, selected: list[str] | None, lang_choice: str):
    """The run list matching `filter_text` and the picker's choices, the picks kept only where their runs still are."""
    value = runs_table(ctx, lang_code(lang_choice), filter_text)
    ids = [row[0] for row in value["data"]]
    names = {row[0]: row[1] for row in value["data"]}
    choices = [(f"{i} · {names[i]}" if names[i] else i, i) for i in ids]
    kept = [i for i in (selected or []) if i in ids]
    # the value only when a picked run is gone (a value sent unchanged is work for the browser and nothing more)
    return value, gr.update(choices=choices, **({"value": kept} if kept != (selected or []) else {}))


@for_viewers
def on_open(ctx: UIContext, lang_choice: str):
    """The run list as a page opens: no filter typed, nothing picked (reading neither keeps them out of the
    components the browser looks up at every later status message; see ui.hoist_unseen)."""
    return on_refresh(ctx, "", [], lang_choice)


@for_viewers
def on_pick(ctx: UIContext, selected: list[str] | None, lang_choice: str):
    """The picked runs' view: for one, its summary, charts, probe answers, tags, notes, config and status; for
    several, their overlaid losses and differing config keys (an update for each of the builder's pick_outputs)."""
    lang, selected = lang_code(lang_choice), selected or []
    if len(selected) >= 2:
        chart, diff_value = compare(ctx, selected, lang)
        return [chart, diff_value] + [gr.skip()] * 9
    if not selected:
        return [gr.skip()] * 11
    try:
        run_dir = ctx.workspace.run_dir(selected[0])
    except PathError as error:
        return [gr.skip(), gr.skip(), str(error)] + [gr.skip()] * 8
    series, status, meta = library.load_series(run_dir), run_folder.run_status(run_dir), library.read_meta(run_dir)
    try:
        config = run_folder.load_config(run_dir)
    except cfg.ConfigError:
        config = None
    config_text, status_text = run_details(ctx, selected[0])
    return [
        gr.skip(), gr.skip(), run_summary(run_dir.name, status, config, lang),
        charts.loss_chart(series, lang).html(), charts.training_chart(series, lang).html(),
        charts.system_chart(series, lang).html(),
        probes_html(series, lang), ", ".join(meta["tags"]), meta["notes"], config_text, status_text,
    ]


def on_save_meta(ctx: UIContext, selected: list[str] | None, tag_text: str, note_text: str, filter_text: str, lang_choice: str,
                 request: gr.Request):
    """Save the picked run's tags and notes: a message and the run list redrawn (or why it was refused)."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    try:
        run_dir = ctx.workspace.run_dir(one_picked(selected))
        library.write_meta(run_dir, tag_text, note_text)
    except (PathError, library.MetaError) as error:
        return t("runs.refused", lang, reason=str(error)), gr.skip()
    return t("runs.saved", lang, run=run_dir.name), runs_table(ctx, lang, filter_text)


def on_clone(ctx: UIContext, clone_keys: tuple[str, ...], selected: list[str] | None, lang_choice: str, request: gr.Request):
    """The picked run's config for the Train tab: a note for both messages, the config, and each of `clone_keys`'
    values for its control (or why it was refused)."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    try:
        config = library.clone_config(ctx.workspace, one_picked(selected))
    except (PathError, cfg.ConfigError) as error:
        return [t("runs.refused", lang, reason=str(error))] + [gr.skip()] * (len(clone_keys) + 2)
    flat = cfg.to_flat(config)
    note = t("train.cloned", lang, run=one_picked(selected), name=config.run_name)
    return [note, note, config, *(flat[key] for key in clone_keys)]


@for_viewers
def on_watch(selected: list[str] | None, lang_choice: str):
    """The picked run for the Train tab's live view to watch, and its message saying so (nothing unless one is picked)."""
    run_id = one_picked(selected)
    if not run_id:
        return gr.skip(), gr.skip()
    return run_id, t("train.watching", lang_code(lang_choice), run=run_id)


def on_delete_ask(ctx: UIContext, selected: list[str] | None, lang_choice: str, request: gr.Request):
    """The question confirming the picked run's deletion ("" unless exactly one run is picked)."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    return t("runs.delete_confirm", lang_code(lang_choice), run=one_picked(selected)) if one_picked(selected) else ""


def on_delete(ctx: UIContext, selected: list[str] | None, filter_text: str, lang_choice: str, request: gr.Request):
    """Delete the picked run: a message, the run list and the picker without it (or why it was refused)."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    run_id = one_picked(selected)
    try:
        library.delete_run(ctx.workspace, run_id)
    except (PathError, library.RunBusyError) as error:
        return t("runs.refused", lang, reason=str(error)), gr.skip(), gr.skip()
    table_value, pick_update = on_refresh(ctx, filter_text, [], lang_choice)
    return t("runs.deleted", lang, run=run_id), table_value, {**pick_update, "value": []}


def create_runs_tab(ctx: UIContext) -> dict:
    """Build the Runs tab; returns `refresh` (a handler the app also runs on page load) and hooks."""
    L = ctx.localizer
    with gr.Row(equal_height=True):
        query = L.add(gr.Textbox(label=t("runs.filter"), max_lines=1, elem_id="runs-filter", scale=5), "runs.filter")
        refresh = L.add(gr.Button(t("runs.refresh"), elem_id="runs-refresh", scale=0, min_width=120), "runs.refresh")
    table = L.add(gr.Dataframe(label=t("runs.table"), interactive=False, wrap=True, max_height=420, column_widths=WIDTHS, elem_id="runs-table"), "runs.table")
    pick = L.add(gr.Dropdown(choices=[], multiselect=True, label=t("runs.pick"), elem_id="runs-pick"), "runs.pick")
    message = gr.Markdown("", elem_id="runs-message")
    with gr.Column(visible=False, elem_id="runs-compare") as compare_box:
        L.add(gr.Markdown(t("runs.compare")), "runs.compare")
        overlay = gr.HTML("", elem_id="runs-overlay")
        diff = L.add(gr.Dataframe(label=t("runs.diff"), interactive=False, wrap=True, elem_id="runs-diff"), "runs.diff")
    with gr.Column(visible=False, elem_id="runs-details") as details_box:
        summary = gr.Markdown("", elem_id="runs-summary")
        with gr.Row(equal_height=False):
            loss_chart = gr.HTML("", elem_id="runs-loss", scale=3)
            metrics_chart = gr.HTML("", elem_id="runs-metrics", scale=2)
        L.add(gr.Markdown(t("probe.title")), "probe.title")
        probes = gr.HTML("", elem_id="runs-probes")
        system_chart = gr.HTML("", elem_id="runs-system")
        with gr.Row() as editor:
            tags = L.add(gr.Textbox(label=t("runs.tags"), max_lines=1, elem_id="runs-tags", scale=1), "runs.tags")
            notes = L.add(gr.Textbox(label=t("runs.notes"), lines=2, elem_id="runs-notes", scale=2), "runs.notes")
        with gr.Row():
            watch = L.add(gr.Button(t("runs.watch"), elem_id="runs-watch"), "runs.watch")
            save = L.add(gr.Button(t("runs.save_meta"), elem_id="runs-save"), "runs.save_meta")
            clone = L.add(gr.Button(t("runs.clone"), elem_id="runs-clone"), "runs.clone")
            delete = L.add(gr.Button(t("runs.delete"), variant="stop", elem_id="runs-delete"), "runs.delete")
        with gr.Row(visible=False, elem_id="runs-delete-confirm") as delete_confirm:
            delete_question = gr.Markdown("")
            delete_yes = L.add(gr.Button(t("runs.delete_yes"), variant="stop", elem_id="runs-delete-yes", scale=0), "runs.delete_yes")
            delete_no = L.add(gr.Button(t("train.cancel"), elem_id="runs-delete-no", scale=0), "train.cancel")
        with gr.Accordion(t("runs.files"), open=False) as files_box:
            with gr.Row():
                config_view = L.add(gr.Code(language="yaml", label=t("runs.config"), interactive=False), "runs.config")
                status_view = L.add(gr.Code(language="json", label=t("runs.status"), interactive=False), "runs.status")
        L.add(files_box, "runs.files")
    ctx.operator_only += [editor, save, clone, delete]

    from studio.ui.train_tab import CONFIG_KEYS

    clone_keys = CONFIG_KEYS
    clone_targets = [ctx.shared[key] for key in clone_keys]
    pick_outputs = [overlay, diff, summary, loss_chart, metrics_chart, system_chart, probes, tags, notes, config_view, status_view]
    # which boxes show follows the selection in a js-only step: a container that is a server event's output
    # makes the browser walk all of its children at every later status message
    shown_for_selection = {"fn": None, "inputs": [pick], "outputs": [compare_box, details_box, delete_confirm],
                           "js": "(picked) => { const n = (picked || []).length; return [{__type__: 'update', visible: n >= 2}, "
                                 "{__type__: 'update', visible: n === 1}, {__type__: 'update', visible: false}]; }"}
    refreshed, picked = bind(on_refresh, ctx), bind(on_pick, ctx)
    refresh_io = (refreshed, [query, pick, ctx.language], [table, pick])
    # the tab's own refreshes (a visit, Start, the language switch) read copies of the filter and the picks
    query_copy = top_copy(ctx, query, gr.Textbox("", visible=False))
    pick_copy = top_copy(ctx, pick, gr.JSON([], visible=False), blank="[]")
    refresh.click(*refresh_io, api_name="list_runs").then(**shown_for_selection)
    query.submit(*refresh_io).then(**shown_for_selection)
    hide_confirm = {"fn": None, "inputs": None, "outputs": [delete_confirm], "js": "() => ({__type__: 'update', visible: false})"}
    # .input, not .change: the browser reports a change of the picker at every refresh of its choices, and
    # opening the picked runs again each time cost a server round trip at every visit of the tab
    pick.input(picked, [pick, ctx.language], pick_outputs, api_name="open_runs", trigger_mode="always_last").then(**shown_for_selection)
    # the charts and summary are drawn in a language: draw the picked runs again in the new one
    ctx.language.change(picked, [pick_copy, ctx.language], pick_outputs, show_progress="hidden")
    save.click(bind(on_save_meta, ctx), [pick, tags, notes, query, ctx.language], [message, table], api_name="save_run_meta")
    # the Train tab opens in the browser once the server has answered: after a clone that was not refused (both
    # messages then carry the same note), after a Watch of one run
    cloned = ctx.shared["open_tab"]("train", [message, ctx.shared["train_message"]], "a && a === b")
    clone_outputs = [message, ctx.shared["train_message"], ctx.shared["base_config"], *clone_targets]
    clone.click(bind(on_clone, ctx, clone_keys), [pick, ctx.language], clone_outputs).then(
        **ctx.shared["sync_pickers"]).then(**cloned)
    watch.click(on_watch, [pick, ctx.language], [ctx.shared["watched_run"], ctx.shared["train_message"]]).then(
        **ctx.shared["open_tab"]("train", [pick], "a && a.length === 1")).then(**ctx.shared["follow_run"])
    delete.click(bind(on_delete_ask, ctx), [pick, ctx.language], [delete_question]).success(
        None, [delete_question], [delete_confirm], js="(question) => ({__type__: 'update', visible: !!question})")
    delete_no.click(**hide_confirm)
    delete_yes.click(bind(on_delete, ctx), [pick, query, ctx.language], [message, table, pick], api_name="delete_run").then(
        **hide_confirm).then(**shown_for_selection)
    visit = TabRefresh(refreshed, [query_copy, pick_copy, ctx.language], [table, pick], {"show_progress": "hidden"},
                       opening=bind(on_open, ctx), opening_inputs=[ctx.language], then=shown_for_selection)
    return {"refresh": refresh_io, "visit": visit}
