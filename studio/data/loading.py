"""Read a dataset file (JSONL, JSON, CSV) into conversations, naming the line of anything wrong.

Every row becomes a list of messages `{"role": system|user|assistant, "content": str}`. Accepted row
shapes: OpenAI chat (`messages` with role/content), ShareGPT (`conversations` with from/value),
Alpaca (`instruction`, optional `input`, `output`, optional `system`) and `prompt`/`completion`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.workspace import PRESETS_DIR, Workspace

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv")
SAMPLES_DIR = PRESETS_DIR / "datasets"
MAX_PROBLEMS_SHOWN = 10
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


class DataError(ValueError):
    """A dataset that cannot be used as it is; the message names the file, the line and what to do."""


@dataclass
class LoadedDataset:
    """Conversations read from one file, with where each came from (line or record number)."""

    path: Path
    format: str
    conversations: list[list[dict[str, str]]]
    locations: list[str] = field(default_factory=list)
    raw_rows: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.conversations)


def list_samples() -> list[str]:
    """Names of the bundled sample datasets (files in presets/datasets/)."""
    return sorted(p.stem for p in SAMPLES_DIR.glob("*.jsonl"))


def resolve_dataset(workspace: Workspace, ref: str) -> Path:
    """The file behind a dataset reference: a bundled sample name or a path inside the workspace."""
    if ref in list_samples():
        return SAMPLES_DIR / f"{ref}.jsonl"
    path = workspace.confine(ref)
    if path.is_dir():
        raise DataError(f"{ref} is a folder; choose a {', '.join(SUPPORTED_SUFFIXES)} file")
    return path


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path.name}, line {line}: bytes that are not UTF-8 ({data[error.start:error.start + 4]!r}); "
            "save the file as UTF-8 and upload it again"
        ) from error


def _read_records(path: Path) -> list[tuple[str, Any]]:
    """(location, record) pairs from the file, in order; DataError for unreadable syntax."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(f"{path.name}: unsupported file type {suffix or '(none)'}; use {', '.join(SUPPORTED_SUFFIXES)}")
    text = _decode(path, path.read_bytes())
    if suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as error:
                raise DataError(
                    f"{path.name}, line {number}: not valid JSON ({error.msg} at column {error.colno}); "
                    "each line must be one JSON object"
                ) from error
        return records
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{path.name}, line {error.lineno}: not valid JSON ({error.msg} at column {error.colno})") from error
        if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
            data = next(iter(data.values()))  # {"data": [...]} style wrappers
        if not isinstance(data, list):
            raise DataError(f"{path.name}: expected a JSON array of objects, got {type(data).__name__}")
        return [(f"record {i}", row) for i, row in enumerate(data, start=1)]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise DataError(f"{path.name}: the CSV file has no header row")
    return [(f"line {reader.line_num}", row) for row in reader]


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"field `{name}` must be text, got {type(value).__name__}")
    return value


def _required(record: dict[str, Any], name: str) -> str:
    if name not in record:
        raise ValueError(f"missing field `{name}`")
    return _text(record[name], name)


def _detect(record: dict[str, Any]) -> str:
    if "messages" in record:
        return "openai-chat"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "prompt" in record and "completion" in record:
        return "prompt-completion"
    raise ValueError(
        f"no known columns (found: {', '.join(map(str, record)) or 'none'}); use `messages`, "
        "`conversations`, `instruction`+`output` or `prompt`+`completion`"
    )


def _message_list(items: Any, name: str, role_key: str, content_key: str, roles: dict[str, str]) -> list[dict[str, str]]:
    if not isinstance(items, list):
        raise ValueError(f"field `{name}` must be a list of messages, got {type(items).__name__}")
    messages = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{name}[{index}] must be an object with `{role_key}` and `{content_key}`")
        role = roles.get(str(item.get(role_key, "")).lower())
        if role is None:
            raise ValueError(f"{name}[{index}].{role_key} is {item.get(role_key)!r}; use one of {', '.join(roles)}")
        messages.append({"role": role, "content": _text(item.get(content_key), f"{name}[{index}].{content_key}")})
    return messages


def to_conversation(record: Any, fmt: str) -> list[dict[str, str]]:
    """One record as a checked conversation; ValueError says which field is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if fmt == "openai-chat":
        roles = {r: r for r in ("system", "user", "assistant")}
        messages = _message_list(record.get("messages"), "messages", "role", "content", roles)
    elif fmt == "sharegpt":
        messages = _message_list(record.get("conversations"), "conversations", "from", "value", SHAREGPT_ROLES)
    elif fmt == "alpaca":
        prompt = _required(record, "instruction")
        extra = _text(record.get("input"), "input")
        messages = [{"role": "user", "content": f"{prompt}\n\n{extra}" if extra else prompt}]
        messages.append({"role": "assistant", "content": _required(record, "output")})
        system = _text(record.get("system"), "system")
        if system:
            messages.insert(0, {"role": "system", "content": system})
    else:
        messages = [
            {"role": "user", "content": _required(record, "prompt")},
            {"role": "assistant", "content": _required(record, "completion")},
        ]
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("the conversation has no assistant message to learn from")
    if messages[-1]["role"] != "assistant":
        raise ValueError("the conversation must end with an assistant message")
    for index, message in enumerate(messages):
        if message["role"] == "assistant" and not message["content"].strip():
            raise ValueError(f"assistant message {index} is empty")
    return messages


def load_dataset_file(path: Path) -> LoadedDataset:
    """Read and check every row of a dataset file.

    Returns the conversations; raises DataError naming the file and the first bad lines (up to ten) with
    what is wrong in each, so the user can fix them all at once."""
    records = _read_records(path)
    if not records:
        raise DataError(f"{path.name}: the file has no rows")
    first_location, first = records[0]
    try:
        fmt = _detect(first) if isinstance(first, dict) else ""
    except ValueError as error:
        raise DataError(f"{path.name}, {first_location}: {error}") from error
    if not fmt:
        raise DataError(f"{path.name}, {first_location}: expected a JSON object, got {type(first).__name__}")
    dataset = LoadedDataset(path=path, format=fmt, conversations=[])
    problems = []
    for location, record in records:
        try:
            dataset.conversations.append(to_conversation(record, fmt))
        except ValueError as error:
            problems.append(f"{location}: {error}")
            continue
        dataset.locations.append(location)
        dataset.raw_rows.append(record)
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:MAX_PROBLEMS_SHOWN])
        more = f"\n  … and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise DataError(
            f"{path.name}: {len(problems)} of {len(records)} rows cannot be used (format {fmt}):\n{shown}{more}\n"
            "Fix these rows and upload the file again."
        )
    return dataset
