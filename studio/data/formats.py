"""Recognise a dataset's format from its columns and turn each record into a normalised row.

Formats: alpaca, sharegpt, openai, prompt_completion, preference, kto, text. Normalised rows (by kind):
    chat:       {"messages": [{"role": system|user|assistant|tool, "content": str, ("weight": 0|1)}], ("tools": [...])}
    preference: {"prompt": [messages ending with user], "chosen": [assistant…], "rejected": [assistant…]}
    kto:        {"prompt": [messages], "completion": [assistant…], "label": bool}
    text:       {"text": str}
A column map (`prompt=question,response=answer`) overrides detection; `RowError` names what is wrong with a row.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("alpaca", "sharegpt", "openai", "prompt_completion", "preference", "kto", "text")
KIND_OF_FORMAT = {"alpaca": "chat", "sharegpt": "chat", "openai": "chat", "prompt_completion": "chat",
                  "preference": "preference", "kto": "kto", "text": "text"}
# Roles a column can be mapped to (column_map keys).
MAP_ROLES = ("system", "prompt", "query", "response", "history", "messages", "tools", "chosen", "rejected", "label", "text")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "function_call": "assistant", "observation": "tool", "function": "tool", "tool": "tool"}
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool",
                "function": "tool"}
TRUE_LABELS = {"true", "1", "yes", "good", "desirable"}
FALSE_LABELS = {"false", "0", "no", "bad", "undesirable"}


class RowError(ValueError):
    """One record that cannot be used; `kind` sorts problems for the report (missing, empty, type, role, ending…)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class Detected:
    """The format of a dataset, why it was chosen, and which column plays which role."""

    format: str
    reason: str
    columns: dict[str, str] = field(default_factory=dict)  # role -> column name

    @property
    def kind(self) -> str:
        return KIND_OF_FORMAT[self.format]


def parse_column_map(text: str) -> dict[str, str]:
    """`role=column` pairs separated by commas as a dict; ValueError naming a bad pair or unknown role."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, column = (s.strip() for s in item.partition("="))
        if not sep or not role or not column:
            raise ValueError(f"column_map: {item!r} is not role=column (for example prompt=question)")
        if role not in MAP_ROLES:
            raise ValueError(f"column_map: unknown role {role!r}; use {', '.join(MAP_ROLES)}")
        mapping[role] = column
    return mapping


def format_column_map(mapping: dict[str, str]) -> str:
    """The inverse of parse_column_map: `role=column,…`."""
    return ",".join(f"{role}={column}" for role, column in mapping.items())


def _messages_style(sample: Any) -> str:
    """`sharegpt` when the message objects use from/value, else `openai`."""
    if isinstance(sample, list) and sample and isinstance(sample[0], dict) and "from" in sample[0]:
        return "sharegpt"
    return "openai"


def detect_format(columns: list[str], sample: dict[str, Any] | None = None, column_map: str = "") -> Detected:
    """The format of rows with these `columns` (and one sample row, to tell ShareGPT from OpenAI messages).

    Raises ValueError listing the columns found and the ones each format needs, when nothing fits."""
    names = set(columns)
    sample = sample or {}
    if column_map.strip():
        mapping = parse_column_map(column_map)
        missing = [c for c in mapping.values() if c not in names]
        if missing:
            raise ValueError(f"column_map names columns that are not in the data: {', '.join(missing)} "
                             f"(found: {', '.join(columns) or 'none'})")
        roles = set(mapping)
        why = f"column map {column_map.strip()}"
        if "messages" in roles:
            return Detected(_messages_style(sample.get(mapping["messages"])), why, mapping)
        if {"chosen", "rejected"} <= roles:
            return Detected("preference", why, mapping)
        if {"response", "label"} <= roles:
            return Detected("kto", why, mapping)
        if {"prompt", "response"} <= roles:
            return Detected("alpaca", why, mapping)
        if "text" in roles:
            return Detected("text", why, mapping)
        raise ValueError("column_map must map messages; or prompt and response; or chosen and rejected; "
                         "or response and label; or text")
    for key in ("messages", "conversations"):
        if key in names:
            style = _messages_style(sample.get(key))
            label = "OpenAI chat" if style == "openai" else "ShareGPT"
            inner = "role/content" if style == "openai" else "from/value"
            columns_used = {"messages": key, **({"tools": "tools"} if "tools" in names else {}),
                            **({"system": "system"} if "system" in names else {})}
            return Detected(style, f"has a `{key}` column of {inner} messages → {label}", columns_used)
    if {"chosen", "rejected"} <= names:
        used = {"chosen": "chosen", "rejected": "rejected", **({"prompt": "prompt"} if "prompt" in names else {}),
                **({"system": "system"} if "system" in names else {})}
        return Detected("preference", "has `chosen` and `rejected` columns → preference pairs", used)
    if {"completion", "label"} <= names:
        used = {"prompt": "prompt", "response": "completion", "label": "label"} if "prompt" in names else {}
        if used:
            return Detected("kto", "has `prompt`, `completion` and `label` columns → KTO", used)
    if {"instruction", "output"} <= names:
        used = {"prompt": "instruction", "response": "output"}
        used.update({role: col for role, col in (("query", "input"), ("system", "system"), ("history", "history")) if col in names})
        return Detected("alpaca", "has `instruction` and `output` columns → Alpaca", used)
    if {"prompt", "completion"} <= names:
        used = {"prompt": "prompt", "response": "completion", **({"system": "system"} if "system" in names else {})}
        return Detected("prompt_completion", "has `prompt` and `completion` columns → prompt/completion", used)
    if "text" in names:
        return Detected("text", "has a `text` column → plain text for continued pre-training", {"text": "text"})
    raise ValueError(
        f"no known columns (found: {', '.join(map(str, columns)) or 'none'}); use `messages`, `conversations`, "
        "`instruction`+`output`, `prompt`+`completion`, `prompt`+`chosen`+`rejected`, `prompt`+`completion`+`label` "
        "or `text` — or map your columns with column_map (e.g. prompt=question,response=answer)"
    )


def _text(value: Any, name: str, required: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):  # None or NaN (empty table cell)
        if required:
            raise RowError("empty", f"field `{name}` is empty")
        return ""
    if isinstance(value, list) and all(isinstance(p, dict) and "text" in p for p in value):
        value = "".join(str(p.get("text") or "") for p in value)  # OpenAI content parts
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


def _get(record: dict[str, Any], columns: dict[str, str], role: str, required: bool = True) -> Any:
    column = columns.get(role)
    if column is None or column not in record:
        if required:
            raise RowError("missing", f"missing field `{column or role}`")
        return None
    return record[column]


def _parse_json_cell(value: Any) -> Any:
    """Table files (CSV/TSV) hold lists as JSON text; anything else is returned as it is."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _messages(items: Any, name: str, style: str) -> list[dict[str, Any]]:
    items = _parse_json_cell(items)
    if not isinstance(items, list):
        raise RowError("type", f"field `{name}` must be a list of messages, got {type(items).__name__}")
    role_key, content_key, roles = ("from", "value", SHAREGPT_ROLES) if style == "sharegpt" else ("role", "content", OPENAI_ROLES)
    messages = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RowError("type", f"{name}[{index}] must be an object with `{role_key}` and `{content_key}`")
        role = roles.get(str(item.get(role_key, "")).lower())
        if role is None:
            raise RowError("role", f"{name}[{index}].{role_key} is {item.get(role_key)!r}; use one of {', '.join(roles)}")
        content = item.get(content_key)
        if content is None and item.get("tool_calls"):
            content = json.dumps(item["tool_calls"], ensure_ascii=False)
        message: dict[str, Any] = {"role": role, "content": _text(content, f"{name}[{index}].{content_key}")}
        if "weight" in item:
            if item["weight"] not in (0, 1):
                raise RowError("type", f"{name}[{index}].weight must be 0 or 1, got {item['weight']!r}")
            message["weight"] = int(item["weight"])
        messages.append(message)
    if not messages:
        raise RowError("empty", f"field `{name}` is an empty conversation")
    return messages


def _check_chat(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("ending", "the conversation has no assistant message to learn from")
    if messages[-1]["role"] != "assistant":
        raise RowError("ending", "the conversation must end with an assistant message")
    for index, message in enumerate(messages):
        if message["role"] == "assistant" and not message["content"].strip():
            raise RowError("empty", f"assistant message {index} is empty")
    return messages


def _turns(value: Any, name: str, role: str) -> list[dict[str, Any]]:
    """A string (one message of `role`) or a message list, as messages."""
    value = _parse_json_cell(value)
    if isinstance(value, list):
        return _messages(value, name, _messages_style(value))
    return [{"role": role, "content": _text(value, name, required=True)}]


def _history(value: Any) -> list[dict[str, Any]]:
    value = _parse_json_cell(value)
    if value is None or value == "":
        return []
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise RowError("type", "field `history` must be a list of [prompt, response] pairs")
    messages = []
    for index, (prompt, response) in enumerate(value):
        messages.append({"role": "user", "content": _text(prompt, f"history[{index}][0]", required=True)})
        messages.append({"role": "assistant", "content": _text(response, f"history[{index}][1]", required=True)})
    return messages


def _label(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE_LABELS | FALSE_LABELS:
        return text in TRUE_LABELS
    raise RowError("type", f"field `label` must be true or false, got {value!r}")


def _with_system(record: dict[str, Any], columns: dict[str, str], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system = _text(_get(record, columns, "system", required=False), columns.get("system", "system"))
    if system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


def normalise(record: Any, detected: Detected) -> dict[str, Any]:
    """One record as a normalised row of its kind; RowError says which field is wrong and how."""
    if not isinstance(record, dict):
        raise RowError("type", f"expected a JSON object, got {type(record).__name__}")
    fmt, cols = detected.format, detected.columns
    if fmt in ("openai", "sharegpt"):
        messages = _with_system(record, cols, _messages(_get(record, cols, "messages"), cols["messages"], fmt))
        row: dict[str, Any] = {"messages": _check_chat(messages)}
        tools = _parse_json_cell(_get(record, cols, "tools", required=False))
        if tools:
            if not isinstance(tools, list):
                raise RowError("type", f"field `tools` must be a list, got {type(tools).__name__}")
            row["tools"] = tools
        return row
    if fmt in ("alpaca", "prompt_completion"):
        prompt = _text(_get(record, cols, "prompt"), cols["prompt"], required=True)
        extra = _text(_get(record, cols, "query", required=False), cols.get("query", "input"))
        history = _history(_get(record, cols, "history", required=False))
        messages = [*history, {"role": "user", "content": f"{prompt}\n\n{extra}" if extra.strip() else prompt},
                    {"role": "assistant", "content": _text(_get(record, cols, "response"), cols["response"], required=True)}]
        return {"messages": _check_chat(_with_system(record, cols, messages))}
    if fmt == "preference":
        chosen = _turns(_get(record, cols, "chosen"), cols["chosen"], "assistant")
        rejected = _turns(_get(record, cols, "rejected"), cols["rejected"], "assistant")
        if "prompt" in cols:
            prompt = _turns(_get(record, cols, "prompt"), cols["prompt"], "user")
        else:  # implicit prompt: the turns chosen and rejected share before their answers
            shared = 0
            while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
                shared += 1
            prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
        prompt = _with_system(record, cols, prompt)
        if not prompt or prompt[-1]["role"] != "user":
            raise RowError("ending", "the prompt must end with a user message")
        for name, turns in (("chosen", chosen), ("rejected", rejected)):
            if any(m["role"] != "assistant" for m in turns):
                raise RowError("role", f"`{name}` must hold only assistant messages")
        if chosen == rejected:
            raise RowError("empty", "`chosen` and `rejected` are the same answer")
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if fmt == "kto":
        prompt = _with_system(record, cols, _turns(_get(record, cols, "prompt"), cols["prompt"], "user"))
        completion = _turns(_get(record, cols, "response"), cols["response"], "assistant")
        return {"prompt": prompt, "completion": completion, "label": _label(_get(record, cols, "label"))}
    return {"text": _text(_get(record, cols, "text"), cols["text"], required=True)}


def conversation_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages a row stands for (preference: prompt + chosen; kto: prompt + completion; text: one assistant turn)."""
    if "messages" in row:
        return row["messages"]
    if "chosen" in row:
        return [*row["prompt"], *row["chosen"]]
    if "completion" in row:
        return [*row["prompt"], *row["completion"]]
    return [{"role": "assistant", "content": row["text"]}]
