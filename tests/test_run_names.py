"""Runs are addressed by the name they were started with, by id, or by folder; a shared name is refused with the ids."""

from __future__ import annotations

import pytest

from studio.workspace import CONFIG_FILE, PathError, Workspace


def _run(workspace: Workspace, run_id: str) -> None:
    folder = workspace.runs_dir / run_id
    folder.mkdir(parents=True)
    (folder / CONFIG_FILE).write_text("run_name: x\n", encoding="utf-8")


def test_a_run_is_found_by_its_name_its_id_and_its_folder(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    _run(workspace, "20260101-000000-islands-ab12")
    _run(workspace, "20260101-000001-other-cd34")
    folder = workspace.runs_dir / "20260101-000000-islands-ab12"
    assert workspace.run_dir("islands") == folder
    assert workspace.run_dir("Islands") == folder  # typed as the name was typed at Start
    assert workspace.run_dir("20260101-000000-islands-ab12") == folder
    assert workspace.run_dir(str(folder)) == folder


def test_a_name_two_runs_share_is_refused_with_both_ids(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    _run(workspace, "20260101-000000-islands-ab12")
    _run(workspace, "20260102-000000-islands-ef56")
    with pytest.raises(PathError) as refused:
        workspace.run_dir("islands")
    assert "20260101-000000-islands-ab12" in str(refused.value) and "20260102-000000-islands-ef56" in str(refused.value)


def test_an_unknown_name_says_how_to_list_runs(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    _run(workspace, "20260101-000000-islands-ab12")
    with pytest.raises(PathError, match="no run with the id or name 'lagoons'.*python -m studio runs"):
        workspace.run_dir("lagoons")
