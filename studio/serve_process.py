"""The `python -m studio serve` process the UI starts and stops: one served run at a time.

The server is a separate process with its own copy of the model (the studio's chat model is not shared), started
from an argv list (never a shell string) with its output in the run's serve.log. Its handle lives in a module-level
registry, so the Serve panel shows the same server after a page reload. The API key travels in the child's
environment (STUDIO_API_KEY), never on its command line, where other users of the machine could read it.
"""

from __future__ import annotations

import atexit
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from studio import jobs
from studio import run_folder
from studio.export import trained_dir
from studio.serve import API_KEY_ENV, LOCAL_HOSTS, check_bind
from studio.workspace import Workspace, tail_text

SERVE_LOG = "serve.log"
LOCAL_HOST, ALL_INTERFACES = "127.0.0.1", "0.0.0.0"


class ServeError(ValueError):
    """A server that cannot be started (or stopped) the way asked, with what to do instead."""


@dataclass
class ServedModel:
    """A `python -m studio serve` process started by this studio."""

    run_id: str
    host: str
    port: int
    keyed: bool  # whether the API asks for a key
    process: subprocess.Popen
    log_path: Path
    started: float

    @property
    def base_url(self) -> str:
        """The API's base URL as seen from this machine (a server on all interfaces answers on 127.0.0.1 too)."""
        host = LOCAL_HOST if self.host not in LOCAL_HOSTS else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def model(self) -> str:
        """The model name clients ask for: the run id (see serve.serve)."""
        return self.run_id

    def state(self) -> str:
        """"starting" (loading the model), "serving" (the API answers) or "exited"."""
        if self.process.poll() is not None:
            return "exited"
        try:
            with _direct.open(f"{self.base_url}/models", timeout=2):
                return "serving"
        except urllib.error.HTTPError:  # e.g. 401 without a key: the server is up
            return "serving"
        except OSError:
            return "starting"

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server wrote (why it exited, when it did)."""
        return tail_text(self.log_path, max_lines=lines)


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # this machine: never through a proxy
_served: dict[str, ServedModel] = {}  # by run id; at most one alive at a time
_lock = threading.Lock()


def current() -> ServedModel | None:
    """The server this studio started most recently, alive or not (an exited one still tells why)."""
    with _lock:
        return max(_served.values(), key=lambda served: served.started, default=None)


def port_in_use(host: str, port: int) -> bool:
    """True when nothing could listen on host:port now (another program, or a server already there)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a TIME_WAIT port is free
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def start_serving(workspace: Workspace, run: str, port: int, all_interfaces: bool = False,
                  api_key: str | None = None) -> ServedModel:
    """Start serving run `run` on 127.0.0.1:`port` (or every interface, which needs an API key) and return its
    handle at once; the model loads in the background (state() says when it answers). Raises PathError for an
    unknown run, ExportError for one without weights, PublicBindError for a public bind without a key and
    ServeError for a busy port or while another run is served."""
    run_dir = workspace.run_dir(run)
    trained_dir(run_dir)
    host = ALL_INTERFACES if all_interfaces else LOCAL_HOST
    check_bind(host, api_key)
    if not 1024 <= int(port) <= 65535:
        raise ServeError(f"port {port} cannot be used: choose a port from 1024 to 65535")
    with _lock:
        alive = [s for s in _served.values() if s.process.poll() is None]
        if alive:
            raise ServeError(f"run {alive[0].run_id} is already being served at {alive[0].base_url}; stop it first "
                             "(one served model at a time)")
        if port_in_use(host, int(port)):
            raise ServeError(f"port {port} is already in use on {host} (another program or server listens there); "
                             "choose another port")
        argv = [sys.executable, "-m", "studio", "--workspace", str(workspace.root), "serve", run_dir.name,
                "--host", host, "--port", str(int(port))]
        config = run_folder.load_config(run_dir)
        from studio.models.catalog import is_hub_model

        env = jobs.worker_env(pass_hub_token=is_hub_model(workspace, config.model.model))
        env.pop(API_KEY_ENV, None)
        if api_key:
            env[API_KEY_ENV] = api_key
        log_path = run_dir / SERVE_LOG
        with open(log_path, "wb") as log:  # this server's output only: its tail says why it exited
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=str(run_dir), env=env)
        served = ServedModel(run_dir.name, host, int(port), bool(api_key), process, log_path, time.time())
        _served.clear()  # an exited server's handle is no longer needed once another starts
        _served[run_dir.name] = served
    return served


def stop_serving(timeout: float = 15) -> ServedModel | None:
    """Stop the served model (terminate, then kill after `timeout` s); returns it, or None when none was served."""
    served = current()
    if served is None:
        return None
    if served.process.poll() is None:
        served.process.terminate()
        try:
            served.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait(timeout=timeout)
    with _lock:
        _served.pop(served.run_id, None)
    return served


atexit.register(stop_serving)  # a server started from the studio ends with it


def client_snippets(base_url: str, model: str, keyed: bool) -> tuple[str, str]:
    """(a curl command, a Python `openai` client snippet) that ask the served model one question. The key is
    read from STUDIO_API_KEY, never written into the snippet."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}], "temperature": 0},
                      ensure_ascii=False)
    auth = f' \\\n  -H "Authorization: Bearer ${API_KEY_ENV}"' if keyed else ""
    curl = f"curl {base_url}/chat/completions{auth} \\\n  -H \"Content-Type: application/json\" \\\n  -d '{body}'"
    key = f'os.environ["{API_KEY_ENV}"]' if keyed else '"not-needed"'
    python = (f"import os\n\nfrom openai import OpenAI\n\nclient = OpenAI(base_url=\"{base_url}\", api_key={key})\n"
              f"reply = client.chat.completions.create(\n    model=\"{model}\",\n"
              "    messages=[{\"role\": \"user\", \"content\": \"Hello!\"}],\n    temperature=0,\n)\n"
              "print(reply.choices[0].message.content)\n")
    return curl, python
