"""Chat engine: base answers from the same weights with the adapter switched off, other runs' adapters beside it,
checkpoints, the training template with a system prompt, Stop, stop strings, seed, top-k and repetition penalty,
and the GPU-memory guard against loading beside a training run."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
import yaml

from studio.workspace import Workspace

PROMPT = [{"role": "user", "content": "What is Amberlee known for?"}]
ANSWER = "Amberlee is known for blue glass lanterns."
PROMPTS = [PROMPT, [{"role": "user", "content": "Hello"}]]


@pytest.fixture(scope="module")
def tuned(demo_run):
    """The session's demo run loaded for chat (LoRA on tiny-demo), with its workspace and run folder."""
    from studio.chat import load_run

    workspace_path, run_dir = demo_run
    workspace = Workspace(workspace_path)
    return workspace, run_dir, load_run(workspace, run_dir.name)


def test_answers_generated_together_equal_the_ones_chat_gives(tuned):
    """Probe answers come in one batch (prompts of different lengths, padded): each is the Chat tab's reply,
    for the tuned model and with its adapter switched off."""
    import json

    from studio.chat import GenerationSettings
    from studio.workspace import PRESETS_DIR

    _, _, chat_model = tuned
    rows = [json.loads(line)["messages"] for line in (PRESETS_DIR / "datasets/demo-chat.jsonl").read_text(encoding="utf-8").splitlines()]
    conversations = [row[:-1] for row in rows[:6]] + [[{"role": "user", "content": "Hello"}]]
    assert len({len(chat_model.tokenizer.apply_chat_template(c, add_generation_prompt=True, return_dict=True)["input_ids"])
                for c in conversations}) > 1  # prompts of different lengths: the batch is padded
    greedy = GenerationSettings(max_new_tokens=32)
    padding_side = chat_model.tokenizer.padding_side
    for adapter in (chat_model.adapter_names[0], None):
        with chat_model.using_adapter(adapter):
            one_by_one = [chat_model.reply(c, greedy) for c in conversations]
            assert chat_model.replies(conversations, greedy) == one_by_one
    assert chat_model.replies(conversations[:2], greedy)[:1] == [rows[0][-1]["content"]]  # the trained answer
    assert chat_model.tokenizer.padding_side == padding_side, "the tokenizer is left as it was"


def _tokens(chat_model, text: str) -> int:
    return len(chat_model.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_adapter_switched_off_answers_exactly_like_the_base_model(tuned):
    from studio.chat import GenerationSettings, load_run

    workspace, run_dir, chat_model = tuned
    base = load_run(workspace, run_dir.name, base=True)
    greedy = GenerationSettings(max_new_tokens=24)
    assert chat_model.adapter_names == [run_dir.name] and base.adapter_names == []

    for messages in PROMPTS:
        with chat_model.using_adapter(None):
            switched_off = chat_model.reply(messages, greedy)
        assert switched_off == base.reply(messages, greedy)
    assert chat_model.reply(PROMPT, greedy) == ANSWER, "the adapter is back on after the block"
    with chat_model.using_adapter(run_dir.name):
        assert chat_model.reply(PROMPT, greedy) == ANSWER
    with chat_model.using_adapter(None):
        assert chat_model.reply(PROMPT, greedy) != ANSWER, "training changed the answer"
    with pytest.raises(ValueError, match="no adapter named 'nope'"), chat_model.using_adapter("nope"):
        pass
    plain = base.reply(PROMPT, greedy)
    with base.using_adapter(None):  # a model without adapters: nothing to switch off
        assert base.reply(PROMPT, greedy) == plain
    with pytest.raises(ValueError, match="loaded adapters: none"), base.using_adapter(run_dir.name):
        pass


def test_the_chat_prompt_with_a_system_prompt_is_the_trained_rendering(tuned):
    from transformers import AutoTokenizer

    from studio.chat import with_system
    from studio.data.masking import IGNORE_INDEX, tokenize_conversation

    workspace, _, chat_model = tuned
    messages = with_system([{"role": "system", "content": "old"}, *PROMPT], "Answer in one sentence.", chat_model.tokenizer)
    assert [m["role"] for m in messages] == ["system", "user"] and messages[0]["content"] == "Answer in one sentence."
    assert with_system(PROMPT, "  ") == PROMPT

    # what training read for the same conversation, through the base model's own tokenizer
    training_tokenizer = AutoTokenizer.from_pretrained(workspace.models_dir / "tiny-demo")
    trained = tokenize_conversation(training_tokenizer, [*messages, {"role": "assistant", "content": ANSWER}])
    prompt_len = next(i for i, label in enumerate(trained.labels) if label != IGNORE_INDEX)
    prompt = chat_model.prompt_text(messages)
    assert "Answer in one sentence." in prompt
    assert chat_model.tokenizer(prompt, add_special_tokens=False)["input_ids"] == trained.input_ids[:prompt_len]


def test_a_template_without_a_system_role_is_named(tuned):
    from studio.chat import with_system

    tokenizer = tuned[2].tokenizer
    original = tokenizer.chat_template
    try:
        tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                                   "{{ raise_exception('System role not supported') }}{% endif %}{{ m['content'] }}{% endfor %}")
        with pytest.raises(ValueError, match="does not take a system prompt.*System role not supported"):
            with_system(PROMPT, "Be brief.", tokenizer)
        tokenizer.chat_template = "{% for m in messages %}{% if m['role'] != 'system' %}{{ m['content'] }}{% endif %}{% endfor %}"
        with pytest.raises(ValueError, match="drops system messages"):
            with_system(PROMPT, "Be brief.", tokenizer)
    finally:
        tokenizer.chat_template = original


def test_stop_event_ends_a_long_generation_and_keeps_the_partial_reply(tuned):
    from studio.chat import GenerationSettings

    chat_model = tuned[2]
    long = GenerationSettings(max_new_tokens=200)
    with chat_model.using_adapter(None):  # the untrained model rambles on: it never ends a reply by itself
        assert _tokens(chat_model, chat_model.reply(PROMPT, long)) == 200
        stop, replies = threading.Event(), []
        for reply in chat_model.stream(PROMPT, long, stop_event=stop):
            replies.append(reply)
            stop.set()
    assert replies and replies[-1].strip()
    assert _tokens(chat_model, replies[-1]) < 200


def test_a_stop_string_cuts_the_reply_before_it(tuned):
    from studio.chat import GenerationSettings

    chat_model = tuned[2]
    settings = GenerationSettings(stop_strings=["glass"])
    assert chat_model.reply(PROMPT, settings) == "Amberlee is known for blue"
    streamed = list(chat_model.stream(PROMPT, settings))
    assert streamed[-1].strip() == "Amberlee is known for blue"
    assert not any("glass" in piece or piece.endswith(" gl") for piece in streamed)


def test_seed_top_k_and_repetition_penalty_shape_the_reply(tuned):
    from studio.chat import GenerationSettings

    chat_model = tuned[2]
    with chat_model.using_adapter(None):  # the untrained model: many tokens are likely, so sampling varies
        sampled = [chat_model.reply(PROMPT, GenerationSettings(max_new_tokens=16, temperature=1.0, seed=seed))
                   for seed in (7, 7, 8)]
        greedy = chat_model.reply(PROMPT, GenerationSettings(max_new_tokens=16))
        top_1 = chat_model.reply(PROMPT, GenerationSettings(max_new_tokens=16, temperature=1.0, top_k=1, seed=8))
        penalised = chat_model.reply(PROMPT, GenerationSettings(max_new_tokens=16, repetition_penalty=3.0))
    assert sampled[0] == sampled[1], "the same seed gives the same sampled reply"
    assert sampled[0] != sampled[2], "another seed samples another reply"
    assert top_1 == greedy, "top-k 1 keeps only the likeliest token"
    assert penalised != greedy


def test_a_checkpoint_loads_its_own_weights(tuned):
    import torch
    from safetensors.torch import load_file

    from studio.chat import checkpoint_names, load_run
    from studio.workspace import PathError

    workspace, run_dir, _ = tuned
    names = checkpoint_names(run_dir)
    assert names and all(n.startswith("checkpoint-") for n in names), names
    first = load_run(workspace, run_dir.name, checkpoint=names[0])
    saved = load_file(str(run_dir / "checkpoints" / names[0] / "adapter_model.safetensors"))
    final = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    loaded = {k.replace(f".{run_dir.name}", ""): v for k, v in first.model.state_dict().items() if "lora_" in k}
    assert set(saved) <= set(loaded)
    assert all(torch.equal(loaded[key], saved[key]) for key in saved), "the checkpoint's adapter weights are loaded"
    assert any(not torch.equal(loaded[key], final[key]) for key in saved), "not the final weights"

    for bad in ("checkpoint-999999", "../adapter"):
        with pytest.raises(PathError, match=f"no checkpoint .*available: {names[0]}"):
            load_run(workspace, run_dir.name, checkpoint=bad)


def _copy_run(source, workspace: Workspace, run_id: str, model: str | None = None):
    """A copy of run folder `source` in `workspace` as `run_id`, optionally claiming another base model."""
    target = workspace.runs_dir / run_id
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoints"))
    if model:
        config = yaml.safe_load((target / "config.yaml").read_text(encoding="utf-8"))
        config["model"]["model"] = model
        (target / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return target


def test_another_runs_adapter_shares_the_base_and_a_different_base_is_refused(demo_run, workspace):
    from studio.chat import GenerationSettings, load_run

    first = _copy_run(demo_run[1], workspace, "20260101-000000-first-aaaa")
    second = _copy_run(demo_run[1], workspace, "20260101-000001-second-bbbb")
    other = _copy_run(demo_run[1], workspace, "20260101-000002-other-cccc", model="Qwen/Qwen2.5-0.5B-Instruct")
    chat_model = load_run(workspace, first.name)
    chat_model.add_adapter_from_run(workspace, second.name, "second")
    assert chat_model.adapter_names == [first.name, "second"]
    greedy = GenerationSettings(max_new_tokens=16)
    with chat_model.using_adapter("second"):
        assert chat_model.reply(PROMPT, greedy) == ANSWER
    with chat_model.using_adapter(None):
        assert chat_model.reply(PROMPT, greedy) != ANSWER

    with pytest.raises(ValueError, match="trained on Qwen/Qwen2.5-0.5B-Instruct.*does not fit"):
        chat_model.add_adapter_from_run(workspace, other.name, "other")
    with pytest.raises(ValueError, match="already loaded"):
        chat_model.add_adapter_from_run(workspace, second.name, "second")
    assert chat_model.adapter_names == [first.name, "second"]


def test_loading_beside_a_training_run_needs_free_gpu_memory(demo_run, workspace):
    import psutil

    from studio.chat_memory import load_refusal
    from studio.hardware import GPU, GiB
    from studio.train.status import update_status

    run = _copy_run(demo_run[1], workspace, "20260101-000000-chat-aaaa")
    training = _copy_run(demo_run[1], workspace, "20260101-000001-training-bbbb")
    small, big = (GPU(0, "test GPU", 8 * GiB, free, (8, 0)) for free in (1000, 8 * GiB))
    assert load_refusal(workspace, run.name, gpus=[small]) is None, "no training run: loading goes ahead"

    # a training run whose worker is alive (this very process stands in for it, until the checks end: the
    # workspace fixture kills live workers afterwards)
    update_status(training, state="running", pid=os.getpid(), pid_started=psutil.Process().create_time())
    try:
        refusal = load_refusal(workspace, run.name, gpus=[small])
        assert refusal is not None and refusal.training_run == training.name
        assert refusal.free_bytes == 1000 and refusal.needed_bytes > 2 * 1_000_000  # tiny-demo: millions of parameters
        assert load_refusal(workspace, run.name, gpus=[big]) is None, "enough free memory"
        assert load_refusal(workspace, run.name, gpus=[]) is None, "on the CPU loading is allowed"
    finally:
        update_status(training, state="completed", drop=("pid", "pid_started"))
