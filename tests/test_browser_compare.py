"""Compare in real headless Chromium: load the demo run against its base model, answer one prompt side by side,
then rate a blind A/B pair and find the preference saved in the workspace."""

from __future__ import annotations

import json

import pytest
from conftest import chromium_page

pytestmark = pytest.mark.browser

PROMPT = "Which river runs through Cobbleford?"
TRAINED_ANSWER = "The Low Wend runs through Cobbleford."


@pytest.fixture(scope="module")
def studio(demo_studio):
    """The session's demo studio, over a copy of the demo run (ratings land there): (url, workspace, run id)."""
    return demo_studio


def _answers(page) -> tuple[str, str]:
    return page.input_value("#compare-answer-a textarea"), page.input_value("#compare-answer-b textarea")


def test_base_vs_tuned_then_blind_rating_is_saved(studio):
    url, workspace, run_id = studio
    with chromium_page(url) as page:
        page.get_by_role("tab", name="Compare").click()
        page.click("#compare-run-a input")
        page.get_by_role("option").filter(has_text=run_id).click()
        page.click("#compare-load")
        page.locator("#compare-status").filter(has_text="one copy of the weights").wait_for(timeout=60_000)
        assert "0 preferences saved" in page.inner_text("#compare-saved")

        # Open: the tuned answer on the left under the run's name, the base model's on the right.
        page.fill("#compare-prompt textarea", PROMPT)
        page.click("#compare-answer")
        page.wait_for_function("document.querySelector('#compare-answer-a textarea').value.length > 0", timeout=60_000)
        tuned, base = _answers(page)
        assert tuned == TRAINED_ANSWER and base and base != tuned
        assert f"tuned · {run_id}" in page.inner_text("#compare-header-a")
        assert "base model · tiny-demo" in page.inner_text("#compare-header-b")

        # Blind: the same two answers under bare letters until a pick reveals who wrote which.
        page.check("#compare-blind input")
        page.fill("#compare-prompt textarea", PROMPT)
        page.click("#compare-answer")
        # the headers lose the names when the blind answers arrive (they arrive together)
        page.wait_for_function("document.querySelector('#compare-header-a').innerText.trim() === 'A'", timeout=60_000)
        assert page.inner_text("#compare-header-b").strip() == "B"
        blind = _answers(page)
        assert sorted(blind) == sorted([tuned, base])
        tuned_letter = "A" if blind[0] == tuned else "B"
        page.click(f"#compare-pick-{tuned_letter.lower()}")

        saved = page.locator("#compare-saved").filter(has_text="1 preferences saved")
        saved.wait_for(timeout=30_000)
        assert f"datasets/preferences-{run_id}.jsonl" in saved.inner_text()
        assert f"tuned · {run_id}" in page.inner_text(f"#compare-header-{tuned_letter.lower()}")  # revealed

    rows = (workspace / "datasets" / f"preferences-{run_id}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1
    row = json.loads(rows[0])
    assert row["prompt"] == [{"role": "user", "content": PROMPT}]
    assert row["chosen"] == [{"role": "assistant", "content": tuned}]
    assert row["rejected"] == [{"role": "assistant", "content": base}]
    assert row["blind"] is True and row["chosen_by"] == f"tuned · {run_id}"
