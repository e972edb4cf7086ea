"""GGUF in the browser: the Model tab imports a .gguf from the workspace with its progress shown and picks the new
model; the Chat tab loads that model without any run and answers."""

from __future__ import annotations

import pytest
from conftest import chromium_page, running_studio

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def studio(tmp_path_factory, tiny_demo_dir):
    from studio.models.gguf_writer import write_gguf

    workspace = tmp_path_factory.mktemp("browser-gguf-ws")
    write_gguf(tiny_demo_dir, workspace / "pocket.gguf", "q8_0")
    with running_studio(workspace) as url:
        yield url, workspace


def test_model_tab_imports_a_gguf_and_the_chat_tab_talks_to_it_without_a_run(studio):
    url, workspace = studio
    with chromium_page(url, height=1200, ready=None) as page:
        page.get_by_role("tab", name="2 · Model").click()
        page.get_by_text("Import a GGUF file").click()
        page.locator("#model-import-path textarea, #model-import-path input").first.fill("pocket.gguf")
        page.locator("#model-import-name textarea, #model-import-name input").first.fill("pocket")
        page.click("#model-import-start")
        page.locator("#model-import-status").filter(has_text="Imported pocket").wait_for(timeout=120_000)
        assert "llama, 2.0M parameters, bfloat16" in page.inner_text("#model-import-status")  # q8_0 de-quantized
        assert page.locator("#model-name input").input_value() == "pocket"
        assert (workspace / "models" / "pocket" / "model.safetensors").is_file()

        page.get_by_role("tab", name="4 · Chat").click()
        model = page.locator("#chat-model input")
        model.fill("pocket")
        model.press("Enter")
        page.click("#chat-load-model")
        page.locator("#chat-status").filter(has_text="Loaded model pocket").wait_for(timeout=60_000)
        page.locator("#chat-input textarea").fill("Hello")
        page.click("#chat-send")
        page.locator("#chatbot .bot, #chatbot [data-testid='bot']").first.wait_for(timeout=60_000)
