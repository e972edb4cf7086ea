"""Progress of the long phases before and around training (download, tokenize, load, save) in status.json.

While a phase runs, status.json holds `progress`: {"phase", "label", "done", "total" (or null), "unit":
"B"|"rows"|"steps", "rate" (per second, or null)}; when it ends `progress` goes back to null and the final
value is kept under `last_progress[phase]`. Writes are throttled to about four a second.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from studio.train.status import PROGRESS_PHASES, read_status, update_status

MIN_INTERVAL_S = 0.25


class Progress:
    """One phase's progress, written to status.json at most every MIN_INTERVAL_S seconds (plus first and last)."""

    def __init__(self, run_dir: Path, phase: str, label: str, total: float | None, unit: str, done: float = 0):
        assert phase in PROGRESS_PHASES, phase
        self.run_dir, self.phase, self.label, self.unit = run_dir, phase, label, unit
        self.total, self.done, self.rate = total, done, None
        self.started = time.monotonic()
        self.last_write = 0.0
        self.finished = False
        self.lock = threading.Lock()
        self.write(force=True)

    def value(self) -> dict[str, Any]:
        """The `progress` dict as written to status.json."""
        return {"phase": self.phase, "label": self.label, "done": self.done, "total": self.total,
                "unit": self.unit, "rate": None if self.rate is None else round(self.rate, 2)}

    def update(self, done: float, total: float | None = None, label: str | None = None,
               rate: float | None = None, force: bool = False) -> None:
        """Record how far the phase got; the rate defaults to the average since the phase began."""
        with self.lock:
            if self.finished:  # e.g. a tqdm bar closed by the garbage collector after the phase ended
                return
            self.done = done
            if total is not None:
                self.total = total
            if label is not None:
                self.label = label
            elapsed = time.monotonic() - self.started
            self.rate = rate if rate is not None else (done / elapsed if elapsed > 0 and done else None)
            self.write(force)

    def write(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_write >= MIN_INTERVAL_S:
            self.last_write = now
            update_status(self.run_dir, progress=self.value())

    def finish(self) -> None:
        """End the phase: progress back to null, the final value kept under last_progress."""
        with self.lock:
            if self.finished:
                return
            self.finished = True
            last = dict(read_status(self.run_dir).get("last_progress") or {})
            last[self.phase] = self.value()
            update_status(self.run_dir, progress=None, last_progress=last)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.finish()


class _Sink:
    """A file that swallows tqdm's drawing (the progress goes to status.json, not to train.log)."""

    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def hub_download_tqdm(progress: Progress, repo_id: str):
    """A tqdm class for `huggingface_hub.snapshot_download(tqdm_class=...)` that writes bytes done/total/rate
    and files done/total of the download into `progress` instead of drawing bars.

    snapshot_download makes several bars from it: "Fetching N files" (files), and byte bars (unit "B") for
    bytes written to disk and bytes received; the bytes-written one is reported."""
    from tqdm.auto import tqdm

    files = {"done": 0, "total": 0}

    class HubDownloadTqdm(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["file"], kwargs["disable"] = _Sink(), False
            super().__init__(*args, **kwargs)
            self._report(force=True)

        def _is_files_bar(self) -> bool:
            return self.unit != "B" and str(self.desc).startswith("Fetching")

        def _is_bytes_bar(self) -> bool:
            return self.unit == "B" and not str(self.desc).startswith("Downloading bytes")

        def _report(self, force: bool = False) -> None:
            if self._is_files_bar():
                files["done"], files["total"] = self.n, self.total or 0
                force = True
            label = f"Downloading {repo_id}" + (f": {files['done']}/{files['total']} files" if files["total"] else "")
            if self._is_bytes_bar():
                rate = self.format_dict.get("rate")
                progress.update(self.n, total=self.total or None, label=label, rate=rate, force=force)
            elif self._is_files_bar():
                progress.update(progress.done, label=label, rate=progress.rate, force=force)

        def update(self, n=1):
            result = super().update(n)
            self._report()
            return result

        def refresh(self, *args, **kwargs):
            result = super().refresh(*args, **kwargs)
            self._report()
            return result

        def close(self):
            if not self.disable:
                self._report(force=True)
            super().close()

    return HubDownloadTqdm
