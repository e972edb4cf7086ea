"""Hostile datasets, values and machines: JSON nested 100,000 deep, a cell over the CSV limit, an answer built
to make the e-mail check quadratic, a 1 MB answer in the preview, numbers beyond any sense, pickled weights,
shell text as a machine address, a full disk. Each gets a message naming the file, line, key or value (exit 2
on the CLI, no traceback), in bounded time. What held before holds: no pickle is loaded, no shell text runs.
"""

from __future__ import annotations

import errno
import json
import time

import pytest

from studio import config as cfg
from studio.cli import file_error_message, main
from studio.data.preview import SHOWN_CHARS, Preview
from studio.data.quality import quality_report
from studio.workspace import Workspace, disk_full_message


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws")


def _inspect(ws: Workspace, capsys, name: str, content: bytes | str) -> tuple[int, str, str]:
    path = ws.datasets_dir / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    code = main(["--workspace", str(ws.root), "data", "inspect", f"datasets/{name}"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("name, content, message", [
    ("deep.json", "[" * 100_000 + "]" * 100_000, "deep.json: JSON nested too deeply to read"),
    ("deep.jsonl", '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "deep.jsonl, line 1: JSON nested too deeply"),
    ("cell.csv", 'instruction,output\nhi,ok\nhello,"' + "x" * 140_000 + '"\n', r"cell.csv, line 3: cannot be read as a table \(field larger than field limit"),
])
def test_unreadable_datasets_exit_2_naming_file_and_line(ws, capsys, name, content, message):
    import re

    code, out, err = _inspect(ws, capsys, name, content)
    assert code == 2 and "Traceback" not in err
    assert re.search(message, err), err


def test_email_check_is_linear_and_still_finds_addresses():
    hostile = "a." * 47_000  # 94 KB of word characters and dots: every position started a long backtrack
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": hostile}]},
            {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "write to jane.doe@example.co.uk"}]}]
    started = time.perf_counter()
    findings = {f.check: f for f in quality_report(rows, ["line 1", "line 2"])}
    assert time.perf_counter() - started < 3  # was 46 s
    assert findings["likely email address"].rows == ["line 2"]


def test_quality_report_still_names_duplicates_and_conflicting_answers():
    def row(prompt, answer):
        return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}

    rows = [row("Capital of France?", "Paris"), row("Capital of France?", "Paris"), row("capital of france", "PARIS!"),
            row("Capital of France?", "Lyon"), row("Capital of France?", "Lyon")]
    findings = {f.check.split(" (")[0]: f.rows for f in quality_report(rows, [f"line {i}" for i in range(1, 6)])}
    assert findings["exact duplicate of an earlier row"] == ["line 2", "line 5"]
    assert findings["near-duplicate of an earlier row"] == ["line 3"]
    assert findings["same prompt with a different answer than an earlier row"] == ["line 4"]


def test_a_huge_answer_is_cut_in_the_preview(ws):
    path = ws.datasets_dir / "big.jsonl"
    answer = "word " * 200_000  # 1 MB in one answer
    path.write_text(json.dumps({"instruction": "say it", "output": answer}) + "\n" + json.dumps({"instruction": "hi", "output": "hello"}) + "\n")
    first, second = Preview(path).page(0)
    assert len(first.raw) < SHOWN_CHARS + 200 and "cut here for the preview" in first.raw
    shown = first.row["messages"][-1]["content"]
    assert shown.startswith("word word") and len(shown) < SHOWN_CHARS + 200 and f"{len(answer):,} characters in all" in shown
    assert second.row["messages"][-1]["content"] == "hello"  # short rows are shown whole


def test_numbers_beyond_any_sense_are_refused_naming_the_key(ws, capsys):
    config = cfg.apply_overrides(cfg.RunConfig(), {"batch_size": 10**24, "seed": 10**23, "lora_rank": 2**40,
                                                   "learning_rate": float("nan"), "probe_prompts": "why? " * 5000})
    problems: dict[str, list[str]] = {}
    for problem in cfg.validate(config):
        problems.setdefault(problem.key, []).append(problem.message)
    assert problems["batch_size"] == ["must be at most 65,536, got 1e+24"]
    assert problems["seed"] == ["must be at most 4,294,967,295, got 1e+23"]
    assert problems["lora_rank"][0].startswith("must be at most 2,147,483,647")
    assert "must be a finite number, got nan" in problems["learning_rate"]
    assert "is 25,000 characters long; use at most 20,000" in problems["probe_prompts"]
    assert cfg.validate(cfg.RunConfig()) == []
    assert main(["--workspace", str(ws.root), "train", "batch_size=1000000000000000000000000", "--detach"]) == 2
    err = capsys.readouterr().err
    assert "batch_size: must be at most 65,536" in err and "Traceback" not in err


def test_pickled_weights_are_refused_by_name(ws, capsys):
    from studio.models.catalog import resolve_model
    from studio.workspace import PathError

    folder = ws.models_dir / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 pretend pickle")
    with pytest.raises(PathError, match=r"this model's weights are a pickle \(pytorch_model\.bin\); only safetensors are loaded"):
        resolve_model(ws, "models/pickled")
    (folder / "model.safetensors").write_bytes(b"")
    assert resolve_model(ws, "models/pickled") == str(folder.resolve())  # safetensors beside it: those are loaded


@pytest.mark.parametrize("address", ["10.0.0.1; rm -rf ~", "$(curl evil)", "host name", "`id`", "a|b", ""])
def test_launch_cmd_refuses_shell_text_as_the_main_address(ws, capsys, address):
    config = ws.root / "multi.yaml"
    config.write_text("model: {model: tiny-demo}\n")
    code = main(["--workspace", str(ws.root), "launch-cmd", str(config), "--nodes", "2", "--main-ip", address])
    err = capsys.readouterr().err
    assert code == 2 and "--main-ip must be the main machine's IP address or host name" in err
    assert not list(ws.runs_dir.iterdir())  # no run folder was made


def test_a_full_disk_is_named_with_the_folder_and_free_space(tmp_path):
    with pytest.raises(OSError) as caught:  # /dev/full fails every write with ENOSPC, as a full disk does
        with open("/dev/full", "w") as handle:
            handle.write("x" * 10)
    assert caught.value.errno == errno.ENOSPC
    message = disk_full_message(caught.value, tmp_path)
    assert message.startswith(f"No space left on device in {tmp_path}: free ") and " MB." in message
    wrapped = RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')
    assert disk_full_message(wrapped, tmp_path).startswith("No space left on device in")
    assert disk_full_message(ValueError("shape mismatch"), tmp_path) is None
    assert file_error_message(caught.value, tmp_path).startswith("No space left on device")
    assert file_error_message(PermissionError(errno.EACCES, "Permission denied", "/root/x.yaml"), tmp_path) == "/root/x.yaml: Permission denied"
    assert file_error_message(OSError(errno.EIO, "I/O error"), tmp_path) is None  # not the user's to fix: shown whole


def test_inspect_without_a_model_streams_and_counts_the_same(ws):
    from studio.data.inspect import inspect_dataset

    lines = [{"instruction": "hi", "output": "hello there"}, {"instruction": "hi", "output": "hello there"},
             {"instruction": "mail?", "output": "bob@example.com"}, {"nothing": 1}]
    (ws.datasets_dir / "few.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = inspect_dataset(ws, "datasets/few.jsonl")
    assert (result["rows"], result["rows_read"], result["skipped"]) == (3, 4, 1)
    assert result["errors"][0]["location"] == "line 4"
    quality = {f["check"]: f["rows"] for f in result["quality"]}
    assert quality["exact duplicate of an earlier row"] == ["line 2"]
    assert quality["likely email address"] == ["line 3"]


def test_a_json_document_over_the_limit_is_refused_before_it_is_read(ws, capsys, monkeypatch):
    from studio.data import readers

    monkeypatch.setattr(readers, "MAX_JSON_BYTES", 1000)
    code, _out, err = _inspect(ws, capsys, "many.json", json.dumps([{"instruction": "q", "output": "a" * 50}] * 40))
    assert code == 2 and "many.json: 0 MB of JSON in one document, over the 0 MB" in err and "save it as JSONL" in err


def test_a_parquet_file_that_expands_too_far_is_refused(ws, capsys, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from studio.data import readers

    monkeypatch.setattr(readers, "MAX_EXPANDED_BYTES", 1_000_000)
    path = ws.datasets_dir / "bomb.parquet"
    pq.write_table(pa.table({"instruction": [f"q{i}" for i in range(200)], "output": ["ha" * 50_000] * 200}), path,
                   compression="zstd", row_group_size=16)
    assert path.stat().st_size < 20_000  # 20 MB of text in a few kB
    assert main(["--workspace", str(ws.root), "data", "inspect", "datasets/bomb.parquet"]) == 2
    err = capsys.readouterr().err
    assert "bomb.parquet: by row 32 it expands to over 1 MB when read" in err and "Traceback" not in err


def test_an_oversized_jsonl_row_is_counted_and_named_and_the_next_rows_read(ws, monkeypatch):
    from studio.data import readers
    from studio.data.inspect import inspect_dataset

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1_000_000)
    rows = [{"instruction": "short", "output": "fine"}, {"instruction": "long", "output": "words " * 1_000_000},
            {"instruction": "after", "output": "still read"}]
    (ws.datasets_dir / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = inspect_dataset(ws, "datasets/rows.jsonl")
    assert (result["rows"], result["skipped"]) == (2, 1)
    assert result["errors"][0]["location"] == "line 2"
    assert result["errors"][0]["message"].startswith("6 MB in one row, over the 1 MB a row may have")
    assert result["problem_counts"] == {"row too large": 1}
