"""An OpenAI-compatible HTTP API for one run, so RAG and agent tools (Dify, LangChain, …) can use the tuned model.

    GET  /v1/models              the one model served (its id is the run id)
    POST /v1/chat/completions    messages, max_tokens, temperature (0 = greedy), top_p, stop, stream (SSE)

One model is loaded; requests are answered one at a time (a lock), each with the chat template saved with the
run. Errors come back in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from studio.chat import ChatModel, GenerationSettings
from studio.system_prompt import training_system_prompt

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
API_KEY_ENV = "STUDIO_API_KEY"
DEFAULT_MAX_TOKENS = 512
_END = object()  # marks the end of a background generation's queue


class PublicBindError(ValueError):
    """Serving beyond this machine without an API key was asked for."""


def check_bind(host: str, api_key: str | None) -> None:
    """Raise PublicBindError when `host` is reachable from other machines and no API key protects the API."""
    if host not in LOCAL_HOSTS and not api_key:
        raise PublicBindError(
            f"refusing to serve on {host} without an API key: anyone who can reach this machine could use the model. "
            f"Set {API_KEY_ENV} (or pass --api-key KEY), or serve on --host 127.0.0.1.")


class APIError(Exception):
    """A request the API refuses; rendered as an OpenAI-style JSON error."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


class TextPart(BaseModel):
    type: str
    text: str | None = None


class Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat completion request that this server honours; others are ignored."""

    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # newer clients' name for max_tokens
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)


def plain_messages(request: ChatRequest) -> list[dict[str, str]]:
    """The request's messages as {"role", "content"} dicts for the chat template (text parts joined; a
    "developer" message is a system message). Raises APIError naming a message with a non-text part."""
    messages = []
    for index, message in enumerate(request.messages):
        content = message.content
        if isinstance(content, list):
            if any(part.type != "text" for part in content):
                raise APIError(400, f"messages[{index}].content: only text parts are supported by this model",
                               f"messages[{index}].content")
            content = "".join(part.text or "" for part in content)
        messages.append({"role": "system" if message.role == "developer" else message.role, "content": content or ""})
    return messages


def stop_list(stop: str | list[str] | None) -> list[str]:
    """The request's stop sequences as a list of non-empty strings."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    return [s for s in stops if s]


def visible_text(reply: str, stops: list[str], final: bool) -> tuple[str, bool]:
    """The part of a (growing) reply that may be sent, and whether a stop sequence ended it. The text is trimmed
    like ChatModel.reply's and cut before the first stop sequence; until the reply is final, trailing whitespace
    and any tail that could begin a stop sequence are held back, so what was sent is always a prefix of the end."""
    text = reply.lstrip()
    cuts = [text.find(stop) for stop in stops if stop in text]
    if cuts:
        return text[:min(cuts)].rstrip(), True
    if final:
        return text.rstrip(), False
    held = max((k for stop in stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
    return text[:len(text) - held].rstrip(), False


class Server:
    """One loaded model answering OpenAI-style chat requests, one at a time."""

    def __init__(self, chat_model: ChatModel, model_id: str, api_key: str | None = None, default_system: str = ""):
        self.chat_model = chat_model
        self.model_id = model_id
        self.api_key = api_key
        self.default_system = default_system  # put before a conversation that has no system message of its own
        self.lock = threading.Lock()
        self.created = int(time.time())

    def check_key(self, authorization: str | None) -> None:
        """Raise a 401 APIError unless the Authorization header carries the API key (when one is set)."""
        if not self.api_key:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), self.api_key.encode()):
            raise APIError(401, "Incorrect or missing API key: send the header 'Authorization: Bearer <key>'.",
                           code="invalid_api_key")

    def models(self) -> dict:
        """The /v1/models listing: the one model served."""
        return {"object": "list", "data": [self.model_card()]}

    def model_card(self) -> dict:
        return {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "studio"}

    def settings(self, request: ChatRequest, messages: list[dict[str, str]]) -> tuple[GenerationSettings, int]:
        """Generation settings for the request and its prompt's length in tokens. Raises APIError for an unknown
        model, a template that refuses the conversation, or a prompt longer than the model reads."""
        if request.model != self.model_id:
            raise APIError(404, f"The model '{request.model}' does not exist; this server serves '{self.model_id}'.",
                           "model", "model_not_found")
        tokenizer = self.chat_model.tokenizer
        try:
            prompt_tokens = len(tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                              return_dict=True)["input_ids"])
        except Exception as error:  # jinja2's TemplateError and the template's own raise_exception()
            raise APIError(400, f"messages: the run's chat template refuses this conversation: {error}", "messages") from error
        wanted = request.max_tokens or request.max_completion_tokens or DEFAULT_MAX_TOKENS
        limit = getattr(self.chat_model.model.config, "max_position_embeddings", None)
        if limit and prompt_tokens >= limit:
            raise APIError(400, f"messages: the conversation is {prompt_tokens} tokens; this model reads at most {limit}. "
                                "Shorten the messages.", "messages", "context_length_exceeded")
        max_new = min(wanted, limit - prompt_tokens) if limit else wanted
        return GenerationSettings(max_new_tokens=max_new, temperature=request.temperature, top_p=request.top_p), prompt_tokens

    def with_default_system(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The messages, after the default system prompt when they carry none (as Ollama's SYSTEM line does)."""
        if not self.default_system or any(m["role"] == "system" for m in messages):
            return messages
        return [{"role": "system", "content": self.default_system}, *messages]

    def count_tokens(self, text: str) -> int:
        return len(self.chat_model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def completion(self, request: ChatRequest) -> dict:
        """A non-streaming `chat.completion` with usage token counts."""
        messages = self.with_default_system(plain_messages(request))
        settings, prompt_tokens = self.settings(request, messages)
        with self.lock:
            reply = self.chat_model.reply(messages, settings)
        text, stopped = visible_text(reply, stop_list(request.stop), final=True)
        used = self.count_tokens(reply)
        finish = "length" if not stopped and used >= settings.max_new_tokens else "stop"
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": self.model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": used, "total_tokens": prompt_tokens + used},
        }

    def start_stream(self, request: ChatRequest):
        """Check the request, start generating in the background and return an iterator of SSE lines
        (`data: {chunk}` … `data: [DONE]`) for a `chat.completion.chunk` stream."""
        messages = self.with_default_system(plain_messages(request))
        settings, prompt_tokens = self.settings(request, messages)
        replies: queue.Queue = queue.Queue()
        cancelled = threading.Event()

        def generate() -> None:
            # The lock is held until generation ends, even when the client has gone or a stop sequence cut the
            # reply, so two generations never share the model.
            try:
                with self.lock:
                    for reply in self.chat_model.stream(messages, settings):
                        if not cancelled.is_set():
                            replies.put(reply)
                replies.put(_END)
            except Exception as error:  # noqa: BLE001 -- any failure must reach the client, or its stream would wait forever
                replies.put(error)

        threading.Thread(target=generate, daemon=True).start()
        return self._sse_lines(replies, cancelled, stop_list(request.stop), settings, prompt_tokens,
                               bool(request.stream_options and request.stream_options.include_usage))

    def _sse_lines(self, replies: queue.Queue, cancelled: threading.Event, stops: list[str],
                   settings: GenerationSettings, prompt_tokens: int, include_usage: bool):
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": self.model_id}

        def chunk(delta: dict, finish: str | None = None) -> str:
            return "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
                                         ensure_ascii=False) + "\n\n"

        yield chunk({"role": "assistant", "content": ""})
        sent, reply, stopped = "", "", False
        try:
            while True:
                item = replies.get()
                if isinstance(item, Exception):
                    error = {"message": f"generation failed: {item}", "type": "server_error", "param": None, "code": None}
                    yield "data: " + json.dumps({"error": error}) + "\n\n"
                    break
                final = item is _END
                reply = reply if final else item
                text, stopped = visible_text(reply, stops, final)
                if len(text) > len(sent):
                    yield chunk({"content": text[len(sent):]})
                    sent = text
                if final or stopped:
                    used = self.count_tokens(reply)
                    finish = "length" if not stopped and used >= settings.max_new_tokens else "stop"
                    yield chunk({}, finish)
                    if include_usage:
                        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": used, "total_tokens": prompt_tokens + used}
                        yield "data: " + json.dumps({**base, "choices": [], "usage": usage}) + "\n\n"
                    break
            yield "data: [DONE]\n\n"
        finally:
            cancelled.set()


def error_body(message: str, param: str | None = None, code: str | None = None, kind: str = "invalid_request_error") -> dict:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _field_name(location: tuple) -> str | None:
    """`("body", "messages", 0, "role")` → `messages[0].role` (None for the body itself)."""
    name = ""
    for part in location[1:] if location and location[0] == "body" else location:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or None


def create_app(server: Server):
    """The FastAPI application serving `server`."""
    from fastapi import Depends, FastAPI, Header, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="Fine-tuning Studio OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(APIError)
    async def on_api_error(_request: Request, error: APIError):
        return JSONResponse(error_body(error.message, error.param, error.code), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def on_bad_body(_request: Request, error: RequestValidationError):
        problems = error.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return JSONResponse(error_body("The request body is not valid JSON."), status_code=400)
        described = [f"{_field_name(tuple(p['loc'])) or 'body'}: {p['msg']}" for p in problems]
        first = _field_name(tuple(problems[0]["loc"])) if problems else None
        return JSONResponse(error_body("; ".join(described), first), status_code=400)

    @app.exception_handler(HTTPException)
    async def on_http_error(_request: Request, error: HTTPException):
        return JSONResponse(error_body(str(error.detail)), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, error: Exception):
        return JSONResponse(error_body(f"internal error: {error}", kind="server_error"), status_code=500)

    def require_key(authorization: str | None = Header(None)) -> None:  # checked before the body
        server.check_key(authorization)

    keyed = [Depends(require_key)]

    @app.get("/v1/models", dependencies=keyed)
    def list_models():
        return server.models()

    @app.get("/v1/models/{model}", dependencies=keyed)
    def get_model(model: str):
        if model != server.model_id:
            raise APIError(404, f"The model '{model}' does not exist; this server serves '{server.model_id}'.",
                           "model", "model_not_found")
        return server.model_card()

    @app.post("/v1/chat/completions", dependencies=keyed)
    def chat_completions(body: ChatRequest):
        if body.stream:
            return StreamingResponse(server.start_stream(body), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return server.completion(body)

    return app


def serve(workspace, run: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          base: bool = False) -> None:
    """Load `run` (or, with `base`, its base model) and serve the API on host:port until interrupted. Refuses a
    public bind without an API key before loading anything."""
    import uvicorn

    from studio.chat import load_run

    check_bind(host, api_key)
    run_dir = workspace.run_dir(run)
    run_id = run_dir.name
    model_id = f"{run_id}-base" if base else run_id
    system = training_system_prompt(run_dir)
    server = Server(load_run(workspace, run, base=base), model_id, api_key, default_system=system)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {model_id} at http://{shown}:{port}/v1 (model id: {model_id}; API key "
          f"{'required' if api_key else 'not required: local only'})", flush=True)
    if system:
        print(f"a request without a system message gets the training data's: {system[:80]!r}", flush=True)
    uvicorn.run(create_app(server), host=host, port=port, log_level="info")
