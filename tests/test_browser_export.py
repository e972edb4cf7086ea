"""Export & Serve in real headless Chromium: export the demo run's adapter as a zip with an Ollama Modelfile, see
the commands and download the zip; serve the run, call the URL the page shows with the official `openai` client,
see the server still listed after a reload, and stop it."""

from __future__ import annotations

import zipfile

import psutil
import pytest
from conftest import chromium_page, free_port

pytestmark = pytest.mark.browser

PROMPT = "What is Amberlee known for?"


@pytest.fixture(scope="module")
def studio(demo_studio):
    """The session's demo studio, over a copy of the demo run (exports land there): (url, workspace, run folder)."""
    url, workspace, run_id = demo_studio
    return url, workspace, workspace / "runs" / run_id


def _open_tab(page) -> None:
    page.get_by_role("tab", name="Export & Serve").click()
    page.locator("#export-run").wait_for(timeout=30_000)


def _kill_server_on(port: int) -> None:
    """End a `studio serve` process left listening on `port` by a failed test (by its pid)."""
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "serve" in cmdline and "--port" in cmdline and str(port) in cmdline:
            process.kill()


def test_export_zip_and_modelfile_then_serve_and_call_it(studio, tmp_path):
    from openai import APIConnectionError, OpenAI

    url, workspace, run_dir = studio
    run_id = run_dir.name
    with chromium_page(url, height=1600) as page:
        _open_tab(page)
        folder = page.locator("#export-to textarea, #export-to input").first
        page.wait_for_function("(el) => el.value.startsWith('exports/')", arg=folder.element_handle(), timeout=30_000)
        folder_value = folder.input_value()
        exported = workspace / folder_value
        assert exported.parent == workspace / "exports" and exported.name.startswith(run_id)

        # Export: the adapter as a zip (the default) with an Ollama Modelfile.
        assert page.locator("#export-what").get_by_label("Adapter zip (download)").is_checked()
        page.locator("#export-ollama").get_by_label("Ollama Modelfile").check()
        page.click("#export-start")
        status = page.locator("#export-status")
        status.filter(has_text="Exported the adapter").wait_for(timeout=60_000)
        assert str(exported) in status.inner_text()
        modelfile = page.locator("#export-modelfile")
        modelfile.filter(has_text="TEMPLATE").wait_for(timeout=30_000)
        assert 'PARAMETER stop "<|im_end|>"' in modelfile.inner_text()
        command = page.locator("#export-ollama-cmd textarea, #export-ollama-cmd input").first.input_value()
        assert command == f"ollama create demo -f {exported / 'Modelfile'}"
        vllm = page.locator("#export-vllm textarea, #export-vllm input").first.input_value()
        assert vllm.startswith("vllm serve ") and f"--enable-lora --lora-modules demo={exported}" in vllm
        sglang = page.locator("#export-sglang textarea, #export-sglang input").first.input_value()
        assert sglang.startswith("python -m sglang.launch_server") and f"--lora-paths demo={exported}" in sglang

        with page.expect_download(timeout=30_000) as download_info:
            page.locator("#export-download a").first.click()
        saved = tmp_path / "download.zip"
        download_info.value.save_as(saved)
        with zipfile.ZipFile(saved) as archive:
            assert {"adapter_model.safetensors", "Modelfile", "README.md", "SERVING.md"} <= set(archive.namelist())
        # the folder box now offers a fresh folder, so a second export does not collide with the first
        page.wait_for_function("([el, used]) => el.value !== used && el.value.startsWith('exports/')", arg=[folder.element_handle(), folder_value],
                               timeout=30_000)
        assert not (workspace / folder.input_value()).exists()

        # Serve: on this machine only, on a free port; the page shows the URL and the model name.
        port = free_port()
        try:
            page.fill("#serve-port input", str(port))
            page.click("#serve-start")
            page.locator("#serve-status").filter(has_text="Serving").wait_for(timeout=180_000)
            base_url = page.locator("#serve-url textarea, #serve-url input").first.input_value()
            assert base_url == f"http://127.0.0.1:{port}/v1"
            assert page.locator("#serve-model textarea, #serve-model input").first.input_value() == run_id
            assert f'base_url="{base_url}"' in page.inner_text("#serve-python")

            client = OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=120)
            assert [model.id for model in client.models.list()] == [run_id]
            reply = client.chat.completions.create(model=run_id, messages=[{"role": "user", "content": PROMPT}],
                                                   temperature=0, max_tokens=40)
            assert "lantern" in reply.choices[0].message.content.lower()

            # The server outlives a page reload, and Stop ends it.
            page.reload()
            _open_tab(page)
            page.locator("#serve-status").filter(has_text=f"Serving {run_id} at {base_url}").wait_for(timeout=30_000)
            page.click("#serve-stop")
            page.locator("#serve-status").filter(has_text=f"Stopped serving {run_id}").wait_for(timeout=60_000)
            with pytest.raises(APIConnectionError):
                client.models.list()
        finally:
            _kill_server_on(port)
