"""status.json: the state of a run as the worker last wrote it, and the states a run can be in.

status.json keys (all optional except state): state, phase (human text), created, queued_at, started, ended,
pid, pid_started, error, final_loss, mean_loss, steps, output, stopped_at_step, resumed_from (checkpoint
folder name), killed (true when a user killed it), best_eval_loss, early_stopped, and `progress`: while a
long phase runs `{"phase": "download"|"tokenize"|"load"|"save", "label", "done", "total" (or null),
"unit": "B"|"rows"|"steps", "rate" (per second, or null)}`, null otherwise. `last_progress` keeps the final
progress of each phase that ran, by phase name. Runs of several processes add `processes`, `strategy` and
`effective_batch` (micro-batch × accumulation × processes); a multi-node run made by launch-cmd waits with
`awaiting_machines` until its main machine starts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from studio.train.distributed import is_main_process
from studio.workspace import STATUS_FILE, read_json, write_json_atomic

QUEUED, RUNNING, COMPLETED, FAILED, STOPPED = "queued", "running", "completed", "failed", "stopped"
FINAL_STATES = (COMPLETED, FAILED, STOPPED)

PROGRESS_PHASES = ("download", "tokenize", "load", "save")


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status.json as a dict (state `queued` if the worker has not written one yet)."""
    return read_json(run_dir / STATUS_FILE) or {"state": QUEUED}


def update_status(run_dir: Path, drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    """Merge `changes` into status.json (atomically), remove the keys in `drop`, and return the new status.
    In a multi-process run only rank 0 writes; the other ranks get the merged status back without writing it."""
    status = read_status(run_dir)
    for key in drop:
        status.pop(key, None)
    status.update(changes)
    status["updated"] = time.time()
    if is_main_process():
        write_json_atomic(run_dir / STATUS_FILE, status)
    return status


def record_failure(run_dir: Path, error: str) -> None:
    """Mark the run failed with `error`, from any rank, unless an earlier failure is recorded already (the
    first rank that failed names the cause; the others only fail because it went)."""
    status = read_status(run_dir)
    if status.get("state") == FAILED:
        return
    status.update(state=FAILED, phase="failed", error=error, ended=time.time(), progress=None, updated=time.time())
    write_json_atomic(run_dir / STATUS_FILE, status)
