"""The Train tab in real headless Chromium: only the chosen method's and stage's settings are on screen, a bad
value is named under its field, Preview command shows the YAML and the command line, and a saved config
loads back into every control exactly."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import test_browser_monitor
from conftest import running_studio
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = pytest.mark.browser

LORA = "#train-group-method-lora-qlora"
FREEZE = "#train-group-method-freeze"
DPO = "#train-group-stage-dpo"
GRPO = "#train-group-stage-grpo"
PROBES = "#train-probe_prompts textarea"

chromium = test_browser_monitor.chromium  # one headless Chromium for this module's tests (a fixture)


@pytest.fixture(scope="module")
def train_workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("train-tab-ws")


@pytest.fixture(scope="module")
def studio_url(train_workspace):
    with running_studio(train_workspace) as url:
        yield url


@pytest.fixture()
def page(chromium, studio_url):
    context = chromium.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.goto(studio_url)
    page.get_by_role("tab", name="3 · Train").click()
    page.wait_for_selector("#train-method")
    yield page
    context.close()


def choose(page, key: str, value: str) -> None:
    page.locator(f"#train-{key}").get_by_label(value, exact=True).check()


def fill(page, key: str, value: str) -> None:
    box = page.locator(f"#train-{key} textarea, #train-{key} input").first
    box.fill(value)
    box.blur()


def load_file(page, path: Path) -> None:
    """Press Load config and pick `path` in the file chooser."""
    with page.expect_file_chooser() as chooser:
        page.click("#train-load")
    chooser.value.set_files(str(path))


def open_group(page, selector: str, box: str) -> None:
    """Unfold an accordion until the text box `box` inside it is drawn: a click that lands while a Load is still
    redrawing the group can leave it folded, so the click is repeated until the box shows."""
    for _ in range(3):
        if page.locator(box).is_visible():
            return
        page.locator(selector).locator("button").first.click()
        try:
            page.locator(box).wait_for(state="visible", timeout=10_000)
            return
        except PlaywrightTimeout:
            continue
    page.locator(box).wait_for(state="visible", timeout=10_000)


def test_choosing_a_method_or_stage_shows_only_its_settings(page):
    assert page.locator(LORA).is_visible()  # LoRA is the default method
    assert "LoRA rank" in page.inner_text(LORA)
    assert not page.locator(FREEZE).is_visible() and not page.locator(DPO).is_visible()

    choose(page, "method", "freeze")
    page.locator(FREEZE).wait_for(state="visible", timeout=30_000)
    page.locator(LORA).wait_for(state="hidden", timeout=30_000)
    assert not page.locator("#train-group-method-qlora").is_visible()

    choose(page, "stage", "dpo")
    page.locator(DPO).wait_for(state="visible", timeout=30_000)
    assert "beta" in page.inner_text(DPO).lower()
    choose(page, "stage", "sft")
    page.locator(DPO).wait_for(state="hidden", timeout=30_000)
    choose(page, "method", "lora")  # shown again: the picker, never the text it writes behind it
    page.locator("#train-lora_targets").wait_for(state="visible", timeout=30_000)
    assert not page.locator("#train-lora_targets-text").is_visible()


def test_grpo_shows_its_reward_settings_and_the_reward_files_code_before_it_may_run(page, train_workspace):
    (train_workspace / "mine.py").write_text("def brevity(completions, **columns):\n    return [1.0] * len(completions)\n",
                                             encoding="utf-8")
    choose(page, "stage", "grpo")
    page.locator(GRPO).wait_for(state="visible", timeout=30_000)
    assert "Reward functions" in page.inner_text(GRPO) and "Answers per prompt" in page.inner_text(GRPO)
    fill(page, "reward_funcs", "brevity,length")
    fill(page, "reward_file", "mine.py")
    page.locator("#train-reward_file-code").filter(has_text="def brevity").wait_for(timeout=30_000)  # read before allowed
    page.locator("#train-allow_reward_code-problem").filter(has_text="tick allow_reward_code").wait_for(timeout=30_000)
    fill(page, "reward_funcs", "kindness")
    page.locator("#train-reward_funcs-problem").filter(has_text="it defines brevity").wait_for(timeout=30_000)
    uploaded = train_workspace / "kind reward.py"  # from the laptop: the Train tab's upload puts it in the workspace
    uploaded.write_text("def kindness(completions, **columns):\n    return [0.0] * len(completions)\n", encoding="utf-8")
    with page.expect_file_chooser() as chooser:
        page.click("#train-reward_file-upload")
    chooser.value.set_files(str(uploaded))
    page.locator("#train-reward_file-code").filter(has_text="def kindness").wait_for(timeout=30_000)
    assert page.locator("#train-reward_file input, #train-reward_file textarea").first.input_value() == "rewards/kind_reward.py"
    page.locator("#train-reward_funcs-problem").wait_for(state="hidden", timeout=30_000)


def test_bad_values_are_named_under_their_fields_before_start(page):
    page.locator("#train-problems").filter(has_text="ready to start").wait_for(timeout=30_000)  # checked on load
    fill(page, "batch_size", "0")
    fill(page, "learning_rate", "5")
    page.locator("#train-batch_size-problem").filter(has_text="at least 1").wait_for(timeout=30_000)
    page.locator("#train-learning_rate-problem").filter(has_text="at most 1").wait_for(timeout=30_000)
    summary = page.inner_text("#train-problems")
    assert "batch_size" in summary and "learning_rate" in summary  # all problems at once, before Start

    fill(page, "batch_size", "2")
    page.locator("#train-batch_size-problem").wait_for(state="hidden", timeout=30_000)
    assert page.locator("#train-learning_rate-problem").is_visible()


def test_preview_shows_the_yaml_and_the_command_line(page):
    fill(page, "run_name", "preview me")
    fill(page, "learning_rate", "0.0005")
    choose(page, "method", "full")
    page.click("#train-preview")
    cli = page.locator("#train-cli textarea, #train-cli input").first
    page.wait_for_function("document.querySelector('#train-cli textarea, #train-cli input')?.value?.includes('method=full')", timeout=30_000)
    words = shlex.split(cli.input_value())
    assert words[:4] == ["python", "-m", "studio", "train"]
    assert {"run_name=preview me", "learning_rate=0.0005", "method=full"} <= set(words)
    shown = page.inner_text("#train-yaml .cm-content")  # the top of the YAML (the editor draws what is in view)
    assert "run_name: preview me" in shown and "method: full" in shown


def test_save_then_load_restores_every_value(page, tmp_path):
    fill(page, "run_name", "saved run")
    choose(page, "method", "freeze")
    page.locator(FREEZE).wait_for(state="visible", timeout=30_000)
    fill(page, "freeze_trainable_layers", "3")
    choose(page, "stage", "dpo")
    page.locator(DPO).wait_for(state="visible", timeout=30_000)
    fill(page, "dpo_beta", "0.3")
    fill(page, "epochs", "2.5")
    open_group(page, "#train-more", PROBES)
    fill(page, "probe_prompts", "Where is Amberlee?\nWhat is 2+2?")
    page.click("#train-save")
    link = page.locator("#train-saved a").first
    link.wait_for(timeout=30_000)
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "saved.yaml"
    download.value.save_as(saved)
    text = saved.read_text(encoding="utf-8")
    assert "freeze_trainable_layers: 3" in text and "dpo_beta: 0.3" in text and "Where is Amberlee?" in text

    page.reload()  # every control back to its default
    page.get_by_role("tab", name="3 · Train").click()
    page.wait_for_selector("#train-method")
    assert page.locator("#train-saved a").count() == 0
    assert page.locator("#train-method").get_by_label("lora", exact=True).is_checked()
    load_file(page, saved)
    page.locator("#train-message").filter(has_text="Loaded the config").wait_for(timeout=20_000)
    page.locator(FREEZE).wait_for(state="visible", timeout=30_000)
    assert page.locator("#train-method").get_by_label("freeze", exact=True).is_checked()
    assert page.locator("#train-stage").get_by_label("dpo", exact=True).is_checked()
    assert page.input_value("#train-freeze_trainable_layers input") == "3"
    assert page.input_value("#train-dpo_beta input") == "0.3"
    assert page.input_value("#train-run_name input, #train-run_name textarea") == "saved run"
    open_group(page, "#train-more", PROBES)  # the folded group's boxes are drawn when it opens: wait for the value to arrive
    try:
        page.wait_for_function("document.querySelector('#train-probe_prompts textarea')?.value === 'Where is Amberlee?\\nWhat is 2+2?'",
                               timeout=30_000)
    except PlaywrightTimeout:
        raise AssertionError(f"the probe prompts show {page.input_value(PROBES)!r} after the Load; the YAML loaded:\n{text}") from None
    assert page.input_value("#train-probe_prompts textarea") == "Where is Amberlee?\nWhat is 2+2?"

    # what the controls hold now is exactly the file that was saved (the reload removed the first link)
    page.click("#train-save")
    page.locator("#train-saved a").first.wait_for(timeout=30_000)
    with page.expect_download() as download:
        page.locator("#train-saved a").first.click()
    again = tmp_path / "again.yaml"
    download.value.save_as(again)
    assert Path(again).read_text(encoding="utf-8") == text


def test_a_broken_config_file_is_refused_with_its_problems(page, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  epoch: 3\nmethod:\n  method: magic\n", encoding="utf-8")
    load_file(page, broken)
    message = page.locator("#train-message").filter(has_text="Cannot load")
    message.wait_for(timeout=20_000)
    assert "train.epoch" in message.inner_text() and "magic" in message.inner_text()
    assert page.locator("#train-method").get_by_label("lora", exact=True).is_checked()  # nothing changed


def test_target_modules_are_picked_from_the_models_own_layer_names(page):
    picker = page.locator("#train-lora_targets")
    picker.locator("input").first.click()
    picker.get_by_role("option", name="q_proj", exact=True).wait_for(timeout=30_000)  # tiny-demo's layers
    assert picker.get_by_role("option", name="lm_head").count() == 0
    for name in ("all-linear", "q_proj", "v_proj"):  # all-linear was picked: picking it again removes it
        picker.get_by_role("option", name=name, exact=True).click()
    page.click("#train-preview")
    page.wait_for_function("document.querySelector('#train-cli textarea, #train-cli input')?.value?.includes('lora_targets=q_proj,v_proj')", timeout=30_000)


def test_a_preset_and_a_method_switch_fill_in_the_learning_rate(page):
    choose(page, "method", "full")  # the learning rate was tiny-demo's LoRA rate, not typed: full's own now
    page.wait_for_function("document.querySelector('#train-learning_rate input').value === '0.00001'", timeout=30_000)
    page.click("#train-preset input")
    page.get_by_role("option", name="quick", exact=True).click()
    page.wait_for_function("document.querySelector('#train-grad_accum input').value === '2'", timeout=30_000)
    assert page.locator("#train-method").get_by_label("lora", exact=True).is_checked()  # quick is a LoRA recipe
    assert page.input_value("#train-learning_rate input") == "0.0002"


def test_start_asks_before_launching_a_run_the_memory_check_says_wont_fit(page):
    page.get_by_role("tab", name="2 · Model").click()
    model = page.locator("#model-name input")
    model.fill("qwen2.5-72b-instruct")
    model.press("Enter")
    page.get_by_role("tab", name="3 · Train").click()
    choose(page, "method", "full")  # 72B parameters, full fine-tuning: far beyond this machine
    page.click("#start-button")
    message = page.locator("#train-message")
    message.filter(has_text="won't fit").wait_for(timeout=60_000)
    assert "Estimated peak" in message.inner_text() and "Started run" not in message.inner_text()
    assert page.locator("#start-anyway").is_visible()  # the run starts only if the user insists
