"""The whole flow in real headless Chromium: upload → model → Start → live chart → Chat answers.

Starts `python app.py` on a free port over a fresh workspace and clicks through the page as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import chromium_page, running_studio

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory):
    with running_studio(tmp_path_factory.mktemp("browser-ws")) as url:
        yield url


@pytest.fixture()
def page(studio_url):
    with chromium_page(studio_url) as page:
        yield page


def _upload(page, path: Path) -> None:
    page.set_input_files("#data-upload input[type=file]", str(path))


def test_bad_upload_names_the_line(page, tmp_path):
    bad = tmp_path / "broken.jsonl"
    good_row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    bad.write_text(json.dumps(good_row) + "\n" + '{"messages": [oops\n', encoding="utf-8")
    _upload(page, bad)
    summary = page.locator("#data-summary")
    summary.filter(has_text="line 2").wait_for(timeout=20_000)
    assert "not valid JSON" in summary.inner_text()
    assert page.input_value("#dataset-ref textarea, #dataset-ref input") == "demo-chat"  # the bad file is not chosen


def test_upload_train_watch_and_chat(page, tmp_path):
    # Data: upload our own copy of the demo data and see how many rows were read.
    mine = tmp_path / "my lantern data.jsonl"
    mine.write_text((ROOT / "presets/datasets/demo-chat.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    _upload(page, mine)
    page.locator("#data-summary").filter(has_text="my_lantern_data.jsonl").wait_for(timeout=20_000)
    assert "Read 210 rows" in page.inner_text("#data-summary")
    assert "datasets/my_lantern_data.jsonl" in page.input_value("#dataset-ref textarea, #dataset-ref input")
    assert "Amberlee is known for blue glass lanterns." in page.inner_text("#data-preview")

    # Model: tiny-demo (the default), and the catalog says what it is.
    page.get_by_role("tab", name="2 · Model").click()
    assert "tiny-demo" in page.inner_text("#model-info")

    # Train: LoRA (the default method); Start, then the live chart gets points and the progress reaches completed.
    page.get_by_role("tab", name="3 · Train").click()
    assert page.locator("#train-method").get_by_label("lora", exact=True).is_checked()
    page.click("#start-button")
    page.locator("#train-message").filter(has_text="Started run").wait_for(timeout=20_000)
    page.wait_for_selector("#loss-chart .scatterlayer .trace path.js-line", timeout=60_000)
    page.wait_for_selector("#run-progress[data-state=completed]", timeout=300_000)
    progress = page.inner_text("#run-progress")
    assert "step 405 / 405" in progress
    assert len(page.locator("#loss-chart .scatterlayer .points path").all()) > 100  # one marker per logged step

    # Chat: one click from the finished run; the trained prompt gets its trained answer.
    page.click("#chat-with-run")
    page.locator("#chat-status").filter(has_text="Loaded").wait_for(timeout=60_000)
    page.fill("#chat-input textarea", "Which river runs through Cobbleford?")
    page.click("#chat-send")
    page.locator("#chatbot").filter(has_text="The Low Wend runs through Cobbleford.").wait_for(timeout=30_000)

    # Runs: the run is listed as completed with a final loss.
    page.get_by_role("tab", name="Runs").click()
    table = page.locator("#runs-table")
    table.filter(has_text="completed").wait_for(timeout=20_000)
    assert "my_lantern_data.jsonl" in table.inner_text()


def test_language_switch_relabels_the_page(page):
    page.get_by_text("简体中文").click()
    page.get_by_role("tab", name="3 · 训练").wait_for(timeout=10_000)
    page.get_by_role("tab", name="3 · 训练").click()
    assert page.inner_text("#start-button").strip() == "开始训练"
    assert "峰值学习率" in page.inner_text("#train-learning_rate")  # info text from the config field's help
    page.get_by_text("English").click()
    page.get_by_role("tab", name="3 · Train").wait_for(timeout=10_000)
