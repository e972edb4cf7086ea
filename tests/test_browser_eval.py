"""Evaluate in real headless Chromium: a run with no validation rows is told so; an evaluation of the demo run's
training data runs in the background to the end and shows the scores, the answers and the downloads."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conftest import chromium_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def studio(demo_studio):
    """The session's demo studio, over a copy of the demo run (results land there): (url, workspace, run id)."""
    return demo_studio


def test_evaluate_the_demo_run(studio):
    url, workspace, run_id = studio
    with chromium_page(url) as page:
        page.get_by_role("tab", name="Evaluate").click()
        page.click("#eval-run input")
        page.get_by_role("option").filter(has_text=run_id).click()

        # The demo run held out no validation rows: picking it starts on its training data; asking for its
        # validation split anyway says why not and what to do
        training = page.locator("#eval-data").get_by_label("Training data")
        expect(training).to_be_checked(timeout=30_000)
        page.locator("#eval-data").get_by_label("Validation split").check()
        page.click("#eval-start")
        page.locator("#eval-message").filter(has_text="held out no validation rows").wait_for(timeout=30_000)
        assert "training data" in page.inner_text("#eval-message")

        training.check()
        page.fill("#eval-max-rows input", "2")
        page.fill("#eval-max-new input", "8")
        page.click("#eval-start")
        page.locator("#eval-message").filter(has_text="Evaluating run").wait_for(timeout=30_000)
        page.wait_for_selector("#eval-progress [data-state=completed]", timeout=180_000)
        assert "4/4 answers" in page.inner_text("#eval-progress")

        scores = page.locator("#eval-metrics")
        scores.filter(has_text="loss on the references").wait_for(timeout=30_000)
        for metric in ("perplexity", "exact match %", "ROUGE-L F", "BLEU"):
            assert metric in scores.inner_text()
        results = page.locator("#eval-results")
        results.filter(has_text="Amberlee is known for blue glass lanterns.").wait_for(timeout=30_000)  # a reference
        # prompt, reference and both answers side by side, each a quarter of the table: none is pushed off-screen
        widths = page.evaluate("() => [...document.querySelectorAll('#eval-results thead th')].map(th => th.getBoundingClientRect())"
                               ".map(box => [box.width, box.right])")
        assert len(widths) == 4 and max(right for _width, right in widths) <= 1280
        assert min(width for width, _right in widths) >= 0.2 * sum(width for width, _right in widths)
        downloads = page.locator("#eval-downloads")
        downloads.locator("a[href$='results.csv']").wait_for(timeout=30_000)  # the name is drawn as "results" + ".csv"
        assert downloads.locator("a[href$='results.jsonl']").count() == 1
        csv_text = page.request.get(downloads.locator("a[href$='results.csv']").get_attribute("href")).text()
        assert csv_text.lstrip("\ufeff").startswith("prompt,reference,base,tuned") and "Amberlee is known for blue glass lanterns." in csv_text

        # away and back: the visit shows the same run and its evaluation
        page.get_by_role("tab", name="1 · Data").click()
        page.get_by_role("tab", name="Evaluate").click()
        page.wait_for_timeout(1500)
        assert run_id in page.input_value("#eval-run input") and "4/4 answers" in page.inner_text("#eval-progress")
        results.filter(has_text="Amberlee is known for blue glass lanterns.").wait_for(timeout=10_000)

    folders = list((workspace / "runs" / run_id / "eval").glob("2*"))
    assert len(folders) == 1 and (folders[0] / "metrics.json").is_file()
