"""Start, stop, kill, resume and list training runs. Each run is a separate worker process that outlives
the studio.

A run is a folder: jobs.py writes its config.yaml, queues it (a ticket, so queued runs start in launch
order) and starts `python -m studio train --config …` (an argv list, never a shell). Whoever reads a run's
status checks that a `running` or `queued` worker is still alive (same pid *and* same process start time,
so a reused pid is not mistaken for ours); a dead one is marked failed with the cause and the last lines
of its log, unless the user killed it (a KILLED marker), which is recorded as stopped. A stopped or failed
run with a checkpoint can be resumed in the same folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from studio import config as cfg
from studio.data.prepare import load_for_config
from studio.models import modules
from studio.models.catalog import resolve_model
from studio.train import distributed, queue, stages
from studio.train.status import (
    COMPLETED,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    STOPPED,
    read_status,
    update_status,
)
from studio.workspace import (
    CONFIG_FILE,
    KILLED_FILE,
    LOG_FILE,
    METRICS_FILE,
    PROJECT_ROOT,
    SAMPLES_FILE,
    STOP_FILE,
    SYSTEM_FILE,
    Workspace,
    checkpoint_folders,
    process_alive,
    read_jsonl_from,
    tail_text,
)

KILLED_PHASE = "killed by the user"


class ResumeError(ValueError):
    """A run that cannot be resumed (still running, completed, or no checkpoint); the message says why."""


@dataclass
class RunSummary:
    """One row of the runs list."""

    run_id: str
    state: str
    model: str
    dataset: str
    method: str
    created: float
    final_loss: float | None
    error: str
    run_name: str


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
    target_problems += reporter_problems(config)
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


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _record_killed(run_dir: Path) -> dict[str, Any]:
    return update_status(run_dir, state=STOPPED, phase=KILLED_PHASE, killed=True, ended=time.time(), progress=None)


def _record_exit(run_dir: Path, returncode: int, pid: int) -> None:
    """After worker `pid` exits: if it did not record an outcome itself, record that it died and how (or that
    the user killed it). Nothing is written when the run has a newer worker by now (it was resumed)."""
    status = read_status(run_dir)
    if status.get("pid") != pid:
        return
    # several processes: the launcher's summary names the rank that failed first (a rank killed by a signal
    # could not say so itself, and the others then fail only because it went)
    first = distributed.launcher_root_cause(tail_text(run_dir / LOG_FILE, 60)) if returncode else None
    if status.get("state") in FINAL_STATES:
        error = status.get("error") or ""
        if first and status.get("state") == FAILED and not error.startswith(f"rank {first[0]} "):
            update_status(run_dir, error=f"{first[1]}; then {error}")
        return
    if (run_dir / KILLED_FILE).exists():
        _record_killed(run_dir)
        return
    how = f"was killed by {_signal_name(returncode)}" if returncode < 0 else f"exited with code {returncode}"
    cause = f"{first[1]}; " if first else ""
    update_status(run_dir, state=FAILED, phase="failed", ended=time.time(), progress=None, error=f"{cause}the worker process {how} before finishing; last log lines:\n{tail_text(run_dir / LOG_FILE, 8)}")


def worker_env(pass_hub_token: bool) -> dict[str, str]:
    """The worker's environment: ours, minus secrets it does not need (Hub tokens only for Hub models)."""
    secret_prefixes = ("OPENAI_", "ANTHROPIC_") + (() if pass_hub_token else ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(secret_prefixes)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


_children: dict[int, subprocess.Popen] = {}  # workers started by this process, by pid


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
    _children[process.pid] = process
    threading.Thread(target=lambda: _record_exit(run_dir, process.wait(), process.pid), daemon=True).start()
    return process


def launch(workspace: Workspace, config: cfg.RunConfig) -> Path:
    """Create a run for `config` and start its worker; returns the run folder."""
    run_dir = create_run(workspace, config)
    start_worker(workspace, run_dir)
    return run_dir


def _worker_alive(status: dict[str, Any]) -> bool:
    return bool(status.get("pid")) and process_alive(status["pid"], status.get("pid_started"))


def run_status(run_dir: Path) -> dict[str, Any]:
    """The run's status, after marking it failed if its worker died without recording an outcome. A damaged
    status.json is left as it is (the worker rewrites it whole on its next update): the state is inferred from
    the run's files and the error says what is damaged."""
    status = read_status(run_dir)
    if status.get("damaged"):
        return _inferred_status(run_dir, status)
    if status.get("state") in FINAL_STATES:
        return status
    queued_at = float(status.get("queued_at") or status.get("created") or 0)
    fresh = (time.time() - queued_at < 10 or status.get("awaiting_machines")) and not status.get("pid")
    if not fresh and not _worker_alive(status):
        if (run_dir / KILLED_FILE).exists():
            return _record_killed(run_dir)
        child = _children.get(int(status.get("pid") or 0))
        if child is not None:  # our own child: its exit code says exactly how it died (e.g. SIGKILL)
            try:
                _record_exit(run_dir, child.wait(timeout=5), child.pid)
                return read_status(run_dir)
            except subprocess.TimeoutExpired:
                pass
        return update_status(
            run_dir, state=FAILED, phase="failed", ended=time.time(), progress=None,
            error="the worker process is gone (killed, out of memory, or the machine restarted); last log lines:\n"
            + tail_text(run_dir / LOG_FILE, 8),
        )
    return status


def _inferred_status(run_dir: Path, status: dict[str, Any]) -> dict[str, Any]:
    """`status` (read from a damaged status.json) with the state the run's files show: running while its worker
    lives, stopped when the user killed it, completed when its trained weights were saved, else failed."""
    from studio.workspace import ADAPTER_DIR, FULL_MODEL_DIR, REWARD_MODEL_DIR

    if _worker_alive(status):
        state = status["state"] if status.get("state") in (QUEUED, RUNNING) else RUNNING
    elif (run_dir / KILLED_FILE).exists():
        state = STOPPED
    elif any((run_dir / name).is_dir() and any((run_dir / name).iterdir()) for name in (ADAPTER_DIR, FULL_MODEL_DIR, REWARD_MODEL_DIR)):
        state = COMPLETED
    elif status.get("state") in FINAL_STATES:
        state = status["state"]
    else:
        state = FAILED
    note = f"{status['damaged']}; the state shown ({state}) is inferred from the run's files"
    error = status.get("error") or ""
    return {**status, "state": state, "error": f"{note}\n{error}" if error else note}


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
    if _worker_alive(status) and not distributed.is_multi_process(load_config(run_dir)):
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
    if _worker_alive(status):
        pid = int(status["pid"])
        try:
            if os.getpgid(pid) == pid:  # its own session (as start_worker makes it): take its children too
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child = _children.get(pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                break
            if child is None and not _worker_alive(status):
                break
            time.sleep(0.05)
    if read_status(run_dir).get("state") not in FINAL_STATES:  # unless it finished on its own just before
        _record_killed(run_dir)
    return True


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's newest complete checkpoint folder (checkpoints/checkpoint-N with its trainer state), or None."""
    complete = checkpoint_folders(run_dir, holding=("trainer_state.json",))
    return complete[-1] if complete else None


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


def load_config(run_dir: Path) -> cfg.RunConfig:
    """The config a run was started with."""
    return cfg.read_config(run_dir / CONFIG_FILE)


def read_metrics(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Metric rows logged since byte `offset` of metrics.jsonl, and the next offset."""
    return read_jsonl_from(run_dir / METRICS_FILE, offset)


def read_samples(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Probe answers written since byte `offset` of samples.jsonl, and the next offset."""
    return read_jsonl_from(run_dir / SAMPLES_FILE, offset)


def read_system(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """System samples (CPU, RAM, GPUs) written since byte `offset` of system.jsonl, and the next offset."""
    return read_jsonl_from(run_dir / SYSTEM_FILE, offset)


def list_runs(workspace: Workspace) -> list[RunSummary]:
    """Every run in the workspace, newest first, with its current state."""
    summaries = []
    for run_id in workspace.run_ids():
        run_dir = workspace.runs_dir / run_id
        status = run_status(run_dir)
        error = (status.get("error") or "").split("\n")[0]
        try:
            config = load_config(run_dir)
        except (cfg.ConfigError, OSError) as problem:  # listed all the same, with what is wrong with its config
            config, error = None, f"{CONFIG_FILE} is damaged: {_first_line(problem)}" + (f"; {error}" if error else "")
        summaries.append(
            RunSummary(
                run_id=run_id,
                state=status.get("state", QUEUED),
                model=config.model.model if config else "?",
                dataset=config.data.dataset if config else "?",
                method=config.method.method if config else "?",
                created=float(status.get("created") or (run_dir / CONFIG_FILE).stat().st_mtime),
                final_loss=status.get("final_loss"),
                error=error,
                run_name=config.run_name if config else "",
            )
        )
    return summaries


def _first_line(error: Exception) -> str:
    """The first problem an error names (a ConfigError's first problem), on one line of at most 300 characters."""
    problems = getattr(error, "problems", None)
    text = " ".join(str(problems[0] if problems else error).split())
    return text if len(text) <= 300 else text[:300] + "…"


def wait(run_dir: Path, poll_s: float = 0.5, timeout_s: float | None = None) -> dict[str, Any]:
    """Block until the run reaches a final state; returns its status. Raises TimeoutError naming the run and its
    last state when `timeout_s` passes first."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = run_status(run_dir)
        if status.get("state") in FINAL_STATES:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"run {run_dir.name} still {status.get('state')} after {timeout_s:g} s")
        time.sleep(poll_s)
