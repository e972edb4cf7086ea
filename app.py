"""Launch Fine-tuning Studio in the browser: python app.py [--host H] [--port P] [--share] [--auth USER:PASS] [--workspace DIR]"""

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
    parser.add_argument("--workspace", default=os.environ.get("STUDIO_WORKSPACE", str(PROJECT_ROOT / "workspace")))
    parser.add_argument("--allow-dir", action="append", default=[], metavar="DIR", help="a folder outside the workspace the studio may read (models, data); repeatable")
    return parser.parse_args(argv)


def resolve_auth(args: argparse.Namespace) -> tuple[str, str] | None:
    """The login to require: --auth if given; with --share and no --auth, a random password printed once."""
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            sys.exit("error: --auth must look like USER:PASS")
        return user, password
    if args.share:
        password = secrets.token_urlsafe(12)
        print(f"Public link is protected. Log in with user: studio  password: {password}", flush=True)
        return "studio", password
    return None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    auth = resolve_auth(args)
    workspace = Workspace(Path(args.workspace), allowed=tuple(Path(d) for d in args.allow_dir))
    from studio.ui import build_app

    app = build_app(workspace)
    app.queue(default_concurrency_limit=4).launch(
        server_name=args.host, server_port=args.port, share=args.share, auth=auth,
        max_file_size="1gb", footer_links=["api"], show_error=False,
    )


if __name__ == "__main__":
    main()
