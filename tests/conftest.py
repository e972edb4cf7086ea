"""Shared fixtures: one real demo training run for the whole session, the tiny-demo model, fresh workspaces.

Everything is offline and CPU-only. The session demo run is exactly what a user gets from
`python -m studio train` (tiny-demo + demo-chat with the catalog's recommended settings).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Never reach for a hub: every model in the tests is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# The suite runs two test processes on the machine's cores, and each may train in-process while a studio, a worker
# or Chromium of the other works: one PyTorch thread per process (the workers and studios they start inherit it),
# so no two thread pools spin against each other for the same cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


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


def _train_demo_run(workspace: Path) -> tuple[Path, Path]:
    """The demo training run with the CLI defaults in `workspace`; (workspace, run_dir)."""
    result = run_cli("train", "run_name=demo", workspace=workspace, timeout=600)
    assert result.returncode == 0, f"demo training failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    runs = [p for p in (workspace / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected one run folder, found {runs}"
    return workspace, runs[0]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, worker_id) -> tuple[Path, Path]:
    """ONE real demo training run with the CLI defaults for the whole test session, shared by the parallel
    test processes when the suite runs on several (the first to need it trains, the others wait for it);
    returns (workspace_path, run_dir)."""
    if worker_id == "master":  # one test process
        return _train_demo_run(tmp_path_factory.mktemp("demo-workspace"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # this session's folder, common to its test processes
    workspace = shared / "demo-workspace"
    with FileLock(str(shared / "demo-workspace.lock")):
        if not (workspace / "trained").is_file():
            shutil.rmtree(workspace, ignore_errors=True)
            workspace.mkdir()
            _train_demo_run(workspace)
            (workspace / "trained").write_text("ok\n", encoding="utf-8")
    runs = [p for p in (workspace / "runs").iterdir() if p.is_dir()]
    return workspace, runs[0]


# Fixtures that make every test using them slow: the session's demo run is a real training in a worker process.
SLOW_FIXTURES = {"demo_run"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """Sort tests into tiers and test processes.

    A browser test, or a test that needs the session's trained demo run, is `slow` as well, so
    `python -m pytest -m "not slow"` is the fast tier. When the suite runs on several test processes
    (pytest -n 2 --dist loadgroup), each test module stays in one process, and all browser tests share one, so
    only one headless Chromium draws at a time."""
    for item in items:
        if item.get_closest_marker("browser") or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        group = "browser" if item.get_closest_marker("browser") else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


def copy_demo_run(demo_run: tuple[Path, Path], root: Path, checkpoints: bool = False) -> tuple[Path, str]:
    """The session's demo run (model folder and run folder, without evaluations, and without checkpoints unless
    `checkpoints`) copied into a workspace at `root` of a test's own, so what the test adds there touches no
    other test; returns (root, run id)."""
    demo_workspace, run_dir = demo_run
    shutil.copytree(demo_workspace / "models", root / "models", dirs_exist_ok=True)
    left_out = ("eval",) if checkpoints else ("checkpoints", "eval")
    shutil.copytree(run_dir, root / "runs" / run_dir.name, ignore=shutil.ignore_patterns(*left_out))
    return root, run_dir.name


@pytest.fixture(scope="session")
def demo_studio(demo_run, tmp_path_factory):
    """ONE studio for the browser tests that work with the session's demo run (chat, compare, evaluate, export),
    over a workspace of their own holding a copy of the run (checkpoints included, evaluations not), where their
    ratings, evaluations and exports land; yields (url, workspace_path, run_id)."""
    workspace, run_id = copy_demo_run(demo_run, tmp_path_factory.mktemp("demo-studio-ws"), checkpoints=True)
    with running_studio(workspace) as url:
        yield url, workspace, run_id


@pytest.fixture(scope="session")
def tiny_demo_dir(tmp_path_factory) -> Path:
    """The tiny-demo model folder, built once in-process for tests that need a model but no trained run."""
    from studio.models.demo import ensure_demo_model

    return ensure_demo_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_demo_weights(tiny_demo_dir) -> dict:
    """tiny-demo's weights as built, read before any test trains: the snapshot that "base weights unchanged"
    checks compare a trained run's base with (the run's own model file could have been written by the run)."""
    from safetensors.torch import load_file

    return load_file(str(tiny_demo_dir / "model.safetensors"))


def _kill_leftover_workers(workspace) -> None:
    """Kill (by pid) any worker a test started in `workspace` that is still alive, so none outlives the suite."""
    from studio import run_folder
    from studio.train.status import read_status

    for run_dir in workspace.runs_dir.iterdir():
        status = read_status(run_dir)
        if status.get("pid") and run_folder.worker_alive(status):
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


# --- the studio as a user starts it, for browser and HTTP tests ---

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_studio(workspace: Path, *flags: str, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`python app.py` on `workspace` (and a free port unless given); returns once it serves its page."""
    port = port or free_port()
    log = open(workspace / "app.log", "ab")
    server = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--workspace", str(workspace), *flags],
        cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return server, url
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                raise RuntimeError("the studio did not start:\n" + (workspace / "app.log").read_text())
            time.sleep(0.3)


def stop_studio(server: subprocess.Popen) -> None:
    """Stop the studio as Ctrl+C would; kill it if it has not ended after 30 s."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=30)


@contextlib.contextmanager
def running_studio(workspace: Path, *flags: str):
    """A studio serving `workspace` for a test module: yields its URL; afterwards stops the studio and ends
    any training worker its tests started (workers outlive the studio by design)."""
    from studio import jobs
    from studio import run_folder
    from studio.workspace import Workspace

    server, url = start_studio(workspace, *flags)
    try:
        yield url
    finally:
        stop_studio(server)
        for run_dir in (workspace / "runs").glob("*"):
            if jobs.request_stop(run_dir):
                try:
                    run_folder.wait(run_dir, timeout_s=60)
                except TimeoutError:  # a hung worker must not hang the suite: end it
                    _kill_leftover_workers(Workspace(workspace))


_chromium: dict = {}  # the test process's one headless Chromium, started by its first browser test


def shared_chromium():
    """The headless Chromium this test process shares among its browser tests (each gets a context of its own,
    with its own storage, as a fresh browser would give); closed when the process ends."""
    if "browser" not in _chromium:
        import atexit

        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        _chromium["browser"] = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)

        def close() -> None:
            _chromium.pop("browser").close()
            playwright.stop()

        atexit.register(close)
    return _chromium["browser"]


@contextlib.contextmanager
def chromium_page(url: str, height: int = 1000, ready: str | None = "#data-preview"):
    """A page in a fresh context of the shared headless Chromium, opened at `url` (after `ready` shows, when
    given); the context is closed after."""
    context = shared_chromium().new_context(viewport={"width": 1280, "height": height})
    try:
        page = context.new_page()
        page.goto(url)
        if ready:
            page.wait_for_selector(ready)
        yield page
    finally:
        context.close()


def new_workspace(root: Path, tiny_demo_dir: Path):
    """A workspace with the tiny-demo model already built in it."""
    from studio.workspace import Workspace

    workspace = Workspace(root)
    shutil.copytree(tiny_demo_dir, workspace.models_dir / tiny_demo_dir.name)
    return workspace
