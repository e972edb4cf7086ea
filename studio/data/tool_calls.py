"""Tool calls and tool schemas, read from every shape peers write them and rendered the way the model expects.

Reading: OpenAI `tool_calls` (ids and types dropped: the model never sees them), a ShareGPT `function_call` turn
holding `{"name": …, "arguments": …}` JSON, or LLaMA-Factory v1 `tool_call` content parts all become
`[{"name": str, "arguments": dict | str}]` on the assistant message.

Rendering: when the model's chat template renders tool schemas (`tools=`) and calls (`tool_calls`), they go
through it, so the model learns its own format. When it does not, the documented fallback is used: the schemas
are described in the system turn (TOOLS_FALLBACK) and each call is written as one line of
`{"name": …, "arguments": …}` JSON in the assistant's answer; `tool_notes` says so for the run log.
"""

from __future__ import annotations

import json
from typing import Any

TOOLS_FALLBACK = ("You can call these tools, described as JSON schemas:\n{schemas}\n"
                  'To call one, answer with one line of JSON: {{"name": "<tool name>", "arguments": {{…}}}}.')
_PROBE_TOOL = "studio_probe_tool"
_features: dict[str, tuple[bool, bool]] = {}


def _one_call(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and isinstance(value.get("function"), dict):  # OpenAI: {"id", "type", "function"}
        value = value["function"]
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass  # kept as the text it is
    return {"name": value["name"], "arguments": arguments}


def parse_tool_calls(value: Any) -> list[dict[str, Any]] | None:
    """The calls in `value` (a list of calls, one call, or their JSON text) as [{"name", "arguments"}], or None
    when `value` is not tool calls."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    calls = [_one_call(item) for item in (value if isinstance(value, list) else [value])]
    return calls if calls and all(calls) else None


def template_features(tokenizer) -> tuple[bool, bool]:
    """(renders tool schemas, renders tool calls) for the tokenizer's chat template, found by rendering a probe."""
    template = str(tokenizer.chat_template)
    if template not in _features:
        user = [{"role": "user", "content": "hi"}]
        schema = [{"type": "function", "function": {"name": _PROBE_TOOL, "description": "probe",
                                                    "parameters": {"type": "object", "properties": {}}}}]
        call = [*user, {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": _PROBE_TOOL, "arguments": {}}}]}]
        _features[template] = (_renders(tokenizer, user, schema), _renders(tokenizer, call, None))
    return _features[template]


def _renders(tokenizer, messages: list[dict[str, Any]], tools: list | None) -> bool:
    try:
        return _PROBE_TOOL in tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    except Exception:  # a template that raises on tools (jinja errors of many kinds) cannot render them
        return False


def template_messages(tokenizer, messages: list[dict[str, Any]], tools: list | None) -> tuple[list[dict[str, Any]], list | None]:
    """(messages, tools) to give the chat template: role/content (and tool_calls where the template renders
    them, else the calls as JSON lines in the content); tools passed, or described in the system turn."""
    renders_tools, renders_calls = template_features(tokenizer) if tools or any(m.get("tool_calls") for m in messages) else (True, True)
    plain = []
    for message in messages:
        entry = {"role": message["role"], "content": message["content"]}
        calls = message.get("tool_calls")
        if calls and renders_calls:
            entry["tool_calls"] = [{"type": "function", "function": call} for call in calls]
        elif calls:
            lines = [json.dumps(call, ensure_ascii=False) for call in calls]
            entry["content"] = "\n".join([message["content"], *lines] if message["content"] else lines)
        plain.append(entry)
    if not tools or renders_tools:
        return plain, tools or None
    described = TOOLS_FALLBACK.format(schemas=json.dumps(tools, ensure_ascii=False))
    if plain and plain[0]["role"] == "system":
        return [{**plain[0], "content": f"{plain[0]['content']}\n\n{described}"}, *plain[1:]], None
    return [{"role": "system", "content": described}, *plain], None


def tool_notes(tokenizer, rows: list[dict[str, Any]]) -> list[str]:
    """Run-log warnings when rows carry tool schemas or calls that the chat template cannot render itself."""
    with_tools = sum(1 for row in rows if row.get("tools"))
    with_calls = sum(1 for row in rows if any(m.get("tool_calls") for m in row.get("messages", [])))
    if not with_tools and not with_calls:
        return []
    renders_tools, renders_calls = template_features(tokenizer)
    notes = []
    if with_tools and not renders_tools:
        notes.append(f"warning: the chat template does not render tool schemas; the tools of {with_tools} rows are "
                     "described in their system turn instead (the studio's fallback)")
    if with_calls and not renders_calls:
        notes.append(f"warning: the chat template does not render tool calls; the calls in {with_calls} rows are "
                     'trained as one line of {"name": …, "arguments": …} JSON each')
    return notes
