"""Every dataset format and source the studio reads, detected with a reason, normalised as the trainer sees it;
each malformed case named by line and counted by kind; the column map; skipping bad rows; Hub ids offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_data import write_rows

from studio.data.library import open_dataset, read_dataset
from studio.data.loading import DataError, load_dataset_file
from studio.workspace import Workspace

USER_ASSISTANT = [{"role": "user", "content": "Where is Amberlee?"}, {"role": "assistant", "content": "On the Lantern Coast."}]


def load(tmp_path: Path, name: str, rows: list[dict], **options):
    return load_dataset_file(write_rows(tmp_path / name, rows), **options)


def test_alpaca_with_history_and_system(tmp_path):
    loaded = load(tmp_path, "a.jsonl", [{"instruction": "And the river?", "input": "", "output": "The Silver Run.",
                                          "system": "Be brief.", "history": [["Where is Amberlee?", "On the coast."]]}])
    assert loaded.format == "alpaca" and "`instruction` and `output`" in loaded.reason
    assert loaded.examples == [{"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is Amberlee?"}, {"role": "assistant", "content": "On the coast."},
        {"role": "user", "content": "And the river?"}, {"role": "assistant", "content": "The Silver Run."}]}]


def test_sharegpt_tool_roles(tmp_path):
    loaded = load(tmp_path, "s.json", [{"conversations": [
        {"from": "human", "value": "Weather in Amberlee?"}, {"from": "function_call", "value": '{"name": "weather"}'},
        {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "It is sunny."}]}])
    assert loaded.format == "sharegpt" and "from/value" in loaded.reason
    assert [m["role"] for m in loaded.conversations[0]] == ["user", "assistant", "tool", "assistant"]


def test_openai_fine_tuning_file_with_tools_and_weights(tmp_path):
    tools = [{"type": "function", "function": {"name": "lantern_count", "parameters": {"type": "object"}}}]
    loaded = load(tmp_path, "o.jsonl", [{"messages": [
        {"role": "system", "content": "You count lanterns."}, {"role": "user", "content": "How many?"},
        {"role": "assistant", "content": "Three.", "weight": 0}, {"role": "user", "content": "Sure?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Yes, three."}], "weight": 1}], "tools": tools}])
    assert loaded.format == "openai"
    row = loaded.examples[0]
    assert row["tools"] == tools
    assert row["messages"][2] == {"role": "assistant", "content": "Three.", "weight": 0}
    assert row["messages"][4] == {"role": "assistant", "content": "Yes, three.", "weight": 1}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_preference_pairs_as_strings(tmp_path, suffix):
    loaded = load(tmp_path, f"p{suffix}", [{"prompt": "Where is Amberlee?", "chosen": "On the coast.", "rejected": "In the hills."}])
    assert (loaded.format, loaded.kind) == ("preference", "preference")
    assert loaded.examples == [{"prompt": [{"role": "user", "content": "Where is Amberlee?"}],
                                "chosen": [{"role": "assistant", "content": "On the coast."}],
                                "rejected": [{"role": "assistant", "content": "In the hills."}]}]


def test_preference_pairs_as_message_lists_with_an_implicit_prompt(tmp_path):
    question = {"role": "user", "content": "Where is Amberlee?"}
    loaded = load(tmp_path, "p.jsonl", [{"chosen": [question, {"role": "assistant", "content": "On the coast."}],
                                         "rejected": [question, {"role": "assistant", "content": "In the hills."}]}])
    assert loaded.examples[0]["prompt"] == [question]
    assert loaded.examples[0]["chosen"] == [{"role": "assistant", "content": "On the coast."}]


@pytest.mark.parametrize("label,expected", [(True, True), ("false", False), (0, False)])
def test_kto_rows(tmp_path, label, expected):
    loaded = load(tmp_path, "k.jsonl", [{"prompt": "Where is Amberlee?", "completion": "On the coast.", "label": label}])
    assert (loaded.format, loaded.kind) == ("kto", "kto")
    assert loaded.examples[0]["label"] is expected
    assert loaded.examples[0]["completion"] == [{"role": "assistant", "content": "On the coast."}]


def test_kto_label_that_is_not_a_yes_or_no_is_named(tmp_path):
    with pytest.raises(DataError) as caught:
        load(tmp_path, "k.jsonl", [{"prompt": "a", "completion": "b", "label": "maybe"}])
    assert "line 1" in str(caught.value) and "label" in str(caught.value) and "maybe" in str(caught.value)


def test_text_jsonl_and_txt_blocks_and_a_folder_of_txt_files(tmp_path):
    assert load(tmp_path, "t.jsonl", [{"text": "The Lantern Coast has 30 towns."}]).examples == [{"text": "The Lantern Coast has 30 towns."}]
    blocks = tmp_path / "book.txt"
    blocks.write_text("First line\nof block one.\n\n\nBlock two.\n", encoding="utf-8")
    loaded = load_dataset_file(blocks)
    assert loaded.format == "text" and loaded.locations == ["line 1", "line 5"]
    assert loaded.examples == [{"text": "First line\nof block one."}, {"text": "Block two."}]
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Doc A", encoding="utf-8")
    (folder / "b.txt").write_text("Doc B\n\nstill B", encoding="utf-8")
    loaded = load_dataset_file(folder)
    assert loaded.examples == [{"text": "Doc A"}, {"text": "Doc B\n\nstill B"}] and loaded.locations == ["a.txt", "b.txt"]


def test_a_folder_saved_with_save_to_disk(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = {"instruction": ["Where is Amberlee?"], "output": ["On the coast."]}
    DatasetDict({"train": Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "saved"))
    loaded = load_dataset_file(tmp_path / "saved")
    assert loaded.format == "alpaca" and loaded.conversations == [USER_ASSISTANT[:1] + [{"role": "assistant", "content": "On the coast."}]]


# --- each malformed case is named by line and counted by kind --------------------------------------------

def test_every_kind_of_bad_row_is_named_and_counted(tmp_path):
    good = json.dumps({"messages": USER_ASSISTANT})
    lines = [
        good,
        '{"messages": [oops',                                                                       # 2 malformed JSON
        json.dumps({"messages": "hello"}),                                                           # 3 wrong type
        json.dumps({"other": 1}),                                                                    # 4 missing field
        json.dumps({"messages": []}),                                                                # 5 empty conversation
        json.dumps({"messages": [{"role": "user", "content": "Hi"}]}),                               # 6 no assistant
        json.dumps({"messages": [USER_ASSISTANT[0], {"role": "assistant", "content": "  "}]}),      # 7 empty answer
        json.dumps({"messages": [{"role": "pirate", "content": "Arr"}, USER_ASSISTANT[1]]}),         # 8 unknown role
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n" + '{"messages": "caf\xe9"}'.encode("latin-1") + b"\n")  # 9 not UTF-8
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    message = str(caught.value)
    assert "bad.jsonl: 8 of 9 rows cannot be used" in message
    for line in range(2, 10):
        assert f"line {line}:" in message
    assert "line 1:" not in message
    loaded = load_dataset_file(path, skip_bad=True)
    assert len(loaded) == 1 and loaded.skipped == 8
    assert {p.line: p.kind for p in loaded.problems} == {2: "json", 3: "type", 4: "missing", 5: "empty", 6: "ending",
                                                          7: "empty", 8: "role", 9: "encoding"}
    assert loaded.problem_counts()["empty field"] == 2 and loaded.problem_counts()["malformed JSON"] == 1


def test_a_file_whose_rows_are_all_bad_is_refused_even_when_skipping(tmp_path):
    path = write_rows(tmp_path / "all-bad.jsonl", [{"prompt": "a", "completion": ""}, {"prompt": "b", "completion": ""}])
    with pytest.raises(DataError) as caught:
        load_dataset_file(path, skip_bad=True)
    assert "2 of 2 rows" in str(caught.value) and "skip_bad_rows" not in str(caught.value)


def test_csv_with_non_utf8_cell_and_extra_cells(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"prompt,completion\nhello,world\ncaf\xe9,ok\na,b,c\n")
    loaded = load_dataset_file(path, skip_bad=True)
    assert len(loaded) == 1
    assert [(p.line, p.kind) for p in loaded.problems] == [(3, "encoding"), (4, "type")]


def test_nothing_crashes_on_garbage(tmp_path):
    for name, data in [("x.jsonl", b"\x00\xff\xfe garbage\n[1,2]\n\"str\"\n"), ("x.json", b"{\"a\": 1}"),
                       ("x.csv", b"\xff\xfe\x00"), ("x.parquet", b"not parquet"), ("x.txt", b"")]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataError) as caught:
            load_dataset_file(path)
        assert name in str(caught.value)


# --- column map ----------------------------------------------------------------------------------------

def test_column_map_overrides_detection(tmp_path):
    path = write_rows(tmp_path / "qa.csv", [{"question": "Where is Amberlee?", "answer": "On the Lantern Coast."}])
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    assert "column_map" in str(caught.value) and "question" in str(caught.value)
    loaded = load_dataset_file(path, column_map="prompt=question,response=answer")
    assert loaded.format == "alpaca" and "column map" in loaded.reason
    assert loaded.conversations == [USER_ASSISTANT]


@pytest.mark.parametrize("column_map,expected", [("prompt=question,response=nope", "nope"), ("speaker=question", "speaker"),
                                                 ("prompt", "role=column")])
def test_a_bad_column_map_is_named(tmp_path, column_map, expected):
    path = write_rows(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError) as caught:
        load_dataset_file(path, column_map=column_map)
    assert expected in str(caught.value)


def test_config_rejects_a_bad_column_map():
    from studio import config as cfg

    problems = cfg.validate(cfg.apply_overrides(cfg.RunConfig(), {"column_map": "speaker=who"}))
    assert any(p.key == "column_map" and "speaker" in p.message for p in problems)


# --- Hugging Face dataset ids -------------------------------------------------------------------------

def test_hub_dataset_offline_says_so_and_how_to_get_it_in(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    with pytest.raises(DataError) as caught:
        open_dataset(workspace, "hf:lantern-coast/faq-demo:en@validation")
    message = str(caught.value)
    assert "lantern-coast/faq-demo" in message and "config en" in message and "validation" in message
    assert "offline" in message and "save_to_disk" in message


def test_a_malformed_hub_reference_is_named(tmp_path):
    with pytest.raises(DataError) as caught:
        read_dataset(Workspace(tmp_path / "ws"), "hf:")
    assert "hf:OWNER/NAME" in str(caught.value)
