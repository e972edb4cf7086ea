"""`python -m studio serve`: the OpenAI-compatible API answers like `studio chat`, streams the same text as SSE,
answers the official `openai` client (list, chat, stream, stop; a wrong or missing key is an AuthenticationError),
turns bad requests into OpenAI-style 400/401/404 errors, refuses a public bind without a key, and runs as the
studio's own server process (the Serve button)."""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import free_port, run_cli, wait_for

KEY = "test-key-123"
PROMPT = "What is Amberlee known for?"


@pytest.fixture(scope="module")
def server(demo_run):
    """The demo run loaded once behind a Server with key KEY, shared by this module's tests."""
    from studio.chat import load_run
    from studio.serve import Server
    from studio.workspace import Workspace

    workspace, run_dir = demo_run
    return Server(load_run(Workspace(workspace), run_dir.name), run_dir.name, api_key=KEY)


@pytest.fixture(scope="module")
def api(server):
    """(TestClient for the demo run's API with key KEY, run id)."""
    from fastapi.testclient import TestClient

    from studio.serve import create_app

    with TestClient(create_app(server)) as client:
        client.headers["Authorization"] = f"Bearer {KEY}"
        yield client, server.model_id


@pytest.fixture(scope="module")
def base_url(server):
    """The same API served over real HTTP by uvicorn on a free local port (in a thread); yields its /v1 URL."""
    import threading

    import uvicorn

    from studio.serve import create_app

    port = free_port()
    http = uvicorn.Server(uvicorn.Config(create_app(server), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=http.run, daemon=True)
    thread.start()
    wait_for(lambda: http.started, timeout=60, what="uvicorn to listen")
    yield f"http://127.0.0.1:{port}/v1"
    http.should_exit = True
    thread.join(timeout=30)


def ask(run_id: str, **extra) -> dict:
    return {"model": run_id, "messages": [{"role": "user", "content": PROMPT}], "temperature": 0, "max_tokens": 40, **extra}


def sse_events(response) -> list[str]:
    """The `data:` payloads of an SSE response, in order."""
    return [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]


def test_models_lists_the_run(api):
    client, run_id = api
    response = client.get("/v1/models")
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == [run_id]
    assert client.get(f"/v1/models/{run_id}").json()["id"] == run_id


def test_greedy_completion_equals_the_chat_command_and_counts_tokens(api, demo_run):
    client, run_id = api
    response = client.post("/v1/chat/completions", json=ask(run_id))
    assert response.status_code == 200, response.text
    body = response.json()
    answer = body["choices"][0]["message"]["content"]
    cli = run_cli("chat", run_id, "--prompt", PROMPT, "--temperature", "0", "--max-new-tokens", "40", workspace=demo_run[0])
    assert cli.returncode == 0, cli.stderr
    assert answer and answer == cli.stdout.strip()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 5 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_streamed_chunks_add_up_to_the_same_answer_and_end_with_done(api):
    client, run_id = api
    whole = client.post("/v1/chat/completions", json=ask(run_id)).json()["choices"][0]["message"]["content"]
    response = client.post("/v1/chat/completions", json=ask(run_id, stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == run_id for c in chunks)
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert "".join(p for p in pieces if p) == whole
    assert len([p for p in pieces if p]) > 1, "the answer arrived in one piece: not streamed"
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_a_stop_sequence_cuts_the_answer_in_both_modes(api):
    client, run_id = api
    whole = client.post("/v1/chat/completions", json=ask(run_id)).json()["choices"][0]["message"]["content"]
    words = whole.split()
    assert len(words) > 2, whole
    stop = words[2]
    expected = whole[:whole.index(stop)].rstrip()
    body = client.post("/v1/chat/completions", json=ask(run_id, stop=[stop])).json()
    assert body["choices"][0]["message"]["content"] == expected
    assert body["choices"][0]["finish_reason"] == "stop"
    events = sse_events(client.post("/v1/chat/completions", json=ask(run_id, stop=stop, stream=True)))
    streamed = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert streamed == expected and events[-1] == "[DONE]"


def test_a_wrong_or_missing_key_is_refused(api):
    client, run_id = api
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        response = client.post("/v1/chat/completions", json=ask(run_id), headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert KEY not in response.text
    assert client.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_the_official_openai_client_lists_chats_streams_and_stops(base_url, server):
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=120)
    assert [model.id for model in client.models.list()] == [server.model_id]
    question = [{"role": "user", "content": PROMPT}]
    completion = client.chat.completions.create(model=server.model_id, messages=question, temperature=0, max_tokens=40)
    answer = completion.choices[0].message.content
    assert "lantern" in answer.lower() and completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens > 0

    stream = client.chat.completions.create(model=server.model_id, messages=question, temperature=0, max_tokens=40,
                                            stream=True)
    deltas = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert len(deltas) > 1 and "".join(deltas) == answer

    stop = answer.split()[2]
    cut = client.chat.completions.create(model=server.model_id, messages=question, temperature=0, max_tokens=40,
                                         stop=[stop])
    assert cut.choices[0].message.content == answer[:answer.index(stop)].rstrip()
    assert stop not in cut.choices[0].message.content


def test_the_official_openai_client_is_refused_without_the_right_key(base_url, server):
    import openai

    for key in ("wrong-key", ""):
        client = openai.OpenAI(base_url=base_url, api_key=key or "unused", max_retries=0, timeout=60,
                               default_headers={"Authorization": ""} if not key else None)
        with pytest.raises(openai.AuthenticationError, match="Incorrect or missing API key"):
            client.chat.completions.create(model=server.model_id, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.AuthenticationError):
            client.models.list()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(api, change, field):
    client, run_id = api
    body = {k: v for k, v in {**ask(run_id), **change}.items() if v is not None}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and field in error["message"]


def test_not_json_and_an_unknown_model_are_openai_errors(api):
    client, _ = api
    response = client.post("/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    response = client.post("/v1/chat/completions", json=ask("gpt-4o"))
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
    assert client.get("/v1/nothing").json()["error"]["message"]


def test_a_public_bind_without_a_key_is_refused(demo_run, monkeypatch):
    monkeypatch.delenv("STUDIO_API_KEY", raising=False)
    workspace, run_dir = demo_run
    result = run_cli("serve", run_dir.name, "--host", "0.0.0.0", workspace=workspace)
    assert result.returncode == 2
    assert "without an API key" in result.stderr and "STUDIO_API_KEY" in result.stderr


def test_the_studio_serves_a_run_in_its_own_process_and_stops_it(demo_run, monkeypatch):
    """What the Serve button does: `python -m studio serve` from an argv list with the key in the child's
    environment; a public bind without a key, a second server and a busy port are refused with a message."""
    from studio import serve_process
    from studio.serve import PublicBindError
    from studio.workspace import Workspace

    monkeypatch.delenv("STUDIO_API_KEY", raising=False)
    workspace_path, run_dir = demo_run
    workspace = Workspace(workspace_path)
    with pytest.raises(PublicBindError, match="without an API key"):
        serve_process.start_serving(workspace, run_dir.name, free_port(), all_interfaces=True)
    port = free_port()
    served = serve_process.start_serving(workspace, run_dir.name, port, all_interfaces=True, api_key=KEY)
    try:
        assert served.process.args[:3] == [sys.executable, "-m", "studio"] and KEY not in " ".join(served.process.args)
        assert served.base_url == f"http://127.0.0.1:{port}/v1" and serve_process.current() is served
        with pytest.raises(serve_process.ServeError, match="already being served"):
            serve_process.start_serving(workspace, run_dir.name, free_port())

        def get(key: str):
            request = urllib.request.Request(f"{served.base_url}/models", headers={"Authorization": f"Bearer {key}"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status, json.load(response)
            except urllib.error.HTTPError as error:
                return error.code, None

        wait_for(lambda: served.state() != "starting", timeout=180, what="the served model to load")
        assert served.state() == "serving", served.log_tail()
        status, body = get(KEY)
        assert status == 200 and body["data"][0]["id"] == run_dir.name == served.model
        assert get("wrong")[0] == 401
    finally:
        assert serve_process.stop_serving() is served
    assert served.process.poll() is not None and serve_process.current() is None
    assert KEY not in served.log_tail(200)

    with socket.socket() as taken:  # another program listens on the port
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the stopped server's socket may be in TIME_WAIT
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(serve_process.ServeError, match=f"port {port} is already in use"):
            serve_process.start_serving(workspace, run_dir.name, port)
    assert serve_process.current() is None


def test_client_snippets_read_the_key_from_the_environment():
    from studio.serve_process import client_snippets

    curl, python = client_snippets("http://127.0.0.1:8123/v1", "run-1", keyed=True)
    assert curl.startswith("curl http://127.0.0.1:8123/v1/chat/completions") and "Bearer $STUDIO_API_KEY" in curl
    assert 'api_key=os.environ["STUDIO_API_KEY"]' in python and 'model="run-1"' in python
    compile(python, "snippet", "exec")
    curl, python = client_snippets("http://127.0.0.1:8123/v1", "run-1", keyed=False)
    assert "Authorization" not in curl and 'api_key="not-needed"' in python
