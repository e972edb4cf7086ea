"""What the Data tab draws: rows as chat bubbles, the loss mask as coloured tokens, the token-length histogram.
Plain HTML strings and a Plotly figure; the tab (studio/ui/data_tab.py) puts them on the page."""

from __future__ import annotations

import html
from typing import Any

ROLE_STYLE = {
    "system": ("#f3f4f6", "#374151", "flex-start"),
    "user": ("#dbeafe", "#1e3a8a", "flex-start"),
    "assistant": ("#dcfce7", "#14532d", "flex-end"),
    "tool": ("#fef3c7", "#78350f", "flex-start"),
}
TRAINED_STYLE = "background:#bbf7d0;color:#14532d;"
MASKED_STYLE = "background:#e5e7eb;color:#6b7280;"


def _bubble(role: str, content: str, note: str = "") -> str:
    background, colour, side = ROLE_STYLE.get(role, ROLE_STYLE["system"])
    return (f'<div style="display:flex;justify-content:{side};margin:2px 0">'
            f'<div style="max-width:80%;background:{background};color:{colour};border-radius:10px;padding:4px 10px;'
            f'white-space:pre-wrap"><b style="font-size:11px">{html.escape(role)}{html.escape(note)}</b><br>'
            f"{html.escape(content)}</div></div>")


def _row_bubbles(row: dict[str, Any]) -> str:
    if "text" in row:
        return f'<div style="white-space:pre-wrap;background:#f9fafb;padding:4px 10px">{html.escape(row["text"])}</div>'
    parts = []
    messages = row.get("messages") or row.get("prompt", [])
    parts += [_bubble(m["role"], m["content"], " (weight 0: not trained)" if m.get("weight") == 0 else "") for m in messages]
    if "chosen" in row:
        parts += [_bubble("assistant", m["content"], " ✓ chosen") for m in row["chosen"]]
        parts += [_bubble("assistant", m["content"], " ✗ rejected") for m in row["rejected"]]
    if "completion" in row:
        mark = " ✓ desirable" if row["label"] else " ✗ undesirable"
        parts += [_bubble("assistant", m["content"], mark) for m in row["completion"]]
    for column, value in (row.get("columns") or {}).items():  # a prompt-only row's references, for the rewards
        parts.append(f'<div style="font-size:11px;color:#6b7280;white-space:pre-wrap">{html.escape(column)}: '
                     f'{html.escape(value[:500])}</div>')
    if row.get("tools"):
        names = ", ".join(str(t.get("function", t).get("name", "?")) for t in row["tools"] if isinstance(t, dict))
        parts.append(f'<div style="font-size:11px;color:#6b7280">tools: {html.escape(names)}</div>')
    return "".join(parts)


def bubbles_html(rows: list) -> str:
    """Preview rows (studio.data.preview.PreviewRow) as chat bubbles, each headed by where it is in the file;
    a row that cannot be used shows its problem instead."""
    blocks = []
    for row in rows:
        body = (f'<div style="color:#b91c1c">✗ {html.escape(row.error)}</div>' if row.error else _row_bubbles(row.row))
        blocks.append(f'<div class="data-row" style="border-bottom:1px solid #e5e7eb;padding:6px 0">'
                      f'<div style="font-size:11px;color:#6b7280">{html.escape(row.location)}</div>{body}</div>')
    return "".join(blocks) or "<p>—</p>"


def mask_html(pieces: list[tuple[str, bool]], legend: str) -> str:
    """Every token of the rendered conversation, green where trained on and grey where masked."""
    spans = []
    for text, trained in pieces:
        style = TRAINED_STYLE if trained else MASKED_STYLE
        spans.append(f'<span class="{"tok-trained" if trained else "tok-masked"}" style="{style}border-radius:3px;'
                     f'margin:0 1px;white-space:pre-wrap">{html.escape(text)}</span>')
    return (f'<p style="font-size:12px">{html.escape(legend)}</p>'
            f'<div id="mask-tokens" style="font-family:monospace;line-height:1.9">{"".join(spans)}</div>')


def length_histogram(lengths: list[int], cutoff: int, labels: dict[str, str]):
    """A Plotly histogram of tokens per row with the cutoff drawn as a red line."""
    import plotly.graph_objects as go

    figure = go.Figure(go.Histogram(x=lengths, nbinsx=60, marker_color="#60a5fa", name=labels["y"]))
    figure.add_vline(x=cutoff, line_color="#dc2626", line_width=2, annotation_text=f"{labels['cutoff']} {cutoff}")
    figure.update_layout(xaxis_title=labels["x"], yaxis_title=labels["y"], height=300, margin={"l": 40, "r": 10, "t": 30, "b": 40},
                         showlegend=False)
    return figure


def duration_text(seconds: float | None) -> str:
    """Seconds as a short human duration (`about 3 min`), or `?`."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"
