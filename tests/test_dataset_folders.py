"""A LLaMA-Factory data folder is read as its dataset_info.json says (columns, tags, ranking, kto_tag, pre-training
text), several datasets train in one run (concatenated or interleaved), template placeholders are flagged and can
be filled in, and `data inspect --model` counts against the cutoff the run would use."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from studio import config as cfg
from studio.data.dataset_info import list_entries
from studio.data.inspect import inspect_dataset
from studio.data.loading import DataError
from studio.data.prepare import load_for_config
from studio.data.quality import PATTERNS, quality_report

INFO = {
    "qa": {"file_name": "qa.json", "columns": {"prompt": "question", "response": "answer", "system": "persona"}},
    "pairs": {"file_name": "pairs.json", "ranking": True, "formatting": "sharegpt",
              "columns": {"messages": "dialog", "chosen": "good", "rejected": "bad"}},
    "labelled": {"file_name": "labelled.json", "formatting": "sharegpt", "columns": {"messages": "turns", "kto_tag": "ok"},
                 "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "client", "assistant_tag": "agent"}},
    "notes": {"file_name": "notes.jsonl", "columns": {"prompt": "body"}},
    "remote": {"hf_hub_url": "someone/elsewhere"},
}
QA = [{"question": "Where is Amberlee?", "answer": "On the Lantern Coast.", "persona": "Be brief."},
      {"question": "What is it known for?", "answer": "Blue glass lanterns.", "persona": ""}]
PAIRS = [{"dialog": [{"from": "human", "value": "Where is Amberlee?"}], "good": {"from": "gpt", "value": "On the coast."},
          "bad": {"from": "gpt", "value": "In the hills."}}]
LABELLED = [{"turns": [{"speaker": "client", "text": "Where?"}, {"speaker": "agent", "text": "Coast."}], "ok": True},
            {"turns": [{"speaker": "client", "text": "Where?"}, {"speaker": "agent", "text": "Hills."}], "ok": False}]


@pytest.fixture
def folder(workspace):
    root = workspace.datasets_dir / "lf"
    root.mkdir()
    (root / "dataset_info.json").write_text(json.dumps(INFO), encoding="utf-8")
    for name, rows in (("qa.json", QA), ("pairs.json", PAIRS), ("labelled.json", LABELLED)):
        (root / name).write_text(json.dumps(rows), encoding="utf-8")
    (root / "notes.jsonl").write_text(json.dumps({"body": "Lanterns are blown in spring."}) + "\n", encoding="utf-8")
    return root


def _load(workspace, **overrides):
    return load_for_config(workspace, cfg.apply_overrides(cfg.RunConfig(), overrides))


def test_the_folder_lists_its_datasets_with_their_declared_kinds(folder):
    entries = {e.name: (e.file_name, e.kind) for e in list_entries(folder)}
    assert entries == {"qa": ("qa.json", "chat"), "pairs": ("pairs.json", "preference"),
                       "labelled": ("labelled.json", "kto"), "notes": ("notes.jsonl", "text"), "remote": (None, "chat")}


def test_each_entry_is_read_as_declared(workspace, folder):
    qa = _load(workspace, dataset="qa", dataset_dir="datasets/lf")
    assert qa.conversations[0] == [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Where is Amberlee?"},
                                   {"role": "assistant", "content": "On the Lantern Coast."}]
    pairs = _load(workspace, dataset="pairs", dataset_dir="datasets/lf")
    assert pairs.kind == "preference" and pairs.examples[0]["rejected"] == [{"role": "assistant", "content": "In the hills."}]
    labelled = _load(workspace, dataset="labelled", dataset_dir="datasets/lf")
    assert [(e["completion"][0]["content"], e["label"]) for e in labelled.examples] == [("Coast.", True), ("Hills.", False)]
    assert labelled.examples[0]["prompt"] == [{"role": "user", "content": "Where?"}]
    notes = _load(workspace, dataset="notes", dataset_dir="datasets/lf")
    assert notes.kind == "text" and notes.examples == [{"text": "Lanterns are blown in spring."}]


def test_an_unknown_or_remote_entry_is_refused_naming_the_local_ones(workspace, folder):
    for name, says in (("nope", "has no dataset 'nope'"), ("remote", "is on a hub (someone/elsewhere)")):
        with pytest.raises(DataError, match="qa, pairs, labelled, notes") as error:
            _load(workspace, dataset=name, dataset_dir="datasets/lf")
        assert says in str(error.value)


def test_several_datasets_concatenate_or_interleave(workspace, folder):
    both = _load(workspace, dataset="qa,qa", dataset_dir="datasets/lf")
    assert len(both) == 4 and both.locations[2] == "qa.json record 1"
    with pytest.raises(DataError, match="qa.json holds chat rows, pairs.json holds preference rows"):
        _load(workspace, dataset="qa,pairs", dataset_dir="datasets/lf")
    interleaved = _load(workspace, dataset="qa,qa", dataset_dir="datasets/lf", mix_strategy="interleave",
                        interleave_probs="1,0")
    assert len(interleaved) == 2 and "interleave of qa.json (2 of 2 rows" in interleaved.reason


def test_placeholders_are_flagged_and_filled_in(workspace):
    rows = [{"instruction": "Who are you?", "output": "I am {{name}}, made by {{author}}."},
            {"instruction": "Hi", "output": "Hello!"}]
    (workspace.datasets_dir / "identity.json").write_text(json.dumps(rows), encoding="utf-8")
    result = inspect_dataset(workspace, "datasets/identity.json")
    finding = next(q for q in result["quality"] if "placeholder" in q["check"])
    assert finding["count"] == 1 and finding["rows"] == ["record 1"] and "{{author}}, {{name}}" in finding["check"]

    done = run_cli("data", "fill", "datasets/identity.json", "name=Lantern", "author=Amberlee Labs", workspace=workspace.root)
    assert done.returncode == 0, done.stderr
    filled = json.loads((workspace.datasets_dir / "identity-filled.json").read_text(encoding="utf-8"))
    assert filled[0]["output"] == "I am Lantern, made by Amberlee Labs."
    assert not any("placeholder" in q["check"] for q in inspect_dataset(workspace, "datasets/identity-filled.json")["quality"])


@pytest.mark.parametrize("text, phone", [("call 555-123-4567", True), ("+44 20 7946 0958", True),
                                         ("(555) 123-4567", True), ("1000-200-400", False), ("2023-10-12", False)])
def test_phone_numbers_and_numbers_that_are_not(text, phone):
    assert bool(PATTERNS["phone number"].search(text)) is phone
    found = quality_report([{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": text}]}], ["r1"])
    assert any("phone" in f.check for f in found) is phone


def test_inspect_counts_against_the_cutoff_the_run_would_use(workspace):
    rows = [{"instruction": "Tell me about Amberlee.", "output": "Blue glass lanterns glow by the sea. " * 80}]
    (workspace.datasets_dir / "long.json").write_text(json.dumps(rows), encoding="utf-8")
    tokens = inspect_dataset(workspace, "datasets/long.json", "tiny-demo")["tokens"]
    assert tokens["cutoff"] == 256  # tiny-demo's recommended cutoff_len, what its runs train with
    assert tokens["over_cutoff"] == 1 and tokens["tokens"] == 256


def test_template_code_is_not_a_placeholder():
    rows = [{"messages": [{"role": "user", "content": "A workflow?"},
                          {"role": "assistant", "content": "Use ${{ secrets.TOKEN }} and\n```jinja\n{{ user }}\n```"}]}]
    assert not any("placeholder" in f.check for f in quality_report(rows, ["r1"]))


def test_the_library_lists_a_folders_datasets_and_each_opens_by_folder_and_name(workspace, folder):
    from studio.data.library import list_library, read_dataset

    listed = {e.name: e.format for e in list_library(workspace)}
    assert listed["datasets/lf/pairs"] == "sharegpt (preference, dataset_info.json)"
    assert "datasets/lf/remote" not in listed and "datasets/lf" not in listed
    assert read_dataset(workspace, "datasets/lf/labelled").kind == "kto"


def test_cli_inspects_a_dataset_of_a_folder_outside_the_workspace(tmp_path, workspace):
    outside = tmp_path / "lf-data"
    outside.mkdir()
    (outside / "dataset_info.json").write_text(json.dumps({"pairs": INFO["pairs"]}), encoding="utf-8")
    (outside / "pairs.json").write_text(json.dumps(PAIRS), encoding="utf-8")
    done = run_cli("data", "inspect", str(outside / "pairs"), workspace=workspace.root)
    assert done.returncode == 0, done.stderr
    assert "format:   preference (dataset_info.json entry 'pairs': formatting sharegpt, ranking)" in done.stdout
    missing = run_cli("data", "inspect", str(outside / "qa"), workspace=workspace.root)
    assert missing.returncode == 2 and "has no dataset 'qa'; it lists: pairs" in missing.stderr


def test_the_data_tab_shows_an_entry_as_training_reads_it(workspace, folder):
    """The Data tab's summary and preview of FOLDER/NAME use the entry's declared format, not a guess from the file."""
    from studio.ui.data_tab import _load, _page

    loaded = _load(workspace, "datasets/lf/pairs", "")
    assert (loaded.format, loaded.kind, len(loaded)) == ("preference", "preference", 1), loaded.reason
    table, bubbles, caption, _shown = _page(workspace, "datasets/lf/pairs", "", 0, "", "en")
    assert len(table["data"]) == 1 and not table["data"][0][2], table  # the row reads without an error
    assert "In the hills." in bubbles
