"""The Model tab's memory panel in real headless Chromium: hardware, the estimate chart and verdict, a fix
button that changes the Train tab's control, and the Dry run button showing measured vs estimated."""

from __future__ import annotations

import pytest
from conftest import chromium_page, running_studio, wait_for

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
    page.locator("#estimate-chart .estimate-part[data-part=weights]").wait_for(timeout=30_000)
    assert "weights" in page.inner_text("#estimate-chart .estimate-legend")
    assert "GB free" in page.inner_text("#estimate-chart .estimate-free")
    assert page.evaluate("document.querySelector('.js-plotly-plot') === null")  # the Model tab draws no Plotly chart
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


@pytest.fixture()
def first_page(tmp_path_factory):
    """The first page of a studio just started on a fresh workspace (tiny-demo not yet built), on the Model tab."""
    workspace = tmp_path_factory.mktemp("browser-model-fresh-ws")
    with running_studio(workspace) as url:
        with chromium_page(url, height=1200, ready=None) as page:
            page.get_by_role("tab", name="2 · Model").click()
            yield page, workspace


def test_a_catalog_model_brings_its_own_settings_and_target_modules(first_page, tiny_demo_dir, tmp_path):
    # picked while the page still loads: the page load's own fill of the target modules (tiny-demo's layer names,
    # slow while tiny-demo is built on this first start) must not answer last and put tiny-demo's targets back
    from studio.models.demo import BUILD_MARKER

    page, workspace = first_page
    model = page.locator("#model-name input")
    model.fill("mixtral-8x7b-instruct-v0.1")
    model.press("Enter")
    page.get_by_role("tab", name="3 · Train").click()
    # tiny-demo's cutoff 256, batch 8 and rank 16 do not stay: the new model's values (here the defaults)
    page.wait_for_function("document.querySelector('#train-cutoff_len input')?.value === '1024'", timeout=30_000)
    assert page.input_value("#train-batch_size input") == "4" and page.input_value("#train-lora_rank input") == "8"
    picker = page.locator("#train-lora_targets")
    page.wait_for_function("document.querySelector('#train-lora_targets')?.innerText.includes('o_proj')", timeout=30_000)
    wait_for(lambda: (workspace / "models" / "tiny-demo" / BUILD_MARKER).is_file(), 60, "tiny-demo built")
    page.wait_for_timeout(1000)  # the page load's fill, free once tiny-demo is built, has had time to answer
    chips = picker.locator(".token").all_inner_texts()
    assert [chip.strip() for chip in chips] == ["q_proj", "k_proj", "v_proj", "o_proj"]  # not "[object Object]"
    page.click("#train-preview")  # what the chips show is what trains
    page.wait_for_function("document.querySelector('#train-cli textarea, #train-cli input')?.value?.includes('model=mixtral-8x7b-instruct-v0.1')", timeout=30_000)
    cli = page.input_value("#train-cli textarea, #train-cli input")
    assert "lora_targets=q_proj,k_proj,v_proj,o_proj" in cli

    # a GGUF imported on the Model tab becomes the model, and the picker then offers that model's own layers
    # (mixtral's cannot be read offline: only all-linear and the picked names were offered)
    from studio.models.gguf_writer import write_gguf

    page.get_by_role("tab", name="2 · Model").click()
    page.click("#model-import button.label-wrap, #model-import > button")
    page.set_input_files("#model-import-file input[type=file]", str(write_gguf(tiny_demo_dir, tmp_path / "imported.gguf", "f16")))
    page.click("#model-import-start")
    page.locator("#model-import-status").filter(has_text="Imported").wait_for(timeout=60_000)
    page.get_by_role("tab", name="3 · Train").click()
    picker.locator("input").first.click()
    picker.get_by_role("option", name="down_proj", exact=True).wait_for(timeout=30_000)
    assert [chip.strip() for chip in picker.locator(".token").all_inner_texts()] == ["q_proj", "k_proj", "v_proj", "o_proj"]
