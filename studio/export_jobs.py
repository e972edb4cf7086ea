"""Exports in the background for the UI: `start_export` checks the run and folder at once, then exports (an
export_run folder, or with `gguf` one GGUF file) and optionally pushes to the Hub in a thread, one at a time per
run; `export_job` is what the Export tab polls."""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from studio.export import ExportError, ExportResult, check_out_dir, check_shard_size, export_run, push_export, trained_dir
from studio.export_gguf import check_gguf_exportable, export_run_gguf
from studio.workspace import Workspace


class ExportBusyError(ExportError):
    """An export of this run is already running."""


@dataclass
class ExportJob:
    """One background export (and optional push) of a run, as the UI polls it."""

    run_id: str
    out_dir: Path
    state: str = "running"  # running, done or failed
    step: str = "start"  # the export_run step under way, or "push"
    result: ExportResult | None = None
    error: str = ""  # why the export failed
    pushed_url: str = ""
    push_error: str = ""  # why the push failed (the export itself is complete)
    started: float = field(default_factory=time.time)


_jobs: dict[str, ExportJob] = {}  # the latest export of each run started by this process, by run id
_jobs_lock = threading.Lock()


def export_job(run_id: str) -> ExportJob | None:
    """The latest background export of run `run_id` started by this process, if any."""
    with _jobs_lock:
        return _jobs.get(run_id)


def start_export(workspace: Workspace, run: str, to: str, push_repo: str = "", private: bool = False,
                 **options) -> ExportJob:
    """Check the run and folder now (raising ExportError/PathError), then export (export_run with `options`) and
    optionally push to `push_repo` in a background thread. ExportBusyError while this run's last export runs."""
    run_dir = workspace.run_dir(run)
    trained_dir(run_dir)
    if options.get("merge"):
        check_shard_size(options.get("max_shard_size", "2GB"))
    if options.get("gguf"):
        check_gguf_exportable(workspace, run_dir, options["gguf"])
    out_dir = check_out_dir(workspace, to)
    with _jobs_lock:
        running = _jobs.get(run_dir.name)
        if running and running.state == "running":
            raise ExportBusyError(f"run {run_dir.name} is already being exported to {running.out_dir}; wait until it ends")
        job = _jobs[run_dir.name] = ExportJob(run_dir.name, out_dir)
    threading.Thread(target=_run_job, args=(job, workspace, str(out_dir), push_repo.strip(), private, options),
                     daemon=True, name=f"export-{run_dir.name}").start()
    return job


def _run_job(job: ExportJob, workspace: Workspace, to: str, push_repo: str, private: bool, options: dict) -> None:
    from studio.model_card import PushError

    def progress(step: str) -> None:
        job.step = step

    try:
        if options.get("gguf"):  # the merged model as one GGUF file (studio/export_gguf.py)
            job.result = export_run_gguf(workspace, job.run_id, to, options["gguf"], progress=progress)
        else:
            job.result = export_run(workspace, job.run_id, to, progress=progress, **options)
    except Exception as error:  # noqa: BLE001 -- a thread's failure must reach the UI, not vanish with the thread
        expected = isinstance(error, (OSError, ValueError))  # ExportError, PathError, a full disk, a bad shard size
        job.error, job.state = str(error) if expected else f"{type(error).__name__}: {error}", "failed"
        if not expected:  # a bug: its whole traceback goes to the studio's console, where it can be reported
            traceback.print_exc()
        return
    if push_repo:
        job.step = "push"
        try:
            job.pushed_url = push_export(job.result.out_dir, push_repo, private)
        except PushError as error:
            job.push_error = str(error)
    job.state = "done"
