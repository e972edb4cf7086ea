"""LLaMA-Factory data folders: a `dataset_info.json` names each dataset and says how its file is laid out.

An entry gives `file_name`, `formatting` (alpaca or sharegpt), `columns` (which column plays which role),
`tags` (the keys and role names of sharegpt messages), `ranking` (preference pairs) and a `kto_tag` column
(answers labelled good or bad). `entry_detected` turns an entry into the studio's own Detected format, so
the rows are read exactly as the entry says; `list_entries` lists a folder's datasets (the Data tab and
`dataset=NAME dataset_dir=DIR`); entries that point at a hub instead of a file are listed as not local.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.data.formats import Detected
from studio.data.readers import DataError

INFO_FILE = "dataset_info.json"
ALPACA_DEFAULTS = {"prompt": "instruction", "query": "input", "response": "output"}
OPTIONAL_ROLES = ("system", "tools", "history")


@dataclass
class InfoEntry:
    """One dataset a dataset_info.json names: its name, file (None for a hub dataset) and declared kind."""

    name: str
    file_name: str | None
    kind: str  # chat, preference, kto or text, as the entry declares it
    formatting: str


def read_info(folder: Path) -> dict[str, dict[str, Any]]:
    """The entries of `folder`/dataset_info.json; DataError naming the file when it is missing or not valid."""
    path = folder / INFO_FILE
    if not path.is_file():
        raise DataError(f"{folder} has no {INFO_FILE}; choose a LLaMA-Factory data folder, or give the file itself")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
        raise DataError(f"{path}: expected an object of dataset entries, each an object")
    return info


def declared_kind(entry: dict[str, Any]) -> str:
    """preference (ranking), kto (a kto_tag column), text (a prompt column alone: pre-training data) or chat."""
    columns = entry.get("columns") or {}
    if entry.get("ranking"):
        return "preference"
    if "kto_tag" in columns:
        return "kto"
    if entry.get("formatting", "alpaca") == "alpaca" and set(columns) == {"prompt"}:
        return "text"
    return "chat"


def list_entries(folder: Path) -> list[InfoEntry]:
    """Every dataset the folder's dataset_info.json names, in its order."""
    return [InfoEntry(name, entry.get("file_name"), declared_kind(entry), entry.get("formatting", "alpaca"))
            for name, entry in read_info(folder).items()]


def find_entry(folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """(the file of dataset `name`, its entry); DataError listing the local datasets when there is none."""
    info = read_info(folder)
    local = [n for n, e in info.items() if e.get("file_name")]
    entry = info.get(name)
    if entry is None:
        raise DataError(f"{folder / INFO_FILE} has no dataset {name!r}; it lists: {', '.join(local) or 'no local file'}")
    if not entry.get("file_name"):
        raise DataError(f"dataset {name!r} in {folder / INFO_FILE} is on a hub ({entry.get('hf_hub_url') or 'no file'}), "
                        f"not a file in the folder; the local ones are: {', '.join(local)}")
    path = (folder / entry["file_name"]).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.exists():
        raise DataError(f"dataset {name!r}: file_name {entry['file_name']!r} is not a file inside {folder}")
    return path, entry


def entry_detected(name: str, entry: dict[str, Any]) -> Detected:
    """The studio's Detected format for a dataset_info.json entry (columns, tags, ranking and kto_tag honoured)."""
    columns = dict(entry.get("columns") or {})
    kind, formatting = declared_kind(entry), entry.get("formatting", "alpaca")
    why = f"{INFO_FILE} entry {name!r}: formatting {formatting}" + (", ranking" if kind == "preference" else "") + \
        (f", kto_tag {columns['kto_tag']}" if kind == "kto" else "")
    optional = {role: columns[role] for role in OPTIONAL_ROLES if role in columns}
    if kind == "text":
        return Detected("text", f"{why}, one text column {columns['prompt']!r} → pre-training text", {"text": columns["prompt"]})
    if formatting in ("sharegpt", "openai"):  # openai: role/content messages
        used = {"messages": columns.get("messages", "conversations"), **optional}
        tags = dict(entry.get("tags") or {})
        if formatting == "sharegpt" and not tags:
            tags = {"role_tag": "from", "content_tag": "value"}
    else:
        used = {role: columns.get(role, default) for role, default in ALPACA_DEFAULTS.items()} | optional
        tags = {}
    if kind == "preference":
        used.pop("response", None)
        used |= {"chosen": columns.get("chosen", "chosen"), "rejected": columns.get("rejected", "rejected")}
        return Detected("preference", why, used, tags)
    if kind == "kto":
        used["label"] = columns["kto_tag"]
        return Detected("kto", why, used, tags)
    return Detected({"alpaca": "alpaca", "openai": "openai"}.get(formatting, "sharegpt"), why, used, tags)


def entry_of_path(workspace, ref: str) -> tuple[Path, Detected] | None:
    """(file, Detected) when `ref` is FOLDER/NAME for an entry NAME of FOLDER/dataset_info.json (and not a file
    itself); None otherwise. PathError when FOLDER lies outside the workspace."""
    candidate = Path(ref).expanduser()
    candidate = candidate if candidate.is_absolute() else workspace.root / candidate
    if candidate.exists() or not (candidate.parent / INFO_FILE).is_file():
        return None
    folder = workspace.confine(candidate.parent)
    path, entry = find_entry(folder, candidate.name)
    workspace.confine(path)
    return path, entry_detected(candidate.name, entry)
