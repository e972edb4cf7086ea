"""What every tab builder receives: the workspace, the localizer, the language selector, shared components,
and who may change things (a read-only viewer login may only watch)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from studio import config as cfg
from studio.layering import layered_config
from studio.ui.locales import Localizer, t
from studio.workspace import Workspace


@dataclass
class LoadedChat:
    """The one model loaded for chatting (shared by all browser sessions; one at a time)."""

    model: Any = None
    run_id: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while a model is loaded or answers
    stop: threading.Event = field(default_factory=threading.Event)  # set to end the reply being written


@dataclass
class UIContext:
    workspace: Workspace
    localizer: Localizer = field(default_factory=Localizer)
    language: Any = None  # the language selector; an input to handlers that produce text
    shared: dict[str, Any] = field(default_factory=dict)  # components other tabs read, by name
    chat: LoadedChat = field(default_factory=LoadedChat)
    initial: cfg.RunConfig = field(default_factory=lambda: initial_config())
    viewers: frozenset[str] = frozenset()  # logins that may watch but not change anything
    operator_only: list[Any] = field(default_factory=list)  # components hidden from a viewer on page load

    def is_viewer(self, request: gr.Request | None) -> bool:
        """True when the request comes from a read-only viewer login."""
        return request is not None and getattr(request, "username", None) in self.viewers


def refuse_viewer(ctx: UIContext, request: gr.Request | None, lang: str = "en") -> None:
    """Raise gr.Error when a read-only viewer calls a handler that changes something.

    Every mutating handler calls this first: hiding its button is not enough, because any handler can be
    called over Gradio's HTTP API."""
    if ctx.is_viewer(request):
        raise gr.Error(t("viewer.refused", lang), print_exception=False)


def for_viewers(handler):
    """Mark `handler` as one a read-only viewer may call, and return it.

    Only handlers that read what a viewer is meant to watch (run lists, a run's status, charts and probe
    answers, the page's own labels) and change nothing get this mark: the server refuses a viewer's call of
    any other handler before it runs (studio.ui.viewer_gate). README "Sharing with a read-only viewer" lists
    them."""
    handler.for_viewers = True
    return handler


def viewer_may_call(handler) -> bool:
    """True when `handler` carries the for_viewers mark."""
    return getattr(handler, "for_viewers", False) is True


def in_turn(queue: str) -> dict[str, Any]:
    """The event keywords that put an event in `queue`, where the server answers one event at a time in the order
    they were sent (Gradio's queue is first in, first out within one concurrency id). Events that set the same
    components share a queue, so a page load's answer, sent first, can never land after a user's later one."""
    return {"concurrency_id": queue, "concurrency_limit": 1}


def top_copy(ctx: UIContext, source: gr.components.Component, copy: gr.components.Component, blank: str = "''"):
    """`copy`, a hidden component kept equal to `source` (`blank`, a JS literal, when it is empty) by a js-only step
    at each change, and moved to the top of the page when the page is built (ui.hoist_unseen). A refresh that reads
    the copy adds no lookup deep in the page to every later status message of any event: the browser tracks every
    input of an event that reached the server, and no js-only step's. Returns `copy`."""
    ctx.shared.setdefault("unseen", []).append(copy)
    # a js step's array is its list of outputs: the value goes in one of its own (a list of picks stays one value)
    source.change(None, [source], [copy], js=f"(value) => [value ?? {blank}]")
    return copy


def operator_view(ctx: UIContext, handler):
    """`handler` wrapped for an event that also fires on a viewer's page (a page load, a tab's selection):
    the operator gets `handler`'s answer; a viewer gets no change to any component and nothing is read."""

    def for_operator(request: gr.Request, *values):  # the request first: Gradio fills only positional ones
        return gr.skip() if ctx.is_viewer(request) else handler(*values)

    # Gradio names the endpoint after the function; the README lists it by module and name
    for_operator.__name__ = for_operator.__qualname__ = handler.__name__
    for_operator.__module__ = handler.__module__
    for_operator.operator_view = True
    return for_viewers(for_operator)


def initial_config() -> cfg.RunConfig:
    """The values the controls start with: what the layering policy gives with nothing chosen (the defaults
    plus the catalog's recommendations for the default model)."""
    return layered_config()
