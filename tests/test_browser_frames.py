"""Gradio's leftover animation loops cost an idle page nothing, and a shown progress still counts its seconds."""

from __future__ import annotations

import json
import re
import time

import gradio as gr
import pytest
from conftest import chromium_page, free_port, running_studio

from studio.ui.frame_throttle import frame_throttle

pytestmark = pytest.mark.browser


def _frames_drawn(page, seconds: float) -> int:
    """How many animation frames the page's main thread ran in the next `seconds` (from Chrome's own trace)."""
    browser = page.context.browser
    browser.start_tracing(page=page, categories=["devtools.timeline"])
    page.wait_for_timeout(int(seconds * 1000))
    events = json.loads(browser.stop_tracing())["traceEvents"]
    return sum(1 for event in events if event.get("name") == "FireAnimationFrame")


def test_a_settled_studio_page_draws_no_frame(tmp_path):
    """Gradio removes its "Loading…" tracker while it still counts seconds, and the count went on in a frame
    every 250 ms for as long as the page stayed open; now it waits, drawing nothing, while no progress shows.
    The loader's own spring settles in some seconds after the page opens: one of five 3-second windows counts."""
    with running_studio(tmp_path) as url, chromium_page(url) as page:
        page.wait_for_selector("body[data-every-tab-made]", state="attached", timeout=30_000)
        page.get_by_role("tab", name="3 · Train").click()
        windows = []
        while len(windows) < 5 and 0 not in windows:
            windows.append(_frames_drawn(page, 3))
        assert 0 in windows, f"animation frames drawn in each 3 s of an idle page: {windows}"


def test_a_shown_progress_still_counts_its_seconds():
    """While an event runs, its tracker's seconds go up as they did without the throttle."""
    with gr.Blocks() as demo:
        button = gr.Button("Wait")
        answer = gr.Textbox(label="answer")
        button.click(lambda: time.sleep(4) or "done", None, answer, show_progress="full")
        demo.load(None, js="() => { document.body.dataset.wired = 'yes'; }")  # the page's events are wired
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True,
                app_kwargs={"middleware": [frame_throttle()]})
    try:
        with chromium_page(f"http://127.0.0.1:{port}/", ready="body[data-wired]") as page:
            page.click("button")
            seconds = page.locator(".progress-text")
            seconds.wait_for(timeout=10_000)
            page.wait_for_timeout(800)
            first = float(re.search(r"([\d.]+)s", seconds.inner_text()).group(1))
            page.wait_for_timeout(1500)
            later = float(re.search(r"([\d.]+)s", seconds.inner_text()).group(1))
            assert later - first >= 1.0, (first, later)
    finally:
        demo.close()
