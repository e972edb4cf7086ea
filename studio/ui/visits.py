"""A tab's refresh on a visit that costs the page nothing when nothing changed.

A server event costs the browser's main thread 0.02-0.04 s (the queue's messages, the status bookkeeping) even
when its answer changes nothing, and a tab that refreshes on its selection pays that at every switch. With
`refresh_on_visit`, a visit is a js-only step that asks the server, in one plain HTTP request outside Gradio's
queue, for the fingerprint of what the refresh would send now, and starts the refresh (an event, as before) only
when that differs from the fingerprint of what this page last got. Whatever the refresh reads (runs started from
the command line, a finished export, the language) changes its answer and so its fingerprint; when the request
fails, the refresh runs.

The fingerprint is asked of a handler with the refresh's own inputs, under `<name>_fingerprint` (`/gradio_api/run/…`,
where Gradio checks the login as for any event, and the viewer gate checks the mark); it computes the refresh's
answer and sends its hash, so the server does the refresh's reading twice when something changed, and the page
draws nothing twice."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import gradio as gr

from studio.ui.context import UIContext, takes_like

# The js step's inputs are the refresh's inputs, then what this page last got and the last ask. It answers the
# ask unchanged (no event) when the fingerprint is the same, else a new one, whose change starts the refresh.
VISIT_JS = """async (...values) => {
  const [asked, shown] = values.splice(-2);
  const config = window.gradio_config || {};
  const url = `${config.root || ''}${config.api_prefix || '/gradio_api'}/run/%s`;
  try {
    const answer = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                     body: JSON.stringify({data: values})});
    const fingerprint = answer.ok ? (await answer.json()).data[0] : null;
    if (fingerprint && fingerprint === shown) return asked;
  } catch (error) {}
  return `${Date.now()}-${Math.random()}`;
}"""


@dataclass
class TabRefresh:
    """What a tab brings up to date on a visit: `handler` from `inputs` to `outputs` (with the `event` keywords),
    and as a page opens `opening` from `opening_inputs` (the same when None); `then`, the keywords of a step
    chained after a visit's refresh."""

    handler: Callable
    inputs: list
    outputs: list
    event: dict = field(default_factory=dict)
    opening: Callable | None = None
    opening_inputs: list | None = None
    then: dict | None = None


def refresh_on_visit(ctx: UIContext, app: gr.Blocks, tab: gr.Tab, name: str, refresh: TabRefresh) -> Callable:
    """Wire `refresh` to `app`'s load and `tab`'s selection; a visit runs the refresh only when what it would send
    differs from what this page last got from it. Returns `recording` and `shown`, for another event that sets the
    same outputs: give it `recording(handler)` and the outputs `[*refresh.outputs, shown]`, so that a visit right
    after it sends nothing again."""
    shown = gr.Textbox("", visible=False)  # the fingerprint of what this page last got
    asked = gr.Textbox("", visible=False)  # changed by a visit that found something new
    ctx.shared.setdefault("unseen", []).extend([shown, asked])
    count = len(refresh.outputs)
    endpoint = gr.Button(visible=False)  # never shown nor clicked: the fingerprint's endpoint hangs on it
    endpoint.click(fingerprint_handler(refresh.handler, count), refresh.inputs, [shown], queue=False,
                   api_name=f"{name}_fingerprint", api_visibility="undocumented")
    visited = asked.change(recording_handler(refresh.handler, count), refresh.inputs, [*refresh.outputs, shown], **refresh.event)
    if refresh.then:
        visited.then(**refresh.then)
    tab.select(None, [*refresh.inputs, asked, shown], [asked], js=VISIT_JS % f"{name}_fingerprint")
    opening_inputs = refresh.inputs if refresh.opening_inputs is None else refresh.opening_inputs
    app.load(recording_handler(refresh.opening or refresh.handler, count), opening_inputs, [*refresh.outputs, shown], **refresh.event)
    return partial(recording_handler, outputs=count), shown


def recording_handler(handler, outputs: int):
    """`handler`, answering one more output: the fingerprint of its answer."""

    def recording(*args, **kwargs):
        answer = as_list(handler(*args, **kwargs), outputs)
        return [*answer, fingerprint(answer)]

    return takes_like(recording, handler)


def fingerprint_handler(handler, outputs: int):
    """`handler`, answering only the fingerprint of its answer."""

    def fingerprint_only(*args, **kwargs):
        return fingerprint(as_list(handler(*args, **kwargs), outputs))

    return takes_like(fingerprint_only, handler)


def as_list(answer, outputs: int) -> list:
    """A handler's answer as one value per output (one update alone, such as gr.skip(), stands for each)."""
    if outputs == 1:
        return [answer]
    return list(answer) if isinstance(answer, (list, tuple)) else [answer] * outputs


def fingerprint(answer: list) -> str:
    """A hash of everything `answer` would send; a value it cannot read exactly gets a hash of its own, so the
    refresh runs (a refresh too many costs a redraw, one too few would show stale data)."""
    return hashlib.sha256(json.dumps(plain(answer), sort_keys=True).encode()).hexdigest()[:24]


def plain(value):
    """`value` as JSON-able data that tells apart any two values the page would show differently."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, gr.blocks.Block):  # an update written as a component: gr.Timer(active=False)
        return {"__block__": type(value).__name__, **plain(value.constructor_args)}
    to_json = getattr(value, "to_json", None)  # a pandas table
    if callable(to_json):
        return {"__table__": to_json(orient="split", date_format="iso")}
    return {"__unread__": secrets.token_hex(8)}
