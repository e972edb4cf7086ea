"""The live training monitor in the Train tab: progress (with phase bar and cost), charts, probe answers, log.

Every 1.5 s a follower (one long streaming event per page, started by whatever gives the view a run to
watch, ending with the run) reads the watched run's JSONL files from the byte offsets reached last time
(run_library.Series), so a tick costs only the new lines. A page that (re-)attaches starts a fresh Series
from offset 0: the charts are rebuilt from the whole run once, then grow. Charts are only re-sent when
their data changed. Stop, Kill (after a confirmation) and Resume refuse a read-only viewer server-side.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import gradio as gr

from studio import jobs
from studio import run_folder
from studio.run_library import Series, is_resumable
from studio.train.status import FINAL_STATES
from studio.ui import charts
from studio.ui.context import UIContext, bind, for_viewers, refuse_viewer
from studio.ui.locales import lang_code, t
from studio.ui.run_views import log_html, memory_advice_html, probes_html, progress_html, system_html
from studio.workspace import LOG_FILE, tail_text

POLL_SECONDS = 1.5
MISSING_RUN_SECONDS = 30  # a watched run folder that stays missing this long (deleted) ends the follower
FOLLOWERS: dict[str, object] = {}  # a page's session hash → the token of its one live follower
SYSTEM_CHART_SECONDS = 10  # the system readings in words refresh every tick, their chart this often
# the progress line refreshes every tick; the loss and training charts this often (drawing them is most of a
# tick's cost on the server, and swapping them in most of it in the browser), and at once when the run ends
METRICS_CHART_SECONDS = 5
LOG_LINES = 80
VIEW_PARTS = 12  # the outputs a follower gives: create_monitor's view_outputs


@dataclass
class Watch:
    """What one follower has drawn of the watched run: its series, the log size, the language."""

    series: Series
    lang: str
    log_size: int = -1
    system_drawn: float = float("-inf")  # time.monotonic() when the system chart was last sent
    metrics_drawn: float = float("-inf")  # time.monotonic() when the loss and training charts were last sent
    metrics_pending: bool = False  # new metric rows arrived since the charts were last sent
    system_pending: bool = False  # new system readings arrived since their chart was last sent
    buttons: tuple = ()  # the visibility of Stop, Kill, Resume and Chat last sent


def _log_size(run_dir: Path) -> int:
    try:
        return (run_dir / LOG_FILE).stat().st_size
    except FileNotFoundError:
        return 0


def draw_view(run_dir: Path, seen: Watch | None, price_per_hour: float | None, lang_choice: str) -> tuple[list, Watch, bool]:
    """One refresh of the live view of the run in `run_dir`, drawing only what changed since `seen`.

    Returns the updates for the follower's outputs (in `create_monitor`'s view_outputs order), what is now
    drawn, and whether the run has reached its final state."""
    lang, run_id = lang_code(lang_choice), run_dir.name
    fresh = seen is None or seen.series.run_id != run_id or seen.lang != lang
    if fresh:  # (re-)attached: the whole run, once
        seen = Watch(Series(run_id=run_id), lang)
        seen.series.read_new(run_dir)
        changed = {"metrics", "system", "samples"}
    else:
        changed = seen.series.read_new(run_dir)
    series, status = seen.series, run_folder.run_status(run_dir)
    now = time.monotonic()
    state = status.get("state")
    active, done = state not in FINAL_STATES, state in FINAL_STATES
    seen.system_pending |= "system" in changed
    draw_system = seen.system_pending and (fresh or done or now - seen.system_drawn >= SYSTEM_CHART_SECONDS)
    if draw_system:
        seen.system_drawn, seen.system_pending = now, False
    size = _log_size(run_dir)
    log_update = log_html(tail_text(run_dir / LOG_FILE, LOG_LINES)) if size != seen.log_size else gr.skip()
    seen.log_size = size
    seen.metrics_pending |= "metrics" in changed
    draw_metrics = seen.metrics_pending and (fresh or done or now - seen.metrics_drawn >= METRICS_CHART_SECONDS)
    if draw_metrics:
        seen.metrics_drawn, seen.metrics_pending = now, False
    shown = (active, active, is_resumable(run_dir, status), done and status.get("output") is not None)
    buttons = [gr.skip()] * 4 if shown == seen.buttons else [gr.update(visible=v) for v in shown]
    seen.buttons = shown
    updates = [
        progress_html(run_id, status, series.last, lang, price_per_hour) + memory_advice_html(run_dir, status, lang),
        charts.loss_chart(series, lang).html() if draw_metrics else gr.skip(),
        charts.training_chart(series, lang).html() if draw_metrics else gr.skip(),
        charts.system_chart(series, lang).html() if draw_system else gr.skip(),
        system_html(series, lang) if "system" in changed else gr.skip(),
        probes_html(series, lang) if "samples" in changed else gr.skip(),
        log_update,
        *buttons,
        gr.update(visible=True) if fresh else gr.skip(),
    ]
    return updates, seen, done


@for_viewers
async def follow_run(ctx: UIContext, run_id: str, price_per_hour: float | None, lang_choice: str, request: gr.Request):
    """Stream the watched run's live view: one update now, then one every POLL_SECONDS until the run ends.

    One long event instead of a timer: the browser handles one message per update rather than a whole
    event's round of status messages, each of which walks the page. A newer follower of the same page
    (another run watched, the language or price changed) takes over, and this one ends. Every follower
    starts as a fresh attach of its own (the whole run drawn once), never from what another follower of the
    page drew: two of them overlap for a moment, and the page must end up drawn whichever answered last."""
    # A follower that ends without a single update would have Gradio set each output to nothing: the run
    # buttons would show up later with no label. So every way out sends at least one (empty) update.
    if not run_id:  # nothing to watch: a page load queued behind Start must not end Start's follower
        yield [gr.skip()] * VIEW_PARTS
        return
    token, seen = object(), None
    page = request.session_hash or ""
    FOLLOWERS[page] = token
    missing_since = time.monotonic()
    try:
        while FOLLOWERS.get(page) is token:
            run_dir = ctx.workspace.runs_dir / run_id
            if run_dir.is_dir():
                missing_since = time.monotonic()
                updates, seen, done = await anyio.to_thread.run_sync(draw_view, run_dir, seen, price_per_hour, lang_choice)
                yield updates
                if done:  # the final state is drawn
                    return
            elif time.monotonic() - missing_since > MISSING_RUN_SECONDS:  # deleted, or never made
                if seen is None:
                    yield [gr.skip()] * VIEW_PARTS
                return
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if FOLLOWERS.get(page) is token:
            del FOLLOWERS[page]


@for_viewers
def on_language(run_id: str, lang_choice: str):
    """The Train tab's message in the chosen language: the watched run, or how to start one."""
    lang = lang_code(lang_choice)
    return t("train.watching", lang, run=run_id) if run_id else t("train.no_run", lang)


def on_stop(ctx: UIContext, run_id: str, lang_choice: str, request: gr.Request):
    """Ask the watched run to stop after its current step: a message saying so, or that it is not active (none without a run)."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    if run_id and jobs.request_stop(ctx.workspace.runs_dir / run_id):
        return t("train.stopping", lang, run=run_id)
    return t("train.not_active", lang, run=run_id) if run_id else gr.skip()


def on_kill_ask(ctx: UIContext, run_id: str, lang_choice: str, request: gr.Request):
    """The kill confirmation shown, with its question about the watched run (nothing without one)."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    if not run_id:
        return gr.skip(), gr.skip()
    return gr.update(visible=True), t("train.kill_confirm", lang_code(lang_choice), run=run_id)


def on_kill_cancel():
    """The kill question put away: the run goes on."""
    return gr.update(visible=False)


def on_kill(ctx: UIContext, run_id: str, lang_choice: str, request: gr.Request):
    """Kill the watched run's process now: the confirmation hidden and a message saying what happened."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    if run_id and jobs.kill_run(ctx.workspace.runs_dir / run_id):
        return gr.update(visible=False), t("train.killed", lang, run=run_id)
    return gr.update(visible=False), t("train.not_active", lang, run=run_id)


def on_resume(ctx: UIContext, run_id: str, lang_choice: str, request: gr.Request):
    """Queue the watched run again from its last checkpoint: a message and the run to watch (or why not)."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    if not run_id:
        return gr.skip(), gr.skip()
    try:
        run_dir = jobs.resume_run(ctx.workspace, ctx.workspace.runs_dir / run_id)  # the same folder, queued again
    except (jobs.ResumeError, ValueError, OSError) as error:  # why not (running, completed, no checkpoint)
        return t("train.cannot_resume", lang, run=run_id, reason=str(error)), gr.skip()
    return t("train.resumed", lang, run=run_dir.name), run_dir.name


def create_run_buttons(ctx: UIContext) -> dict:
    """Stop, Kill, Resume and Chat (inside the Train tab's action row, which a viewer never sees)."""
    L = ctx.localizer
    return {
        "stop": L.add(gr.Button(t("train.stop"), variant="stop", elem_id="stop-button", visible=False, scale=1), "train.stop"),
        "kill": L.add(gr.Button(t("train.kill"), variant="secondary", elem_id="kill-button", visible=False, scale=1), "train.kill"),
        "resume": L.add(gr.Button(t("train.resume"), elem_id="resume-button", visible=False, scale=1), "train.resume"),
        "chat": L.add(gr.Button(t("train.chat"), visible=False, elem_id="chat-with-run", scale=1), "train.chat"),
    }


def create_monitor(ctx: UIContext, watched: gr.State, buttons: dict) -> dict:
    """Build the live view below the Train tab's controls and wire its follower and buttons."""
    L = ctx.localizer
    with gr.Row(visible=False, elem_id="kill-confirm") as kill_confirm:
        kill_question = gr.Markdown("", elem_id="kill-question")
        kill_yes = L.add(gr.Button(t("train.kill_yes"), variant="stop", elem_id="kill-yes", scale=0), "train.kill_yes")
        kill_no = L.add(gr.Button(t("train.cancel"), elem_id="kill-no", scale=0), "train.cancel")
    message = gr.Markdown(t("train.no_run"), elem_id="train-message")
    # shown once a run is watched (the follower's only container output: its children are its outputs anyway)
    with gr.Column(visible=False, elem_id="monitor") as view:
        with gr.Row(equal_height=False):
            progress = gr.HTML("", elem_id="train-progress")
            price = L.add(gr.Number(value=None, minimum=0, label=t("train.price"), scale=0, min_width=220, elem_id="price-per-hour"), "train.price")
        with gr.Row(equal_height=False):
            loss_chart = gr.HTML("", elem_id="loss-chart", scale=3)
            metrics_chart = gr.HTML("", elem_id="metrics-chart", scale=2)
        L.add(gr.Markdown(t("probe.title")), "probe.title")
        probes = gr.HTML("", elem_id="probes")
        L.add(gr.Markdown(t("train.system")), "train.system")
        system_now = gr.HTML("", elem_id="system-panel")
        system_chart = gr.HTML("", elem_id="system-chart")
        L.add(gr.Markdown(t("train.log_title")), "train.log_title")
        log = gr.HTML("", elem_id="train-log")
    view_outputs = [progress, loss_chart, metrics_chart, system_chart, system_now, probes, log,
                    buttons["stop"], buttons["kill"], buttons["resume"], buttons["chat"], view]

    follow = {"fn": bind(follow_run, ctx), "inputs": [watched, price, ctx.language], "outputs": view_outputs,
              "show_progress": "hidden", "api_visibility": "private", "concurrency_limit": None}
    # the same run in another language or at another price: follow it afresh
    ctx.language.change(**follow)
    ctx.language.change(on_language, [watched, ctx.language], [message], show_progress="hidden")
    price.change(**follow, trigger_mode="always_last")
    buttons["stop"].click(bind(on_stop, ctx), [watched, ctx.language], [message], api_name="stop")
    buttons["kill"].click(bind(on_kill_ask, ctx), [watched, ctx.language], [kill_confirm, kill_question])
    kill_yes.click(bind(on_kill, ctx), [watched, ctx.language], [kill_confirm, message], api_name="kill")
    kill_no.click(on_kill_cancel, None, [kill_confirm])
    # every event that gives the monitor a run to watch (Start, Resume, Watch in Runs, a page load that
    # re-attaches) starts a follower after it: .then(**follow)
    buttons["resume"].click(bind(on_resume, ctx), [watched, ctx.language], [message, watched], api_name="resume").then(**follow)
    return {"message": message, "progress": progress, "loss_chart": loss_chart, "log": log, "follow": follow}
