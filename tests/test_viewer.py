"""Sharing safely: `--viewer-auth USER:PASS` adds a read-only login beside the operator's.

The viewer can watch runs and charts; every handler that changes something refuses it server-side, so
calling the handlers over Gradio's HTTP API (here with gradio_client, logged in as each user) changes
nothing. The operator login can do everything. The viewer's page shows no control that changes anything.
"""

from __future__ import annotations

import pytest

import app
from conftest import _kill_leftover_workers
from studio import config as cfg
from studio import jobs
from conftest import CHROMIUM, CHROMIUM_FLAGS, new_workspace, start_studio, stop_studio
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
    """The Start handler's inputs over the API: every control of the Train tab, then the language."""
    from studio.ui.context import initial_config
    from studio.ui.train_tab import CONFIG_KEYS

    config = cfg.apply_overrides(initial_config(), {"run_name": run_name, "max_steps": 3, "probe_steps": 0, "save_steps": 0})
    flat = cfg.to_flat(config)
    return [flat[key] for key in CONFIG_KEYS] + ["English"]


@pytest.mark.slow
def test_viewer_is_refused_by_every_handler_that_changes_something(shared, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    url, workspace, finished = shared
    upload = tmp_path / "mine.jsonl"
    upload.write_text('{"prompt": "hi", "completion": "hello"}\n', encoding="utf-8")
    viewer = client(url, VIEWER)
    calls = {
        "/start": start_args("from the viewer"),
        "/stop": ["English"],
        "/kill": ["English"],
        "/resume": ["English"],
        "/delete_run": [[], "", "English"],
        "/save_run_meta": [[], "mine", "notes", "", "English"],
        "/on_clone": [[], "English"],
        "/upload_dataset": [handle_file(str(upload)), "English"],
        "/chat_load": [None, "final", False, "English"],
        "/chat_send": ["hello", [], "", 8, 0.0, 1.0, 0, 1.0, None, "English"],
        "/chat_stop": ["English"],
        "/chat_unload": ["English"],
        "/compare_load": ["base", None, None, "English"],
        "/compare_answer": ["hello", "", False, 8, 0.0, 1.0, 0, "English"],
        "/compare_rate_a": ["English"],
        "/eval_start": [None, "validation", "", 5, 8, "English"],
        "/eval_cancel": ["English"],
        "/export_run": [None, "zip", "bf16", "2GB", False, "", True, "", "English"],
        "/serve_run": [None, 8123, False, "", "English"],
        "/stop_serving": ["English"],
    }
    for endpoint, args in calls.items():
        with pytest.raises(AppError, match="read-only"):
            viewer.predict(*args, api_name=endpoint)
    assert [p.name for p in workspace.runs_dir.iterdir()] == [finished.name]  # no run was started
    assert not (workspace.datasets_dir / "mine.jsonl").exists()
    assert not (finished / "meta.json").exists()
    # …but the viewer can watch: the runs list answers
    table, _choices = viewer.predict("", [], "English", api_name="/list_runs")
    assert finished.name in str(table)


@pytest.mark.slow
def test_operator_can_start_a_run_over_the_api(shared):
    url, workspace, finished = shared
    operator = client(url, OPERATOR)
    result = operator.predict(*start_args("from the operator"), api_name="/start")
    message = result[0] if isinstance(result, (list, tuple)) else result
    assert "Started run" in message
    started = [p for p in workspace.runs_dir.iterdir() if p.name != finished.name]
    assert len(started) == 1 and started[0].name in message
    assert jobs.wait(started[0])["state"] == "completed"


# ---------------------------------------------------------------- in the browser


@pytest.mark.browser
def test_viewer_page_has_no_start_button_and_says_it_is_read_only(shared):
    from playwright.sync_api import sync_playwright

    url, _workspace, finished = shared
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            pages = {}
            for name, (user, password) in (("viewer", VIEWER), ("operator", OPERATOR)):
                page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
                page.goto(url)
                page.get_by_label("username").fill(user)
                page.get_by_label("password").fill(password)
                page.get_by_role("button", name="Login").click()
                page.wait_for_selector("#language", timeout=30_000)
                pages[name] = page

            viewer = pages["viewer"]
            viewer.locator("#viewer-banner").filter(has_text="read-only").wait_for(timeout=20_000)
            viewer.get_by_role("tab", name="3 · Train", selected=True).wait_for(timeout=10_000)
            assert not viewer.locator("#start-button").is_visible()
            for closed_tab in ("1 · Data", "2 · Model", "4 · Chat"):  # a note instead of controls
                viewer.get_by_role("tab", name=closed_tab).click()
                viewer.locator(".prose.viewer-note:visible").filter(has_text="operator").wait_for(timeout=10_000)
            assert not viewer.locator("#data-upload").is_visible() and not viewer.locator("#chat-send").is_visible()
            viewer.get_by_role("tab", name="Runs").click()
            viewer.locator("#runs-table").filter(has_text=finished.name).wait_for(timeout=20_000)  # it can watch
            viewer.click("#runs-pick input")
            viewer.get_by_role("option").filter(has_text=finished.name).click()
            viewer.keyboard.press("Escape")
            viewer.wait_for_selector("#runs-loss .scatterlayer .trace path.js-line", timeout=20_000)
            for control in ("#runs-save", "#runs-delete", "#runs-clone", "#runs-tags"):
                assert not viewer.locator(control).is_visible()
            assert viewer.locator("#runs-watch").is_visible()

            operator = pages["operator"]
            operator.get_by_role("tab", name="3 · Train").click()
            assert operator.locator("#start-button").is_visible()
            assert not operator.locator("#viewer-banner").is_visible()
        finally:
            browser.close()
