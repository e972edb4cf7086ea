"""status.json: the state of a run as the worker last wrote it, and the states a run can be in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from studio.workspace import STATUS_FILE, read_json, write_json_atomic

QUEUED, RUNNING, COMPLETED, FAILED, STOPPED = "queued", "running", "completed", "failed", "stopped"
FINAL_STATES = (COMPLETED, FAILED, STOPPED)


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status.json as a dict (state `queued` if the worker has not written one yet)."""
    return read_json(run_dir / STATUS_FILE) or {"state": QUEUED}


def update_status(run_dir: Path, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into status.json (atomically) and return the new status."""
    status = read_status(run_dir)
    status.update(changes)
    status["updated"] = time.time()
    write_json_atomic(run_dir / STATUS_FILE, status)
    return status
