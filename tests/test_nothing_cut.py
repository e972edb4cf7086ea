"""Nothing is silently lost on the way to the trainer: continued pre-training packs every token of every document
into cutoff_len blocks (counted token by token), the run log says how many rows and tokens other stages truncate,
and answers labelled bad are never trained as good (KTO keeps the label; SFT leaves them out and says so)."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from studio import config as cfg
from studio.data.prepare import prepare_sft
from studio.data.pretrain import document_tokens, pretrain_blocks
from studio.train.stages import build_datasets, trl_rows

CUTOFF = 32
DOCUMENTS = ["Amberlee sits on the Lantern Coast, where glass is blown into blue lanterns. " * 6,
             "A short note.", "The Silver Run flows past the harbour and the old mill. " * 3, "Tiny."]


@pytest.fixture
def tokenizer(workspace):
    return AutoTokenizer.from_pretrained(workspace.models_dir / "tiny-demo")


def _write(workspace, name: str, rows: list[dict]) -> str:
    (workspace.datasets_dir / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return f"datasets/{name}"


def test_pretraining_blocks_hold_every_token_once_in_order(tokenizer):
    documents = document_tokens(tokenizer, DOCUMENTS)
    assert all(ids[-1] == tokenizer.eos_token_id for ids in documents)
    assert max(len(d) for d in documents) > 2 * CUTOFF  # one document needs several blocks
    packed = pretrain_blocks(tokenizer, DOCUMENTS, CUTOFF)
    assert all(len(block) <= CUTOFF for block in packed.blocks)
    assert [t for block in packed.blocks for t in block] == [t for d in documents for t in d]
    assert packed.tokens == sum(len(d) for d in documents)
    assert packed.longer_than_cutoff >= 1 and "0 tokens cut" in packed.note(CUTOFF)


def test_a_pt_run_trains_every_token_and_logs_it(workspace, tokenizer):
    ref = _write(workspace, "docs.jsonl", [{"text": d} for d in DOCUMENTS])
    config = cfg.apply_overrides(cfg.RunConfig(), {"stage": "pt", "dataset": ref, "cutoff_len": CUTOFF})
    log = []
    train, evaluation, *_ = build_datasets(workspace, config, log.append, tokenizer)
    total = sum(len(d) for d in document_tokens(tokenizer, DOCUMENTS))
    assert sum(len(ids) for ids in train["input_ids"]) == total and evaluation is None
    assert any(f"{total:,} tokens" in line and "0 tokens cut" in line for line in log), log


def test_preference_stages_log_the_rows_the_trainer_truncates(workspace, tokenizer):
    long_answer = "lantern " * 80
    ref = _write(workspace, "pairs.jsonl", [{"prompt": "Where?", "chosen": "Coast.", "rejected": long_answer},
                                            {"prompt": "What?", "chosen": "Glass.", "rejected": "Stone."}])
    config = cfg.apply_overrides(cfg.RunConfig(), {"stage": "dpo", "dataset": ref, "cutoff_len": CUTOFF})
    log = []
    build_datasets(workspace, config, log.append, tokenizer)
    assert any(line.startswith("1 of 2 rows are longer than cutoff_len 32 and are truncated") for line in log), log


def test_kto_keeps_the_bad_label_and_sft_leaves_bad_answers_out(workspace, tokenizer):
    rows = [{"messages": [{"role": "user", "content": "Where is Amberlee?"},
                          {"role": "assistant", "content": answer}], "label": good}
            for answer, good in (("On the Lantern Coast.", True), ("In the hills.", False), ("By the sea.", True))]
    ref = _write(workspace, "labelled.jsonl", rows)
    kto_config = cfg.apply_overrides(cfg.RunConfig(), {"stage": "kto", "dataset": ref})
    train, *_ = build_datasets(workspace, kto_config, lambda line: None, tokenizer)
    assert [(r["completion"][0]["content"], r["label"]) for r in train] == [
        ("On the Lantern Coast.", True), ("In the hills.", False), ("By the sea.", True)]

    sft = prepare_sft(workspace, cfg.apply_overrides(cfg.RunConfig(), {"stage": "sft", "dataset": ref}), tokenizer)
    trained_answers = [conversation[-1]["content"] for conversation in sft.train_rows]
    assert trained_answers == ["On the Lantern Coast.", "By the sea."]
    assert len(sft.train) == 2
    assert not any("hills" in tokenizer.decode([t for t in ids if t >= 0]) for ids in sft.train["labels"])
    assert any("the 1 answers labelled bad are not trained on" in note and "stage=kto" in note for note in sft.notes)


def test_kto_rows_from_pairs_give_one_good_and_one_bad_answer():
    pair = {"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "A"}],
            "rejected": [{"role": "assistant", "content": "B"}]}
    assert [(r["completion"][0]["content"], r["label"]) for r in trl_rows("kto", [pair])] == [("A", True), ("B", False)]
