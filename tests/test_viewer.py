"""Sharing safely: `--viewer-auth USER:PASS` adds a read-only login beside the operator's.

The viewer can watch runs and charts. Over HTTP (raw requests and gradio_client, logged in as each user)
the server refuses it uploads, Gradio's file routes and every handler the README does not list for viewers,
so it can neither store a file, nor read what the operator uploaded, nor make the studio parse its input.
The operator login can do everything. The viewer's page shows no control that changes anything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

import app
from conftest import _kill_leftover_workers
from studio import config as cfg
from studio import run_folder
from conftest import new_workspace, shared_chromium, start_studio, stop_studio
from test_run_library import write_run

OPERATOR = ("boss", "boss-pass-1")
VIEWER = ("guest", "guest-pass-1")


# ---------------------------------------------------------------- launch flags


def test_viewer_login_without_operator_login_generates_one_printed_once(capsys):
    args = app.parse_args(["--viewer-auth", "guest:pw"])
    operator = app.resolve_auth(args)
    printed = capsys.readouterr().out
    assert operator[0] == "studio" and len(operator[1]) >= 12
    assert printed.count(operator[1]) == 1 and "read-only" in printed
    assert app.resolve_viewer_auth(args, operator) == ("guest", "pw")
    assert app.resolve_viewer_auth(app.parse_args([]), None) is None


def test_viewer_login_must_be_well_formed_and_not_the_operators_name():
    with pytest.raises(SystemExit, match="different user name"):
        args = app.parse_args(["--auth", "ana:one", "--viewer-auth", "ana:two"])
        app.resolve_viewer_auth(args, app.resolve_auth(args))
    with pytest.raises(SystemExit, match="USER:PASS"):
        args = app.parse_args(["--auth", "ana:one", "--viewer-auth", "nopassword"])
        app.resolve_viewer_auth(args, app.resolve_auth(args))


# ---------------------------------------------------------------- over the HTTP API


@pytest.fixture(scope="module")
def shared(tmp_path_factory, tiny_demo_dir):
    """A studio launched with an operator and a viewer login; (url, workspace, a finished run)."""
    workspace = new_workspace(tmp_path_factory.mktemp("viewer-ws"), tiny_demo_dir)
    finished = write_run(workspace, "finished")
    server, url = start_studio(workspace.root, "--auth", ":".join(OPERATOR), "--viewer-auth", ":".join(VIEWER))
    yield url, workspace, finished
    stop_studio(server)
    _kill_leftover_workers(workspace)


def client(url: str, login: tuple[str, str]):
    from gradio_client import Client

    return Client(url, auth=login, verbose=False)


def start_args(run_name: str) -> list:
    """The Start handler's inputs over the API: a JSON object of the config keys to change (the others keep the
    Train tab's starting values), then the language."""
    return [json.dumps({"run_name": run_name, "max_steps": 3, "probe_steps": 0, "save_steps": 0}), "English"]


def login(url: str, user: tuple[str, str]) -> httpx.Client:
    """An HTTP session logged in as `user` (Gradio's login cookie)."""
    session = httpx.Client(base_url=url, timeout=60)
    answer = session.post("login", data={"username": user[0], "password": user[1]})
    assert answer.status_code == 200, answer.text
    return session


def upload(session: httpx.Client, path: Path) -> httpx.Response:
    with open(path, "rb") as handle:
        return session.post("gradio_api/upload", files={"files": (path.name, handle)})


def endpoint_ids(session: httpx.Client) -> dict[str, int]:
    """Every event handler of the page, by its Gradio endpoint name."""
    return {dep["api_name"]: dep["id"] for dep in session.get("config").json()["dependencies"]}


def refused(answer: httpx.Response) -> bool:
    return answer.status_code == 403 and "read-only viewer login" in answer.json()["detail"]


@pytest.fixture(scope="module")
def viewer_handlers(tmp_path_factory) -> dict[int, str]:
    """The handlers marked for viewers in the page the studio builds: {endpoint id: "module.function"}."""
    from studio.ui import build_app
    from studio.ui.context import viewer_may_call
    from studio.workspace import Workspace

    page = build_app(Workspace(tmp_path_factory.mktemp("page-ws")), viewers=["someone"])
    return {i: f"{fn.fn.__module__.rsplit('.', 1)[-1]}.{fn.fn.__name__}" for i, fn in page.fns.items() if viewer_may_call(fn.fn)}


@pytest.mark.slow
def test_readme_lists_exactly_the_handlers_a_viewer_may_call(viewer_handlers):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Sharing with a read-only viewer", 1)[1].split("\n## ", 1)[0]
    listed = {name for line in section.splitlines() if line.startswith("| `") for name in re.findall(r"`(\w+\.\w+)`", line.split("|")[1])}
    assert listed == set(viewer_handlers.values())


@pytest.mark.slow
def test_viewer_cannot_upload_nor_read_what_the_operator_uploaded(shared, tmp_path):
    url, _workspace, _finished = shared
    secret = tmp_path / "customers.jsonl"
    secret.write_text('{"prompt": "account 4411", "completion": "balance 9000"}\n', encoding="utf-8")
    viewer, operator = login(url, VIEWER), login(url, OPERATOR)

    assert refused(upload(viewer, secret))
    stored = upload(operator, secret)
    assert stored.status_code == 200
    [server_path] = stored.json()
    assert operator.get(f"gradio_api/file={server_path}").text == secret.read_text(encoding="utf-8")
    for route in (f"gradio_api/file={server_path}", f"gradio_api/file/{server_path}"):
        answer = viewer.get(route)
        assert refused(answer) and "9000" not in answer.text
    assert viewer.head(f"gradio_api/file={server_path}").status_code == 403


@pytest.mark.slow
def test_viewer_cannot_load_a_config_not_even_one_already_on_the_server(shared, tmp_path):
    from gradio_client import handle_file

    from studio.ui.context import initial_config

    url, _workspace, _finished = shared
    config_file = tmp_path / "mine.yaml"
    config_file.write_text(cfg.to_yaml(cfg.apply_overrides(initial_config(), {"run_name": "loaded"})), encoding="utf-8")
    viewer, operator = login(url, VIEWER), login(url, OPERATOR)
    [server_path] = upload(operator, config_file).json()
    load_config = endpoint_ids(viewer)["on_load"]
    file_data = {"path": server_path, "meta": {"_type": "gradio.FileData"}}

    join = {"data": [file_data, "English"], "fn_index": load_config, "session_hash": "viewer-session"}
    assert refused(viewer.post("gradio_api/queue/join", json=join))
    assert refused(viewer.post("gradio_api/call/on_load", json={"data": [file_data, "English"]}))
    # a listed endpoint's route naming another handler by its index
    assert refused(viewer.post("gradio_api/run/list_runs", json={**join, "session_hash": None}))
    # the operator's Load config works as before
    result = client(url, OPERATOR).predict(handle_file(str(config_file)), "English", api_name="/on_load")
    assert "Loaded the config `mine.yaml`" in result[0]


@pytest.mark.slow
def test_viewer_is_refused_every_handler_the_readme_does_not_list(shared, viewer_handlers):
    url, workspace, finished = shared
    viewer = login(url, VIEWER)
    ids = endpoint_ids(viewer)
    not_listed = {name: i for name, i in ids.items() if i not in viewer_handlers}
    assert {"start", "stop", "kill", "delete_run", "upload_dataset", "on_load", "chat_send", "export_run", "on_preview"} <= set(not_listed)
    for name, index in not_listed.items():
        answer = viewer.post("gradio_api/queue/join", json={"data": [], "fn_index": index, "session_hash": "viewer-session"})
        assert refused(answer), name
    assert refused(viewer.post("gradio_api/component_server", json={"session_hash": "s", "component_id": 1, "fn_name": "ls", "data": None}))
    assert viewer.post("gradio_api/queue/join", content=b"x" * 70_000).status_code == 413
    assert [p.name for p in workspace.runs_dir.iterdir()] == [finished.name]  # no run was started


@pytest.mark.slow
def test_viewer_still_gets_the_run_list_and_a_runs_charts(shared):
    url, _workspace, finished = shared
    viewer = client(url, VIEWER)
    table, _choices = viewer.predict("", [], "English", api_name="/list_runs")
    assert finished.name in str(table)
    opened = viewer.predict([finished.name], "English", api_name="/open_runs")
    summary, loss_chart = opened[2], opened[3]  # (the boxes around them are no outputs of the API)
    assert finished.name in summary
    assert 'data-name="training loss"' in loss_chart and "chart-line" in loss_chart


@pytest.mark.slow
def test_handlers_that_fire_on_every_page_read_nothing_for_the_viewer(shared):
    url, _workspace, _finished = shared
    # the Train tab's LoRA layer list runs on page load: it reads the model folder for the operator only
    for_operator = client(url, OPERATOR).predict("tiny-demo", "all-linear", api_name="/module_picker_names")
    assert ["q_proj", "q_proj"] in for_operator["choices"]
    assert "choices" not in client(url, VIEWER).predict("tiny-demo", "all-linear", api_name="/module_picker_names")


@pytest.mark.slow
def test_operator_can_start_a_run_over_the_api(shared):
    url, workspace, finished = shared
    operator = client(url, OPERATOR)
    result = operator.predict(*start_args("from the operator"), api_name="/start")
    message = result[0] if isinstance(result, (list, tuple)) else result
    assert "Started run" in message
    started = [p for p in workspace.runs_dir.iterdir() if p.name != finished.name]
    assert len(started) == 1 and started[0].name in message
    assert run_folder.wait(started[0])["state"] == "completed"


# ---------------------------------------------------------------- in the browser


@pytest.mark.browser
def test_viewer_page_has_no_start_button_and_says_it_is_read_only(shared):
    url, workspace, finished = shared
    training = write_run(workspace, "training", state="running", steps=30, pid=os.getpid())  # this process: alive
    # the two logins' pages, each in a context (cookies) of its own
    contexts = [shared_chromium().new_context(viewport={"width": 1280, "height": 1000}) for _ in range(2)]
    try:
        pages = {}
        for context, (name, (user, password)) in zip(contexts, (("viewer", VIEWER), ("operator", OPERATOR))):
            page = context.new_page()
            page.goto(url)
            page.get_by_label("username").fill(user)
            page.get_by_label("password").fill(password)
            page.get_by_role("button", name="Login").click()
            page.wait_for_selector("#language", timeout=30_000)
            pages[name] = page

        viewer = pages["viewer"]
        viewer.locator("#viewer-banner").filter(has_text="read-only").wait_for(timeout=20_000)
        viewer.get_by_role("tab", name="3 · Train", selected=True).wait_for(timeout=10_000)
        # the training run streams to the viewer's page
        viewer.locator("#train-progress").filter(has_text="step 30 / 60").wait_for(timeout=20_000)
        with open(training / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write('{"step": 31, "total_steps": 60, "loss": 0.5, "elapsed": 62.0, "eta": 58.0}\n')
        viewer.locator("#train-progress").filter(has_text="step 31 / 60").wait_for(timeout=20_000)
        assert not viewer.locator("#start-button").is_visible()
        assert not viewer.locator("#train-load").is_visible()
        for closed_tab in ("1 · Data", "2 · Model", "4 · Chat"):  # a note instead of controls
            viewer.get_by_role("tab", name=closed_tab).click()
            viewer.locator(".prose.viewer-note:visible").filter(has_text="operator").wait_for(timeout=10_000)
        assert not viewer.locator("#data-upload").is_visible() and not viewer.locator("#chat-send").is_visible()
        viewer.get_by_role("tab", name="Runs").click()
        viewer.locator("#runs-table").filter(has_text=finished.name).wait_for(timeout=20_000)  # it can watch
        viewer.click("#runs-pick input")
        viewer.get_by_role("option").filter(has_text=finished.name).click()
        viewer.keyboard.press("Escape")
        viewer.wait_for_selector("#runs-loss .chart-line", timeout=20_000)
        for control in ("#runs-save", "#runs-delete", "#runs-clone", "#runs-tags"):
            assert not viewer.locator(control).is_visible()
        assert viewer.locator("#runs-watch").is_visible()
        # every event the viewer's page fired was one it may call: no component shows an error
        assert viewer.locator("[data-testid='status-tracker'] .error:visible").count() == 0

        operator = pages["operator"]
        operator.get_by_role("tab", name="3 · Train").click()
        assert operator.locator("#start-button").is_visible()
        assert not operator.locator("#viewer-banner").is_visible()
    finally:
        for context in contexts:
            context.close()
        # the module's other tests list the runs of this workspace when they share its process: leave no run behind
        shutil.rmtree(training)
