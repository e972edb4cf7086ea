"""The live monitor and the Runs page in real headless Chromium.

A reloaded page and a restarted studio show the same run going on; the monitor shows the phase bar, GPU
readings, probe answers, cost and red error lines of a run folder; the Runs page edits tags, overlays and
diffs runs, clones a config into the Train tab and deletes only finished runs. Kill and Resume need
jobs.kill_run and jobs.resume_run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from conftest import _kill_leftover_workers, free_port, new_workspace, shared_chromium, start_studio, stop_studio, wait_for
from studio import run_folder
from test_run_library import write_run

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
MONITOR_TOP_PX = 500  # where the live view starts on a 1000 px high page while its run trains: no scrolling


@pytest.fixture(scope="module")
def studio(tmp_path_factory, tiny_demo_dir):
    """One studio for this module's tests: (url, workspace)."""
    workspace = new_workspace(tmp_path_factory.mktemp("monitor-ws"), tiny_demo_dir)
    server, url = start_studio(workspace.root)
    yield url, workspace
    stop_studio(server)
    _kill_leftover_workers(workspace)  # workers outlive the studio by design; end ours


@pytest.fixture(scope="module")
def chromium():
    return shared_chromium()


@pytest.fixture()
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture()
def sleeper():
    """A live process that stands in for the worker of a hand-written running run."""
    process = subprocess.Popen(["sleep", "600"])
    yield process.pid
    process.kill()
    process.wait()


def what_the_page_shows(page, workspace: Path, run_id: str) -> str:
    """What a test that waited in vain for the live view saw: the page's message and progress, the run's
    status and the studio's log (its end)."""
    progress = page.locator("#run-progress")
    status = workspace / "runs" / run_id / "status.json"
    train_log = workspace / "runs" / run_id / "train.log"
    log = (workspace / "app.log").read_text(encoding="utf-8", errors="replace") if (workspace / "app.log").is_file() else ""
    return (f"message: {page.inner_text('#train-message')!r}\n"
            f"progress: {progress.first.evaluate('(el) => el.outerHTML')[:400] if progress.count() else 'none'}\n"
            f"status.json: {status.read_text(encoding='utf-8') if status.is_file() else 'none'}\n"
            f"train.log (end):\n{train_log.read_text(encoding='utf-8', errors='replace')[-2000:] if train_log.is_file() else 'none'}\n"
            f"app.log (end):\n{log[-3000:]}")


def open_tab(page, url: str, tab: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name=tab).click()


def start_run(page, name: str, max_steps: int, **fields: str) -> str:
    """Fill the Train tab (name, max steps, more fields by id) and press Start; returns the run id."""
    page.fill("#train-run_name textarea, #train-run_name input", name)
    page.fill("#train-max_steps input", str(max_steps))
    if fields:
        page.click("#train-more button:has-text('Validation')")
        for key, value in fields.items():
            page.fill(f"#train-{key} input", value)
    page.click("#start-button")
    # "Watching run" when the page's load event (which re-attaches to an active run) answers after Start did
    page.locator("#train-message").filter(has_text=re.compile("Started run|Watching run")).wait_for(timeout=30_000)
    return page.inner_text("#train-message code").strip()


def progress_of(page) -> dict:
    box = page.locator("#run-progress")
    return {"run": box.get_attribute("data-run"), "state": box.get_attribute("data-state"), "step": int(box.get_attribute("data-step") or 0)}


def loss_points(page, chart: str = "#loss-chart") -> int:
    """The points of the chart's raw-loss line (drawn with a marker each only on short runs)."""
    return page.evaluate("(sel) => Number(document.querySelector(sel + ' .chart-line')?.dataset.points || 0)", chart)


def select_runs(page, *run_ids: str) -> None:
    """Choose exactly these runs in the Runs page's multi-select."""
    if page.locator("#runs-pick .remove-all").count():
        page.click("#runs-pick .remove-all")
    for run_id in run_ids:
        page.click("#runs-pick input")
        page.get_by_role("option").filter(has_text=run_id).click()
    page.keyboard.press("Escape")


def worker_pid(run_dir: Path) -> int:
    return int(json.loads((run_dir / "status.json").read_text())["pid"])


# ---------------------------------------------------------------- never lose a run


def test_reloaded_page_shows_the_same_run_and_it_goes_on(studio, page):
    url, workspace = studio
    open_tab(page, url, "3 · Train")
    run_id = start_run(page, "reload me", 100_000, probe_steps="0", save_steps="0")
    try:
        _reload_and_watch(page, workspace, run_id)
    finally:  # a run left training would be the live run of the next test's page
        _kill_leftover_workers(workspace)


def _reload_and_watch(page, workspace, run_id: str) -> None:
    """The live view of `run_id` as it trains, folded settings, a reload that shows the whole curve, then Stop."""
    try:
        page.wait_for_selector("#loss-chart .chart-line", timeout=120_000)
    except PlaywrightTimeout:
        raise AssertionError(what_the_page_shows(page, workspace.root, run_id)) from None
    page.wait_for_function("Number(document.querySelector('#run-progress')?.dataset.step) >= 3", timeout=120_000)
    before = progress_of(page)
    # while the run trains its live view comes first: the settings fold away behind a toggle
    assert not page.is_visible("#train-settings") and page.is_visible("#train-settings-toggle")
    assert page.locator("#monitor").bounding_box()["y"] < MONITOR_TOP_PX
    # the run's buttons carry their labels (the page load's follower, with no run to watch, must not blank them)
    assert [page.inner_text(b).strip() for b in ("#stop-button", "#kill-button")] == ["Stop", "Kill"]
    page.click("#train-settings-toggle")
    assert page.is_visible("#train-settings")
    page.click("#train-settings-toggle")
    assert not page.is_visible("#train-settings")

    page.reload()
    page.get_by_role("tab", name="3 · Train").click()
    page.locator(f"#run-progress[data-run='{run_id}']").wait_for(timeout=30_000)
    page.wait_for_selector("#loss-chart .chart-line", timeout=30_000)
    assert loss_points(page) >= before["step"]  # the whole curve so far, not just what came after the reload
    page.wait_for_function(f"Number(document.querySelector('#run-progress').dataset.step) > {progress_of(page)['step']}", timeout=60_000)
    assert "Watching run" in page.inner_text("#train-message")
    assert [page.inner_text(b).strip() for b in ("#stop-button", "#kill-button")] == ["Stop", "Kill"]

    page.click("#stop-button")
    page.locator("#run-progress[data-state=stopped]").wait_for(timeout=60_000)
    assert progress_of(page)["step"] > before["step"]
    assert page.is_visible("#train-settings")  # a run that ended leaves the settings open for the next one


def test_restarted_studio_shows_the_run_still_running_then_completed(tmp_path, tiny_demo_dir, chromium):
    workspace = new_workspace(tmp_path / "ws", tiny_demo_dir)
    port = free_port()
    server, url = start_studio(workspace.root, port=port)
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    frozen = None
    try:
        page = context.new_page()
        open_tab(page, url, "3 · Train")
        run_id = start_run(page, "survivor", 60, probe_steps="0", save_steps="0")
        # Pause the worker a few steps in, so that it is sure to be mid-run while the studio is down (it keeps its
        # state). The 60 steps take about 15 s here: waiting for more (the loss chart is drawn every 5 s) can outlast them.
        page.wait_for_function("Number(document.querySelector('#run-progress')?.dataset.step) >= 3", timeout=120_000)
        frozen = worker_pid(workspace.runs_dir / run_id)
        os.kill(frozen, signal.SIGSTOP)
        steps_seen = progress_of(page)["step"]
        page.close()
        assert json.loads((workspace.runs_dir / run_id / "status.json").read_text())["state"] == "running"
        stop_studio(server)

        server, url = start_studio(workspace.root, port=port)  # same workspace, same address
        page = context.new_page()
        open_tab(page, url, "3 · Train")
        try:
            page.locator(f"#run-progress[data-run='{run_id}'][data-state=running]").wait_for(timeout=30_000)
        except PlaywrightTimeout:
            raise AssertionError(what_the_page_shows(page, workspace.root, run_id)) from None
        page.wait_for_selector("#loss-chart .chart-line", timeout=30_000)
        assert loss_points(page) >= steps_seen

        os.kill(frozen, signal.SIGCONT)
        frozen = None
        page.locator(f"#run-progress[data-run='{run_id}'][data-state=completed]").wait_for(timeout=180_000)
        assert "step 60 / 60" in page.inner_text("#run-progress")
        page.wait_for_function("document.querySelector('#loss-chart .chart-line')?.dataset.points === '60'", timeout=10_000)
    finally:
        if frozen:
            os.kill(frozen, signal.SIGCONT)
        stop_studio(server)
        context.close()
        _kill_leftover_workers(workspace)


# ---------------------------------------------------------------- what the monitor shows


def test_monitor_shows_phase_gpus_probes_cost_and_red_errors(studio, page, sleeper):
    url, workspace = studio
    download = {"phase": "download", "label": "model.safetensors", "done": 3.2e9, "total": 15e9, "unit": "B", "rate": 45e6}
    log = "Traceback (most recent call last):\n  File \"w.py\", line 9, in step\nRuntimeError: CUDA out of memory\n[10:00:09] <b>not bold</b> still fine\n"
    run_dir = write_run(workspace, "watch me", state="running", pid=sleeper, gpus=1, progress=download, log=log, steps=30, probes=("Who lives in Amberlee?",))

    open_tab(page, url, "Runs")
    page.click("#runs-refresh")
    page.locator("#runs-table").filter(has_text=run_dir.name).wait_for(timeout=20_000)
    select_runs(page, run_dir.name)
    page.click("#runs-watch")
    page.locator(f"#run-progress[data-run='{run_dir.name}']").wait_for(timeout=30_000)

    assert "downloading model.safetensors 3.2/15.0 GB · 45 MB/s" in page.inner_text("#phase-progress")
    page.locator("#system-now").filter(has_text="NVIDIA H100").wait_for(timeout=10_000)
    assert "memory 38.1/79.6 GB · 97% busy · 65 °C · 350 W" in page.inner_text("#system-now")
    page.wait_for_selector("#system-chart .chart-line", timeout=30_000)
    # memory used and total, utilisation, temperature, power, CPU, RAM used and total
    assert page.locator("#system-chart .chart-line").count() == 8
    assert page.locator("#system-chart .chart-panel").count() == 6
    assert page.locator("#loss-chart .chart-line").count() == 3  # raw, smoothed, validation
    assert page.locator("#metrics-chart .chart-line").count() == 3
    assert "GPU 0 used 38.09" in page.inner_text("#system-chart .chart-legend")  # the latest reading

    probes = page.locator("#probes .probe-panel")
    assert "Who lives in Amberlee?" in probes.inner_text() and "I do not know." in probes.inner_text()
    assert "Answer after step 30." in probes.inner_text()

    bad = page.locator("#log-view .log-error").first
    assert "Traceback" in bad.inner_text()
    assert bad.evaluate("e => getComputedStyle(e).color") == "rgb(185, 28, 28)"  # red
    fine = page.locator("#log-view .log-line", has_text="still fine")
    assert fine.inner_text().startswith("[10:00:09] <b>not bold</b>")  # shown as text, not as markup
    assert fine.evaluate("e => getComputedStyle(e).color") != "rgb(185, 28, 28)"

    page.fill("#price-per-hour input", "30")
    page.locator("#run-cost").filter(has_text="cost so far").wait_for(timeout=10_000)
    cost = re.search(r"cost so far ([\d.]+) · about ([\d.]+) by the end", page.inner_text("#run-cost"))
    assert cost and 1.0 <= float(cost[1]) < float(cost[2])  # 30 per hour for the 2+ minutes the run has taken

    # New probe answers and metrics appear without a reload; the phase bar goes once the phase ends.
    with open(run_dir / "samples.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"step": 40, "prompt_index": 0, "prompt": "Who lives in Amberlee?", "answer": "The lantern makers.", "seconds": 0.2}) + "\n")
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "progress": None}))
    probes.filter(has_text="The lantern makers.").wait_for(timeout=10_000)
    page.locator("#phase-progress").wait_for(state="detached", timeout=10_000)


def test_runs_page_tags_compare_clone_and_delete(studio, page, sleeper):
    url, workspace = studio
    slow = write_run(workspace, "slow lr", overrides={"learning_rate": 1e-4}, steps=20)
    fast = write_run(workspace, "fast lr", overrides={"learning_rate": 3e-3, "lora_rank": 4}, steps=25)
    busy = write_run(workspace, "busy", state="running", pid=sleeper)
    open_tab(page, url, "Runs")
    page.click("#runs-refresh")
    page.locator("#runs-table").filter(has_text="fast lr").wait_for(timeout=20_000)

    # One run: its charts, then tags and notes that stay.
    select_runs(page, slow.name)
    page.locator("#runs-summary").filter(has_text=slow.name).wait_for(timeout=20_000)
    page.wait_for_selector("#runs-loss .chart-line", timeout=20_000)
    assert loss_points(page, "#runs-loss") == 20  # one point per logged step of the whole run
    page.fill("#runs-tags textarea, #runs-tags input", "baseline, keep")
    page.fill("#runs-notes textarea", "the slow one")
    page.click("#runs-save")
    page.locator("#runs-message").filter(has_text="Saved").wait_for(timeout=10_000)
    page.locator("#runs-table").filter(has_text="baseline, keep").wait_for(timeout=10_000)
    assert json.loads((slow / "meta.json").read_text()) == {"tags": ["baseline", "keep"], "notes": "the slow one"}

    # Two runs: both loss curves on one chart, and the keys that differ.
    select_runs(page, slow.name, fast.name)
    page.locator("#runs-compare").wait_for(state="visible", timeout=20_000)
    page.wait_for_function("document.querySelectorAll('#runs-overlay .chart-line').length === 6", timeout=20_000)  # raw, smoothed, validation each
    diff = page.inner_text("#runs-diff")
    assert "learning_rate" in diff and "lora_rank" in diff and "max_steps" in diff and "seed" not in diff

    # Clone: the Train tab gets the run's settings under a new name.
    select_runs(page, fast.name)
    page.locator("#runs-summary").filter(has_text=fast.name).wait_for(timeout=20_000)
    page.click("#runs-clone")
    page.get_by_role("tab", name="3 · Train", selected=True).wait_for(timeout=10_000)
    page.wait_for_function("document.querySelector('#train-run_name textarea, #train-run_name input').value === 'fast lr-copy'", timeout=10_000)
    assert page.input_value("#train-learning_rate input") == "0.003"
    assert page.input_value("#train-max_steps input") == "25"

    # Delete: refused while the run is active, done after a confirmation for a finished one.
    page.get_by_role("tab", name="Runs").click()
    page.wait_for_timeout(2000)  # the tab's refresh answers
    assert fast.name in page.inner_text("#runs-pick")  # the pick survives a visit of another tab
    select_runs(page, busy.name)
    page.locator("#runs-summary").filter(has_text=busy.name).wait_for(timeout=20_000)
    page.click("#runs-delete")
    page.click("#runs-delete-yes")
    page.locator("#runs-message").filter(has_text="stop it").wait_for(timeout=10_000)
    assert busy.is_dir()
    select_runs(page, slow.name)
    page.locator("#runs-summary").filter(has_text=slow.name).wait_for(timeout=20_000)
    page.click("#runs-delete")
    assert "cannot be undone" in page.inner_text("#runs-delete-confirm")
    page.click("#runs-delete-yes")
    page.locator("#runs-message").filter(has_text="Deleted").wait_for(timeout=10_000)
    assert not slow.exists()
    assert slow.name not in page.inner_text("#runs-table")


# ---------------------------------------------------------------- Kill and Resume (need jobs.kill_run, jobs.resume_run)


def test_kill_asks_first_and_a_killed_run_resumes_from_its_checkpoint(studio, page):
    url, workspace = studio
    open_tab(page, url, "3 · Train")
    run_id = start_run(page, "kill me", 100_000, probe_steps="0", save_steps="5")
    run_dir = workspace.runs_dir / run_id
    wait_for(lambda: run_folder.latest_checkpoint(run_dir), 180, "the first checkpoint")
    pid = worker_pid(run_dir)

    page.click("#kill-button")
    page.locator("#kill-confirm").filter(has_text="Kill run").wait_for(timeout=10_000)
    assert run_folder.run_status(run_dir)["state"] == "running"  # nothing happens before the confirmation
    page.click("#kill-yes")
    page.locator("#run-progress[data-state=stopped]").wait_for(timeout=30_000)
    assert "killed" in page.inner_text("#run-progress")
    wait_for(lambda: not _alive(pid), 10, "the worker to be gone")
    killed_at = progress_of(page)["step"]

    page.click("#resume-button")
    page.locator("#train-message").filter(has_text="Resuming").wait_for(timeout=30_000)
    page.locator(f"#run-progress[data-run='{run_id}'][data-state=running]").wait_for(timeout=60_000)
    page.wait_for_function(f"Number(document.querySelector('#run-progress').dataset.step) > {killed_at}", timeout=120_000)
    assert "resumed from checkpoint-" in page.inner_text("#run-progress")
    page.click("#stop-button")
    page.locator("#run-progress[data-state=stopped]").wait_for(timeout=60_000)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
