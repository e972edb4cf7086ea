"""Label masking: only assistant turns (and their end-of-turn marker) are trained on; tiny-demo builds reproducibly."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

from studio.data.masking import (
    IGNORE_INDEX,
    TemplateError,
    assistant_spans,
    tokenize_conversation,
)

CONVERSATION = [
    {"role": "system", "content": "You are a terse guide to Amberlee."},
    {"role": "user", "content": "What is Amberlee known for?"},
    {"role": "assistant", "content": "Amberlee is known for blue glass lanterns."},
    {"role": "user", "content": "Which river runs through it?"},
    {"role": "assistant", "content": "The Silver Run runs through Amberlee."},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_demo_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_demo_dir)


def _trained_runs(ids: list[int], labels: list[int]) -> list[list[int]]:
    """The contiguous runs of trained (label != -100) token ids."""
    runs, current = [], []
    for token_id, label in zip(ids, labels):
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
                current = []
        else:
            assert label == token_id, "a trained token must be labelled with its own id"
            current.append(token_id)
    if current:
        runs.append(current)
    return runs


def test_only_assistant_turns_are_trained(tokenizer):
    encoded = tokenize_conversation(tokenizer, CONVERSATION)
    assert len(encoded.input_ids) == len(encoded.labels)
    # the whole conversation is there, in the model's chat template
    assert tokenizer.decode(encoded.input_ids) == tokenizer.apply_chat_template(CONVERSATION, tokenize=False)

    trained = [i for i, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE_INDEX]
    assistants = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]
    assert tokenizer.decode(trained) == "".join(f"{a}<|im_end|>\n" for a in assistants)

    # each assistant turn is its own trained span
    runs = _trained_runs(encoded.input_ids, encoded.labels)
    assert [tokenizer.decode(r) for r in runs] == [f"{a}<|im_end|>\n" for a in assistants]

    trained_text = tokenizer.decode(trained)
    for message in CONVERSATION:
        if message["role"] != "assistant":
            assert message["content"] not in trained_text
    assert "<|im_start|>" not in trained_text and "assistant\n" not in trained_text
    masked_text = tokenizer.decode([i for i, label in zip(encoded.input_ids, encoded.labels) if label == IGNORE_INDEX])
    for message in CONVERSATION:
        if message["role"] != "assistant":
            assert message["content"] in masked_text


def test_train_on_prompt_labels_everything(tokenizer):
    encoded = tokenize_conversation(tokenizer, CONVERSATION, train_on_prompt=True)
    assert encoded.labels == encoded.input_ids
    assert IGNORE_INDEX not in encoded.labels


def test_assistant_spans_point_at_the_assistant_text(tokenizer):
    full, spans = assistant_spans(tokenizer, CONVERSATION)
    assert [full[a:b] for a, b in spans] == [
        "Amberlee is known for blue glass lanterns.<|im_end|>\n",
        "The Silver Run runs through Amberlee.<|im_end|>\n",
    ]


def test_a_tokenizer_without_chat_template_is_refused_with_a_reason(tiny_demo_dir):
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(tiny_demo_dir)
    plain.chat_template = None
    with pytest.raises(TemplateError) as caught:
        tokenize_conversation(plain, CONVERSATION)
    assert "chat template" in str(caught.value)


def test_a_template_that_rewrites_earlier_turns_is_refused(tiny_demo_dir):
    from transformers import AutoTokenizer

    odd = AutoTokenizer.from_pretrained(tiny_demo_dir)
    # puts the number of messages at the top, so the prefix changes when a turn is added
    odd.chat_template = "{{ messages|length }}" + odd.chat_template
    with pytest.raises(TemplateError) as caught:
        tokenize_conversation(odd, CONVERSATION)
    assert "turn by turn" in str(caught.value)


@pytest.mark.slow
def test_tiny_demo_builds_byte_identical_in_two_folders(tiny_demo_dir, tmp_path):
    """A second build in a fresh process and folder gives the same weights and tokenizer, byte for byte."""
    other = tmp_path / "models"
    script = "import sys; from pathlib import Path; from studio.models.demo import ensure_demo_model; " \
             "print(ensure_demo_model(Path(sys.argv[1])))"
    result = subprocess.run(
        [sys.executable, "-c", script, str(other)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    rebuilt = other / "tiny-demo"
    assert result.stdout.strip().endswith(str(rebuilt))
    for name in ("model.safetensors", "tokenizer.json"):
        assert (rebuilt / name).read_bytes() == (tiny_demo_dir / name).read_bytes(), f"{name} differs between builds"


def test_tiny_demo_is_a_chat_model_with_the_documented_shape(tiny_demo_dir):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_demo_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_dir)
    assert config.model_type == "llama"
    assert config.vocab_size == len(tokenizer)
    assert tokenizer.is_fast and tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>"
    assert config.eos_token_id == tokenizer.eos_token_id


# --- options, and the loss-mask view equals what the trainer's collator builds ----------------------------

def _trained_text(tokenizer, encoded) -> str:
    return tokenizer.decode([i for i, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE_INDEX])


def test_mask_history_trains_only_the_last_answer(tokenizer):
    encoded = tokenize_conversation(tokenizer, CONVERSATION, mask_history=True)
    assert _trained_text(tokenizer, encoded) == "The Silver Run runs through Amberlee.<|im_end|>\n"


def test_a_weight_0_answer_is_not_trained(tokenizer):
    weighted = [dict(m) for m in CONVERSATION]
    weighted[2]["weight"] = 0
    encoded = tokenize_conversation(tokenizer, weighted)
    assert _trained_text(tokenizer, encoded) == "The Silver Run runs through Amberlee.<|im_end|>\n"
    assert tokenizer.decode(encoded.input_ids) == tokenizer.apply_chat_template(CONVERSATION, tokenize=False)


def test_batched_and_single_tokenisation_agree(tokenizer):
    from studio.data.masking import tokenize_conversations

    conversations = [CONVERSATION, CONVERSATION[1:3], CONVERSATION[:3]]
    batched = tokenize_conversations(tokenizer, conversations)
    assert [(b.input_ids, b.labels) for b in batched] == [
        (s.input_ids, s.labels) for s in (tokenize_conversation(tokenizer, c) for c in conversations)]


@pytest.mark.parametrize("options", [{}, {"train_on_prompt": True}, {"mask_history": True}])
def test_mask_view_colours_equal_the_collator_labels(workspace, tmp_path, options):
    """The Data tab's mask view of a row = the labels the SFT trainer's collator builds for it, token by token,
    through the worker's own dataset path (studio.train.worker._build_datasets) and TRL's collator."""
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from studio import config as cfg
    from studio.data.masking import mask_view
    from studio.train.worker import _build_datasets

    rows = [{"messages": CONVERSATION}, {"messages": CONVERSATION[1:3]}]
    (workspace.datasets_dir / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = cfg.apply_overrides(cfg.RunConfig(), {"dataset": "datasets/m.jsonl", **options})
    model_dir = workspace.models_dir / "tiny-demo"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    train_dataset, *_ = _build_datasets(workspace, run_dir, config, tokenizer)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), processing_class=tokenizer,
                         train_dataset=train_dataset,
                         args=SFTConfig(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, max_length=1024))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = batch["labels"][0].tolist()

    view = mask_view(tokenizer, CONVERSATION, **options)
    assert len(view) == len(labels)
    assert [trained for _piece, trained in view] == [label != IGNORE_INDEX for label in labels]
    assert "".join(piece for piece, _ in view) == tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert any(trained for _, trained in view) and (options.get("train_on_prompt") or not all(t for _, t in view))
