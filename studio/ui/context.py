"""What every tab builder receives: the workspace, the localizer, the language selector, shared components,
and who may change things (a read-only viewer login may only watch)."""

from __future__ import annotations

import inspect
import threading
import typing
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


def named_after(wrapper, handler) -> None:
    """Give `wrapper` the name, module and docstring of the `handler` it calls: Gradio names the API endpoint
    after the function, and README's viewer table lists handlers by module and name."""
    wrapper.__name__, wrapper.__qualname__, wrapper.__module__, wrapper.__doc__ = (
        handler.__name__, handler.__qualname__, handler.__module__, handler.__doc__)


def bind(handler, *leading):
    """`handler`, a module-level function, with its first `len(leading)` arguments given (the UIContext, a tab's
    components): a plain function that Gradio reads as it reads `handler`: the same name and module (the API
    endpoint and README's viewer table go by them), the remaining parameters with their types (a `gr.Request`
    parameter is filled by Gradio), a generator (async or not) staying one, and the `for_viewers` mark.

    An event's handler object is its concurrency group: bind a handler once per page and give that one object to
    every event that shares it, as the same closure was before."""
    if inspect.isasyncgenfunction(handler):
        async def bound(*args, **kwargs):
            answers = handler(*leading, *args, **kwargs)
            try:
                async for answer in answers:
                    yield answer
            finally:  # a follower Gradio stops must run its own cleanup now, not when it is collected
                await answers.aclose()
    elif inspect.isgeneratorfunction(handler):
        def bound(*args, **kwargs):
            return (yield from handler(*leading, *args, **kwargs))
    elif inspect.iscoroutinefunction(handler):
        async def bound(*args, **kwargs):
            return await handler(*leading, *args, **kwargs)
    else:
        def bound(*args, **kwargs):
            return handler(*leading, *args, **kwargs)
    return takes_like(bound, handler, given=len(leading))


def takes_like(wrapper, handler, given: int = 0):
    """`wrapper`, which calls `handler` with its first `given` arguments given, made to read to Gradio as `handler`
    does: the same name and module, the remaining parameters with their types (a `gr.Request` parameter is
    filled by Gradio) and the `for_viewers` mark. Returns `wrapper`."""
    signature = inspect.signature(handler)
    parameters = list(signature.parameters.values())[given:]
    wrapper.__signature__ = signature.replace(parameters=parameters)
    # resolved here, in the handler's module: Gradio reads the types to fill a gr.Request parameter
    kept = {parameter.name for parameter in parameters} | {"return"}
    wrapper.__annotations__ = {name: hint for name, hint in typing.get_type_hints(handler).items() if name in kept}
    named_after(wrapper, handler)
    if viewer_may_call(handler):
        for_viewers(wrapper)
    return wrapper


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

    named_after(for_operator, handler)
    for_operator.operator_view = True
    return for_viewers(for_operator)


def initial_config() -> cfg.RunConfig:
    """The values the controls start with: what the layering policy gives with nothing chosen (the defaults
    plus the catalog's recommendations for the default model)."""
    return layered_config()
