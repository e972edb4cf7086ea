"""What a read-only viewer login may ask the server for, enforced before Gradio sees the request.

`viewer_gate(viewers)` returns the middleware to pass to `launch(app_kwargs={"middleware": ...})`. For a
request whose login cookie names a viewer, it answers 403 to:
- every upload (`POST /gradio_api/upload`) and every other write except the event calls below and the
  queue's own cancel and reset;
- Gradio's file routes (`/gradio_api/file=…`, `/gradio_api/proxy=…`, streamed media) and its monitoring
  and history pages, so nothing the operator uploaded or the studio wrote can be fetched;
- every event call (`queue/join`, `call/…`, `run/…`, `api/…`) of a handler not marked `for_viewers`,
  before its inputs are parsed.
Everything else (the page, its assets and config, the queue's stream of answers) passes unchanged, and
requests of the operator or of a studio without viewers are never touched."""

from __future__ import annotations

import json
import re

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from studio.ui.context import viewer_may_call

REFUSED = (
    "Refused: this is a read-only viewer login. It can watch runs, charts and probe answers, but it cannot "
    "upload files, download files or call this part of the studio. Ask the operator."
)
# Gradio's routes that hand out files or another page's data, refused for a viewer whatever the method
FILE_ROUTES = (
    "/gradio_api/file=", "/gradio_api/file/", "/gradio_api/proxy=", "/gradio_api/stream/",
    "/gradio_api/run-history", "/gradio_api/profiling", "/gradio_api/vibe", "/monitoring",
)
EVENT_CALL = re.compile(r"^/gradio_api/(?:queue/join|(?:run|api|call|call/v2)/(?P<api_name>[^/]+))$")
QUEUE_PLUMBING = {"/gradio_api/cancel", "/gradio_api/reset", "/login"}
MAX_VIEWER_BODY = 64 * 1024  # a viewer's handlers take run names and a language: a few hundred bytes


def viewer_gate(viewers: frozenset[str] | set[str] | list[str]) -> list[Middleware]:
    """The middleware list to give the Gradio app: empty when there is no viewer login."""
    return [Middleware(ViewerGate, viewers=frozenset(viewers))] if viewers else []


class ViewerGate:
    """ASGI middleware: refuses a viewer's requests for uploads, files and handlers not marked for viewers."""

    def __init__(self, app, viewers: frozenset[str]):
        self.app = app
        self.viewers = viewers

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or login_of(scope) not in self.viewers:
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/") or "/"
        method = scope["method"]
        if path.startswith(FILE_ROUTES):
            return await refuse(scope, receive, send)
        if method in ("GET", "HEAD", "OPTIONS") or path in QUEUE_PLUMBING:
            return await self.app(scope, receive, send)
        call = EVENT_CALL.match(path)
        if not call:
            return await refuse(scope, receive, send)
        body = await read_body(receive, MAX_VIEWER_BODY)
        if body is None:
            return await JSONResponse({"detail": f"Refused: a viewer's request is limited to {MAX_VIEWER_BODY} bytes."}, 413)(scope, receive, send)
        if not may_call(scope["app"].get_blocks(), call["api_name"], body):
            return await refuse(scope, receive, send)
        return await self.app(scope, replay(body, receive), send)


def login_of(scope) -> str | None:
    """The user name the request's Gradio login cookie stands for, or None when not logged in; read exactly
    as Gradio reads it (routes.get_current_user), so no cookie can mean a viewer to Gradio but not here."""
    server = scope["app"]
    cookies = Request(scope).cookies
    token = cookies.get(f"access-token-{server.cookie_id}") or cookies.get(f"access-token-unsecure-{server.cookie_id}")
    return server.tokens.get(token)


def may_call(blocks, api_name: str | None, body: bytes) -> bool:
    """True when every handler the request could name (by `fn_index` in the body, by name in the path)
    is marked for viewers. Gradio lets a body's `fn_index` override the name in a `run/` path."""
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    index = payload.get("fn_index") if isinstance(payload, dict) else None
    if index is not None and (type(index) is not int or index not in blocks.fns):
        return False
    named = [blocks.fns[index]] if index is not None else []
    if api_name is not None:
        by_name = [fn for fn in blocks.fns.values() if fn.api_name == api_name]
        if not by_name:
            return False
        named += by_name
    return bool(named) and all(viewer_may_call(fn.fn) for fn in named)


async def read_body(receive, limit: int) -> bytes | None:
    """The whole request body, or None when it is longer than `limit` bytes or the client went away."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def replay(body: bytes, receive):
    """A `receive` that hands Gradio the body already read, then whatever the client sends next."""
    sent = False

    async def replayed():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def refuse(scope, receive, send) -> None:
    await JSONResponse({"detail": REFUSED}, status_code=403)(scope, receive, send)
