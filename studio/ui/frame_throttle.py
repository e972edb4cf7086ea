"""A work-around for Gradio's page: animation loops that never stop after the "Loading…" screen is gone.

Gradio's status tracker counts a pending event's seconds in a requestAnimationFrame loop, and its loader
logo springs in a loop of its own; both go on after the tracker is removed while still pending. The app's own
"Loading…" screen is removed that way on every page load, so an idle studio page ran a frame of work up to
60 times a second for as long as it stayed open: most of an idle tab's CPU. Gradio's modules keep their own
reference to requestAnimationFrame when they are first evaluated, so the fix must run before any of them:
`frame_throttle()` returns an ASGI middleware that puts a small script at the top of every HTML page's
<head>. The script recognises those two kinds of callbacks by their code. The seconds counter (short, reading
`performance.now()` in seconds) only matters while a tracker shows its seconds (a `.progress-text` on the
page): then it runs 4 times a second, still enough for the tenths; with none on the page it waits, looking
again twice a second with no frame drawn, so a leftover loop costs an idle page nothing measurable. Svelte's
spring and tween runner (it walks `.tasks`) runs 15 times a second, which a loader logo or a sliding toast
still shows smoothly enough. Every other animation frame (Plotly's zoom and drag, transitions) is untouched,
and a Gradio whose code no longer matches is simply not throttled.
"""

from __future__ import annotations

from starlette.middleware import Middleware

SCRIPT = b"""<script>
(() => {
  const frame = window.requestAnimationFrame.bind(window);
  const shownSeconds = document.getElementsByClassName("progress-text");  // live: kept up to date by the browser
  window.requestAnimationFrame = (callback) => {
    const code = Function.prototype.toString.call(callback);
    if (code.length < 200 && code.includes("performance.now()-") && code.includes("/1e3")) {
      const whenShown = () => shownSeconds.length ? frame(callback) : setTimeout(whenShown, 500);
      return setTimeout(whenShown, 250);
    }
    if (code.length < 200 && code.includes(".tasks.forEach(")) {
      return setTimeout(() => frame(callback), 66);
    }
    return frame(callback);
  };
})();
</script>"""
MAX_PAGE = 16 * 1024 * 1024  # an HTML answer larger than this passes unchanged


def frame_throttle() -> Middleware:
    """The middleware to add to the Gradio app (`launch(app_kwargs={"middleware": [...]})`)."""
    return Middleware(FrameThrottle)


def with_script(page: bytes) -> bytes:
    """`page` with SCRIPT as the first thing in its <head> (unchanged when it has no <head>)."""
    at = page.find(b"<head>")
    if at < 0:
        return page
    at += len(b"<head>")
    return page[:at] + SCRIPT + page[at:]


class FrameThrottle:
    """ASGI middleware: adds SCRIPT to the HTML pages the app answers to GET; everything else passes through."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        start: dict | None = None
        chunks: list[bytes] = []

        async def send_with_script(message):
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                is_html = headers.get(b"content-type", b"").startswith(b"text/html")
                plain = b"content-encoding" not in headers
                if is_html and plain:
                    start = message  # held until the whole page is here
                    return
                return await send(message)
            if start is None or message["type"] != "http.response.body":
                return await send(message)
            chunks.append(message.get("body", b""))
            size = sum(len(c) for c in chunks)
            if message.get("more_body") and size <= MAX_PAGE:
                return
            page = b"".join(chunks)
            if not message.get("more_body"):
                page = with_script(page)
            headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
            if not message.get("more_body"):
                headers.append((b"content-length", str(len(page)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page, "more_body": bool(message.get("more_body"))})
            chunks.clear()
            start = None

        return await self.app(scope, receive, send_with_script)
