"""The dataset library and its cache, the paged preview and search, quality checks, splits, the trainer's
preparation (cutoff, validation file) and `python -m studio data inspect`."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from test_data import write_rows

from studio import config as cfg
from studio.data import library
from studio.data.inspect import inspect_dataset
from studio.data.loading import DataError
from studio.data.prepare import load_for_config, prepare_sft, split_indices
from studio.data.preview import Preview, search_lines
from studio.data.quality import quality_report
from studio.workspace import Workspace


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


# --- library and cache ---------------------------------------------------------------------------------

def test_upload_list_rename_delete(ws, tmp_path):
    source = write_rows(tmp_path / "My FAQ (v2).jsonl", [chat("Where is Amberlee?", "On the coast.")] * 3)
    ref = library.add_upload(ws, str(source))
    assert ref == "datasets/My_FAQ_v2.jsonl"
    library.open_dataset(ws, ref)
    [entry] = library.list_library(ws)
    assert (entry.name, entry.format, entry.rows, entry.size_bytes) == (ref, "openai", 3, source.stat().st_size)
    library.save_settings(ws, ref, "messages=messages", True)
    new_ref = library.rename_dataset(ws, ref, "faq")
    assert new_ref == "datasets/faq.jsonl"
    assert library.dataset_settings(ws, new_ref)["column_map"] == "messages=messages"  # settings follow the rename
    with pytest.raises(DataError):
        library.rename_dataset(ws, library.add_upload(ws, str(source)), "faq")  # never overwrites another dataset
    library.open_dataset(ws, new_ref)
    cached = set(ws.dataset_cache_dir.glob("*.jsonl"))
    library.delete_dataset(ws, new_ref)
    assert [e.name for e in library.list_library(ws)] == [ref]
    assert len(set(ws.dataset_cache_dir.glob("*.jsonl"))) == len(cached) - 1  # its cached copy went with it


def test_library_refuses_paths_outside_it(ws, tmp_path):
    from studio.workspace import PathError

    with pytest.raises(PathError):
        library.delete_dataset(ws, "../../etc/passwd")
    with pytest.raises(PathError):
        library.rename_dataset(ws, "runs", "x")


def test_second_load_reads_the_cache_not_the_source(ws, monkeypatch):
    path = write_rows(ws.datasets_dir / "qa.csv", [{"question": "Where?", "answer": "Here."}])
    first = library.open_dataset(ws, "datasets/qa.csv", column_map="prompt=question,response=answer")

    def no_parsing(_path, *_options):
        raise AssertionError("the source was parsed again")

    monkeypatch.setattr(library, "iter_file_records", no_parsing)
    again = library.open_dataset(ws, "datasets/qa.csv", column_map="prompt=question,response=answer")
    assert again.examples == first.examples and again.reason == first.reason
    path.write_text("question,answer\nWhere now?,There.\n", encoding="utf-8")  # a changed file is parsed again
    with pytest.raises(AssertionError, match="parsed again"):
        library.open_dataset(ws, "datasets/qa.csv", column_map="prompt=question,response=answer")


# --- preview -------------------------------------------------------------------------------------------

def test_preview_pages_raw_and_normalised_rows_and_names_bad_ones(tmp_path):
    path = tmp_path / "p.jsonl"
    lines = [json.dumps(chat(f"Question {i}?", f"Answer {i}.")) for i in range(25)]
    lines[12] = '{"messages": [broken'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    preview = Preview(path)
    assert preview.detected.format == "openai"
    first = preview.page(0)
    assert [r.location for r in first] == [f"line {i}" for i in range(1, 11)]
    assert first[0].row == chat("Question 0?", "Answer 0.") and '"Question 0?"' in first[0].raw
    preview.index.wait()
    second = preview.page(1)
    assert second[2].location == "line 13" and "not valid JSON" in second[2].error and second[2].row is None
    assert [r.location for r in preview.page(2)] == [f"line {i}" for i in range(21, 26)]
    assert preview.rows_known() == (25, True)
    hits, more = preview.search("answer 2")
    assert [h.location for h in hits] == ["line 3", "line 21", "line 22", "line 23", "line 24", "line 25"] and not more


def test_search_finds_non_ascii_text_written_escaped(tmp_path):
    path = tmp_path / "zh.jsonl"
    path.write_text(json.dumps(chat("琥珀镇在哪里？", "在灯笼海岸。")) + "\n" + json.dumps(chat("a", "b")) + "\n", encoding="utf-8")
    assert search_lines(path, "灯笼", 10) == [1]


def test_preview_of_a_table_file(tmp_path):
    path = write_rows(tmp_path / "t.csv", [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(12)])
    preview = Preview(path)
    assert preview.detected.format == "prompt_completion"
    assert [r.location for r in preview.page(1)] == ["line 12", "line 13"]
    assert [r.location for r in preview.search("C11")[0]] == ["line 13"]


# --- quality checks ------------------------------------------------------------------------------------

def test_quality_checks_find_duplicates_conflicts_lengths_and_secrets():
    rows = [
        chat("Where is Amberlee?", "On the Lantern Coast, by the sea."),
        chat("Where is Amberlee?", "On the Lantern Coast, by the sea."),         # exact duplicate
        chat("where is amberlee", "On the lantern coast by the sea!"),           # near duplicate
        chat("Where is Amberlee?", "In the hills, far from the sea."),           # same prompt, other answer
        chat("Who runs the glassworks?", "ok"),                                  # very short
        chat("Contact?", "Write to mara@lantern.example or call +44 20 7946 0958."),
        chat("Token?", "Use sk-abcdefghijklmnopqrstuvwxyz123456 in the header."),
        chat("Tell me everything.", "Lanterns. " * 200),                          # very long
    ]
    findings = {f.check.split(" (")[0]: f for f in quality_report(rows, [f"line {i + 1}" for i in range(len(rows))])}
    assert findings["exact duplicate of an earlier row"].rows == ["line 2"]
    assert findings["near-duplicate of an earlier row"].rows == ["line 3"]
    assert findings["same prompt with a different answer than an earlier row"].rows == ["line 4"]
    assert findings["very short answer"].rows == ["line 5"]
    assert [k for k in findings if k.startswith("very long answer")] and findings["likely email address"].rows == ["line 6"]
    assert findings["likely phone number"].rows == ["line 6"] and findings["likely API key or token"].rows == ["line 7"]


# --- splits and the trainer's preparation ----------------------------------------------------------------

def test_split_by_fraction_or_count_is_reproducible():
    train, val = split_indices(100, 0.1, seed=3)
    assert len(val) == 10 and sorted(train + val) == list(range(100))
    assert split_indices(100, 0.1, seed=3) == (train, val) and split_indices(100, 7, seed=3)[1] != val
    assert len(split_indices(100, 7, seed=3)[1]) == 7


def test_prepare_uses_a_separate_validation_file_and_applies_the_cutoff(workspace):
    from transformers import AutoTokenizer

    rows = [chat(f"Question {i}?", f"Answer {i}.") for i in range(6)] + [chat("Long question " * 80, "Short.")]
    write_rows(workspace.datasets_dir / "train.jsonl", rows)
    write_rows(workspace.datasets_dir / "val.jsonl", [chat("Held out?", "Yes.")] * 2)
    config = cfg.apply_overrides(cfg.RunConfig(), {"dataset": "datasets/train.jsonl", "val_file": "datasets/val.jsonl",
                                                   "val_size": 0.5, "cutoff_len": 64})
    tokenizer = AutoTokenizer.from_pretrained(workspace.models_dir / "tiny-demo")
    prepared = prepare_sft(workspace, config, tokenizer)
    assert len(prepared.train) == 6  # val_file wins over val_size; the long row lost its answer to the cutoff
    assert len(prepared.eval) == 2 and prepared.val_rows[0][0]["content"] == "Held out?"
    assert max(len(ids) for ids in prepared.train["input_ids"]) <= 64
    assert any("1 left with no trained token are dropped" in note for note in prepared.notes)
    report = inspect_dataset(workspace, "datasets/train.jsonl", model="tiny-demo", cutoff=64)
    assert report["tokens"]["over_cutoff"] == 1 and report["tokens"]["dropped"] == 1  # the report agrees


def test_a_run_is_refused_for_bad_rows_unless_skipping(workspace):
    from studio import jobs

    write_rows(workspace.datasets_dir / "mixed.jsonl", [chat("a?", "b."), {"messages": []}])
    config = cfg.apply_overrides(cfg.RunConfig(), {"dataset": "datasets/mixed.jsonl"})
    with pytest.raises(DataError, match="line 2"):
        jobs.create_run(workspace, config)
    skipping = cfg.apply_overrides(config, {"skip_bad_rows": True})
    assert len(load_for_config(workspace, skipping)) == 1
    assert jobs.create_run(workspace, skipping).is_dir()


# --- the CLI ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_inspect_json(tmp_path, workspace):
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"instruction": "Where is Amberlee?", "output": "On the coast."}) + "\n"
                    + "{not json\n" + json.dumps({"instruction": "Why?", "output": ""}) + "\n", encoding="utf-8")
    result = run_cli("data", "inspect", str(path), "--model", "tiny-demo", "--cutoff", "16", "--json", workspace=workspace.root)
    assert result.returncode == 1, result.stderr  # some rows are bad
    report = json.loads(result.stdout)
    assert report["format"] == "alpaca" and "instruction" in report["reason"]
    assert (report["rows"], report["skipped"]) == (1, 2)
    assert [(e["line"], e["kind"]) for e in report["errors"]] == [(2, "json"), (3, "empty")]
    tokens = report["tokens"]
    assert tokens["max"] > 16 and tokens["over_cutoff"] == 1 and tokens["p50"] <= tokens["p95"] <= tokens["max"]

    text = run_cli("data", "inspect", "demo-chat", workspace=workspace.root)
    assert text.returncode == 0 and "format:   openai" in text.stdout and "210 usable of 210" in text.stdout
    missing = run_cli("data", "inspect", "datasets/nope.jsonl", workspace=workspace.root)
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr


def test_column_map_round_trip_through_the_data_tab(ws, tmp_path):
    """Map columns in the Data tab: the mapping is saved with the dataset, restored when it is chosen again,
    and makes the dataset the training dataset."""
    import gradio as gr

    from studio.ui.context import UIContext
    from studio.ui.data_tab import create_data_tab

    ctx = UIContext(workspace=ws)
    with gr.Blocks():
        ctx.language = gr.Radio(choices=["English"], value="English")
        tab = create_data_tab(ctx)
    source = write_rows(tmp_path / "qa.csv", [{"question": "Where is Amberlee?", "answer": "On the coast."}])
    ref = library.add_upload(ws, str(source))
    chosen = tab["on_choose"](ref, "English")
    assert chosen[0] == ref and chosen[7] == ""  # nothing saved yet
    summary, dataset, *_ = tab["on_check"](ref, "", False, "English")
    assert "no known columns" in summary and "question" in summary and dataset != ref  # not chosen for training

    tab["on_settings"](ref, "prompt=question,response=answer", False, "English", None)
    chosen = tab["on_choose"](ref, "English")
    assert chosen[7] == "prompt=question,response=answer"  # restored with the dataset
    summary, dataset, *_ = tab["on_check"](ref, chosen[7], chosen[8], "English")
    assert dataset == ref and "alpaca" in summary and "column map" in summary
    assert "On the coast." in chosen[3]  # the chat bubbles show the mapped row


def test_the_preview_counts_a_small_file_at_once_and_never_pages_past_its_end(tmp_path):
    from studio.ui.data_tab import _page
    from studio.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    rows = [{"instruction": f"question {i}", "output": f"answer {i}"} for i in range(21)]
    (workspace.datasets_dir / "small.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    table, _bubbles, caption, shown = _page(workspace, "datasets/small.jsonl", "", 0, "", "en")
    assert caption == "Page 1 · rows 1–10 of 21" and shown == 1
    table, _bubbles, caption, shown = _page(workspace, "datasets/small.jsonl", "", 7, "", "en")  # Next, Next, …
    assert caption == "Page 3 · rows 21–21 of 21" and shown == 3
    assert [row[0] for row in table["data"]] == ["line 21"]
