"""The live training monitor in the Train tab: progress (with phase bar and cost), charts, probe answers, log.

Every 1.5 s a follower (one long streaming event per page, started by whatever gives the view a run to
watch, ending with the run) reads the watched run's JSONL files from the byte offsets reached last time
(run_library.Series), so a tick costs only the new lines. A page that (re-)attaches starts a fresh Series
from offset 0: the charts are rebuilt from the whole run once, then grow. Charts are only re-sent when
their data changed. Stop, Kill (after a confirmation) and Resume refuse a read-only viewer server-side.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import gradio as gr

from studio import jobs
from studio import run_folder
from studio.fit import change_text
from studio.run_library import Series, duration_of, is_resumable
from studio.train.status import FINAL_STATES, PROGRESS_PHASES
from studio.ui import charts
from studio.ui.context import UIContext, for_viewers, refuse_viewer
from studio.ui.locales import lang_code, t
from studio.workspace import ESTIMATE_FILE, LOG_FILE, tail_text

POLL_SECONDS = 1.5
MISSING_RUN_SECONDS = 30  # a watched run folder that stays missing this long (deleted) ends the follower
FOLLOWERS: dict[str, object] = {}  # a page's session hash → the token of its one live follower
SYSTEM_CHART_SECONDS = 10  # the system readings in words refresh every tick, their chart this often
# the progress line refreshes every tick; the loss and training charts this often (a Plotly redraw is most of a
# tick's cost in the browser), and at once when the run ends
METRICS_CHART_SECONDS = 5
LOG_LINES = 80
PROBE_ROWS = 8  # answers shown per prompt before older ones fold away
ERROR_LINE = re.compile(r"traceback|error|failed|out of memory|exception", re.IGNORECASE)
LABEL_VERB = re.compile(r"^(downloading|tokeni[sz]ing|loading|saving)\s+(the\s+)?", re.IGNORECASE)
STATE_COLOURS = {"failed": "#dc2626", "stopped": "#f59e0b", "completed": "#16a34a"}


def format_duration(seconds: float | None) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on; `–` when unknown."""
    if seconds is None:
        return "–"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def _number(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "–"


def _bytes_pair(done: float, total: float | None) -> str:
    scale, unit = next(((s, u) for s, u in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")) if max(done, total or 0) >= s), (1, "B"))
    return f"{done / scale:.1f}/{total / scale:.1f} {unit}" if total else f"{done / scale:.1f} {unit}"


def _rate(rate: float, unit: str, lang: str) -> str:
    if unit == "B":
        scale, name = next(((s, u) for s, u in ((1e9, "GB/s"), (1e6, "MB/s"), (1e3, "kB/s")) if rate >= s), (1, "B/s"))
        return f"{rate / scale:.0f} {name}" if rate / scale >= 10 else f"{rate / scale:.1f} {name}"
    return t(f"phase.rate.{unit}", lang, rate=f"{rate:.0f}")


def phase_text(progress: dict[str, Any], lang: str) -> str:
    """One line for a long wait, e.g. `downloading model.safetensors 3.2/15.0 GB · 45 MB/s`."""
    phase, label = progress.get("phase") or "", str(progress.get("label") or "")
    known = phase in PROGRESS_PHASES
    if known:  # the verb comes from the locale table, so a label such as "Downloading X" gives just "X"
        label = LABEL_VERB.sub("", label).strip()
    words = [t(f"phase.{phase}", lang, label=label) if known and label else t(f"phase.{phase}.plain", lang) if known else label]
    done, total, unit, rate = progress.get("done"), progress.get("total"), progress.get("unit"), progress.get("rate")
    if isinstance(done, (int, float)) and (done > 0 or total):
        if unit == "B":
            words.append(_bytes_pair(done, total))
        elif unit in ("rows", "steps"):
            words.append(t(f"phase.{unit}", lang, done=int(done), total=int(total)) if total else t(f"phase.{unit}.open", lang, done=int(done)))
    text = " ".join(w for w in words if w)
    if isinstance(rate, (int, float)) and rate > 0 and unit in ("B", "rows", "steps"):
        text += " · " + _rate(rate, unit, lang)
    return text


def _bar(fraction: float | None, colour: str, height: int, elem_id: str) -> str:
    if fraction is None:  # size unknown: a moving stripe, so a long wait never looks like a hang (it moves in
        # steps, two repaints a second, rather than at the screen's frame rate)
        fill = f"width:100%;background:repeating-linear-gradient(45deg,{colour} 0 12px,#93c5fd 12px 24px);background-size:34px 34px;animation:studio-stripes 1.5s steps(3) infinite"
    else:
        fill = f"width:{min(1.0, max(0.0, fraction)) * 100:.1f}%;background:{colour}"
    return (
        f"<div id='{elem_id}' style='background:#e5e7eb;border-radius:6px;height:{height}px;margin:6px 0;overflow:hidden'>"
        f"<div style='{fill};height:{height}px;border-radius:6px'></div></div>"
    )


def cost_text(status: dict[str, Any], last: dict[str, Any] | None, price: float | None, lang: str) -> str:
    """Cost so far at `price` per hour, and the projected total when the ETA is known ("" without a price)."""
    if not isinstance(price, (int, float)) or price <= 0:
        return ""
    elapsed = duration_of(status)
    if elapsed is None:
        return ""
    so_far = elapsed / 3600 * price
    eta = (last or {}).get("eta")
    if status.get("state") == "running" and isinstance(eta, (int, float)):
        return t("train.cost", lang, so_far=f"{so_far:,.2f}", total=f"{(elapsed + eta) / 3600 * price:,.2f}")
    return t("train.cost_final", lang, so_far=f"{so_far:,.2f}")


def memory_advice_html(run_dir: Path, status: dict, lang: str) -> str:
    """For a run that ran out of GPU memory: what its estimate said before it started (peak, verdict, the
    biggest components) and the fixes that make it fit, with where to apply them. Empty for other runs."""
    if status.get("cause") != "out of memory":
        return ""
    try:
        estimate = json.loads((run_dir / ESTIMATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        estimate = {}
    lines = []
    if isinstance(estimate.get("total_gb"), (int, float)):
        components = sorted((estimate.get("components") or {}).items(), key=lambda item: -item[1])[:4]
        lines.append(t("train.oom.estimate", lang, total=f"{estimate['total_gb']:.1f}", available=f"{estimate.get('available_gb', 0):.1f}",
                       device=estimate.get("device", "?"), verdict=estimate.get("verdict", "?"),
                       parts=", ".join(f"{name} {gb:.1f} GB" for name, gb in components)))
    fixes = [f for f in status.get("fixes") or estimate.get("fixes") or [] if isinstance(f, dict)]
    items = "".join(
        f"<li>{html.escape(str(f.get('title', '')))}: <code>{html.escape(change_text(f.get('change') or {}))}</code>"
        + (f" → {f['total_gb']:.1f} GB" if isinstance(f.get("total_gb"), (int, float)) else "") + "</li>"
        for f in fixes[:5]
    )
    return (
        f"<div id='oom-advice' style='margin-top:8px;padding:8px;border:1px solid #fca5a5;border-radius:6px'>"
        f"<b>{html.escape(t('train.oom.title', lang))}</b>"
        + "".join(f"<div>{html.escape(line)}</div>" for line in lines)
        + (f"<ul style='margin:4px 0'>{items}</ul>" if items else "")
        + f"<div>{html.escape(t('train.oom.where', lang))}</div></div>"
    )


def progress_html(run_id: str, status: dict, last: dict | None, lang: str, price: float | None = None) -> str:
    """The progress block: state and phase, a bar, step/total, elapsed, ETA, loss, cost, and a phase bar
    while the worker downloads, tokenizes, loads or saves."""
    state = status.get("state", "queued")
    step, total = (last or {}).get("step", 0), (last or {}).get("total_steps", 0)
    fraction = 1.0 if state == "completed" else (step / total if total else 0.0)
    parts = [t("train.step", lang, step=step, total=total or "?"), t("train.elapsed", lang, elapsed=format_duration(duration_of(status)))]
    if state == "running" and last:
        parts.append(t("train.eta", lang, eta=format_duration(last.get("eta"))))
    if last and last.get("loss") is not None:
        parts.append(t("train.loss", lang, loss=f"{last['loss']:.4f}"))
    if isinstance(status.get("best_eval_loss"), (int, float)):
        parts.append(t("train.best_eval", lang, loss=f"{status['best_eval_loss']:.4f}"))
    notes = [t("train.killed_note", lang)] if status.get("killed") and "kill" not in str(status.get("phase")) else []
    if status.get("early_stopped"):
        notes.append(t("train.early_stopped", lang))
    if status.get("resumed_from"):
        notes.append(t("train.resumed_from", lang, checkpoint=status["resumed_from"]))
    phase = t("train.phase", lang, state=t(f"state.{state}", lang), phase=status.get("phase", ""))
    progress = status.get("progress") if state not in FINAL_STATES else None
    phase_block = ""
    if isinstance(progress, dict) and progress.get("phase"):
        done, whole = progress.get("done"), progress.get("total")
        share = done / whole if isinstance(done, (int, float)) and isinstance(whole, (int, float)) and whole > 0 else None
        phase_block = (
            f"<div id='phase-progress' data-phase='{html.escape(str(progress['phase']))}' style='margin-top:8px;font-size:0.92em'>"
            f"{html.escape(phase_text(progress, lang))}{_bar(share, '#60a5fa', 8, 'phase-bar')}</div>"
        )
    cost = cost_text(status, last, price, lang)
    error = status.get("error")
    return (
        "<style>@keyframes studio-stripes{from{background-position:0 0}to{background-position:34px 0}}</style>"
        f"<div id='run-progress' data-state='{html.escape(state)}' data-step='{int(step)}' data-run='{html.escape(run_id)}'>"
        f"<div><b>{html.escape(run_id)}</b> · {html.escape(phase)}{''.join(' · <i>' + html.escape(n) + '</i>' for n in notes)}</div>"
        f"{_bar(fraction, STATE_COLOURS.get(state, '#3b82f6'), 14, 'run-bar')}"
        f"<div>{html.escape(' · '.join(parts))}</div>"
        + (f"<div id='run-cost'>{html.escape(cost)}</div>" if cost else "")
        + phase_block
        + (f"<pre class='run-error' style='color:#b91c1c;white-space:pre-wrap'>{html.escape(error)}</pre>" if error else "")
        + "</div>"
    )


def log_html(text: str) -> str:
    """The log tail as escaped HTML lines; tracebacks and lines that mention an error are red.

    The box is a reversed flex column, so it shows the newest lines without any script."""
    rows, in_traceback = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("Traceback (most recent call last)"):
            in_traceback = True
        bad = in_traceback or bool(ERROR_LINE.search(line))
        if in_traceback and line[:1] not in (" ", "\t", "") and not line.lstrip().startswith("Traceback"):
            in_traceback = False  # the exception line ends the traceback (and is red itself)
        style = " style='color:#b91c1c;background:#fee2e2'" if bad else ""
        rows.append(f"<div class='log-line{' log-error' if bad else ''}'{style}>{html.escape(line) or '&nbsp;'}</div>")
    return (
        "<div id='log-view' style='display:flex;flex-direction:column-reverse;max-height:320px;overflow:auto;"
        "font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;word-break:break-word;"
        "background:#f8fafc;border:1px solid #e5e7eb;border-radius:6px;padding:6px'>"
        f"<div>{''.join(rows)}</div></div>"
    )


def probes_html(series: Series, lang: str) -> str:
    """Per probe prompt, the base model's answer (step 0) and the answers at each later step."""
    if not series.probes:
        return f"<div class='probe-panel' style='color:#6b7280'>{html.escape(t('probe.none', lang))}</div>"
    cards = []
    for number, (_index, probe) in enumerate(sorted(series.probes.items()), start=1):
        rows = []
        for step, (answer, seconds) in sorted(probe["answers"].items()):
            label = t("probe.base", lang) if step == 0 else str(step)
            took = f"<span style='color:#9ca3af'> · {seconds:.1f} s</span>" if isinstance(seconds, (int, float)) else ""
            shade = "background:#f3f4f6;" if step == 0 else ""
            rows.append(
                f"<tr class='probe-row' data-step='{step}' style='{shade}'><td style='vertical-align:top;padding:3px 8px'>{html.escape(label)}{took}</td>"
                f"<td style='padding:3px 8px;white-space:pre-wrap;overflow-wrap:anywhere'>{html.escape(answer)}</td></tr>"
            )
        head = f"<tr><th style='text-align:left;padding:3px 8px;width:9em'>{html.escape(t('probe.step', lang))}</th><th style='text-align:left;padding:3px 8px'>{html.escape(t('probe.answer', lang))}</th></tr>"
        if len(rows) > PROBE_ROWS + 2:  # base first, the newest last, the ones between folded away
            hidden = rows[1 : len(rows) - PROBE_ROWS + 1]
            rows = [rows[0], (f"<tr><td colspan='2'><details><summary>{html.escape(t('probe.earlier', lang, count=len(hidden)))}</summary>"
                    f"<table style='width:100%'>{''.join(hidden)}</table></details></td></tr>"), *rows[len(rows) - PROBE_ROWS + 1 :]]
        cards.append(
            f"<div class='probe-card' style='border:1px solid #e5e7eb;border-radius:8px;padding:8px 10px'>"
            f"<div class='probe-prompt'><b>{html.escape(t('probe.prompt', lang, n=number))}</b>: {html.escape(probe['prompt'])}</div>"
            f"<table style='width:100%;table-layout:fixed;border-collapse:collapse;font-size:0.92em'>{head}{''.join(rows)}</table></div>"
        )
    grid = "display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:8px"
    return f"<div class='probe-panel' style='{grid}'>{''.join(cards)}</div>"


def system_html(series: Series, lang: str) -> str:
    """The latest GPU, CPU and RAM readings in words; a clear note when there is no GPU."""
    row = series.last_system
    if row is None:
        return f"<div id='system-now' style='color:#6b7280'>{html.escape(t('system.waiting', lang))}</div>"
    lines = []
    for position, gpu in enumerate(row.get("gpus") or []):
        lines.append(t(
            "system.gpu", lang, index=gpu.get("index", position), name=gpu.get("name", ""),
            used=_number((gpu.get("memory_used_mb") or 0) / 1024), total=_number((gpu.get("memory_total_mb") or 0) / 1024),
            util=_number(gpu.get("utilization_percent"), 0), temp=_number(gpu.get("temperature_c"), 0), power=_number(gpu.get("power_w"), 0),
        ))
    if not row.get("gpus"):
        lines.append(t("system.no_gpu", lang))
    lines.append(t("system.cpu", lang, cpu=_number(row.get("cpu_percent"), 0), used=_number(row.get("ram_used_gb")), total=_number(row.get("ram_total_gb"))))
    gpu_state = "none" if not row.get("gpus") else str(len(row["gpus"]))
    return f"<div id='system-now' data-gpus='{gpu_state}'>" + "".join(f"<div>{html.escape(line)}</div>" for line in lines) + "</div>"


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
    # the charts are drawn in the update after a (re-)attach, which empties them
    resend_charts: bool = False
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
    resend, seen.resend_charts = seen.resend_charts, fresh
    seen.system_pending |= "system" in changed or (resend and series.system_seen)
    seen.metrics_pending |= resend and bool(series.steps or series.eval_steps)
    draw_system = seen.system_pending and (resend or now - seen.system_drawn >= SYSTEM_CHART_SECONDS)
    if draw_system:
        seen.system_drawn, seen.system_pending = now, False
    size = _log_size(run_dir)
    log_update = log_html(tail_text(run_dir / LOG_FILE, LOG_LINES)) if size != seen.log_size else gr.skip()
    seen.log_size = size
    state = status.get("state")
    active, done = state not in FINAL_STATES, state in FINAL_STATES
    seen.metrics_pending |= "metrics" in changed
    draw_metrics = seen.metrics_pending and (resend or done or now - seen.metrics_drawn >= METRICS_CHART_SECONDS)
    if draw_metrics:
        seen.metrics_drawn, seen.metrics_pending = now, False
    shown = (active, active, is_resumable(run_dir, status), done and status.get("output") is not None)
    buttons = [gr.skip()] * 4 if shown == seen.buttons else [gr.update(visible=v) for v in shown]
    seen.buttons = shown
    # on a (re-)attach the charts are emptied first and drawn in the next update: a chart that another run's
    # figure of another shape (other subplots) is redrawn over in place is not always drawn
    updates = [
        progress_html(run_id, status, series.last, lang, price_per_hour) + memory_advice_html(run_dir, status, lang),
        None if fresh else charts.loss_figure(series, lang) if draw_metrics else gr.skip(),
        None if fresh else charts.training_figure(series, lang) if draw_metrics else gr.skip(),
        None if fresh else charts.system_figure(series, lang) if draw_system else gr.skip(),
        system_html(series, lang) if "system" in changed else gr.skip(),
        probes_html(series, lang) if "samples" in changed else gr.skip(),
        log_update,
        *buttons,
        gr.update(visible=True) if fresh else gr.skip(),
    ]
    return updates, seen, done


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
            loss_chart = L.add(gr.Plot(label=t("train.loss_chart"), elem_id="loss-chart", scale=3), "train.loss_chart")
            metrics_chart = L.add(gr.Plot(label=t("train.metrics_chart"), elem_id="metrics-chart", scale=2), "train.metrics_chart")
        L.add(gr.Markdown(t("probe.title")), "probe.title")
        probes = gr.HTML("", elem_id="probes")
        L.add(gr.Markdown(t("train.system")), "train.system")
        system_now = gr.HTML("", elem_id="system-panel")
        system_chart = L.add(gr.Plot(label=t("train.system_chart"), elem_id="system-chart"), "train.system_chart")
        L.add(gr.Markdown(t("train.log_title")), "train.log_title")
        log = gr.HTML("", elem_id="train-log")
    view_outputs = [progress, loss_chart, metrics_chart, system_chart, system_now, probes, log,
                    buttons["stop"], buttons["kill"], buttons["resume"], buttons["chat"], view]

    @for_viewers
    async def follow_run(run_id: str, price_per_hour: float | None, lang_choice: str, request: gr.Request):
        """Stream the watched run's live view: one update now, then one every POLL_SECONDS until the run ends.

        One long event instead of a timer: the browser handles one message per update rather than a whole
        event's round of status messages, each of which walks the page. A newer follower of the same page
        (another run watched, the language or price changed) takes over, and this one ends. Every follower
        starts as a fresh attach of its own (the whole run drawn once), never from what another follower of the
        page drew: two of them overlap for a moment, and the page must end up drawn whichever answered last."""
        if not run_id:  # nothing to watch: a page load queued behind Start must not end Start's follower
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
                    if done and not seen.resend_charts:  # the final state is drawn (and, after an attach, re-sent)
                        return
                elif time.monotonic() - missing_since > MISSING_RUN_SECONDS:  # deleted, or never made
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

    def on_stop(run_id: str, lang_choice: str, request: gr.Request):
        lang = lang_code(lang_choice)
        refuse_viewer(ctx, request, lang)
        if run_id and jobs.request_stop(ctx.workspace.runs_dir / run_id):
            return t("train.stopping", lang, run=run_id)
        return t("train.not_active", lang, run=run_id) if run_id else gr.skip()

    def on_kill_ask(run_id: str, lang_choice: str, request: gr.Request):
        refuse_viewer(ctx, request, lang_code(lang_choice))
        if not run_id:
            return gr.skip(), gr.skip()
        return gr.update(visible=True), t("train.kill_confirm", lang_code(lang_choice), run=run_id)

    def on_kill(run_id: str, lang_choice: str, request: gr.Request):
        lang = lang_code(lang_choice)
        refuse_viewer(ctx, request, lang)
        if run_id and jobs.kill_run(ctx.workspace.runs_dir / run_id):
            return gr.update(visible=False), t("train.killed", lang, run=run_id)
        return gr.update(visible=False), t("train.not_active", lang, run=run_id)

    def on_resume(run_id: str, lang_choice: str, request: gr.Request):
        lang = lang_code(lang_choice)
        refuse_viewer(ctx, request, lang)
        if not run_id:
            return gr.skip(), gr.skip()
        try:
            run_dir = jobs.resume_run(ctx.workspace, ctx.workspace.runs_dir / run_id)  # the same folder, queued again
        except (jobs.ResumeError, ValueError, OSError) as error:  # why not (running, completed, no checkpoint)
            return t("train.cannot_resume", lang, run=run_id, reason=str(error)), gr.skip()
        return t("train.resumed", lang, run=run_dir.name), run_dir.name

    follow = {"fn": follow_run, "inputs": [watched, price, ctx.language], "outputs": view_outputs,
              "show_progress": "hidden", "api_visibility": "private", "concurrency_limit": None}
    # the same run in another language or at another price: follow it afresh
    ctx.language.change(**follow)
    ctx.language.change(on_language, [watched, ctx.language], [message], show_progress="hidden")
    price.change(**follow, trigger_mode="always_last")
    buttons["stop"].click(on_stop, [watched, ctx.language], [message], api_name="stop")
    buttons["kill"].click(on_kill_ask, [watched, ctx.language], [kill_confirm, kill_question])
    kill_yes.click(on_kill, [watched, ctx.language], [kill_confirm, message], api_name="kill")
    kill_no.click(lambda: gr.update(visible=False), None, [kill_confirm])
    # every event that gives the monitor a run to watch (Start, Resume, Watch in Runs, a page load that
    # re-attaches) starts a follower after it: .then(**follow)
    buttons["resume"].click(on_resume, [watched, ctx.language], [message, watched], api_name="resume").then(**follow)
    return {"message": message, "progress": progress, "loss_chart": loss_chart, "log": log, "follow": follow}
