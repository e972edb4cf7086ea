"""Messages as peers write them, read into the studio's form: role names (ShareGPT from/value, OpenAI
role/content, LLaMA-Factory tags), content as text or content parts (text, reasoning, tool_call), per-message
loss weights and tool calls. `RowError` names what is wrong with a row (studio/data/formats.py uses these to
normalise whole records)."""

from __future__ import annotations

import json
import math
from typing import Any

from studio.data.tool_calls import parse_tool_calls

SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "function_call": "assistant", "observation": "tool", "function": "tool", "tool": "tool"}
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool",
                "function": "tool"}
# LLaMA-Factory's dataset_info.json `tags`: which role each tag's value names
TAG_ROLES = {"user_tag": "user", "assistant_tag": "assistant", "system_tag": "system", "observation_tag": "tool",
             "function_tag": "assistant"}


class RowError(ValueError):
    """One record that cannot be used; `kind` sorts problems for the report (missing, empty, type, role, ending…)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def messages_style(sample: Any) -> str:
    """`sharegpt` when the message objects use from/value, else `openai`."""
    if isinstance(sample, list) and sample and isinstance(sample[0], dict) and "from" in sample[0]:
        return "sharegpt"
    return "openai"


def read_text(value: Any, name: str, required: bool = False) -> str:
    """`value` (text or content parts) as text; RowError naming field `name` when it is not text (or, with
    `required`, empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):  # None or NaN (empty table cell)
        if required:
            raise RowError("empty", f"field `{name}` is empty")
        return ""
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        value = _content_parts(value, name)
    if not isinstance(value, str):
        raise RowError("type", f"field `{name}` must be text, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")  # table files are decoded with surrogateescape: bad bytes fail here
        except UnicodeEncodeError:
            raise RowError("encoding", f"field `{name}` holds bytes that are not UTF-8; save the file as UTF-8") from None
    if required and not value.strip():
        raise RowError("empty", f"field `{name}` is empty")
    return value


def _content_parts(parts: list[dict[str, Any]], name: str) -> str:
    """Content parts (OpenAI `{"type": "text", "text": …}`, LLaMA-Factory v1 `{"type": …, "value": …}`) as one text:
    reasoning inside <think> tags before the answer, tool calls as their JSON text; other media are refused."""
    pieces = []
    for index, part in enumerate(parts):
        kind, value = part.get("type", "text"), part.get("text", part.get("value"))
        if kind not in ("text", "reasoning", "tool_call") or not isinstance(value, (str, dict, list)):
            raise RowError("type", f"{name}[{index}] is a {kind!r} part; only text, reasoning and tool_call parts "
                                   "can be trained (text-only models)")
        value = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        pieces.append(f"<think>\n{value}\n</think>\n\n" if kind == "reasoning" else value)
    return _join_parts(pieces)


def _join_parts(pieces: list[str]) -> str:
    text = ""
    for piece in pieces:
        text += piece if not text or text.endswith("\n\n") else "\n" + piece
    return text


def parse_json_cell(value: Any) -> Any:
    """Table files (CSV/TSV) hold lists as JSON text; anything else is returned as it is."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _message_keys(style: str, tags: dict[str, str] | None) -> tuple[str, str, dict[str, str]]:
    """(role key, content key, role names) of a message style, with LLaMA-Factory `tags` overriding them."""
    role_key, content_key, roles = ("from", "value", SHAREGPT_ROLES) if style == "sharegpt" else ("role", "content", OPENAI_ROLES)
    if tags:
        role_key, content_key = tags.get("role_tag", role_key), tags.get("content_tag", content_key)
        roles = {**roles, **{tags[tag].lower(): role for tag, role in TAG_ROLES.items() if tag in tags}}
    return role_key, content_key, roles


def _calls_of(item: dict[str, Any], content_key: str, raw_role: str,
              tags: dict[str, str] | None) -> tuple[Any, list[dict[str, Any]] | None]:
    """(the message's content without its tool calls, the calls or None): OpenAI `tool_calls`, a ShareGPT
    function_call turn's JSON, or v1 `tool_call` content parts (see studio/data/tool_calls.py)."""
    content = item.get(content_key)
    if item.get("tool_calls"):
        return content, parse_tool_calls(item["tool_calls"])
    if raw_role == (tags or {}).get("function_tag", "function_call"):
        calls = parse_tool_calls(content)
        return ("", calls) if calls else (content, None)
    if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "tool_call" for p in content):
        calls = [parse_tool_calls(p.get("value", p.get("text"))) for p in content if p.get("type") == "tool_call"]
        if all(calls):
            return [p for p in content if p.get("type") != "tool_call"], [c for group in calls for c in group]
    return content, None


def read_messages(items: Any, name: str, style: str, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The message list in field `name` as {"role", "content", ("weight"), ("tool_calls")} dicts, read in `style`
    (sharegpt or openai) with LLaMA-Factory `tags` overriding keys and role names; RowError naming the message."""
    items = parse_json_cell(items)
    if not isinstance(items, list):
        raise RowError("type", f"field `{name}` must be a list of messages, got {type(items).__name__}")
    role_key, content_key, roles = _message_keys(style, tags)
    messages = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RowError("type", f"{name}[{index}] must be an object with `{role_key}` and `{content_key}`")
        role = roles.get(str(item.get(role_key, "")).lower())
        if role is None:
            raise RowError("role", f"{name}[{index}].{role_key} is {item.get(role_key)!r}; use one of {', '.join(roles)}")
        content, calls = _calls_of(item, content_key, str(item.get(role_key, "")).lower(), tags)
        message: dict[str, Any] = {"role": role, "content": read_text(content, f"{name}[{index}].{content_key}")}
        if calls:
            message["tool_calls"] = calls
        weight_key = "weight" if "weight" in item else "loss_weight"  # OpenAI files / LLaMA-Factory v1 files
        if weight_key in item:
            if item[weight_key] not in (0, 1):
                raise RowError("type", f"{name}[{index}].{weight_key} must be 0 or 1, got {item[weight_key]!r}")
            message["weight"] = int(item[weight_key])
        messages.append(message)
    if not messages:
        raise RowError("empty", f"field `{name}` is an empty conversation")
    return messages


def _looks_like_messages(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(item, dict) and ("role" in item or "from" in item) for item in value))


def read_turns(value: Any, name: str, role: str, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A text (one message of `role`), one message object, a message list, or OpenAI's `{"messages": […]}`, as
    messages. Text stays text whatever it looks like, unless it is a JSON list of messages (a table cell)."""
    if isinstance(value, str):
        parsed = parse_json_cell(value)
        if not _looks_like_messages(parsed):
            return [{"role": role, "content": read_text(value, name, required=True)}]
        value = parsed
    if isinstance(value, dict):
        value = value["messages"] if "messages" in value else [value]
    if isinstance(value, list):
        return read_messages(value, name, "sharegpt" if tags or messages_style(value) == "sharegpt" else "openai", tags)
    return [{"role": role, "content": read_text(value, name, required=True)}]
