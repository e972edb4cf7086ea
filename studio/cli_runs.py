"""The run verbs of `python -m studio`: train (start a run and follow its log), launch-cmd, runs (list, stop,
resume). The other verbs and the parser are studio/cli.py."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from studio import config as cfg
from studio.layering import config_from_cli
from studio.workspace import LOG_FILE, PathError, Workspace


def _follow(run_dir: Path, offset: int = 0) -> dict:
    """Print the run's log (from byte `offset`) as it grows until the run ends; Ctrl-C asks the worker to
    stop gracefully."""
    from studio import jobs
    from studio import run_folder

    interrupted = False
    while True:
        try:
            with open(run_dir / LOG_FILE, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", errors="replace"))
            sys.stdout.flush()
            status = run_folder.run_status(run_dir)
            if status.get("state") in ("completed", "failed", "stopped"):
                return status
            time.sleep(0.5)
        except FileNotFoundError:
            time.sleep(0.2)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
            print("\nstopping after the current step (Ctrl-C again to leave it running)…", flush=True)
            jobs.request_stop(run_dir)


def cmd_train(args, workspace: Workspace) -> int:
    if args.allow_dir:  # folders outside the workspace this run may read (a model, data); the worker gets them too
        workspace = Workspace(workspace.root, allowed=(*workspace.allowed, *(Path(d) for d in args.allow_dir)))
    if args.config:
        from studio.train.worker import main as worker_main

        return worker_main(workspace, args.config)
    from studio import jobs

    config = config_from_cli(args.config_file, args.overrides, workspace)
    run_dir = jobs.launch(workspace, config)
    print(f"run folder: {run_dir}", flush=True)
    if args.detach:
        return 0
    return _report(run_dir, _follow(run_dir))


def cmd_launch_cmd(args, workspace: Workspace) -> int:
    """`launch-cmd`: the command each machine of a multi-node run runs (a run, or a new run made from a config)."""
    from studio import jobs
    from studio import run_folder
    from studio.train import distributed

    if not distributed.is_machine_address(args.main_ip):  # before a run folder is made for a config
        print(f"error: --main-ip must be the main machine's IP address or host name, got {args.main_ip!r}", file=sys.stderr)
        return 2
    try:
        run_dir = workspace.run_dir(args.run)
    except PathError:  # not a run: a config YAML, for which a run folder is made (not started)
        run_dir = jobs.create_multi_node_run(workspace, config_from_cli(args.run, args.overrides, workspace))
    print(distributed.node_instructions(workspace.root, run_dir, run_folder.load_config(run_dir), args.nodes, args.node_rank,
                                        args.main_ip, args.port, args.per_node))
    return 0


def _report(run_dir: Path, status: dict) -> int:
    """Print how a followed run ended; the exit code (0 completed or stopped, 1 failed)."""
    print(f"\nrun {run_dir.name}: {status.get('state')}" + (f" — {status['error']}" if status.get("error") else ""))
    if status.get("final_loss") is not None:
        print(f"final loss: {status['final_loss']:.4f}")
    if status.get("dry_run"):  # measured peak memory and speed, or "won't fit" with the fixes
        print(status.get("phase", ""))
        if status["dry_run"].get("out_of_memory"):
            return 1
    print(f"run folder: {run_dir}")
    return 0 if status.get("state") in ("completed", "stopped") else 1


def cmd_runs(args, workspace: Workspace) -> int:
    from studio import run_folder

    if args.action == "stop":
        return cmd_runs_stop(args, workspace)
    if args.action == "resume":
        return cmd_runs_resume(args, workspace)
    runs = run_folder.list_runs(workspace)
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in runs], indent=2, ensure_ascii=False))
        return 0
    if not runs:
        print(f"no runs yet in {workspace.runs_dir}; start one with: python -m studio train")
        return 0
    print(f"{'RUN':42} {'STATE':10} {'MODEL':24} {'METHOD':6} FINAL LOSS")
    for r in runs:
        loss = f"{r.final_loss:.4f}" if r.final_loss is not None else "-"
        print(f"{r.run_id:42} {r.state:10} {r.model[:24]:24} {r.method:6} {loss}")
        if "damaged" in r.error:
            print(f"  ! {r.error}")
    return 0


def cmd_runs_stop(args, workspace: Workspace) -> int:
    from studio import jobs
    from studio import run_folder

    run_dir = workspace.run_dir(args.run)
    if args.kill:
        if not jobs.kill_run(run_dir):
            print(f"error: run {run_dir.name} is not running or queued (state: {run_folder.run_status(run_dir).get('state')})", file=sys.stderr)
            return 2
        print(f"run {run_dir.name}: killed; resume it from its last checkpoint with: python -m studio runs resume {run_dir.name}")
        return 0
    if not jobs.request_stop(run_dir):
        print(f"error: run {run_dir.name} is not running or queued (state: {run_folder.run_status(run_dir).get('state')})", file=sys.stderr)
        return 2
    print(f"run {run_dir.name}: stopping after the current step…", flush=True)
    status = run_folder.wait(run_dir)
    print(f"run {run_dir.name}: {status.get('state')}" + (f" — {status['error']}" if status.get("error") else ""))
    return 0 if status.get("state") in ("completed", "stopped") else 1


def cmd_runs_resume(args, workspace: Workspace) -> int:
    from studio import jobs
    from studio import run_folder

    run_dir = workspace.run_dir(args.run)
    log_file = run_dir / LOG_FILE
    start = log_file.stat().st_size if log_file.exists() else 0  # follow only what this attempt writes
    jobs.resume_run(workspace, run_dir)
    print(f"resuming from {run_folder.run_status(run_dir).get('resumed_from')}")
    print(f"run folder: {run_dir}", flush=True)
    if args.detach:
        return 0
    return _report(run_dir, _follow(run_dir, start))


def add_run_parsers(verbs, common) -> None:
    """The verbs that start, list, stop and resume runs: `train`, `launch-cmd` and `runs`."""
    train = verbs.add_parser("train", parents=[common], help="start a training run (or, with --config, be its worker)")
    train.add_argument("config_file", nargs="?", default=None, metavar="CONFIG.yaml", help="a config YAML to start from")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help=f"config keys: {', '.join(cfg.flat_keys())}; preset=quick|balanced|quality applies presets/hparams/NAME.yaml")
    train.add_argument("--config", default=None, help="run the worker for this run folder's config.yaml")
    train.add_argument("--detach", action="store_true", help="print the run folder and return at once (the run goes on)")
    train.add_argument("--allow-dir", action="append", default=[], metavar="DIR",
                       help="a folder outside the workspace the run may read (a model or data folder); repeatable")

    launch_cmd = verbs.add_parser("launch-cmd", parents=[common], help="the command to run on each machine of a multi-node run")
    launch_cmd.add_argument("run", metavar="RUN_OR_CONFIG", help="a run id, or a config YAML (a run folder is made for it)")
    launch_cmd.add_argument("overrides", nargs="*", metavar="key=value", help="config keys to change (with a config YAML)")
    launch_cmd.add_argument("--nodes", type=int, required=True, help="how many machines")
    launch_cmd.add_argument("--node-rank", type=int, default=None, help="this machine's rank, 0 = main (default: print every machine's)")
    launch_cmd.add_argument("--main-ip", required=True, help="the main machine's address, reachable from the others")
    launch_cmd.add_argument("--port", type=int, default=29500, help="the main machine's port for the processes to meet on")
    launch_cmd.add_argument("--per-node", type=int, default=None, help="processes (GPUs) per machine (default: this machine's)")
    runs = verbs.add_parser("runs", parents=[common], help="list runs; stop or resume one")
    runs.add_argument("--json", action="store_true", help="print JSON")
    actions = runs.add_subparsers(dest="action")
    stop = actions.add_parser("stop", parents=[common], help="stop a run after its current step (saves what it trained)")
    stop.add_argument("run", help="run name, id or folder")
    stop.add_argument("--kill", action="store_true", help="kill the worker now (nothing saved; resume from its last checkpoint)")
    resume = actions.add_parser("resume", parents=[common], help="continue a stopped or failed run from its latest checkpoint")
    resume.add_argument("run", help="run name, id or folder")
    resume.add_argument("--detach", action="store_true", help="print the run folder and return at once")
