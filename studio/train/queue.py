"""The training queue: one run trains at a time, and waiting runs start in the order they were queued.

Each waiting run has a ticket file in <workspace>/locks/queue/, named `<queued time in ns>-<run id>.json`
and holding the worker's pid and process start time. A worker takes the training lock (an flock, which
the OS drops however the worker ends) only when its ticket is the oldest ticket of a live worker; tickets
of dead workers are ignored and removed. The launcher writes the ticket before it starts the worker, so
the order is the order of launches, not of which Python process happened to start first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


from studio.workspace import Workspace, process_alive, read_json, write_json_atomic

UNCLAIMED_GRACE_S = 60.0  # a ticket whose worker has not started yet counts as live for this long


def queue_dir(workspace: Workspace) -> Path:
    folder = workspace.locks_dir / "queue"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def take_ticket(workspace: Workspace, run_dir: Path, pid: int | None = None, pid_started: float | None = None) -> Path:
    """Put `run_dir` at the back of the queue; returns its ticket file."""
    ticket = queue_dir(workspace) / f"{time.time_ns():020d}-{run_dir.name}.json"
    write_json_atomic(ticket, {"run": run_dir.name, "pid": pid, "pid_started": pid_started, "queued": time.time()})
    return ticket


def claim_ticket(ticket: Path, pid: int, pid_started: float) -> None:
    """Record the worker process that waits on `ticket`."""
    data = read_json(ticket) or {"run": ticket.stem.split("-", 1)[-1], "queued": time.time()}
    write_json_atomic(ticket, {**data, "pid": pid, "pid_started": pid_started})


def find_ticket(workspace: Workspace, run_dir: Path) -> Path | None:
    """The run's oldest ticket, if it has one."""
    tickets = sorted(queue_dir(workspace).glob(f"*-{run_dir.name}.json"))
    return tickets[0] if tickets else None


def drop_ticket(ticket: Path | None) -> None:
    if ticket is not None:
        ticket.unlink(missing_ok=True)


def drop_tickets_of(workspace: Workspace, run_dir: Path) -> None:
    """Remove every ticket of `run_dir` (it is no longer waiting)."""
    for ticket in queue_dir(workspace).glob(f"*-{run_dir.name}.json"):
        drop_ticket(ticket)


def _live(data: dict[str, Any] | None, ticket: Path) -> bool:
    if data is None:  # being written right now, or unreadable
        return ticket.exists()
    pid = data.get("pid")
    if not pid:
        return time.time() - float(data.get("queued") or 0) < UNCLAIMED_GRACE_S
    return process_alive(pid, data.get("pid_started"))


def first_in_line(workspace: Workspace, ticket: Path) -> bool:
    """True when `ticket` is the oldest ticket of a live worker; removes dead workers' tickets on the way."""
    for other in sorted(queue_dir(workspace).glob("*.json")):
        if other == ticket:
            return True
        try:
            data = json.loads(other.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except ValueError:
            data = None
        if _live(data if isinstance(data, dict) else None, other):
            return False
        drop_ticket(other)
    return False  # our own ticket is gone: the caller takes a new one
