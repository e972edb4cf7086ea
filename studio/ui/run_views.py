"""The live view's parts as HTML: the progress line with its phase bar and cost, the memory advice of a run
that ran out of GPU memory, the log tail with error lines in red, the probe answers and the system readings.
The Train tab's monitor (studio/ui/monitor.py) and the Runs page draw them."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from studio.fit import change_text
from studio.run_library import Series, duration_of
from studio.train.status import FINAL_STATES, PROGRESS_PHASES
from studio.ui.locales import t
from studio.workspace import ESTIMATE_FILE

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
        for step, (answer, seconds, rewards) in sorted(probe["answers"].items()):
            label = t("probe.base", lang) if step == 0 else str(step)
            took = f"<span style='color:#9ca3af'> · {seconds:.1f} s</span>" if isinstance(seconds, (int, float)) else ""
            if rewards:  # a GRPO run: why its rewards move, answer by answer
                scores = ", ".join(f"{name} {'–' if score is None else f'{score:.2f}'}" for name, score in rewards.items())
                took += f"<div class='probe-rewards' style='color:#059669;font-size:0.9em'>{html.escape(scores)}</div>"
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
