"""A model outside the workspace trains with `train --allow-dir` (the worker process may read it too); without it,
or when the model folder is missing, the run is refused before any run folder is made."""

from __future__ import annotations

import shutil

import pytest
from conftest import run_cli

from studio import config as cfg
from studio import jobs
from studio.workspace import PathError


@pytest.fixture
def outside_model(tmp_path, tiny_demo_dir):
    folder = tmp_path / "elsewhere" / "my-model"
    shutil.copytree(tiny_demo_dir, folder)
    return folder


@pytest.mark.parametrize("where", ["outside", "missing"])
def test_a_model_that_cannot_be_read_is_refused_before_a_run_folder_exists(workspace, outside_model, where):
    model = str(outside_model) if where == "outside" else str(workspace.models_dir / "not-there")
    config = cfg.apply_overrides(cfg.RunConfig(), {"model": model, "max_steps": 1})
    with pytest.raises(PathError, match="outside the workspace" if where == "outside" else "does not exist"):
        jobs.create_run(workspace, config)
    assert not any(workspace.runs_dir.iterdir())


def test_cli_refuses_an_outside_model_with_exit_2_naming_allow_dir(workspace, outside_model):
    done = run_cli("train", f"model={outside_model}", "max_steps=1", workspace=workspace.root)
    assert done.returncode == 2 and "--allow-dir" in done.stderr and "Traceback" not in done.stderr
    assert not any(workspace.runs_dir.iterdir())


@pytest.mark.slow
def test_train_allow_dir_trains_a_model_outside_the_workspace(workspace, outside_model):
    done = run_cli("train", f"model={outside_model}", "max_steps=2", "save_steps=0", "probe_steps=0", "batch_size=2",
                   "--allow-dir", str(outside_model.parent), workspace=workspace.root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "run 20" in done.stdout and ": completed" in done.stdout
