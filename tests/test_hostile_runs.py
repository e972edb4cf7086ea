"""Damaged run folders: a cut-off, wrong-shaped or wrongly typed status.json, a broken config.yaml, junk in
metrics.jsonl. Every run is still listed (by `python -m studio runs` and on the Runs page), a damaged one with
a note naming the file and what is wrong, and its state inferred from its files; the good runs are untouched.
"""

from __future__ import annotations

import json
import os

from studio import config as cfg
from studio import run_folder
from studio import run_library as library
from studio.cli import main
from studio.workspace import Workspace


def _run(workspace: Workspace, name: str, status: bytes | None, config: bytes | None = None) -> str:
    run_dir = workspace.runs_dir / f"20260101-000000-{name}"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_bytes(config if config is not None else cfg.to_yaml(cfg.RunConfig(run_name=name)).encode())
    if status is not None:
        (run_dir / "status.json").write_bytes(status)
    return run_dir.name


def _damaged_workspace(tmp_path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    _run(workspace, "good", json.dumps({"state": "completed", "final_loss": 0.25, "created": 1.0}).encode())
    _run(workspace, "cut", b'{"state": "compl')
    _run(workspace, "alist", b'["completed"]')
    _run(workspace, "textpid", json.dumps({"state": "running", "pid": "abc", "pid_started": "x", "created": "yesterday"}).encode())
    done = _run(workspace, "done-cut", b'{"state": "completed", "final_lo')
    (workspace.runs_dir / done / "adapter").mkdir()
    (workspace.runs_dir / done / "adapter" / "adapter_config.json").write_text("{}")
    _run(workspace, "badyaml", json.dumps({"state": "completed"}).encode(), b"train: [\n")
    _run(workspace, "latin", json.dumps({"state": "stopped"}).encode(), "run_name: caf\xe9\n".encode("latin-1"))
    _run(workspace, "badkey", json.dumps({"state": "failed", "error": "oom"}).encode(), b"train: {batch_size: lots}\n")
    return workspace


def test_runs_lists_every_run_with_damaged_ones_noted(tmp_path, capsys):
    workspace = _damaged_workspace(tmp_path)
    assert main(["--workspace", str(workspace.root), "runs"]) == 0
    out = capsys.readouterr().out
    for name in ("good", "cut", "alist", "textpid", "done-cut", "badyaml", "latin", "badkey"):
        assert f"20260101-000000-{name} " in out
    assert "0.2500" in out  # the good run is as it was
    assert "status.json is damaged: not valid JSON" in out
    assert "status.json is damaged: it holds a JSON list" in out
    assert "unusable values" in out and "pid='abc'" in out
    assert "line 1: not UTF-8 text" in out
    assert "batch_size: expected a int, got 'lots'" in out


def test_damaged_runs_get_the_state_their_files_show(tmp_path, capsys):
    workspace = _damaged_workspace(tmp_path)
    assert main(["--workspace", str(workspace.root), "runs", "--json"]) == 0
    runs = {r["run_id"].removeprefix("20260101-000000-"): r for r in json.loads(capsys.readouterr().out)}
    assert runs["done-cut"]["state"] == "completed"  # its adapter was saved
    assert runs["cut"]["state"] == runs["alist"]["state"] == runs["textpid"]["state"] == "failed"  # no worker, no weights
    assert "inferred from the run's files" in runs["cut"]["error"]
    assert runs["badyaml"]["state"] == "completed" and runs["badyaml"]["model"] == "?"
    assert runs["latin"]["state"] == "stopped"
    # a damaged status.json is left for the user to look at, not overwritten by the listing
    assert (workspace.runs_dir / "20260101-000000-cut" / "status.json").read_bytes() == b'{"state": "compl'


def test_runs_page_records_every_run(tmp_path):
    workspace = _damaged_workspace(tmp_path)
    records = {r.run_id.removeprefix("20260101-000000-"): r for r in library.list_records(workspace)}
    assert len(records) == 8
    assert records["good"].final_loss == 0.25 and records["good"].error == ""
    assert "damaged" in records["textpid"].error and records["textpid"].duration is None
    assert "config.yaml is damaged" in records["badyaml"].error


def test_a_live_worker_keeps_running_when_its_status_is_damaged(tmp_path):
    import psutil

    workspace = Workspace(tmp_path / "ws")
    me = psutil.Process(os.getpid())
    status = {"state": "running", "pid": os.getpid(), "pid_started": me.create_time(), "created": "noon"}
    run_id = _run(workspace, "alive", json.dumps(status).encode())
    shown = run_folder.run_status(workspace.runs_dir / run_id)
    assert shown["state"] == "running" and "created='noon'" in shown["error"]


def test_the_next_status_update_repairs_the_file(tmp_path):
    from studio.train.status import read_status, update_status

    workspace = Workspace(tmp_path / "ws")
    run_dir = workspace.runs_dir / _run(workspace, "repair", b'{"state": "running", "steps": "ten"}')
    update_status(run_dir, state="completed", steps=10)
    repaired = json.loads((run_dir / "status.json").read_text())
    assert repaired["state"] == "completed" and repaired["steps"] == 10 and "damaged" not in repaired
    assert "damaged" not in read_status(run_dir)


def test_junk_in_metrics_and_system_lines_does_not_break_the_series(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    run_dir = workspace.runs_dir / _run(workspace, "junk", json.dumps({"state": "completed"}).encode())
    lines = [
        {"step": 1, "loss": 2.0, "learning_rate": "fast", "grad_norm": None},
        {"step": "two", "loss": 1.5},
        [1, 2, 3],
        {"step": 3, "loss": 1.0, "tokens_per_s": float("inf")},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json at all\n{\"step\": 4, \"lo"
    (run_dir / "metrics.jsonl").write_text(text)
    (run_dir / "system.jsonl").write_text(json.dumps({"time": 5, "cpu_percent": "hot", "gpus": [{"index": "zero", "memory_used_mb": "a lot"}, "gpu"]}) + "\n")
    series = library.load_series(run_dir)
    assert series.steps == [1, 3] and series.loss == [2.0, 1.0]
    assert series.learning_rate == [None, None] and series.tokens_per_s == [None, None]
    assert series.cpu_percent == [None] and series.gpus[0].memory_used_gb == [None]


def test_runs_page_opens_a_run_whose_files_are_damaged(tmp_path):
    from studio.ui.runs_tab import MAX_SHOWN_BYTES, run_details

    class Context:
        workspace = _damaged_workspace(tmp_path)

    config_text, status_text = run_details(Context(), "20260101-000000-latin")
    assert config_text == "run_name: caf\ufffd\n"  # the byte that is not UTF-8 shown as a replacement character
    config_text, status_text = run_details(Context(), "20260101-000000-cut")
    assert json.loads(status_text)["state"] == "failed" and "status.json is damaged" in status_text
    huge = Context.workspace.runs_dir / "20260101-000000-good" / "config.yaml"
    huge.write_text("# padding\n" * 100_000)
    assert len(run_details(Context(), "20260101-000000-good")[0]) == MAX_SHOWN_BYTES


def test_a_giant_metrics_line_is_passed_over_not_reread_every_poll(tmp_path, monkeypatch):
    from studio import workspace as ws_module

    monkeypatch.setattr(ws_module, "MAX_JSONL_READ", 1000)
    workspace = Workspace(tmp_path / "ws")
    run_dir = workspace.runs_dir / _run(workspace, "giant", json.dumps({"state": "running"}).encode())
    with open(run_dir / "metrics.jsonl", "w") as handle:
        handle.write(json.dumps({"step": 1, "loss": 2.0}) + "\n")
        handle.write(json.dumps({"junk": "x" * 50_000}) + "\n")  # 50 times what one read takes
        handle.write(json.dumps({"step": 2, "loss": 1.0}) + "\n")
    series = library.Series()
    for _poll in range(5):
        series.read_new(run_dir)
    assert series.steps == [1, 2] and series.loss == [2.0, 1.0]
    assert series.offsets["metrics.jsonl"] == (run_dir / "metrics.jsonl").stat().st_size
