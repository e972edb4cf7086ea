"""A tab's visit in real headless Chromium: a run made outside the page (as the command line does) shows in
every run list at the next visit, and a visit that finds nothing new sends the server no event."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import chromium_page, running_studio

from studio import config as cfg
from studio.ui.context import initial_config

pytestmark = pytest.mark.browser

RUN_LISTS = [("4 · Chat", "#chat-run"), ("Compare", "#compare-run-a"), ("Evaluate", "#eval-run"), ("Export & Serve", "#export-run")]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("visits") / "ws"
    workspace.mkdir()
    with running_studio(workspace) as url:
        yield url, workspace


def made_outside(workspace: Path, run_id: str) -> None:
    """A finished run with saved weights, written into the workspace behind the page's back."""
    run_dir = workspace / "runs" / run_id
    (run_dir / "adapter").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml(initial_config()), encoding="utf-8")


def offered(page, picker: str) -> str:
    """The text of every choice the dropdown `picker` offers (it is opened and closed again)."""
    page.click(f"{picker} input")
    page.wait_for_timeout(500)  # an empty list opens nothing
    text = " ".join(page.get_by_role("option").all_inner_texts())
    page.keyboard.press("Escape")
    return text


def events_sent(page, visit) -> list[str]:
    """The event calls (Gradio's queue joins) the page sent while `visit` ran and in the 1.5 s after it."""
    joined: list[str] = []
    listener = lambda request: joined.append(request.post_data or "") if "/queue/join" in request.url else None  # noqa: E731
    page.on("request", listener)
    try:
        visit()
        page.wait_for_timeout(1500)  # (playwright hands over the requests while it waits)
    finally:
        page.remove_listener("request", listener)
    return joined


def test_a_run_made_outside_shows_at_the_next_visit_and_a_visit_with_nothing_new_sends_nothing(studio):
    url, workspace = studio
    with chromium_page(url) as page:
        page.wait_for_timeout(2000)  # the page's own load events answer
        for tab, _picker in RUN_LISTS:  # every tab seen once: nothing has changed since the page opened
            assert events_sent(page, lambda: page.get_by_role("tab", name=tab).click()) == [], f"{tab}'s visit sent an event"
        assert events_sent(page, lambda: page.get_by_role("tab", name="Runs").click()) == []

        run_id = "20260102-030405-from-the-command-line-abcd"
        made_outside(workspace, run_id)
        for tab, _picker in RUN_LISTS:
            assert events_sent(page, lambda: page.get_by_role("tab", name=tab).click()), f"{tab}'s visit did not ask again"
        page.get_by_role("tab", name="Runs").click()
        page.locator("#runs-table").filter(has_text=run_id).wait_for(timeout=10_000)

        # seen everywhere: the next round of visits sends nothing again
        page.get_by_role("tab", name="1 · Data").click()
        for tab, _picker in RUN_LISTS:
            assert events_sent(page, lambda: page.get_by_role("tab", name=tab).click()) == [], f"{tab} asked again"
        for tab, picker in RUN_LISTS:  # (opening a picker can send an event of its own: last)
            page.get_by_role("tab", name=tab).click()
            assert run_id in offered(page, picker), f"{tab} does not offer the run made since the page opened"

        shutil.rmtree(workspace / "runs" / run_id)  # deleted from the command line: it leaves the lists
        page.get_by_role("tab", name="4 · Chat").click()
        page.wait_for_timeout(1500)
        assert run_id not in offered(page, "#chat-run")


def test_every_tab_is_made_once_the_page_is_idle_without_moving_the_user(studio):
    """Once the page is idle it makes every tab's components (a first visit then costs what a return costs),
    and a user typing meanwhile keeps the tab, the focus and every key typed."""
    url, _workspace = studio
    with chromium_page(url) as page:
        search = page.locator("#data-search textarea, #data-search input").first
        search.click()
        search.press_sequentially("lantern", delay=150)  # typing while the page makes the tabs
        page.locator("body[data-every-tab-made]").wait_for(state="attached", timeout=30_000)
        search.press_sequentially(" glass")
        assert search.input_value() == "lantern glass"
        assert page.get_by_role("tab", name="1 · Data").get_attribute("aria-selected") == "true"
        for made in ("#model-info", "#train-max_steps", "#chat-run", "#compare-run-a", "#eval-run", "#runs-table",
                     "#export-run", "#serve-port"):
            assert page.locator(made).count() == 1, f"{made} was not made before its tab was visited"
        assert not page.locator("#export-run").is_visible()  # made, not shown


def test_a_visit_after_a_filter_was_cleared_shows_every_run_again(studio):
    """A list a user's own event changed (a filter, submitted, then emptied without Enter) is brought up to date
    by the next visit, even though the runs themselves did not change."""
    url, workspace = studio
    run_id = "20260102-040506-kept-in-the-list-abcd"
    made_outside(workspace, run_id)
    with chromium_page(url) as page:
        page.get_by_role("tab", name="Runs").click()
        table = page.locator("#runs-table")
        table.filter(has_text=run_id).wait_for(timeout=10_000)
        box = page.locator("#runs-filter textarea, #runs-filter input").first
        box.fill("no run is called this")
        box.press("Enter")
        page.wait_for_function(f"() => !document.querySelector('#runs-table').innerText.includes('{run_id}')", timeout=10_000)
        box.fill("")  # emptied, not submitted
        page.get_by_role("tab", name="1 · Data").click()
        page.get_by_role("tab", name="Runs").click()
        table.filter(has_text=run_id).wait_for(timeout=10_000)
    shutil.rmtree(workspace / "runs" / run_id)
