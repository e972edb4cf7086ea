"""Start, stop, kill and resume training runs. Each run is a separate worker process that outlives the studio.

A run is a folder: jobs.py writes its config.yaml, queues it (a ticket, so queued runs start in launch
order) and starts `python -m studio train --config …` (an argv list, never a shell). Reading a run (its
status, with a dead worker noticed, its config, metrics and checkpoints) is `studio.run_folder`. A stopped or
failed run with a checkpoint can be resumed in the same folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from studio import config as cfg
from studio.data.prepare import load_for_config
from studio.models import modules
from studio.models.catalog import resolve_model
from studio.run_folder import (
    latest_checkpoint,
    load_config,
    record_exit,
    record_killed,
    run_status,
    started_workers,
    worker_alive,
)
from studio.train import distributed, grpo, queue, stages
from studio.train.status import FAILED, FINAL_STATES, QUEUED, STOPPED, read_status, update_status
from studio.workspace import CONFIG_FILE, KILLED_FILE, LOG_FILE, PROJECT_ROOT, STOP_FILE, Workspace


class ResumeError(ValueError):
    """A run that cannot be resumed (still running, completed, or no checkpoint); the message says why."""




def reporter_problems(config: cfg.RunConfig) -> list[cfg.Problem]:
    """A problem when the tracker `report_to` names is not installed here (the worker would fail at its start)."""
    import importlib.util

    module = cfg.REPORTERS.get(config.train.report_to)
    if module and importlib.util.find_spec(module) is None:
        return [cfg.Problem("report_to", f"{config.train.report_to} is not installed here: pip install {module}, "
                                         f"or set report_to to none")]
    return []


def create_run(workspace: Workspace, config: cfg.RunConfig) -> Path:
    """Validate `config` and its dataset, make a new run folder holding its config.yaml and its memory
    estimate (estimate.json), and return it.

    Raises ConfigError for bad values (and for lora_targets naming a layer the model does not have), PathError
    for a model folder that cannot be used, and DataError or PathError (naming the file and line) for a dataset
    that cannot be used, before any folder is made or worker started."""
    cfg.check(config)
    resolve_model(workspace, config.model.model)  # PathError now, not in the worker: a folder outside, pickled weights
    target_problems = modules.target_problems(workspace, config)  # lora_targets must name the model's own layers
    target_problems += reporter_problems(config) + grpo.reward_problems(workspace, config)
    if target_problems:
        raise cfg.ConfigError(target_problems)
    for dataset in (load_for_config(workspace, config), load_for_config(workspace, config, validation=True)):
        if dataset is not None:
            stages.check_dataset(stages.stage_of(config), dataset)  # a DPO run on chat data names the columns it needs
    run_dir = workspace.new_run_dir(config.run_name)
    (run_dir / CONFIG_FILE).write_text(cfg.to_yaml(config), encoding="utf-8")
    from studio.fit import save_estimate

    save_estimate(workspace, run_dir, config)  # estimate.json: what the run should need, and the fixes if it won't fit
    now = time.time()
    update_status(run_dir, state=QUEUED, phase="starting the worker", created=now, queued_at=now)
    return run_dir


AWAITING_MACHINES_PHASE = "waiting for its machines: run the launch-cmd command on each"


def create_multi_node_run(workspace, config) -> Path:
    """A validated run folder for `config` that its machines start (nothing is launched here): queued, waiting
    for its machines, and not taken for a dead worker while it waits."""
    run_dir = create_run(workspace, config)
    update_status(run_dir, awaiting_machines=True, phase=AWAITING_MACHINES_PHASE)
    return run_dir








def worker_env(pass_hub_token: bool) -> dict[str, str]:
    """The worker's environment: ours, minus secrets it does not need (Hub tokens only for Hub models)."""
    secret_prefixes = ("OPENAI_", "ANTHROPIC_") + (() if pass_hub_token else ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(secret_prefixes)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env




def start_worker(workspace: Workspace, run_dir: Path) -> subprocess.Popen:
    """Queue `run_dir` and start its worker process in its own session, output appended to train.log.

    A thread waits for it so that a worker that dies without a word is marked failed at once."""
    from studio.models.catalog import is_hub_model

    config = load_config(run_dir)
    argv = [
        sys.executable, "-m", "studio", "--workspace", str(workspace.root),
        "train", "--config", str(run_dir / CONFIG_FILE),
        *(arg for folder in workspace.allowed for arg in ("--allow-dir", str(folder))),
    ]
    if distributed.is_multi_process(config):  # `accelerate launch` starts one worker per GPU (or CPU process)
        processes, gpus = distributed.process_count(config), distributed.visible_gpu_count()
        distributed.write_launch_files(run_dir, config, processes, on_gpu=gpus > 0)
        argv = distributed.launch_argv(workspace.root, run_dir, processes, distributed.free_port())
    env = worker_env(pass_hub_token=is_hub_model(workspace, config.model.model))
    ticket = queue.take_ticket(workspace, run_dir)  # before the process starts: the queue keeps launch order
    try:
        with open(run_dir / LOG_FILE, "ab") as log_file:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                cwd=str(run_dir), env=env, start_new_session=True,
            )
    except OSError:
        queue.drop_ticket(ticket)  # a ticket with no worker would hold up the queue
        raise
    pid_started = psutil.Process(process.pid).create_time()
    queue.claim_ticket(ticket, process.pid, pid_started)
    update_status(run_dir, pid=process.pid, pid_started=pid_started)
    started_workers[process.pid] = process
    threading.Thread(target=lambda: record_exit(run_dir, process.wait(), process.pid), daemon=True).start()
    return process


def launch(workspace: Workspace, config: cfg.RunConfig) -> Path:
    """Create a run for `config` and start its worker; returns the run folder."""
    run_dir = create_run(workspace, config)
    start_worker(workspace, run_dir)
    return run_dir








def request_stop(run_dir: Path) -> bool:
    """Ask the run's worker to stop after its current step (STOP file and SIGTERM); False if not running."""
    status = run_status(run_dir)
    if status.get("state") in FINAL_STATES:
        return False
    (run_dir / STOP_FILE).touch()
    if status.get("awaiting_machines") and not status.get("pid"):  # a multi-node run none of whose machines started
        update_status(run_dir, drop=("awaiting_machines",), state=STOPPED, phase="stopped before its machines started", ended=time.time())
        return True
    # several processes: every rank reads the STOP file (a signal to the launcher would tear them down unsaved)
    if worker_alive(status) and not distributed.is_multi_process(load_config(run_dir)):
        try:
            os.kill(int(status["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    return True


def kill_run(run_dir: Path, timeout: float = 10.0) -> bool:
    """Kill the run's worker now (SIGKILL to its process group) and record it as stopped, killed by the
    user; False if it was not running or queued. Nothing is saved: resume it from its last checkpoint."""
    status = run_status(run_dir)
    if status.get("state") in FINAL_STATES:
        return False
    (run_dir / KILLED_FILE).write_text(f"{time.time()}\n", encoding="utf-8")  # before the kill: no one calls it a failure
    if worker_alive(status):
        pid = int(status["pid"])
        try:
            if os.getpgid(pid) == pid:  # its own session (as start_worker makes it): take its children too
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child = started_workers.get(pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                break
            if child is None and not worker_alive(status):
                break
            time.sleep(0.05)
    if read_status(run_dir).get("state") not in FINAL_STATES:  # unless it finished on its own just before
        record_killed(run_dir)
    return True




def resume_run(workspace: Workspace, run_dir: Path) -> Path:
    """Continue a stopped or failed run from its latest checkpoint, in the same folder: it is queued again
    (status `queued`, `resumed_from` naming the checkpoint folder) and its worker started. Returns the run
    folder (the same one).

    ResumeError says why when the run is still going, has completed, or has no checkpoint."""
    status = run_status(run_dir)
    state = status.get("state")
    if state not in (STOPPED, FAILED):
        raise ResumeError(f"run {run_dir.name} is {state}; only a stopped or failed run can be resumed")
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        save_steps = load_config(run_dir).train.save_steps
        why = "checkpoints were off (save_steps=0)" if save_steps == 0 else f"it ended before its first checkpoint (save_steps={save_steps})"
        raise ResumeError(f"run {run_dir.name} has no checkpoint to resume from: {why}; start it again instead")
    for marker in (STOP_FILE, KILLED_FILE):
        (run_dir / marker).unlink(missing_ok=True)
    update_status(
        run_dir, drop=("pid", "pid_started", "error", "ended", "killed", "early_stopped", "stopped_at_step", "progress",
                       "final_loss", "mean_loss", "steps"),
        state=QUEUED, phase=f"resuming from {checkpoint.name}", resumed_from=checkpoint.name, queued_at=time.time(),
    )
    start_worker(workspace, run_dir)
    return run_dir














