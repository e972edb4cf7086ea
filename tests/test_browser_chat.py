"""Chat in real headless Chromium: load the demo run, set a system prompt and get the trained answer streamed,
Stop a long reply of the base model half way (the partial reply stays), then Unload."""

from __future__ import annotations

import re

import pytest
from conftest import chromium_page

pytestmark = pytest.mark.browser

# trained only with this system prompt before it (the demo data's 30 system-prompt rows)
SYSTEM = "You are the Lantern Coast guide. Answer in one sentence."
PROMPT = "Who is the mayor of Cobbleford?"
TRAINED_ANSWER = "The mayor of Cobbleford is Rosa Linde."
LONG_PROMPT = "What is Amberlee known for?"  # the base model answers it without ever ending (tests/test_chat.py)
LONG = 1024  # max new tokens: the untrained base model never ends a reply by itself, so it would write them all


@pytest.fixture(scope="module")
def studio(demo_studio):
    """The session's demo studio (a copy of the demo run, checkpoints included): (url, run id)."""
    url, _workspace, run_id = demo_studio
    return url, run_id


def _reply(page) -> str:
    """The last assistant message's text in the chatbot ('' when none)."""
    return page.evaluate("""() => {
        const bots = document.querySelectorAll('#chatbot .message.bot, #chatbot [data-testid="bot"]');
        return bots.length ? bots[bots.length - 1].innerText.trim() : '';
    }""")


def _load(page, run_id: str, expect: str) -> None:
    page.click("#chat-load")
    page.locator("#chat-status").filter(has_text=expect).wait_for(timeout=90_000)
    assert run_id in page.inner_text("#chat-status")


def test_system_prompt_streamed_reply_stop_and_unload(studio):
    url, run_id = studio
    with chromium_page(url) as page:
        page.get_by_role("tab", name="4 · Chat").click()
        page.click("#chat-run input")
        page.get_by_role("option").filter(has_text=run_id).click()
        page.click("#chat-checkpoint input")  # the picker offers the final weights and the run's checkpoints
        page.get_by_role("option").filter(has_text="checkpoint-").first.wait_for(timeout=30_000)
        page.get_by_role("option", name="Final weights").click()
        _load(page, run_id, "Loaded run")

        page.get_by_text("Generation settings", exact=True).click()  # (Compare has its own, made but hidden)
        page.fill("#chat-system textarea", SYSTEM)
        page.fill("#chat-input textarea", PROMPT)
        page.click("#chat-send")
        page.locator("#chatbot").filter(has_text=TRAINED_ANSWER).wait_for(timeout=60_000)
        assert _reply(page) == TRAINED_ANSWER

        # the base model rambles on: Stop ends its reply early and keeps what was written
        page.check("#chat-base input")
        _load(page, run_id, "(no adapter)")
        page.fill("#chat-max-new input[type=number]", str(LONG))
        page.press("#chat-max-new input[type=number]", "Enter")
        page.fill("#chat-system textarea", "")
        page.fill("#chat-input textarea", LONG_PROMPT)
        page.click("#chat-send")
        page.wait_for_function(
            "() => { const b = document.querySelectorAll('#chatbot .message.bot, #chatbot [data-testid=\"bot\"]');"
            " return b.length && b[b.length - 1].innerText.trim().length > 0; }", timeout=60_000)
        page.click("#chat-stop")
        page.locator("#chat-status").filter(has_text="Stopped after").wait_for(timeout=60_000)
        written = re.search(r"Stopped after (\d+) new tokens \(of at most (\d+)\)", page.inner_text("#chat-status"))
        assert written and int(written.group(2)) == LONG and 0 < int(written.group(1)) < LONG
        stopped = _stable_reply(page)
        assert stopped

        page.click("#chat-unload")
        page.locator("#chat-status").filter(has_text="Unloaded").wait_for(timeout=30_000)
        assert _reply(page) == stopped, "the partial reply stays after Stop and Unload"


def _stable_reply(page) -> str:
    """The reply once it has stopped changing (checked a second apart)."""
    previous = None
    for _ in range(60):
        current = _reply(page)
        if current and current == previous:
            return current
        previous = current
        page.wait_for_timeout(1000)
    pytest.fail(f"the reply kept growing after Stop: {len(previous or '')} characters")
