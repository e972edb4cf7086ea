"""Recognise a dataset's format from its columns and turn each record into a normalised row.

Formats: alpaca, sharegpt, openai, prompt_completion, preference, kto, text. Preference rows come as prompt/chosen/
rejected (strings or message lists), LLaMA-Factory rankings (a conversation plus chosen/rejected message objects),
OpenAI/Azure preference files (input.messages, preferred_output, non_preferred_output), TRL implicit-prompt pairs
(whole conversations in chosen/rejected) or chosen_messages/rejected_messages; KTO rows as prompt/completion/label or
a conversation plus a label; prompt-only rows (for GRPO) as a prompt column without an answer (`prompt`, `question`,
`problem`) or a conversation ending with a user turn, every other column kept as reference text for the rewards.
Normalised rows (by kind):
    chat:       {"messages": [{"role": system|user|assistant|tool, "content": str, ("weight": 0|1)}], ("tools": [...])}
    preference: {"prompt": [messages ending with user], "chosen": [assistant…], "rejected": [assistant…]}
    kto:        {"prompt": [messages], "completion": [assistant…], "label": bool}
    prompt:     {"prompt": [messages ending with user], "columns": {other column: its value as text}}
    text:       {"text": str}
A column map (`prompt=question,response=answer`) overrides detection; `RowError` names what is wrong with a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.data.messages import (
    RowError,
    messages_style,
    parse_json_cell,
    read_messages,
    read_text,
    read_turns,
)

FORMATS = ("alpaca", "sharegpt", "openai", "prompt_completion", "preference", "kto", "prompt_only", "text")
KIND_OF_FORMAT = {"alpaca": "chat", "sharegpt": "chat", "openai": "chat", "prompt_completion": "chat",
                  "preference": "preference", "kto": "kto", "prompt_only": "prompt", "text": "text"}
# A prompt without an answer column is prompt-only (GRPO). A `question` column is not among them: beside an
# `answer` it may be a question and answer pair to fine-tune on, so the user says which with column_map.
PROMPT_COLUMNS = ("prompt", "problem")
# Roles a column can be mapped to (column_map keys).
MAP_ROLES = ("system", "prompt", "query", "response", "history", "messages", "tools", "chosen", "rejected", "label", "text")
ROLE_ALIASES = {"kto_tag": "label"}  # LLaMA-Factory's dataset_info.json name for the label column
TRUE_LABELS = {"true", "1", "yes", "good", "desirable"}
FALSE_LABELS = {"false", "0", "no", "bad", "undesirable"}


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
            return Detected(messages_style(sample.get(mapping["messages"])), why, mapping)
        if {"prompt", "response"} <= roles:
            return Detected("alpaca", why, mapping)
        if "text" in roles:
            return Detected("text", why, mapping)
        if "prompt" in roles:
            return Detected("prompt_only", why, mapping)
        raise ValueError("column_map must map messages; or prompt and response; or chosen and rejected; "
                         "or messages (or prompt and response) and label; or text; or a prompt alone (for GRPO)")
    paired = _detect_pairs(names)
    if paired:
        return paired
    for key in ("messages", "conversations"):
        if key in names:
            style = messages_style(sample.get(key))
            label = "OpenAI chat" if style == "openai" else "ShareGPT"
            inner = "role/content" if style == "openai" else "from/value"
            if "label" in names:
                return Detected("kto", f"has a `{key}` column of {inner} messages and a `label` column → KTO (the last "
                                       "assistant answer is labelled good or bad)", {"messages": key, "label": "label"})
            if _ends_with_user(sample.get(key)):
                return Detected("prompt_only", f"has a `{key}` column of {inner} messages ending with a user turn → "
                                               "prompts to answer (GRPO)", {"messages": key})
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
    for key in PROMPT_COLUMNS:
        if key in names:
            return Detected("prompt_only", f"has a `{key}` column and no answer column → prompts to answer (GRPO)",
                            {"prompt": key, **({"system": "system"} if "system" in names else {})})
    raise ValueError(
        f"no known columns (found: {', '.join(map(str, columns)) or 'none'}); use `messages`, `conversations`, "
        "`instruction`+`output`, `prompt`+`completion`, `prompt`+`chosen`+`rejected`, `prompt`+`completion`+`label`, "
        "`text`, or `prompt` alone for GRPO — or map your columns with column_map (e.g. prompt=question,response=answer "
        "to fine-tune on the answers, or prompt=question for GRPO, whose rewards then read the other columns)"
    )


def _ends_with_user(value: Any) -> bool:
    """Whether a sample message list's last message is the user's (a prompt waiting for its answer)."""
    value = parse_json_cell(value)
    if not isinstance(value, list) or not value or not isinstance(value[-1], dict):
        return False
    return str(value[-1].get("role", value[-1].get("from", ""))).lower() in ("user", "human")


def _get(record: dict[str, Any], columns: dict[str, str], role: str, required: bool = True) -> Any:
    column = columns.get(role)
    if column is None or column not in record:
        if required:
            raise RowError("missing", f"missing field `{column or role}`")
        return None
    return record[column]


def _check_chat(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("ending", "the conversation has no assistant message to learn from")
    if messages[-1]["role"] != "assistant":
        raise RowError("ending", "the conversation must end with an assistant message")
    for index, message in enumerate(messages):
        if message["role"] == "assistant" and not message["content"].strip() and not message.get("tool_calls"):
            raise RowError("empty", f"assistant message {index} is empty")
    return messages


def _history(value: Any) -> list[dict[str, Any]]:
    value = parse_json_cell(value)
    if value is None or value == "":
        return []
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
        raise RowError("type", "field `history` must be a list of [prompt, response] pairs")
    messages = []
    for index, (prompt, response) in enumerate(value):
        messages.append({"role": "user", "content": read_text(prompt, f"history[{index}][0]", required=True)})
        messages.append({"role": "assistant", "content": read_text(response, f"history[{index}][1]", required=True)})
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
    system = read_text(_get(record, columns, "system", required=False), columns.get("system", "system"))
    if system.strip() and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


def _prompt(record: dict[str, Any], detected: Detected) -> list[dict[str, Any]]:
    """The prompt turns of a preference or KTO row: its conversation, or its prompt (plus the `query` text)."""
    cols = detected.columns
    if "messages" in cols:
        value = _get(record, cols, "messages")
        return read_messages(value, cols["messages"], messages_style(parse_json_cell(value)), detected.tags)
    prompt = read_turns(_get(record, cols, "prompt"), cols["prompt"], "user", detected.tags)
    extra = read_text(_get(record, cols, "query", required=False), cols.get("query", "input"))
    if extra.strip() and prompt[-1]["role"] == "user":
        prompt[-1] = {**prompt[-1], "content": f"{prompt[-1]['content']}\n\n{extra}"}
    return prompt


def _check_prompt(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not prompt or prompt[-1]["role"] != "user":
        raise RowError("ending", "the prompt must end with a user message")
    return prompt


def _preference(record: dict[str, Any], detected: Detected) -> dict[str, Any]:
    cols, tags = detected.columns, detected.tags
    chosen = read_turns(_get(record, cols, "chosen"), cols["chosen"], "assistant", tags)
    rejected = read_turns(_get(record, cols, "rejected"), cols["rejected"], "assistant", tags)
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
        completion = read_turns(_get(record, cols, "response"), cols["response"], "assistant", detected.tags)
    return {"prompt": _check_prompt(_with_system(record, cols, prompt)), "completion": completion, "label": label}


def _column_text(value: Any) -> str:
    """A reference column's value as the text the rewards read (JSON for lists and objects, "" for empty)."""
    import json

    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _prompt_only(record: dict[str, Any], detected: Detected) -> dict[str, Any]:
    cols = detected.columns
    prompt = _check_prompt(_with_system(record, cols, _prompt(record, detected)))
    used = set(cols.values())
    return {"prompt": prompt, "columns": {key: _column_text(value) for key, value in record.items() if key not in used}}


def normalise(record: Any, detected: Detected) -> dict[str, Any]:
    """One record as a normalised row of its kind; RowError says which field is wrong and how."""
    if not isinstance(record, dict):
        raise RowError("type", f"expected a JSON object, got {type(record).__name__}")
    fmt, cols = detected.format, detected.columns
    if fmt in ("openai", "sharegpt"):
        messages = _with_system(record, cols, read_messages(_get(record, cols, "messages"), cols["messages"], fmt, detected.tags))
        row: dict[str, Any] = {"messages": _check_chat(messages)}
        tools = parse_json_cell(_get(record, cols, "tools", required=False))
        if tools:
            if not isinstance(tools, list):
                raise RowError("type", f"field `tools` must be a list, got {type(tools).__name__}")
            row["tools"] = tools
        return row
    if fmt in ("alpaca", "prompt_completion"):
        prompt = read_text(_get(record, cols, "prompt"), cols["prompt"], required=True)
        extra = read_text(_get(record, cols, "query", required=False), cols.get("query", "input"))
        history = _history(_get(record, cols, "history", required=False))
        messages = [*history, {"role": "user", "content": f"{prompt}\n\n{extra}" if extra.strip() else prompt},
                    {"role": "assistant", "content": read_text(_get(record, cols, "response"), cols["response"], required=True)}]
        return {"messages": _check_chat(_with_system(record, cols, messages))}
    if fmt == "preference":
        return _preference(record, detected)
    if fmt == "kto":
        return _kto(record, detected)
    if fmt == "prompt_only":
        return _prompt_only(record, detected)
    return {"text": read_text(_get(record, cols, "text"), cols["text"], required=True)}


def conversation_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages a row stands for (preference: prompt + chosen; kto: prompt + completion; prompt: the prompt;
    text: one assistant turn)."""
    if "messages" in row:
        return row["messages"]
    if "chosen" in row:
        return [*row["prompt"], *row["chosen"]]
    if "completion" in row:
        return [*row["prompt"], *row["completion"]]
    if "prompt" in row:
        return row["prompt"]
    return [{"role": "assistant", "content": row["text"]}]
