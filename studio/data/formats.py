"""Recognise a dataset's format from its columns and turn each record into a normalised row.

Formats: alpaca, sharegpt, openai, prompt_completion, preference, kto, text. Preference rows come as prompt/chosen/
rejected (strings or message lists), LLaMA-Factory rankings (a conversation plus chosen/rejected message objects),
OpenAI/Azure preference files (input.messages, preferred_output, non_preferred_output), TRL implicit-prompt pairs
(whole conversations in chosen/rejected) or chosen_messages/rejected_messages; KTO rows as prompt/completion/label or
a conversation plus a label. Normalised rows (by kind):
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

from studio.data.tool_calls import parse_tool_calls

FORMATS = ("alpaca", "sharegpt", "openai", "prompt_completion", "preference", "kto", "text")
KIND_OF_FORMAT = {"alpaca": "chat", "sharegpt": "chat", "openai": "chat", "prompt_completion": "chat",
                  "preference": "preference", "kto": "kto", "text": "text"}
# Roles a column can be mapped to (column_map keys).
MAP_ROLES = ("system", "prompt", "query", "response", "history", "messages", "tools", "chosen", "rejected", "label", "text")
ROLE_ALIASES = {"kto_tag": "label"}  # LLaMA-Factory's dataset_info.json name for the label column
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "function_call": "assistant", "observation": "tool", "function": "tool", "tool": "tool"}
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool",
                "function": "tool"}
# LLaMA-Factory's dataset_info.json `tags`: which role each tag's value names
TAG_ROLES = {"user_tag": "user", "assistant_tag": "assistant", "system_tag": "system", "observation_tag": "tool",
             "function_tag": "assistant"}
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
    tags: dict[str, str] = field(default_factory=dict)  # LLaMA-Factory message tags (role_tag, user_tag, …)

    @property
    def kind(self) -> str:
        return KIND_OF_FORMAT[self.format]


def parse_column_map(text: str) -> dict[str, str]:
    """`role=column` pairs separated by commas as a dict; ValueError naming a bad pair or unknown role."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, column = (s.strip() for s in item.partition("="))
        role = ROLE_ALIASES.get(role, role)
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


def _detect_pairs(names: set[str]) -> Detected | None:
    """Preference pairs in any of the shapes peers write them, or None."""
    optional = {"system": "system"} if "system" in names else {}
    if {"chosen_messages", "rejected_messages"} <= names:
        return Detected("preference", "has `chosen_messages` and `rejected_messages` columns → preference pairs "
                        "(LLaMA-Factory v1; the prompt is the turns both share)",
                        {"chosen": "chosen_messages", "rejected": "rejected_messages", **optional})
    if {"input", "preferred_output", "non_preferred_output"} <= names:
        return Detected("preference", "has `input`, `preferred_output` and `non_preferred_output` columns → "
                        "OpenAI/Azure preference fine-tuning file",
                        {"prompt": "input", "chosen": "preferred_output", "rejected": "non_preferred_output"})
    if not {"chosen", "rejected"} <= names:
        return None
    for key in ("messages", "conversations"):
        if key in names:
            return Detected("preference", f"has a `{key}` column and `chosen`/`rejected` answers → preference "
                            "ranking (LLaMA-Factory)", {"messages": key, "chosen": "chosen", "rejected": "rejected", **optional})
    for key, query in (("prompt", "query"), ("question", "query"), ("instruction", "input")):
        if key in names:
            used = {"prompt": key, "chosen": "chosen", "rejected": "rejected", **optional,
                    **({"query": query} if query in names else {})}
            return Detected("preference", f"has `{key}`, `chosen` and `rejected` columns → preference pairs", used)
    return Detected("preference", "has `chosen` and `rejected` columns without a prompt → preference pairs with an "
                    "implicit prompt (the turns both conversations share)", {"chosen": "chosen", "rejected": "rejected", **optional})


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
        if {"chosen", "rejected"} <= roles:
            return Detected("preference", why, mapping)
        if "label" in roles and ({"messages"} <= roles or {"prompt", "response"} <= roles):
            return Detected("kto", why, mapping)
        if "messages" in roles:
            return Detected(_messages_style(sample.get(mapping["messages"])), why, mapping)
        if {"prompt", "response"} <= roles:
            return Detected("alpaca", why, mapping)
        if "text" in roles:
            return Detected("text", why, mapping)
        raise ValueError("column_map must map messages; or prompt and response; or chosen and rejected; "
                         "or messages (or prompt and response) and label; or text")
    paired = _detect_pairs(names)
    if paired:
        return paired
    for key in ("messages", "conversations"):
        if key in names:
            style = _messages_style(sample.get(key))
            label = "OpenAI chat" if style == "openai" else "ShareGPT"
            inner = "role/content" if style == "openai" else "from/value"
            if "label" in names:
                return Detected("kto", f"has a `{key}` column of {inner} messages and a `label` column → KTO (the last "
                                       "assistant answer is labelled good or bad)", {"messages": key, "label": "label"})
            columns_used = {"messages": key, **({"tools": "tools"} if "tools" in names else {}),
                            **({"system": "system"} if "system" in names else {})}
            return Detected(style, f"has a `{key}` column of {inner} messages → {label}", columns_used)
    if {"completion", "label"} <= names and "prompt" in names:
        return Detected("kto", "has `prompt`, `completion` and `label` columns → KTO",
                        {"prompt": "prompt", "response": "completion", "label": "label"})
    if {"instruction", "output", "label"} <= names:
        return Detected("kto", "has `instruction`, `output` and `label` columns → KTO",
                        {"prompt": "instruction", "response": "output", "label": "label",
                         **({"query": "input"} if "input" in names else {})})
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


def _messages(items: Any, name: str, style: str, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    items = _parse_json_cell(items)
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
        message: dict[str, Any] = {"role": role, "content": _text(content, f"{name}[{index}].{content_key}")}
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


def _check_chat(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("ending", "the conversation has no assistant message to learn from")
    if messages[-1]["role"] != "assistant":
        raise RowError("ending", "the conversation must end with an assistant message")
    for index, message in enumerate(messages):
        if message["role"] == "assistant" and not message["content"].strip() and not message.get("tool_calls"):
            raise RowError("empty", f"assistant message {index} is empty")
    return messages


def _looks_like_messages(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(item, dict) and ("role" in item or "from" in item) for item in value))


def _turns(value: Any, name: str, role: str, tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """A text (one message of `role`), one message object, a message list, or OpenAI's `{"messages": […]}`, as
    messages. Text stays text whatever it looks like, unless it is a JSON list of messages (a table cell)."""
    if isinstance(value, str):
        parsed = _parse_json_cell(value)
        if not _looks_like_messages(parsed):
            return [{"role": role, "content": _text(value, name, required=True)}]
        value = parsed
    if isinstance(value, dict):
        value = value["messages"] if "messages" in value else [value]
    if isinstance(value, list):
        return _messages(value, name, "sharegpt" if tags or _messages_style(value) == "sharegpt" else "openai", tags)
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


def _prompt(record: dict[str, Any], detected: Detected) -> list[dict[str, Any]]:
    """The prompt turns of a preference or KTO row: its conversation, or its prompt (plus the `query` text)."""
    cols = detected.columns
    if "messages" in cols:
        value = _get(record, cols, "messages")
        return _messages(value, cols["messages"], _messages_style(_parse_json_cell(value)), detected.tags)
    prompt = _turns(_get(record, cols, "prompt"), cols["prompt"], "user", detected.tags)
    extra = _text(_get(record, cols, "query", required=False), cols.get("query", "input"))
    if extra.strip() and prompt[-1]["role"] == "user":
        prompt[-1] = {**prompt[-1], "content": f"{prompt[-1]['content']}\n\n{extra}"}
    return prompt


def _check_prompt(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not prompt or prompt[-1]["role"] != "user":
        raise RowError("ending", "the prompt must end with a user message")
    return prompt


def _preference(record: dict[str, Any], detected: Detected) -> dict[str, Any]:
    cols, tags = detected.columns, detected.tags
    chosen = _turns(_get(record, cols, "chosen"), cols["chosen"], "assistant", tags)
    rejected = _turns(_get(record, cols, "rejected"), cols["rejected"], "assistant", tags)
    if "prompt" in cols or "messages" in cols:
        prompt = _prompt(record, detected)
    else:  # implicit prompt: the turns chosen and rejected share before their answers
        shared = 0
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    prompt = _check_prompt(_with_system(record, cols, prompt))
    for name, turns in (("chosen", chosen), ("rejected", rejected)):
        if any(m["role"] != "assistant" for m in turns):
            raise RowError("role", f"`{cols[name]}` must hold only assistant messages after the prompt")
    if chosen == rejected:
        raise RowError("empty", "`chosen` and `rejected` are the same answer")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _kto(record: dict[str, Any], detected: Detected) -> dict[str, Any]:
    cols = detected.columns
    label = _label(_get(record, cols, "label"))
    if "messages" in cols:  # a conversation whose last message is the labelled answer
        messages = _prompt(record, detected)
        if messages[-1]["role"] != "assistant":
            raise RowError("ending", f"`{cols['messages']}` must end with the assistant answer the label is about")
        prompt, completion = messages[:-1], messages[-1:]
    else:
        prompt = _prompt(record, detected)
        completion = _turns(_get(record, cols, "response"), cols["response"], "assistant", detected.tags)
    return {"prompt": _check_prompt(_with_system(record, cols, prompt)), "completion": completion, "label": label}


def normalise(record: Any, detected: Detected) -> dict[str, Any]:
    """One record as a normalised row of its kind; RowError says which field is wrong and how."""
    if not isinstance(record, dict):
        raise RowError("type", f"expected a JSON object, got {type(record).__name__}")
    fmt, cols = detected.format, detected.columns
    if fmt in ("openai", "sharegpt"):
        messages = _with_system(record, cols, _messages(_get(record, cols, "messages"), cols["messages"], fmt, detected.tags))
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
        return _preference(record, detected)
    if fmt == "kto":
        return _kto(record, detected)
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
