"""The Data tab in real headless Chromium: an upload with bad lines names them; skipping makes it the training
dataset; the column map fixes a file detection cannot read; the token report sets the Train tab's cutoff; the
loss mask shows trained and masked tokens."""

from __future__ import annotations

import json

import pytest
from conftest import chromium_page, new_workspace, running_studio

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory, tiny_demo_dir):
    workspace = new_workspace(tmp_path_factory.mktemp("browser-data-ws"), tiny_demo_dir)
    with running_studio(workspace.root) as url:
        yield url


@pytest.fixture()
def page(studio_url):
    with chromium_page(studio_url, height=1200) as page:
        yield page


def _dataset_ref(page) -> str:
    return page.input_value("#dataset-ref textarea, #dataset-ref input")


def test_bad_lines_are_named_then_skipped(page, tmp_path):
    good = {"messages": [{"role": "user", "content": "Where is Amberlee?"}, {"role": "assistant", "content": "On the Lantern Coast."}]}
    path = tmp_path / "bad lines.jsonl"
    path.write_text("\n".join([json.dumps(good), "{broken", json.dumps({"messages": [{"role": "user", "content": "Hi"}]}),
                               json.dumps(good)]) + "\n", encoding="utf-8")
    page.set_input_files("#data-upload input[type=file]", str(path))
    summary = page.locator("#data-summary")
    summary.filter(has_text="cannot be used").wait_for(timeout=30_000)
    text = summary.inner_text()
    assert "line 2: not valid JSON" in text and "line 3: the conversation has no assistant message" in text
    assert "2 of 4 rows" in text
    assert _dataset_ref(page) == "demo-chat"  # not chosen while it has bad rows
    assert "On the Lantern Coast." in page.inner_text("#data-bubbles")  # the preview still shows the good rows

    page.locator("#data-skip_bad_rows input").check()
    summary.filter(has_text="Training will use").wait_for(timeout=30_000)
    assert _dataset_ref(page) == "datasets/bad_lines.jsonl"
    assert "skipped" in summary.inner_text()


def test_column_map_token_report_and_mask(page, tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nWhere is Amberlee?,On the Lantern Coast.\nWhich river?,The Silver Run.\n", encoding="utf-8")
    page.set_input_files("#data-upload input[type=file]", str(path))
    summary = page.locator("#data-summary")
    summary.filter(has_text="no known columns").wait_for(timeout=30_000)

    page.fill("#data-column_map textarea, #data-column_map input", "prompt=question,response=answer")
    page.get_by_role("button", name="Apply mapping").click()
    summary.filter(has_text="Training will use").wait_for(timeout=30_000)
    assert "column map" in summary.inner_text() and _dataset_ref(page) == "datasets/qa.csv"

    page.get_by_role("tab", name="Token report").click()
    page.click("#data-tokens-run")
    page.locator("#data-tokens").filter(has_text="p95").wait_for(timeout=60_000)
    assert "tiny-demo" in page.inner_text("#data-tokens")
    page.wait_for_selector("#data-histogram .plot-container", timeout=30_000)
    p99 = int(page.inner_text("#data-tokens").split("p99")[1].split()[0].strip("*,"))
    page.click("#data-set-p99")
    page.get_by_role("tab", name="3 · Train").click()
    cutoff = page.locator("#train-cutoff_len input")
    cutoff.wait_for(timeout=20_000)
    page.wait_for_function(f"() => document.querySelector('#train-cutoff_len input').value == '{max(16, p99)}'", timeout=20_000)
    page.get_by_role("tab", name="1 · Data").click()

    page.get_by_role("tab", name="Loss mask").click()
    page.click("#data-mask-show")
    page.wait_for_selector("#mask-tokens .tok-trained", timeout=30_000)
    trained = "".join(page.locator("#mask-tokens .tok-trained").all_inner_texts())
    masked = "".join(page.locator("#mask-tokens .tok-masked").all_inner_texts())
    assert "On the Lantern Coast." in trained and "Where is Amberlee?" in masked
