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
from pathlib import Path

import gradio as gr

from gradio.helpers import special_args

from studio.ui.context import UIContext, bind, for_viewers, takes_like, viewer_may_call

# The js step's inputs are the refresh's inputs, then what this page last got and the last ask. It answers the
# ask unchanged (no event) when the fingerprint is the same, else a new one, whose change starts the refresh.
VISIT_JS = """async (...values) => {
  const [asked, shown] = values.splice(-2);
  const config = window.gradio_config || {};
  // the page's own origin, as Gradio's page does: behind a proxy the configured root may name another host
  const root = new URL(config.root || '/', location.href).pathname.replace(/\\/$/, '');
  const url = `${root}${config.api_prefix || '/gradio_api'}/run/%s`;
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


@dataclass
class VisitWiring:
    """What `refresh_on_visit` made: `shown`, the box holding the fingerprint of what the page last got; `event`,
    the keywords every event of this refresh runs with (its concurrency group); `outputs`, the refresh's."""

    shown: gr.Textbox
    event: dict
    outputs: list

    def recording(self, handler):
        """`handler`, for another event that sets the refresh's outputs (with the outputs `[*outputs, shown]` and
        the keywords `event`), so that a visit right after it sends nothing again."""
        return recording_handler(handler, len(self.outputs), self.shown)


def refresh_on_visit(ctx: UIContext, app: gr.Blocks, tab: gr.Tab, name: str, refresh: TabRefresh) -> VisitWiring:
    """Wire `refresh` to `app`'s load and `tab`'s selection; a visit runs the refresh only when what it would send
    differs from what this page last got from it. Call `forget_after_other_writers` once the page's events are
    all made: an event that sets the same outputs otherwise leaves the fingerprint of what it replaced."""
    shown = gr.Textbox("", visible=False)  # the fingerprint of what this page last got
    asked = gr.Textbox("", visible=False)  # changed by a visit that found something new
    ctx.shared.setdefault("unseen", []).extend([shown, asked])
    # the refresh's events answer in turn with each other and with those of its handler itself (a Refresh button):
    # Gradio's concurrency group of an event is its handler's id unless it is given one
    wiring = VisitWiring(shown, {"concurrency_id": str(id(refresh.handler)), **refresh.event}, refresh.outputs)
    ctx.shared.setdefault("visits", []).append(wiring)
    count = len(refresh.outputs)
    endpoint = gr.Button(visible=False)  # never shown nor clicked: the fingerprint's endpoint hangs on it
    endpoint.click(fingerprint_handler(refresh.handler, count), refresh.inputs, [shown], queue=False,
                   api_name=f"{name}_fingerprint", api_visibility="undocumented")
    visited = asked.change(wiring.recording(refresh.handler), refresh.inputs, [*refresh.outputs, shown], **wiring.event)
    if refresh.then:
        visited.then(**refresh.then)
    tab.select(None, [*refresh.inputs, asked, shown], [asked], js=VISIT_JS % f"{name}_fingerprint")
    opening_inputs = refresh.inputs if refresh.opening_inputs is None else refresh.opening_inputs
    opening = recording_handler(refresh.opening or refresh.handler, count, shown, timers_left_off=True)
    queue = {key: value for key, value in refresh.event.items() if key.startswith("concurrency_")}
    ctx.shared.setdefault("openings", []).append(Opening(opening, opening_inputs, [*refresh.outputs, shown], queue))
    return wiring


@dataclass
class Opening:
    """One visit's part of the page's opening: `handler` answers `outputs` (the fingerprint box last) from `inputs`;
    `queue`, the concurrency keywords its refresh asked for (none: its own)."""

    handler: Callable
    inputs: list
    outputs: list
    queue: dict


def open_visits(ctx: UIContext, app: gr.Blocks) -> None:
    """Bring every visit's tab up to date as the page opens, in one server event for them all (each event costs
    the browser 0.02 s of its opening, whatever it changes). Call it inside `app` after the last
    `refresh_on_visit`. The event answers in the queue a refresh asked for (the Export tab's, where a pick made
    before the opening answered is answered after it); a refresh a visit starts before it answers reads the same
    runs, so either answer shows the same. A viewer gets nothing from an opening that is not for viewers."""
    openings = ctx.shared.get("openings", [])
    outputs = [block for opening in openings for block in opening.outputs]
    assert len({block._id for block in outputs}) == len(outputs), "two visits refresh the same component"
    queues = [opening.queue for opening in openings if opening.queue]
    assert all(queue == queues[0] for queue in queues), "the visits' openings ask for different queues"

    opened = bind(on_page_open, ctx, openings)
    opened.records_into = frozenset().union(*(records_into(opening.handler) for opening in openings))
    app.load(opened, [block for opening in openings for block in opening.inputs], outputs,
             show_progress="hidden", api_visibility="undocumented",
             **(queues[0] if queues else {"concurrency_id": "visit-openings", "concurrency_limit": None}))


@for_viewers
def on_page_open(ctx: UIContext, openings: list[Opening], request: gr.Request, *values):
    """What each of `openings` answers now, one after the other, from its share of `values` (a viewer gets no
    change from one that is not for viewers)."""
    answer, at = [], 0
    for opening in openings:
        given, at = list(values[at:at + len(opening.inputs)]), at + len(opening.inputs)
        if ctx.is_viewer(request) and not viewer_may_call(opening.handler):
            answer += [gr.skip()] * len(opening.outputs)
            continue
        arguments = special_args(opening.handler, given, request)[0]
        answer += as_list(opening.handler(*arguments), len(opening.outputs))
    return answer


def records_into(handler) -> frozenset:
    """The fingerprint boxes `handler` fills with the fingerprint of what it answers (none for most handlers)."""
    return getattr(handler, "records_into", frozenset())


def forget_after_other_writers(ctx: UIContext, app: gr.Blocks) -> None:
    """After every event of `app` that sets an output of a visit's refresh without recording what it sent (a
    Refresh button, a pick, an export's poll, Serve and Stop), a js-only step empties the visit's fingerprint, so
    the next visit brings the tab up to date again. Call it inside `app`, once its events are all made."""
    visits = [(wiring, {block._id for block in wiring.outputs}) for wiring in ctx.shared.get("visits", [])]
    for function in list(app.fns.values()):
        written = {block._id for block in function.outputs}
        for wiring, outputs in visits:
            if written & outputs and wiring.shown._id not in records_into(function.fn):
                gr.events.EventListener("then", trigger_after=function._id, trigger_only_on_success=False,
                                        trigger_only_on_failure=False, has_trigger=False).listener(
                    app, None, None, [wiring.shown], js="() => ''")


def recording_handler(handler, outputs: int, shown: gr.Textbox, timers_left_off: bool = False):
    """`handler`, answering one more output, the fingerprint of its answer, for the box `shown`. With
    `timers_left_off` (a page's opening), a timer it would start is left as it is: a tab made but never visited
    must not poll; the first visit finds the answer changed and starts it."""

    def recording(*args, **kwargs):
        answer = as_list(handler(*args, **kwargs), outputs)
        if timers_left_off:
            answer = [gr.skip() if starts_a_timer(value) else value for value in answer]
        return [*answer, fingerprint(answer)]

    takes_like(recording, handler)
    recording.records_into = frozenset([shown._id])
    return recording


def starts_a_timer(value) -> bool:
    """True for an answer that turns a gr.Timer on."""
    return isinstance(value, gr.Timer) and value.constructor_args.get("active") is True


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
