"""Worker processes: a killed worker is reported as killed, a vanished one is noticed on re-attach, runs queue
behind each other in launch order (a queued one can be cancelled), and the CLI refuses bad input with a message
that names it. A graceful stop, and resuming after it, is tests/test_resume.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from conftest import run_cli, wait_for
from studio import config as cfg
from studio import jobs
from studio import run_folder
from studio.train.status import FINAL_STATES, update_status

pytestmark = pytest.mark.slow


def long_config(name: str) -> cfg.RunConfig:
    """A tiny-demo run that would train for a very long time unless stopped."""
    return cfg.apply_overrides(cfg.RunConfig(), {
        "run_name": name, "model": "tiny-demo", "dataset": "demo-chat", "max_steps": 100000,
        "batch_size": 2, "cutoff_len": 128, "learning_rate": 1e-3, "logging_steps": 1,
    })


def state_of(run_dir) -> str:
    return run_folder.run_status(run_dir).get("state")


def wait_training(run_dir, timeout: float = 180) -> dict:
    """Wait until the run is `running` and has logged at least one metrics row."""
    def ready():
        status = run_folder.run_status(run_dir)
        assert status.get("state") not in FINAL_STATES, f"run ended early: {status}\n{(run_dir / 'train.log').read_text()}"
        return status if status.get("state") == "running" and run_folder.read_metrics(run_dir)[0] else None
    return wait_for(ready, timeout, f"{run_dir.name} to start training")


def wait_final(run_dir, timeout: float = 60) -> dict:
    def final():
        status = run_folder.run_status(run_dir)
        return status if status.get("state") in FINAL_STATES else None
    return wait_for(final, timeout, f"{run_dir.name} to end")


def test_worker_killed_with_sigkill_is_marked_failed_naming_the_kill(workspace):
    run_dir = jobs.launch(workspace, long_config("killed"))
    status = wait_training(run_dir)
    os.kill(int(status["pid"]), signal.SIGKILL)
    final = wait_final(run_dir, timeout=30)
    assert final["state"] == "failed"
    # the studio launched this worker, so it knows exactly how it died
    assert "killed by SIGKILL" in final["error"], final["error"]
    assert not psutil.pid_exists(int(status["pid"])) or psutil.Process(int(status["pid"])).status() == psutil.STATUS_ZOMBIE
    # the runs list shows it as failed too
    (summary,) = [r for r in run_folder.list_runs(workspace) if r.run_id == run_dir.name]
    assert summary.state == "failed" and summary.error


def test_reattach_to_a_run_whose_worker_is_gone_marks_it_failed(workspace):
    run_dir = jobs.create_run(workspace, long_config("orphan"))
    (run_dir / "train.log").write_text("step 7 of 100000\nlast words of the worker\n", encoding="utf-8")
    finished = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    started = psutil.Process(finished.pid).create_time()
    finished.wait()
    update_status(run_dir, state="running", phase="training", pid=finished.pid, pid_started=started)

    status = run_folder.run_status(run_dir)
    assert status["state"] == "failed"
    assert "gone" in status["error"] and "killed" in status["error"]
    assert "last words of the worker" in status["error"]
    # the verdict is written down, not only returned
    assert run_folder.run_status(run_dir)["state"] == "failed"


def test_reattach_does_not_mistake_a_reused_pid_for_the_worker(workspace):
    run_dir = jobs.create_run(workspace, long_config("reused-pid"))
    # our own (alive) pid, but with a start time that is not ours: the pid was reused by another process
    update_status(run_dir, state="running", pid=os.getpid(), pid_started=psutil.Process().create_time() - 3600)
    status = run_folder.run_status(run_dir)
    assert status["state"] == "failed" and "gone" in status["error"]


def test_a_worker_that_finishes_while_its_status_is_read_is_not_called_gone(workspace, monkeypatch):
    run_dir = jobs.create_run(workspace, long_config("just-done"))
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    update_status(run_dir, state="running", pid=worker.pid, pid_started=psutil.Process(worker.pid).create_time())
    alive = run_folder.worker_alive

    def finishing_meanwhile(status):  # the worker records its outcome and exits between the two reads
        update_status(run_dir, state="completed", phase="finished")
        worker.kill()
        worker.wait()
        return alive(status)

    monkeypatch.setattr(run_folder, "worker_alive", finishing_meanwhile)
    assert run_folder.run_status(run_dir)["state"] == "completed"
    monkeypatch.undo()
    assert run_folder.run_status(run_dir)["state"] == "completed"  # and so it stays written


def test_reattach_keeps_a_live_worker_running(workspace):
    run_dir = jobs.create_run(workspace, long_config("alive"))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        update_status(run_dir, state="running", pid=sleeper.pid, pid_started=psutil.Process(sleeper.pid).create_time())
        assert run_folder.run_status(run_dir)["state"] == "running"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert run_folder.run_status(run_dir)["state"] == "failed"


def test_runs_queue_one_at_a_time_in_launch_order_and_a_queued_run_can_be_cancelled(workspace):
    first = jobs.launch(workspace, long_config("first"))
    wait_training(first)
    second, third, cancelled = (jobs.launch(workspace, long_config(name)) for name in ("second", "third", "cancelled"))

    def waiting(run_dir):
        status = run_folder.run_status(run_dir)
        return status.get("state") == "queued" and "waiting" in status.get("phase", "")

    wait_for(lambda: all(waiting(r) for r in (second, third, cancelled)), 60, "the later runs to report that they wait")
    assert state_of(first) == "running"
    assert not (second / "metrics.jsonl").exists()

    # a queued run can be cancelled without ever training
    assert jobs.request_stop(cancelled)
    final = wait_final(cancelled)
    assert final["state"] == "stopped" and "queued" in final["phase"]
    assert not (cancelled / "metrics.jsonl").exists()
    assert state_of(first) == "running" and state_of(second) == state_of(third) == "queued"

    # each run gets its turn when the one before ends, in the order they were launched
    assert jobs.request_stop(first)
    assert wait_final(first)["state"] == "stopped"
    wait_for(lambda: state_of(second) == "running", 60, "the second run to start")
    assert state_of(third) == "queued", "the run launched later waits for the earlier one"
    assert jobs.request_stop(second)
    assert wait_final(second)["state"] == "stopped"
    wait_for(lambda: state_of(third) == "running", 60, "the third run to start")
    assert jobs.request_stop(third)
    finals = [wait_final(run_dir) for run_dir in (first, second, third)]
    assert finals[1]["started"] >= finals[0]["ended"] and finals[2]["started"] >= finals[1]["ended"], "one run at a time"
    assert [r.state for r in run_folder.list_runs(workspace)] == ["stopped"] * 4
    assert not list((workspace.locks_dir / "queue").glob("*.json")), "no ticket is left behind"


def test_cli_train_with_an_unknown_key_exits_2_naming_it(workspace):
    result = run_cli("train", "learnig_rate=1e-3", "batch_size=abc", workspace=workspace.root)
    assert result.returncode == 2
    assert "learnig_rate" in result.stderr and "batch_size" in result.stderr
    assert workspace.run_ids() == [], "no run is created for a bad config"


def test_cli_train_with_a_missing_dataset_names_the_file(workspace):
    result = run_cli("train", "dataset=missing.jsonl", "max_steps=1", workspace=workspace.root)
    assert result.returncode == 2
    assert "missing.jsonl" in result.stderr and "does not exist" in result.stderr
    assert workspace.run_ids() == [], "no run is created for a dataset that cannot be read"


def test_cli_train_with_a_bad_row_names_the_line_before_starting(workspace):
    bad = workspace.datasets_dir / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n', encoding="utf-8")
    result = run_cli("train", "dataset=datasets/bad.jsonl", "max_steps=1", workspace=workspace.root)
    assert result.returncode == 2
    assert "bad.jsonl" in result.stderr and "line 2: missing field `completion`" in result.stderr
    assert workspace.run_ids() == []


def test_cli_train_with_a_dataset_outside_the_workspace_is_refused(workspace, tmp_path):
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text('{"prompt": "a", "completion": "b"}\n', encoding="utf-8")
    result = run_cli("train", f"dataset={outside}", "max_steps=1", workspace=workspace.root)
    assert result.returncode != 0
    assert "outside the workspace" in result.stdout + result.stderr
