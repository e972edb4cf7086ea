"""Dataset loading: every supported shape and file type, errors that name the file and the line, path confinement.

More formats (preference, KTO, text, tools, weights) and sources (Parquet, TSV, folders, Hub ids) are in
tests/test_data_formats.py; the library, preview, quality checks and the CLI in tests/test_data_library.py."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from studio.data.loading import (
    DataError,
    list_samples,
    load_dataset_file,
    resolve_dataset,
)
from studio.workspace import PRESETS_DIR, PathError, Workspace

EXPECTED_SIMPLE = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris, of course."}],
]

SHAPES = {
    "messages": [
        {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]},
        {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris, of course."}]},
    ],
    "sharegpt": [
        {"conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"}]},
        {"conversations": [{"from": "human", "value": "Capital of France?"}, {"from": "gpt", "value": "Paris, of course."}]},
    ],
    "alpaca": [
        {"instruction": "What is 2+2?", "input": "", "output": "4"},
        {"instruction": "Capital of France?", "output": "Paris, of course."},
    ],
    "prompt-completion": [
        {"prompt": "What is 2+2?", "completion": "4"},
        {"prompt": "Capital of France?", "completion": "Paris, of course."},
    ],
}
FORMAT_NAMES = {"messages": "openai", "sharegpt": "sharegpt", "alpaca": "alpaca", "prompt-completion": "prompt_completion"}


def write_rows(path: Path, rows: list[dict]) -> Path:
    """Write `rows` in the file type named by `path`'s suffix."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    return path


CASES = [(shape, suffix) for shape in SHAPES for suffix in (".jsonl", ".json", ".csv", ".tsv", ".parquet")
         if not (suffix in (".csv", ".tsv") and shape in ("messages", "sharegpt"))]  # table cells hold text, not lists


@pytest.mark.parametrize("shape,suffix", CASES, ids=[f"{s}{x}" for s, x in CASES])
def test_each_shape_and_file_type_gives_the_right_conversations(tmp_path, shape, suffix):
    path = write_rows(tmp_path / f"data{suffix}", SHAPES[shape])
    loaded = load_dataset_file(path)
    assert loaded.format == FORMAT_NAMES[shape]
    assert loaded.conversations == EXPECTED_SIMPLE
    assert len(loaded) == 2


def test_system_messages_and_alpaca_input_are_kept(tmp_path):
    sharegpt = write_rows(tmp_path / "s.jsonl", [{"conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."},
        {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Goodbye."}]}])
    assert load_dataset_file(sharegpt).conversations == [[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Goodbye."}]]

    alpaca = write_rows(tmp_path / "a.csv", [
        {"instruction": "Translate to French", "input": "cat", "output": "chat", "system": "You translate."}])
    assert load_dataset_file(alpaca).conversations == [[
        {"role": "system", "content": "You translate."},
        {"role": "user", "content": "Translate to French\n\ncat"},
        {"role": "assistant", "content": "chat"}]]


def test_json_wrapped_in_an_object_is_accepted(tmp_path):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": SHAPES["prompt-completion"]}), encoding="utf-8")
    assert load_dataset_file(path).conversations == EXPECTED_SIMPLE


def test_blank_lines_in_jsonl_are_skipped_and_lines_stay_counted(tmp_path):
    path = tmp_path / "gaps.jsonl"
    rows = [json.dumps(r) for r in SHAPES["prompt-completion"]]
    path.write_text(f"{rows[0]}\n\n{rows[1]}\n\n", encoding="utf-8")
    loaded = load_dataset_file(path)
    assert loaded.conversations == EXPECTED_SIMPLE
    assert loaded.locations == ["line 1", "line 3"]


def test_utf8_bom_and_non_ascii_text_are_read(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"prompt": "你好", "completion": "Grüß dich"}, ensure_ascii=False).encode())
    assert load_dataset_file(path).conversations == [[
        {"role": "user", "content": "你好"}, {"role": "assistant", "content": "Grüß dich"}]]


# --- errors name the file and the line ---------------------------------------------------------------


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    good = json.dumps(SHAPES["prompt-completion"][0])
    path.write_text(f"{good}\n{good}\n{{\"prompt\": \"oops\", \n{good}\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    assert "broken.jsonl" in str(caught.value)
    assert "line 3" in str(caught.value)


def test_malformed_json_array_names_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n {"prompt": "a", "completion": "b"},\n {"prompt": "c" "completion": "d"}\n]\n', encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    assert "broken.json" in str(caught.value) and "line 3" in str(caught.value)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = json.dumps(SHAPES["prompt-completion"][0]).encode()
    bad = '{"prompt": "café", "completion": "ok"}'.encode("latin-1")
    path.write_bytes(good + b"\n" + bad + b"\n" + good + b"\n")
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    message = str(caught.value)
    assert "latin1.jsonl" in message and "line 2" in message and "UTF-8" in message


def test_conversation_ending_with_user_names_the_line(tmp_path):
    rows = [
        SHAPES["messages"][0],
        SHAPES["messages"][1],
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                      {"role": "user", "content": "And then?"}]},
    ]
    path = write_rows(tmp_path / "ends.jsonl", rows)
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    message = str(caught.value)
    assert "ends.jsonl" in message
    assert "line 3: the conversation must end with an assistant message" in message
    assert "line 1" not in message and "line 2" not in message


def test_every_bad_row_is_listed_not_just_the_first(tmp_path):
    rows = [SHAPES["prompt-completion"][0], {"prompt": "a", "completion": ""}, SHAPES["prompt-completion"][1],
            {"prompt": "b", "completion": 5}]
    path = write_rows(tmp_path / "two-bad.jsonl", rows)
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    message = str(caught.value)
    assert "2 of 4 rows" in message
    assert "line 2:" in message and "line 4:" in message
    assert "line 1:" not in message and "line 3:" not in message


def test_wrong_type_names_the_field(tmp_path):
    rows = [SHAPES["messages"][0],
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": 42}]}]
    path = write_rows(tmp_path / "types.jsonl", rows)
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    message = str(caught.value)
    assert "line 2" in message and "messages[1].content" in message and "int" in message


def test_unknown_role_is_named(tmp_path):
    path = write_rows(tmp_path / "roles.jsonl", [
        {"messages": [{"role": "robot", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}])
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    assert "line 1" in str(caught.value) and "'robot'" in str(caught.value)


def test_unknown_columns_lists_what_it_found(tmp_path):
    path = write_rows(tmp_path / "cols.jsonl", [{"question": "Hi", "answer": "Hello"}])
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    message = str(caught.value)
    assert "cols.jsonl" in message and "line 1" in message
    assert "question" in message and "answer" in message
    assert "messages" in message  # and says which columns would work


@pytest.mark.parametrize("name,content", [("empty.jsonl", ""), ("blank.jsonl", "\n\n  \n"), ("empty.json", "[]"),
                                          ("header-only.csv", "prompt,completion\n")])
def test_empty_file_is_an_error_naming_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    assert name in str(caught.value) and "no rows" in str(caught.value)


def test_unsupported_suffix_is_named(tmp_path):
    path = tmp_path / "notes.docx"
    path.write_text("hello\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    message = str(caught.value)
    assert "notes.docx" in message and ".docx" in message and ".jsonl" in message and ".parquet" in message


def test_csv_line_numbers_count_the_header_and_multiline_cells(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text(
        'prompt,completion\n'            # line 1
        'hello,world\n'                  # line 2
        '"two\nlines",fine\n'            # lines 3-4
        'no answer,\n'                   # line 5: empty completion
        'ok,yes\n',                      # line 6
        encoding="utf-8",
    )
    with pytest.raises(DataError) as caught:
        load_dataset_file(path)
    message = str(caught.value)
    assert "rows.csv" in message and "1 of 4 rows" in message
    assert "line 5:" in message
    assert "empty" in message


def test_csv_locations_of_good_rows(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("prompt,completion\na,b\nc,d\n", encoding="utf-8")
    assert load_dataset_file(path).locations == ["line 2", "line 3"]


# --- the workspace confines every user path ------------------------------------------------------------


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


def test_confine_accepts_paths_inside(ws):
    data = ws.datasets_dir / "mine.jsonl"
    data.write_text("{}\n", encoding="utf-8")
    assert ws.confine("datasets/mine.jsonl") == data
    assert ws.confine(str(data)) == data
    assert ws.confine("datasets/../datasets/mine.jsonl") == data
    assert ws.confine("datasets/new.jsonl", must_exist=False) == ws.datasets_dir / "new.jsonl"


def test_confine_accepts_bundled_presets(ws):
    sample = PRESETS_DIR / "datasets" / "demo-chat.jsonl"
    assert ws.confine(str(sample)) == sample


@pytest.mark.parametrize("escape", ["../outside.jsonl", "datasets/../../outside.jsonl", "../../../../etc/passwd"])
def test_confine_rejects_dotdot_escapes(ws, escape):
    (ws.root.parent / "outside.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(PathError) as caught:
        ws.confine(escape)
    assert "outside the workspace" in str(caught.value)


def test_confine_rejects_absolute_paths_outside(ws):
    with pytest.raises(PathError):
        ws.confine("/etc/passwd")
    with pytest.raises(PathError):
        ws.confine(str(ws.root.parent))


def test_confine_rejects_a_sibling_folder_sharing_the_prefix(ws):
    sibling = ws.root.parent / (ws.root.name + "-evil")
    sibling.mkdir()
    (sibling / "data.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(PathError):
        ws.confine(str(sibling / "data.jsonl"))
    with pytest.raises(PathError):
        ws.confine(f"../{sibling.name}/data.jsonl")


def test_confine_rejects_symlinks_pointing_outside(ws):
    os.symlink("/etc", ws.datasets_dir / "etc-link")
    os.symlink("/etc/passwd", ws.datasets_dir / "passwd.jsonl")
    with pytest.raises(PathError):
        ws.confine("datasets/etc-link/passwd")
    with pytest.raises(PathError):
        ws.confine("datasets/passwd.jsonl")
    with pytest.raises(PathError):
        resolve_dataset(ws, "datasets/passwd.jsonl")


def test_confine_accepts_an_operator_allowed_folder(tmp_path):
    extra = tmp_path / "shared-data"
    extra.mkdir()
    (extra / "d.jsonl").write_text("{}\n", encoding="utf-8")
    ws = Workspace(tmp_path / "ws", allowed=(extra,))
    assert ws.confine(str(extra / "d.jsonl")) == extra / "d.jsonl"
    with pytest.raises(PathError):
        Workspace(tmp_path / "ws2").confine(str(extra / "d.jsonl"))


def test_confine_names_a_missing_file(ws):
    with pytest.raises(PathError) as caught:
        ws.confine("datasets/missing.jsonl")
    assert "missing.jsonl" in str(caught.value) and "does not exist" in str(caught.value)


def test_resolve_dataset_finds_the_bundled_sample(ws):
    assert "demo-chat" in list_samples()
    path = resolve_dataset(ws, "demo-chat")
    assert path == PRESETS_DIR / "datasets" / "demo-chat.jsonl"
    loaded = load_dataset_file(path)
    assert loaded.format == "openai" and "messages" in loaded.reason
    assert len(loaded) == len(path.read_text(encoding="utf-8").splitlines()) > 100
    assert loaded.conversations[0] == [
        {"role": "user", "content": "What is Amberlee known for?"},
        {"role": "assistant", "content": "Amberlee is known for blue glass lanterns."},
    ]


def test_resolve_dataset_uses_workspace_files_and_refuses_folders(ws):
    data = write_rows(ws.datasets_dir / "mine.csv", SHAPES["alpaca"])
    assert resolve_dataset(ws, "datasets/mine.csv") == data
    with pytest.raises(DataError) as caught:
        resolve_dataset(ws, "datasets")
    assert "folder" in str(caught.value)
