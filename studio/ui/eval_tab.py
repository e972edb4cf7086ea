"""Evaluate tab: answer a run's validation split (or its training data, or an uploaded file) with the base and the
tuned model in the background; a progress bar, the scores side by side, every row's answers, CSV/JSONL downloads.

The work runs in a thread of the studio (studio/eval/job.py) and writes its progress in the run folder; a
gr.Timer polls that file while an evaluation is going, so a page reload or another browser sees the same."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from studio import config as cfg
from studio import run_folder
from studio.data import library
from studio.data.readers import FILE_SUFFIXES, DataError
from studio.eval import job
from studio.eval.rows import TRAINING, VALIDATION
from studio.ui.chat_tab import chattable_runs, kept_or_newest
from studio.ui.context import UIContext, bind, operator_view, refuse_viewer, top_copy
from studio.ui.export_panel import downloadable
from studio.ui.locales import lang_code, t
from studio.ui.visits import TabRefresh
from studio.workspace import PathError

POLL_SECONDS = 1.5
METRICS = (("loss", 4), ("perplexity", 2), ("exact_match", 1), ("rouge_l", 1), ("bleu", 1))
RESULT_COLUMNS = ("prompt", "reference", "base", "tuned")
SHOWN_CHARS = 600  # longer cells are cut in the table (the downloads have them whole)
VIEW_PARTS = 7  # the outputs folder_view gives
PHASES = ("loading", "base", "loading_tuned", "tuned")  # progress.json phases (studio/eval/job.py)


def data_choices(lang: str = "en") -> list[tuple[str, str]]:
    """(label, value) of the three things an evaluation can answer."""
    return [(t("eval.data_val", lang), "validation"), (t("eval.data_train", lang), "training"), (t("eval.data_file", lang), "file")]


def progress_html(progress: dict, lang: str) -> str:
    """The progress block: state, phase, answers done of total and a bar (data-state carries the state)."""
    if not progress:
        return ""
    state = progress.get("state", "loading")
    done, total = int(progress.get("done", 0)), int(progress.get("total", 0)) or 1
    share = 100.0 if state == "completed" else 100.0 * done / total
    phase = progress.get("phase", state)
    words = [t(f"eval.state.{state}", lang)]
    if state not in job.FINISHED and phase in PHASES:
        words.append(t(f"eval.phase.{phase}", lang))
    words.append(t("eval.answers", lang, done=done, total=total))
    if progress.get("rows_per_s") and state == "running":
        words.append(t("eval.rate", lang, rate=progress["rows_per_s"]))
    words.append(html.escape(str(progress.get("source", ""))))
    error = f"<div style='color:var(--error-text-color,#dc2626)'>{html.escape(progress['error'])}</div>" if progress.get("error") else ""
    return (f"<div data-state='{html.escape(state)}'><div>{' · '.join(words)}</div>"
            "<div style='background:var(--neutral-200,#e5e7eb);height:10px;border-radius:5px;margin-top:6px'>"
            f"<div style='width:{share:.1f}%;background:var(--color-accent,#f97316);height:10px;border-radius:5px'></div></div>"
            f"{error}</div>")


def metrics_table(scores: dict | None, lang: str) -> dict:
    """The scores as a table value: one row per metric, base model beside the tuned one."""
    headers = [t("eval.col.metric", lang), t("eval.col.base", lang), t("eval.col.tuned", lang)]
    if not scores:
        return {"headers": headers, "data": []}

    def cell(side: str, key: str, digits: int) -> str:
        value = scores[side].get(key)
        return "-" if value is None else f"{value:.{digits}f}"

    return {"headers": headers, "data": [[t(f"eval.m.{key}", lang), cell("base", key, d), cell("tuned", key, d)] for key, d in METRICS]}


def results_table(rows: list[dict], lang: str) -> dict:
    """Every finished row: prompt, reference, base answer, tuned answer."""
    def cut(text) -> str:
        text = str(text or "")
        return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"

    return {"headers": [t(f"eval.col.{c}", lang) for c in RESULT_COLUMNS],
            "data": [[cut(row.get(c)) for c in RESULT_COLUMNS] for row in rows]}


def folder_view(folder: Path | None, lang: str, shown: int | None = None) -> list:
    """Outputs showing evaluation `folder`: progress, scores, rows (skipped while still the `shown` many),
    downloads (once finished), the timer (on while it runs), how many rows are shown now, and Cancel (shown
    while it runs)."""
    if folder is None or not folder.is_dir():
        return ["", metrics_table(None, lang), results_table([], lang), gr.update(value=None, visible=False),
                gr.Timer(active=False), 0, gr.update(visible=False)]
    progress = job.read_progress(folder)
    finished = progress.get("state") in job.FINISHED
    rows = job.read_results(folder)
    files = [downloadable(folder / name) for name in (job.CSV_FILE, job.RESULTS_FILE) if finished and (folder / name).is_file()]
    return [progress_html(progress, lang), metrics_table(job.read_scores(folder), lang) if finished or shown is None else gr.skip(),
            results_table(rows, lang) if len(rows) != shown or finished else gr.skip(),
            gr.update(value=files or None, visible=bool(files)),
            gr.Timer(active=not finished), len(rows), gr.update(visible=not finished)]


def on_refresh(ctx: UIContext, lang_choice: str = "English"):
    """The run picker's choices now (the runs that can answer)."""
    return gr.update(choices=chattable_runs(ctx, lang_code(lang_choice)))


def on_pick(ctx: UIContext, run_id: str | None, lang_choice: str):
    """The picked run's latest evaluation folder (None without one) and its view."""
    run_dir = ctx.workspace.runs_dir / run_id if run_id else None
    folder = job.latest_eval(run_dir) if run_dir is not None and run_dir.is_dir() else None
    return folder, *folder_view(folder, lang_code(lang_choice))


def on_visit(ctx: UIContext, run_id: str | None, lang_choice: str) -> list:
    """The tab brought up to date, as a page opens and on a visit that finds something new: the run list as it is
    now with the picked run kept (the newest when none is picked or it is gone), then that run's latest evaluation
    folder (None without one) and its view."""
    choices = chattable_runs(ctx, lang_code(lang_choice))
    chosen = kept_or_newest(choices, run_id)
    return [gr.update(choices=choices, value=chosen), *on_pick(ctx, chosen, lang_choice)]


def on_data_default(ctx: UIContext, run_id: str | None):
    """The run's validation split when it held one out, else its training data (what it learned)."""
    if not run_id:
        return gr.skip()
    try:
        data = run_folder.load_config(ctx.workspace.runs_dir / run_id).data
    except (cfg.ConfigError, OSError, ValueError):
        return gr.skip()
    return "validation" if data.val_file or data.val_size > 0 else "training"


def on_choice(value: str):
    """The upload row, shown when the data to answer is a file."""
    return gr.update(visible=value == "file")


def on_upload(ctx: UIContext, temp_path: str | None, lang_choice: str, request: gr.Request):
    """Keep an uploaded data file in the workspace's library: its reference and no message, or why it was refused."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    if not temp_path:
        return gr.skip(), gr.skip()
    try:
        return library.add_upload(ctx.workspace, temp_path), ""
    except DataError as error:
        return gr.skip(), f"**{t('eval.cannot', lang_code(lang_choice))}** {error}"


def on_start(ctx: UIContext, run_id: str | None, data: str, ref: str, rows: float | None, tokens: float | None,
             lang_choice: str, request: gr.Request):
    """Start evaluating `run_id` in the background: a message, the evaluation folder watched, and its view."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    if not run_id:
        return t("eval.pick_run", lang), gr.skip(), *[gr.skip()] * VIEW_PARTS
    if data == "file" and not (ref or "").strip():
        return t("eval.pick_file", lang), gr.skip(), *[gr.skip()] * VIEW_PARTS
    chosen = {"validation": VALIDATION, "training": TRAINING}.get(data, (ref or "").strip())
    settings = job.EvalSettings(chosen, int(rows or 200), int(tokens or 128))
    try:
        folder = job.start_in_background(ctx.workspace, run_id, settings)
    except (PathError, OSError, ValueError) as error:  # EvalError, DataError: said in words the user can act on
        return f"**{t('eval.cannot', lang)}** {error}", gr.skip(), *[gr.skip()] * VIEW_PARTS
    return t("eval.started", lang, run=run_id), folder, *folder_view(folder, lang)


def on_cancel(ctx: UIContext, folder: Path | None, lang_choice: str, request: gr.Request):
    """Ask the running evaluation in `folder` to stop; says whether one was running."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    if folder is not None and job.request_cancel(folder):
        return t("eval.cancelling", lang)
    return t("eval.not_running", lang)


def on_tick(folder: Path | None, rows_shown: int, lang_choice: str):
    """The watched evaluation's view now (its rows redrawn only when more have come)."""
    return folder_view(folder, lang_code(lang_choice), rows_shown)


def create_eval_tab(ctx: UIContext) -> dict:
    """Build the Evaluate tab; returns its run picker and `visit`, what the page's opening and the tab's visits bring
    up to date: the run list and the picked run's latest evaluation (the picker starts on the newest run, so the
    page must show it: no change event comes)."""
    L = ctx.localizer
    L.add(gr.Markdown(t("eval.intro")), "eval.intro")
    listed = chattable_runs(ctx)
    with gr.Row():
        run = L.add(gr.Dropdown(choices=listed, label=t("eval.run"), scale=4, elem_id="eval-run"), "eval.run")
        refresh = L.add(gr.Button(t("eval.refresh"), scale=1), "eval.refresh")
    with gr.Row():
        choice = L.add(gr.Radio(choices=data_choices(), value="validation", label=t("eval.data"), scale=3, elem_id="eval-data"), "eval.data",
                       choices=data_choices)
        max_rows = L.add(gr.Number(value=200, minimum=1, precision=0, label=t("eval.max_rows"), scale=1, elem_id="eval-max-rows"), "eval.max_rows")
        max_new = L.add(gr.Number(value=128, minimum=1, maximum=4096, precision=0, label=t("eval.max_new_tokens"), scale=1,
                                  elem_id="eval-max-new"), "eval.max_new_tokens")
    with gr.Row(visible=False) as file_row:
        upload = L.add(gr.File(label=t("eval.upload"), file_types=list(FILE_SUFFIXES), type="filepath", scale=2,
                               elem_id="eval-upload"), "eval.upload")
        data_ref = L.add(gr.Textbox(label=t("eval.data_ref"), max_lines=1, scale=2, elem_id="eval-data-ref"), "eval.data_ref")
    with gr.Row():
        start = L.add(gr.Button(t("eval.start"), variant="primary", elem_id="eval-start"), "eval.start")
        cancel = L.add(gr.Button(t("eval.cancel"), variant="stop", visible=False, elem_id="eval-cancel"), "eval.cancel")
    message = gr.Markdown("", elem_id="eval-message")
    progress = gr.HTML("", elem_id="eval-progress")
    scores = L.add(gr.Dataframe(label=t("eval.scores"), interactive=False, elem_id="eval-metrics"), "eval.scores")
    # a quarter of the width each, so a long prompt or reference never pushes the answers off the screen
    results = L.add(gr.Dataframe(label=t("eval.results"), interactive=False, wrap=True, max_height=520, column_widths=["25%"] * 4,
                                 elem_id="eval-results"), "eval.results")
    downloads = L.add(gr.File(label=t("eval.downloads"), file_count="multiple", interactive=False, visible=False,
                              elem_id="eval-downloads"), "eval.downloads")
    watching = gr.State(None)  # the evaluation folder shown (server side)
    shown = gr.State(0)  # how many of its rows the table shows
    timer = gr.Timer(POLL_SECONDS, active=False)
    view_outputs = [progress, scores, results, downloads, timer, shown, cancel]
    refresh.click(bind(on_refresh, ctx), [ctx.language], [run])
    # a pick by the user; a refresh that moves the picker sends the picked run's view itself
    run.input(bind(on_pick, ctx), [run, ctx.language], [watching, *view_outputs])
    run.input(bind(on_data_default, ctx), [run], [choice])
    choice.change(on_choice, [choice], [file_row])
    upload.upload(bind(on_upload, ctx), [upload, ctx.language], [data_ref, message])
    start.click(bind(on_start, ctx), [run, choice, data_ref, max_rows, max_new, ctx.language], [message, watching, *view_outputs],
                api_name="eval_start")
    cancel.click(bind(on_cancel, ctx), [watching, ctx.language], [message], api_name="eval_cancel")
    timer.tick(on_tick, [watching, shown, ctx.language], view_outputs, show_progress="hidden", api_visibility="private")
    # as a page opens and on the tab's selection, which a viewer's page does too
    # it reads a copy of the pick (context.top_copy): a picker's value is checked against the choices the page was
    # built with when the visit's fingerprint is asked for outside the page's session
    picked = top_copy(ctx, run, gr.Textbox("", visible=False))
    visit = TabRefresh(operator_view(ctx, bind(on_visit, ctx)), [picked, ctx.language], [run, watching, *view_outputs],
                       {"show_progress": "hidden"})
    return {"run": run, "visit": visit}
