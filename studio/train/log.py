"""The worker's log line: timestamped, and naming its rank when several processes train together."""

from __future__ import annotations

import time

from studio.train import distributed


def log(message: str) -> None:
    """One timestamped line to the worker's output (train.log when launched by the studio); in a multi-process
    run each line names its rank."""
    rank = f" rank {distributed.rank()}" if distributed.world_size() > 1 else ""
    print(f"[{time.strftime('%H:%M:%S')}{rank}] {message}", flush=True)
