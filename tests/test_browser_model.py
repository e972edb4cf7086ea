"""The Model tab's memory panel in real headless Chromium: hardware, the estimate chart and verdict, a fix
button that changes the Train tab's control, and the Dry run button showing measured vs estimated."""

from __future__ import annotations

import pytest
from conftest import chromium_page, running_studio

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("browser-model-ws")
    with running_studio(workspace) as url:
        yield url, workspace


@pytest.fixture()
def page(studio):
    with chromium_page(studio[0], height=1200, ready=None) as page:
        page.get_by_role("tab", name="2 · Model").click()
        yield page


def test_hardware_estimate_and_a_fix_applied_with_one_click(page):
    from studio.hardware import cuda_gpus

    gpus = cuda_gpus()
    page.locator("#hardware-info").filter(has_text=gpus[0].name if gpus else "No GPU").wait_for(timeout=30_000)
    page.locator("#estimate-verdict").filter(has_text="Fits").wait_for(timeout=30_000)  # tiny-demo on the CPU
    page.locator("#estimate-chart .js-plotly-plot").wait_for(timeout=30_000)
    assert "parameters" in page.inner_text("#model-details")

    model = page.locator("#model-name input")
    model.fill("qwen2.5-7b-instruct")
    model.press("Enter")
    page.locator("#estimate-verdict").filter(has_text="Won't fit").wait_for(timeout=30_000)
    assert "7.62B parameters" in page.inner_text("#model-details")
    fix = page.locator("button[id^=estimate-fix-]").filter(has_text="Micro-batch")
    fix.wait_for(timeout=30_000)
    wanted = fix.inner_text().split("Micro-batch ")[1].split(" ")[0]
    fix.click()
    page.get_by_role("tab", name="3 · Train").click()
    batch = page.locator("#train-batch_size input")
    page.wait_for_function("([sel, v]) => document.querySelector(sel).value === v", arg=["#train-batch_size input", wanted], timeout=20_000)
    assert batch.input_value() == wanted


def test_dry_run_button_shows_measured_next_to_estimated(page):
    page.locator("#estimate-verdict").filter(has_text="Fits").wait_for(timeout=30_000)
    page.click("#dry-run-button")
    result = page.locator("#dry-run-result")
    result.filter(has_text="tokens/s").wait_for(timeout=300_000)
    text = result.inner_text()
    assert "peak RSS (CPU)" in text and "estimated" in text and "tokens/s" in text
