"""Links that leave the workspace: a dataset or model folder is read file by file, so every entry in it is
resolved and must stay inside the workspace (or a folder the operator allowed). What held before is kept:
a path outside is refused, and a link to a file inside the workspace is fine.
"""

from __future__ import annotations

import os

import pytest

from studio.cli import main
from studio.data.loading import resolve_dataset
from studio.workspace import PathError, Workspace


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("THE SECRET OUTSIDE THE WORKSPACE\n")
    return folder


def _text_folder(workspace: Workspace) -> os.PathLike:
    folder = workspace.datasets_dir / "notes"
    (folder / "deeper").mkdir(parents=True)
    (folder / "a.txt").write_text("first note\n")
    return folder


def test_a_link_in_a_dataset_folder_pointing_outside_is_refused(tmp_path, outside, capsys):
    workspace = Workspace(tmp_path / "ws")
    folder = _text_folder(workspace)
    (folder / "b.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(PathError, match=r"b\.txt is a link to .*secret\.txt, outside the workspace"):
        resolve_dataset(workspace, "datasets/notes")
    assert main(["--workspace", str(workspace.root), "data", "inspect", "datasets/notes"]) == 2
    captured = capsys.readouterr()
    assert "outside the workspace" in captured.err and "THE SECRET" not in captured.out + captured.err


def test_a_linked_folder_deeper_inside_is_refused_too(tmp_path, outside):
    workspace = Workspace(tmp_path / "ws")
    folder = _text_folder(workspace)
    (folder / "deeper" / "elsewhere").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathError, match="elsewhere is a link to"):
        workspace.confine("datasets/notes")


def test_a_loop_of_links_is_named(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    folder = _text_folder(workspace)
    (folder / "one").symlink_to(folder / "two")
    (folder / "two").symlink_to(folder / "one")
    with pytest.raises(PathError, match="cannot be followed"):
        workspace.confine("datasets/notes")


def test_links_inside_the_workspace_and_allowed_folders_are_fine(tmp_path, outside):
    workspace = Workspace(tmp_path / "ws", allowed=(outside,))
    folder = _text_folder(workspace)
    (workspace.datasets_dir / "shared.txt").write_text("shared note\n")
    (folder / "b.txt").symlink_to(workspace.datasets_dir / "shared.txt")
    (folder / "c.txt").symlink_to(outside / "secret.txt")  # the operator allowed this folder
    assert workspace.confine("datasets/notes") == folder.resolve()
    assert Workspace(tmp_path / "ws").confine("datasets/notes/b.txt").name == "shared.txt"


def test_a_model_folder_with_a_link_outside_is_refused(tmp_path, outside):
    from studio.models.catalog import resolve_model

    workspace = Workspace(tmp_path / "ws")
    model = workspace.models_dir / "mine"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").symlink_to(outside / "secret.txt")
    with pytest.raises(PathError, match=r"model\.safetensors is a link"):
        resolve_model(workspace, "models/mine")


def test_paths_outside_and_with_nul_bytes_are_refused(tmp_path, outside):
    workspace = Workspace(tmp_path / "ws")
    with pytest.raises(PathError, match="outside the workspace"):
        workspace.confine(str(outside / "secret.txt"))
    with pytest.raises(PathError, match="outside the workspace"):
        workspace.confine("../outside/secret.txt")
    with pytest.raises(PathError, match="not a usable path"):
        workspace.confine("datasets/a\x00.txt")
