"""Launch Fine-tuning Studio in the browser:
python app.py [--host H] [--port P] [--share] [--auth USER:PASS] [--viewer-auth USER:PASS] [--workspace DIR]"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from studio.workspace import PROJECT_ROOT, Workspace


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The launch flags."""
    parser = argparse.ArgumentParser(description="Fine-tuning Studio web UI")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio link (always behind a login)")
    parser.add_argument("--auth", default=None, metavar="USER:PASS", help="require this login")
    parser.add_argument(
        "--viewer-auth", default=None, metavar="USER:PASS",
        help="also accept this read-only login: it can watch runs and charts but not change anything",
    )
    parser.add_argument("--workspace", default=os.environ.get("STUDIO_WORKSPACE", str(PROJECT_ROOT / "workspace")))
    parser.add_argument("--allow-dir", action="append", default=[], metavar="DIR", help="a folder outside the workspace the studio may read (models, data); repeatable")
    return parser.parse_args(argv)


def _login(text: str, flag: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        sys.exit(f"error: {flag} must look like USER:PASS")
    return user, password


def resolve_auth(args: argparse.Namespace) -> tuple[str, str] | None:
    """The operator login to require: --auth if given; with --share or --viewer-auth and no --auth, user
    `studio` with a random password printed once (a viewer login never comes without an operator one)."""
    if args.auth:
        return _login(args.auth, "--auth")
    if args.share or args.viewer_auth:
        password = secrets.token_urlsafe(12)
        why = ("Login required (on the public link, when one can be made, and on the local URL)." if args.share
               else "Operator login (full control; the --viewer-auth login is read-only).")
        print(f"{why} Log in with user: studio  password: {password}", flush=True)
        return "studio", password
    return None


SHARE_SERVER = "https://api.gradio.app/v3/tunnel-request"  # where Gradio asks for a public link


def public_link_problem(timeout_s: float = 5.0) -> str | None:
    """Why no public link can be made from this machine (None when Gradio's link server answers): the link
    needs that server, and Gradio's tunnel program, which it downloads on first use."""
    import httpx

    try:
        httpx.get(SHARE_SERVER, timeout=timeout_s).raise_for_status()
    except httpx.HTTPError as error:
        return f"Gradio's link server ({SHARE_SERVER}) cannot be reached from this machine ({type(error).__name__})"
    return None


def no_link_message(problem: str, host: str, port: int) -> str:
    """What a user who asked for --share is told when no public link can be made, and what still works."""
    return (f"No public link could be made: {problem}. The studio runs on this machine only, at http://{host}:{port}/, "
            f"behind the login printed above. To open it from your laptop, forward the port over SSH: "
            f"ssh -L {port}:127.0.0.1:{port} USER@THIS-MACHINE, then browse http://127.0.0.1:{port}/.")


def resolve_viewer_auth(args: argparse.Namespace, operator: tuple[str, str] | None) -> tuple[str, str] | None:
    """The read-only login from --viewer-auth, which must not reuse the operator's user name."""
    if not args.viewer_auth:
        return None
    viewer = _login(args.viewer_auth, "--viewer-auth")
    if operator and viewer[0] == operator[0]:
        sys.exit("error: --viewer-auth needs a different user name from the operator login")
    return viewer


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    operator = resolve_auth(args)
    viewer = resolve_viewer_auth(args, operator)
    workspace = Workspace(Path(args.workspace), allowed=tuple(Path(d) for d in args.allow_dir))
    from studio.ui import CSS, build_app
    from studio.ui.frame_throttle import frame_throttle
    from studio.ui.viewer_gate import viewer_gate

    viewers = [viewer[0]] if viewer else []
    share = args.share
    if share:
        problem = public_link_problem()
        if problem:
            print(no_link_message(problem, args.host, args.port), flush=True)
            share = False
    app = build_app(workspace, viewers=viewers)
    logins = [login for login in (operator, viewer) if login]
    # quiet: Gradio's own lines would advise setting share=True in launch(), which is not the user's to edit
    print(f"Fine-tuning Studio: http://{args.host}:{args.port}/ (Ctrl+C to stop)", flush=True)
    app.queue(default_concurrency_limit=4).launch(
        quiet=True,
        server_name=args.host, server_port=args.port, share=share, auth=logins or None,
        max_file_size="1gb", footer_links=["api"], show_error=False, css=CSS,
        # a viewer's uploads, file reads and writes: refused; Gradio's never-ending seconds counter: throttled
        app_kwargs={"middleware": [*viewer_gate(viewers), frame_throttle()]},
        # Gradio's run history would copy every call's inputs and outputs (chats, datasets, charts) into the
        # browser's storage and re-write that whole list at each status message: on a page of this size that
        # is most of the browser's work, and nothing users of a shared link should leave behind
        run_history=False,
    )


if __name__ == "__main__":
    main()
