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

import json
import math
import time
from pathlib import Path
from typing import Any

from studio.train.distributed import is_main_process
from studio.workspace import STATUS_FILE, write_json_atomic

QUEUED, RUNNING, COMPLETED, FAILED, STOPPED = "queued", "running", "completed", "failed", "stopped"
FINAL_STATES = (COMPLETED, FAILED, STOPPED)

PROGRESS_PHASES = ("download", "tokenize", "load", "save")


STATES = (QUEUED, RUNNING, COMPLETED, FAILED, STOPPED)
_NUMBER_KEYS = ("created", "queued_at", "started", "ended", "updated", "pid_started", "final_loss", "mean_loss",
                "best_eval_loss")
_WHOLE_KEYS = ("pid", "steps", "stopped_at_step", "processes")
_TEXT_KEYS = ("phase", "error", "output", "resumed_from")


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status.json as a dict (state `queued` if the worker has not written one yet).

    A damaged file (not JSON, cut off, not an object, a key of the wrong type) never raises: the keys that can
    be used are kept, and `damaged` says what is wrong, naming the file and the keys dropped."""
    path = Path(run_dir) / STATUS_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {"state": QUEUED}
    except OSError as error:
        return {"state": QUEUED, "damaged": f"{path} is damaged: it cannot be read ({error.strerror})"}
    try:
        data = json.loads(raw)
    except ValueError as error:
        return {"state": QUEUED, "damaged": f"{path} is damaged: not valid JSON ({_why(error)}; {len(raw)} bytes)"}
    if not isinstance(data, dict):
        return {"state": QUEUED, "damaged": f"{path} is damaged: it holds a JSON {type(data).__name__}, not an object"}
    return _usable_keys(data, path)


def _why(error: ValueError) -> str:
    return str(error).split(":")[0] if isinstance(error, json.JSONDecodeError) else type(error).__name__


def _usable_keys(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """`data` without the keys whose values have the wrong type (noted in `damaged`)."""
    bad = []
    for key in _NUMBER_KEYS:
        value = data.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)):
            bad.append(key)
    for key in _WHOLE_KEYS:
        value = data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63):
            bad.append(key)
    bad += [key for key in _TEXT_KEYS if data.get(key) is not None and not isinstance(data[key], str)]
    if data.get("state") not in STATES:
        bad.append("state")
    if not bad:
        return data
    usable = {key: value for key, value in data.items() if key not in bad}
    shown = ", ".join(f"{key}={str(data.get(key))[:40]!r}" for key in bad)
    usable["damaged"] = f"{path} is damaged: unusable values {shown}"
    usable.setdefault("state", QUEUED)
    return usable


def update_status(run_dir: Path, drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    """Merge `changes` into status.json (atomically), remove the keys in `drop`, and return the new status.
    In a multi-process run only rank 0 writes; the other ranks get the merged status back without writing it."""
    status = read_status(run_dir)
    status.pop("damaged", None)  # the rewrite repairs the file: the keys that could not be used are gone
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
    status.pop("damaged", None)
    status.update(state=FAILED, phase="failed", error=error, ended=time.time(), progress=None, updated=time.time())
    write_json_atomic(run_dir / STATUS_FILE, status)
