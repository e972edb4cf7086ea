"""Files written for other fine-tuning tools are detected and read as their authors meant: every preference shape
(LLaMA-Factory rankings and v1 files, OpenAI/Azure preference JSONL, TRL implicit prompts, plain pairs), KTO
labels (never dropped), JSON-looking answers kept as text, content parts with loss weights, and .txt files split
one document per line or per blank-line block with the reason said. Fixtures are small files in each shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_data import write_rows

from studio.data.loading import load_dataset_file

ASK = "Where is Amberlee?"
GOOD, BAD = "On the Lantern Coast.", "In the hills."
USER = {"role": "user", "content": ASK}
CHOSEN = [{"role": "assistant", "content": GOOD}]
REJECTED = [{"role": "assistant", "content": BAD}]
PAIR = {"prompt": [USER], "chosen": CHOSEN, "rejected": REJECTED}


def load(tmp_path: Path, name: str, rows: list[dict], **options):
    return load_dataset_file(write_rows(tmp_path / name, rows), **options)


def parts(text: str) -> list[dict]:
    return [{"type": "text", "value": text}]


PREFERENCE_SHAPES = {
    "llama-factory ranking": ({"conversations": [{"from": "human", "value": ASK}], "chosen": {"from": "gpt", "value": GOOD},
                               "rejected": {"from": "gpt", "value": BAD}}, "ranking"),
    "openai/azure preference": ({"input": {"messages": [USER]}, "preferred_output": CHOSEN,
                                 "non_preferred_output": REJECTED}, "OpenAI/Azure"),
    "trl implicit prompt": ({"chosen": [USER, *CHOSEN], "rejected": [USER, *REJECTED]}, "implicit prompt"),
    "llama-factory v1": ({"chosen_messages": [{"role": "user", "content": parts(ASK), "loss_weight": 0.0},
                                              {"role": "assistant", "content": parts(GOOD), "loss_weight": 1.0}],
                          "rejected_messages": [{"role": "user", "content": parts(ASK), "loss_weight": 0.0},
                                                {"role": "assistant", "content": parts(BAD), "loss_weight": 1.0}]},
                         "chosen_messages"),
    "prompt/chosen/rejected strings": ({"prompt": ASK, "chosen": GOOD, "rejected": BAD}, "`prompt`, `chosen`"),
    "instruction/chosen/rejected": ({"instruction": ASK, "input": "", "chosen": GOOD, "rejected": BAD}, "`instruction`"),
}


def _plain(turns: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in turns]


@pytest.mark.parametrize("shape", sorted(PREFERENCE_SHAPES))
def test_every_preference_shape_becomes_the_same_pair(tmp_path, shape):
    row, reason = PREFERENCE_SHAPES[shape]
    loaded = load(tmp_path, "pairs.jsonl", [row, row])
    assert (loaded.format, loaded.kind, len(loaded)) == ("preference", "preference", 2)
    assert reason in loaded.reason
    example = loaded.examples[0]
    assert {k: _plain(v) for k, v in example.items()} == PAIR


def test_a_ranking_with_history_keeps_the_earlier_turns_as_the_prompt(tmp_path):
    row = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."},
                             {"from": "human", "value": ASK}],
           "chosen": {"from": "gpt", "value": GOOD}, "rejected": {"from": "gpt", "value": BAD}}
    example = load(tmp_path, "rank.json", [row]).examples[0]
    assert [m["role"] for m in example["prompt"]] == ["user", "assistant", "user"]
    assert example["chosen"] == CHOSEN and example["rejected"] == REJECTED


@pytest.mark.parametrize("answer", ['{"a": 1}', "[1, 2, 3]", '[{"name": "x"}]', "null", "42"])
def test_answers_that_look_like_json_stay_text(tmp_path, answer):
    pref = load(tmp_path, "p.jsonl", [{"prompt": ASK, "chosen": answer, "rejected": BAD}])
    assert pref.examples[0]["chosen"] == [{"role": "assistant", "content": answer}]
    kto = load(tmp_path, "k.jsonl", [{"prompt": ASK, "completion": answer, "label": True}])
    assert kto.examples[0]["completion"] == [{"role": "assistant", "content": answer}]


def test_a_table_cell_holding_a_message_list_is_still_read_as_messages(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('prompt,chosen,rejected\n"' + json.dumps([USER]).replace('"', '""') + '",Yes.,No.\n', encoding="utf-8")
    assert load_dataset_file(path).examples[0]["prompt"] == [USER]


def test_kto_from_messages_and_label_keeps_every_label(tmp_path):
    rows = [{"messages": [USER, {"role": "assistant", "content": GOOD}], "label": True},
            {"messages": [USER, {"role": "assistant", "content": BAD}], "label": False}]
    loaded = load(tmp_path, "kto.json", rows)
    assert (loaded.format, loaded.kind) == ("kto", "kto") and "`label`" in loaded.reason
    assert [(e["completion"][0]["content"], e["label"]) for e in loaded.examples] == [(GOOD, True), (BAD, False)]
    assert all(e["prompt"] == [USER] for e in loaded.examples)


def test_kto_from_prompt_completion_label(tmp_path):
    loaded = load(tmp_path, "kto.jsonl", [{"prompt": ASK, "completion": BAD, "label": "false"}])
    assert loaded.kind == "kto" and loaded.examples[0]["label"] is False


def test_a_column_that_is_not_used_is_named_in_the_reason(tmp_path):
    loaded = load(tmp_path, "c.jsonl", [{"instruction": ASK, "output": GOOD, "score": 0.3}])
    assert loaded.format == "alpaca" and "not used: `score`" in loaded.reason


def test_v1_sft_content_parts_and_loss_weights(tmp_path):
    row = {"messages": [{"role": "user", "content": parts(ASK), "loss_weight": 0.0},
                        {"role": "assistant", "content": [{"type": "reasoning", "value": "Think."}, *parts(GOOD)],
                         "loss_weight": 1.0}]}
    messages = load(tmp_path, "v1.jsonl", [row]).examples[0]["messages"]
    assert messages[0] == {"role": "user", "content": ASK, "weight": 0}
    assert messages[1] == {"role": "assistant", "content": f"<think>\nThink.\n</think>\n\n{GOOD}", "weight": 1}


def test_an_image_part_is_refused_naming_the_field(tmp_path):
    row = {"messages": [{"role": "user", "content": [{"type": "image_url", "value": "x.png"}]},
                        {"role": "assistant", "content": GOOD}]}
    loaded = load(tmp_path, "img.jsonl", [row, {"messages": [USER, *CHOSEN]}], skip_bad=True)
    assert len(loaded) == 1 and "messages[0].content[0] is a 'image_url' part" in loaded.problems[0].message


def test_txt_without_blank_lines_is_one_document_per_line(tmp_path):
    path = tmp_path / "wiki.txt"
    path.write_text("First article, one line.\nSecond article.\nThird article.\n", encoding="utf-8")
    loaded = load_dataset_file(path)
    assert [e["text"] for e in loaded.examples] == ["First article, one line.", "Second article.", "Third article."]
    assert "no blank lines → one document per line" in loaded.reason


def test_txt_with_blank_lines_is_one_document_per_block(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("Chapter one\nstarts here.\n\nChapter two\nfollows.\n", encoding="utf-8")
    loaded = load_dataset_file(path)
    assert [e["text"] for e in loaded.examples] == ["Chapter one\nstarts here.", "Chapter two\nfollows."]
    assert "one document per blank-line block" in loaded.reason


@pytest.mark.parametrize("text_split, documents", [("line", 4), ("blank", 2)])
def test_txt_split_can_be_chosen(workspace, text_split, documents):
    from studio import config as cfg
    from studio.data.prepare import load_for_config

    (workspace.datasets_dir / "book.txt").write_text("One\nTwo\n\nThree\nFour\n", encoding="utf-8")
    auto = load_for_config(workspace, cfg.apply_overrides(cfg.RunConfig(), {"dataset": "datasets/book.txt"}))
    assert len(auto) == 2 and "text_split=line for one per line" in auto.reason
    chosen = load_for_config(workspace, cfg.apply_overrides(cfg.RunConfig(), {"dataset": "datasets/book.txt",
                                                                              "text_split": text_split}))
    assert len(chosen) == documents and f"(text_split={text_split})" in chosen.reason
