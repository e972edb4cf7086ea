"""Runs you never lose: checkpoints, resume in the same folder (steps continue), kill now and resume later,
a clear refusal when there is nothing to resume from, and the CLI verbs for all of it (the queue's order is
tests/test_jobs.py)."""

from __future__ import annotations

import json

import psutil
import pytest

from conftest import run_cli, wait_for
from studio import config as cfg
from studio import jobs
from studio import run_folder
from studio.train.status import FINAL_STATES, read_status, update_status

pytestmark = pytest.mark.slow


def config(name: str, **overrides) -> cfg.RunConfig:
    base = {"run_name": name, "model": "tiny-demo", "dataset": "demo-chat", "max_steps": 30, "batch_size": 2,
            "cutoff_len": 128, "learning_rate": 1e-3, "save_steps": 5, "probe_steps": 10}
    return cfg.check(cfg.apply_overrides(cfg.RunConfig(), {**base, **overrides}))


def train_steps(run_dir) -> list[int]:
    return [r["step"] for r in run_folder.read_metrics(run_dir)[0] if "loss" in r]


def wait_steps(run_dir, at_least: int, timeout: float = 180) -> None:
    def reached():
        status = run_folder.run_status(run_dir)
        assert status.get("state") not in FINAL_STATES, f"run ended early: {status}\n{(run_dir / 'train.log').read_text()}"
        return (train_steps(run_dir) or [0])[-1] >= at_least
    wait_for(reached, timeout, f"{run_dir.name} to reach step {at_least}")


def finish(run_dir, timeout: float = 180) -> dict:
    return wait_for(lambda: (s := run_folder.run_status(run_dir)).get("state") in FINAL_STATES and s, timeout, f"{run_dir.name} to end")


def assert_steps_continue(before: list[int], after: list[int], total: int) -> None:
    assert after[: len(before)] == before, "rows written before the resume are kept as they were"
    assert after == sorted(after) and len(set(after)) == len(after), f"a step was logged twice or went back: {after}"
    assert after[-1] == total and len(after) > len(before)


def test_a_stopped_run_resumes_in_the_same_folder_and_its_steps_continue(workspace):
    run_dir = jobs.launch(workspace, config("resume"))
    wait_steps(run_dir, 6)
    assert jobs.request_stop(run_dir)
    stopped = finish(run_dir)
    assert stopped["state"] == "stopped"
    assert isinstance(stopped["stopped_at_step"], int) and stopped["steps"] == stopped["stopped_at_step"] >= 6
    assert run_folder.read_metrics(run_dir)[0][-1]["step"] <= stopped["stopped_at_step"]
    # a graceful stop saves the adapter and a checkpoint at the step it stopped on, so nothing trained is lost
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file() and (run_dir / "adapter" / "studio_config.yaml").is_file()
    assert run_folder.latest_checkpoint(run_dir).name == f"checkpoint-{stopped['stopped_at_step']}"
    assert "stopping after the current step" in (run_dir / "train.log").read_text(encoding="utf-8")
    assert jobs.request_stop(run_dir) is False  # nothing left to stop
    before = train_steps(run_dir)
    probes_before = len(run_folder.read_samples(run_dir)[0])

    assert jobs.resume_run(workspace, run_dir) == run_dir
    checkpoint = run_dir / "checkpoints" / f"checkpoint-{stopped['stopped_at_step']}"
    status = run_folder.run_status(run_dir)
    assert status["state"] in ("queued", "running") and status["resumed_from"] == checkpoint.name
    final = finish(run_dir)
    assert final["state"] == "completed" and final["steps"] == 30, final
    assert final["resumed_from"] == checkpoint.name and not final.get("error")
    assert_steps_continue(before, train_steps(run_dir), 30)
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert "resuming from checkpoint-" in (run_dir / "train.log").read_text(encoding="utf-8")
    # probes went on from where they were, without a second base-model pass
    samples = run_folder.read_samples(run_dir)[0]
    assert len(samples) > probes_before and [r["step"] for r in samples].count(0) == 3
    assert workspace.run_ids() == [run_dir.name], "a resume never makes a new run folder"


def test_a_run_without_a_checkpoint_cannot_be_resumed_and_says_why(workspace):
    run_dir = jobs.create_run(workspace, config("no-checkpoints", save_steps=0))
    update_status(run_dir, state="stopped", phase="stopped and saved")
    with pytest.raises(jobs.ResumeError, match="no checkpoint.*save_steps=0"):
        jobs.resume_run(workspace, run_dir)

    early = jobs.create_run(workspace, config("too-early"))
    update_status(early, state="failed", phase="failed", error="boom")
    with pytest.raises(jobs.ResumeError, match=r"no checkpoint.*before its first checkpoint \(save_steps=5\)"):
        jobs.resume_run(workspace, early)

    done = jobs.create_run(workspace, config("done"))
    update_status(done, state="completed", phase="finished")
    (done / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (done / "checkpoints" / "checkpoint-5" / "trainer_state.json").write_text("{}", encoding="utf-8")
    with pytest.raises(jobs.ResumeError, match="is completed; only a stopped or failed run"):
        jobs.resume_run(workspace, done)
    assert read_status(run_dir)["state"] == "stopped" and not (run_dir / "train.log").exists(), "nothing was started"


def test_cli_detach_stop_kill_and_resume(workspace):
    ws = workspace.root
    detached = run_cli("train", "max_steps=40", "batch_size=2", "cutoff_len=128", "save_steps=5", "probe_steps=0",
                       "run_name=cli", "--detach", workspace=ws, timeout=60)
    assert detached.returncode == 0, detached.stderr
    run_dir = workspace.runs_dir / workspace.run_ids()[0]
    assert f"run folder: {run_dir}" in detached.stdout
    wait_steps(run_dir, 7)
    pid = int(run_folder.run_status(run_dir)["pid"])

    # a killed run is stopped, not failed, and its worker is gone
    killed = run_cli("runs", "stop", run_dir.name, "--kill", workspace=ws, timeout=60)
    assert killed.returncode == 0, killed.stderr
    status = run_folder.run_status(run_dir)
    assert status["state"] == "stopped" and status["killed"] is True
    assert status["phase"] == "killed by the user" and not status.get("error")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert jobs.kill_run(run_dir) is False, "nothing left to kill"
    before = train_steps(run_dir)
    latest = run_folder.latest_checkpoint(run_dir)
    assert int(latest.name.split("-")[1]) <= before[-1]

    # it resumes from its latest checkpoint, and the kill is forgotten
    resumed = run_cli("runs", "resume", run_dir.name, "--detach", workspace=ws, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {latest.name}" in resumed.stdout and str(run_dir) in resumed.stdout
    assert run_folder.run_status(run_dir)["resumed_from"] == latest.name
    wait_for(lambda: run_folder.run_status(run_dir).get("state") == "running", 120, "the resumed run to start")
    assert "killed" not in run_folder.run_status(run_dir)

    stopped = run_cli("runs", "stop", run_dir.name, workspace=ws, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert run_folder.run_status(run_dir)["state"] == "stopped"

    followed = run_cli("runs", "resume", run_dir.name, workspace=ws, timeout=300)
    assert followed.returncode == 0, followed.stdout[-3000:] + followed.stderr
    assert "completed" in followed.stdout
    assert run_folder.run_status(run_dir)["steps"] == 40 and not run_folder.run_status(run_dir).get("killed")
    # steps after a checkpoint that an ended attempt already logged are retrained but not logged twice
    assert_steps_continue(before, train_steps(run_dir), 40)
    listed = json.loads(run_cli("runs", "--json", workspace=ws).stdout)
    assert [r["state"] for r in listed] == ["completed"]

    # bad input: exit 2, naming the problem
    again = run_cli("runs", "resume", run_dir.name, workspace=ws)
    assert again.returncode == 2 and "completed" in again.stderr
    unknown = run_cli("runs", "stop", "20990101-000000-nope-0000", workspace=ws)
    assert unknown.returncode == 2 and "no run" in unknown.stderr
    idle = run_cli("runs", "stop", run_dir.name, "--kill", workspace=ws)
    assert idle.returncode == 2 and "not running" in idle.stderr
