"""`python -m studio serve`: the OpenAI-compatible API answers like `studio chat`, streams the same text as SSE,
checks the API key, turns bad requests into OpenAI-style 400/401/404 errors and refuses a public bind without a key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import PROJECT_ROOT, free_port, run_cli, wait_for

KEY = "test-key-123"
PROMPT = "What is Amberlee known for?"


@pytest.fixture(scope="module")
def api(demo_run):
    """(TestClient for the demo run's API with key KEY, run id)."""
    from fastapi.testclient import TestClient

    from studio.chat import load_run
    from studio.serve import Server, create_app
    from studio.workspace import Workspace

    workspace, run_dir = demo_run
    server = Server(load_run(Workspace(workspace), run_dir.name), run_dir.name, api_key=KEY)
    with TestClient(create_app(server)) as client:
        client.headers["Authorization"] = f"Bearer {KEY}"
        yield client, run_dir.name


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


def test_the_serve_command_answers_over_http_with_the_key_from_the_environment(demo_run, tmp_path):
    workspace, run_dir = demo_run
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "studio", "--workspace", str(workspace), "serve", run_dir.name, "--host", "0.0.0.0",
             "--port", str(port)], cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "STUDIO_API_KEY": KEY})
    try:
        def get(key: str):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {key}"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status, json.load(response)
            except urllib.error.HTTPError as error:
                return error.code, None
            except OSError:
                assert server.poll() is None, log.read_text()
                return None

        status, body = wait_for(lambda: get(KEY), timeout=120, what="the serve command to answer")
        assert status == 200 and body["data"][0]["id"] == run_dir.name
        assert get("wrong")[0] == 401
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert KEY not in log.read_text()
