"""Compare: a run against its own base model (one copy of the weights, adapter switched off), two runs, blind A/B
order hidden then revealed, and ratings saved as a preference dataset the data studio loads for DPO."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import copy_demo_run

from studio.chat import GenerationSettings, load_run
from studio.compare import (
    CompareError,
    Comparison,
    compare,
    count_rows,
    load_pair,
    preference_file,
    save_rating,
    undecided_file,
)
from studio.workspace import Workspace

TRAINED_PROMPT = "Which river runs through Cobbleford?"
TRAINED_ANSWER = "The Low Wend runs through Cobbleford."
SETTINGS = GenerationSettings(max_new_tokens=40)


@pytest.fixture(scope="module")
def compare_ws(demo_run, tmp_path_factory) -> tuple[Workspace, str]:
    """A workspace of this module's own holding a copy of the session's demo run (so added runs and saved
    ratings touch no other test), and that run's id."""
    root, run_id = copy_demo_run(demo_run, tmp_path_factory.mktemp("compare-ws"))
    return Workspace(root), run_id


def copy_run(workspace: Workspace, run_id: str, new_id: str, model: str | None = None) -> str:
    """A copy of run `run_id` named `new_id` (optionally claiming another base model in its config)."""
    target = workspace.runs_dir / new_id
    shutil.copytree(workspace.runs_dir / run_id, target)
    if model:
        config_path = target / "config.yaml"
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        config["model"]["model"] = model
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return new_id


@pytest.fixture(scope="module")
def base_pair(compare_ws):
    workspace, run_id = compare_ws
    return load_pair(workspace, "base", run_id)


def test_base_answer_is_the_base_models_and_the_tuned_one_is_trained(compare_ws, base_pair):
    workspace, run_id = compare_ws
    assert base_pair.copies == 1  # the base answer comes from the same weights with the adapter off
    result = compare(base_pair, TRAINED_PROMPT, settings=SETTINGS)
    tuned, base = result.answers
    assert tuned == TRAINED_ANSWER
    base_alone = load_run(workspace, run_id, base=True)
    assert base == base_alone.reply([{"role": "user", "content": TRAINED_PROMPT}], SETTINGS)
    assert base != tuned
    assert result.names[0].startswith("tuned") and result.names[1].startswith("base model")
    # switching the adapter off for the base answer left it on for the tuned model (what Chat then uses)
    assert base_pair.primary.reply([{"role": "user", "content": TRAINED_PROMPT}], SETTINGS) == TRAINED_ANSWER


def test_system_prompt_reaches_both_answers(base_pair):
    result = compare(base_pair, TRAINED_PROMPT, system_prompt="Answer briefly.", settings=SETTINGS)
    assert result.prompt == [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": TRAINED_PROMPT}]
    with pytest.raises(CompareError, match="type a prompt"):
        compare(base_pair, "   ")


def _seed_with(swapped: bool) -> int:
    return next(seed for seed in range(100) if Comparison([], ("x", "y"), ("p", "q"), True, seed, "s").swapped is swapped)


def test_blind_order_comes_from_the_recorded_seed_and_is_revealed_after_rating(compare_ws, base_pair):
    workspace, _ = compare_ws
    swapping, keeping = _seed_with(True), _seed_with(False)
    swapped = compare(base_pair, TRAINED_PROMPT, settings=SETTINGS, blind=True, seed=swapping)
    assert swapped.seed == swapping and swapped.shown() == swapped.answers[::-1]
    assert swapped.shown()[1] == TRAINED_ANSWER and swapped.shown_names()[1].startswith("tuned")
    kept = compare(base_pair, TRAINED_PROMPT, settings=SETTINGS, blind=True, seed=keeping)
    assert kept.shown() == kept.answers and kept.shown_names()[0].startswith("tuned")
    # without blind mode the tuned answer is always on the left, whatever the seed
    assert compare(base_pair, TRAINED_PROMPT, settings=SETTINGS, seed=swapping).shown()[0] == TRAINED_ANSWER
    # both orders turn up over many fresh seeds
    orders = {compare_order for compare_order in (Comparison([], ("x", "y"), ("p", "q"), True, s, "s").swapped
                                                  for s in range(20))}
    assert orders == {True, False}

    saved = save_rating(workspace, swapped, "b")  # B is the tuned answer here
    assert saved.in_dataset and swapped.verdict == "b"
    with pytest.raises(CompareError, match="already rated"):
        save_rating(workspace, swapped, "a")


def test_ratings_load_as_a_dpo_preference_dataset(compare_ws, base_pair):
    from studio import config as cfg
    from studio.data.loading import load_dataset_file
    from studio.train.stages import dataset_problems, trl_rows

    workspace, run_id = compare_ws
    path = preference_file(workspace, run_id)
    path.unlink(missing_ok=True)
    undecided_file(workspace, run_id).unlink(missing_ok=True)
    swapping, keeping = _seed_with(True), _seed_with(False)

    a_better = compare(base_pair, TRAINED_PROMPT, settings=SETTINGS, blind=True, seed=keeping)  # A = tuned
    save_rating(workspace, a_better, "a")
    b_better = compare(base_pair, "What is Amberlee known for?", system_prompt="Be kind.", settings=SETTINGS,
                       blind=True, seed=swapping)  # B = tuned
    saved = save_rating(workspace, b_better, "b")
    tie = compare(base_pair, TRAINED_PROMPT, settings=SETTINGS, blind=True)
    after_tie = save_rating(workspace, tie, "tie")
    save_rating(workspace, compare(base_pair, TRAINED_PROMPT, settings=SETTINGS), "both_bad")

    assert path == workspace.datasets_dir / f"preferences-{run_id}.jsonl"
    assert saved.preferences == 2 and after_tie.preferences == 2 and not after_tie.in_dataset
    assert count_rows(undecided_file(workspace, run_id)) == 2  # kept aside, not offered to DPO
    dataset = load_dataset_file(path)
    assert dataset.kind == "preference" and len(dataset) == 2
    first, second = dataset.examples
    assert first["prompt"] == [{"role": "user", "content": TRAINED_PROMPT}]
    assert first["chosen"] == [{"role": "assistant", "content": a_better.answers[0]}]  # the tuned answer, shown as A
    assert first["rejected"] == [{"role": "assistant", "content": a_better.answers[1]}]
    assert second["prompt"][0] == {"role": "system", "content": "Be kind."}
    assert second["chosen"][0]["content"] == b_better.answers[0]  # B was the tuned answer: it is chosen
    assert second["rejected"][0]["content"] == b_better.answers[1]

    config = cfg.apply_overrides(cfg.RunConfig(), {"stage": "dpo", "dataset": str(path.relative_to(workspace.root))})
    assert dataset_problems(workspace, config) == []
    rows = trl_rows("dpo", dataset.examples)
    assert rows[0]["chosen"][0]["content"] == TRAINED_ANSWER


def test_identical_answers_are_kept_aside_not_made_into_a_pair(compare_ws):
    workspace, _ = compare_ws
    same = Comparison([{"role": "user", "content": "hi"}], ("hello", "hello"), ("p", "q"), True, 1, "same-pair")
    saved = save_rating(workspace, same, "a")
    assert not saved.in_dataset and "same text" in saved.note
    assert not preference_file(workspace, "same-pair").exists() and saved.undecided == 1


def test_two_runs_on_one_base_share_one_copy(compare_ws):
    from safetensors.torch import load_file, save_file

    workspace, run_id = compare_ws
    # a second run whose adapter learned nothing (its LoRA B matrices are zero): it answers like the base model
    untrained = copy_run(workspace, run_id, "20200101-000000-untrained-0001")
    weights_path = workspace.runs_dir / untrained / "adapter" / "adapter_model.safetensors"
    weights = load_file(weights_path)
    save_file({k: v * 0 if "lora_B" in k else v for k, v in weights.items()}, weights_path)

    pair = load_pair(workspace, "runs", run_id, untrained)
    assert pair.copies == 1 and sorted(pair.primary.adapter_names) == sorted([run_id, untrained])
    result = compare(pair, TRAINED_PROMPT, settings=SETTINGS)
    base_alone = load_run(workspace, run_id, base=True).reply([{"role": "user", "content": TRAINED_PROMPT}], SETTINGS)
    assert result.answers == (TRAINED_ANSWER, base_alone)
    assert result.names == (f"run · {run_id}", f"run · {untrained}")
    assert pair.slug == f"{run_id}-vs-{untrained}"


@pytest.fixture(scope="module")
def full_run(compare_ws) -> str:
    """A full fine-tune of tiny-demo: a copy of the demo run with its adapter merged into the weights."""
    from studio.export import merge_into

    workspace, run_id = compare_ws
    full = copy_run(workspace, run_id, "20200101-000000-full-0001")
    full_dir = workspace.runs_dir / full
    merge_into(workspace, workspace.runs_dir / run_id, full_dir / "model", dtype="fp32")
    shutil.rmtree(full_dir / "adapter")
    return full


def test_full_fine_tune_is_compared_with_a_second_copy_of_its_base(compare_ws, full_run):
    workspace, _ = compare_ws
    pair = load_pair(workspace, "base", full_run)
    assert pair.copies == 2 and pair.primary.adapter_names == []
    tuned, base = compare(pair, TRAINED_PROMPT, settings=SETTINGS).answers
    assert tuned == TRAINED_ANSWER and base != tuned


def test_runs_that_cannot_be_compared_are_refused_with_a_reason(compare_ws):
    workspace, run_id = compare_ws
    other = copy_run(workspace, run_id, "20200101-000000-other-base-0001", model="Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(CompareError, match=r"different base models") as refused:
        load_pair(workspace, "runs", run_id, other)
    assert "tiny-demo" in str(refused.value) and "Qwen/Qwen2.5-0.5B-Instruct" in str(refused.value)
    with pytest.raises(CompareError, match="choose two different runs"):
        load_pair(workspace, "runs", run_id, run_id)
    with pytest.raises(CompareError, match="second run"):
        load_pair(workspace, "runs", run_id, "")
    empty = copy_run(workspace, run_id, "20200101-000000-no-weights-0001")
    shutil.rmtree(workspace.runs_dir / empty / "adapter")
    with pytest.raises(CompareError, match="no trained weights"):
        load_pair(workspace, "base", empty)


def test_cli_prints_both_answers(compare_ws):
    import json

    from tests.conftest import run_cli

    workspace, run_id = compare_ws
    result = run_cli("compare", run_id, "--prompt", TRAINED_PROMPT, "--max-new-tokens", "40", "--json",
                     workspace=workspace.root)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers[0] == {"name": f"tuned · {run_id}", "answer": TRAINED_ANSWER}
    assert answers[1]["name"] == "base model · tiny-demo" and answers[1]["answer"] != TRAINED_ANSWER
    refused = run_cli("compare", run_id, "--with", run_id, "--prompt", "hi", workspace=workspace.root)
    assert refused.returncode == 2 and "choose two different runs" in refused.stderr


def test_the_tab_shares_the_one_model_slot_with_chat_and_refuses_viewers(compare_ws, full_run):
    import weakref
    from types import SimpleNamespace

    import gradio as gr

    from studio.chat_memory import free_memory
    from studio.ui.compare_tab import create_compare_tab
    from studio.ui.context import UIContext

    workspace, run_id = compare_ws
    ctx = UIContext(workspace=workspace, viewers=frozenset({"watcher"}))
    with gr.Blocks():
        ctx.language = gr.Radio(["English", "简体中文"], value="English")
        tab = create_compare_tab(ctx)
    operator, viewer = SimpleNamespace(username="me"), SimpleNamespace(username="watcher")
    with pytest.raises(gr.Error):
        tab["on_load"]("base", full_run, "", "English", viewer)
    assert ctx.chat.model is None

    status, counter = tab["on_load"]("base", full_run, "", "简体中文", operator)
    assert "两份权重" in status and "0" in counter  # two copies, said in Chinese
    assert ctx.chat.run_id == full_run and ctx.chat.model.adapter_names == []
    header_a, answer_a, header_b, answer_b, comparison, _ = tab["on_answer"](
        TRAINED_PROMPT, "", True, 40, 0.0, 1.0, 0, "English", operator)
    assert (header_a, header_b) == ("### A", "### B") and sorted([answer_a, answer_b]) == sorted(comparison.answers)
    with pytest.raises(gr.Error):
        tab["raters"]["tie"](comparison, "English", viewer)
    revealed_a, revealed_b, rated, counter = tab["raters"]["tie"](comparison, "English", operator)
    assert rated.verdict == "tie" and "tuned" in revealed_a + revealed_b and "1 ties" in counter

    # Chat loads another model into the slot (as its Load does): both of Compare's copies are let go
    primary, second = weakref.ref(ctx.chat.model), weakref.ref(tab["current_pair"]().second)
    assert second() is not None
    with ctx.chat.lock:
        ctx.chat.model = None
        free_memory()
        ctx.chat.model = load_run(workspace, run_id, base=True)
    assert primary() is None and second() is None
    with pytest.raises(gr.Error, match="Load a run to compare first"):
        tab["on_answer"](TRAINED_PROMPT, "", False, 40, 0.0, 1.0, 0, "English", operator)
