"""Shared fixtures: one real demo training run for the whole session, the tiny-demo model, fresh workspaces.

Everything is offline and CPU-only. The session demo run is exactly what a user gets from
`python -m studio train` (tiny-demo + demo-chat with the catalog's recommended settings).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Never reach for a hub: every model in the tests is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def run_cli(*args: str, workspace: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m studio --workspace WORKSPACE ARGS…` in a subprocess, as a user would type it."""
    return subprocess.run(
        [sys.executable, "-m", "studio", "--workspace", str(workspace), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    """Poll `predicate` until it returns something truthy; fail the test naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, Path]:
    """ONE real demo training run with the CLI defaults; returns (workspace_path, run_dir)."""
    workspace = tmp_path_factory.mktemp("demo-workspace")
    result = run_cli("train", "run_name=demo", workspace=workspace, timeout=600)
    assert result.returncode == 0, f"demo training failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    runs = [p for p in (workspace / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected one run folder, found {runs}"
    return workspace, runs[0]


@pytest.fixture(scope="session")
def tiny_demo_dir(tmp_path_factory) -> Path:
    """The tiny-demo model folder, built once in-process for tests that need a model but no trained run."""
    from studio.models.demo import ensure_demo_model

    return ensure_demo_model(tmp_path_factory.mktemp("models"))


def _kill_leftover_workers(workspace) -> None:
    """Kill (by pid) any worker a test started in `workspace` that is still alive, so none outlives the suite."""
    from studio import jobs
    from studio.train.status import read_status

    for run_dir in workspace.runs_dir.iterdir():
        status = read_status(run_dir)
        if status.get("pid") and jobs._worker_alive(status):
            try:
                os.kill(int(status["pid"]), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def workspace(tmp_path, tiny_demo_dir):
    """A fresh Workspace with tiny-demo already built in it (copied, so no test pays for a rebuild)."""
    from studio.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    shutil.copytree(tiny_demo_dir, ws.models_dir / tiny_demo_dir.name)
    yield ws
    _kill_leftover_workers(ws)
