"""The system prompt a run was trained with: recorded by the worker when every training row carries the same one,
read by chat, compare, serve and export so that a run is asked as it learned."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from studio.workspace import TRAINING_SYSTEM_FILE, read_json, write_json_atomic


def shared_system_prompt(conversations: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """{"text": the most common system prompt ("" when no row has one), "rows": rows that carry it, "of": rows,
    "shared": whether every row carries it}."""
    systems = Counter(c[0]["content"] for c in conversations
                      if isinstance(c, list) and c and isinstance(c[0], dict) and c[0].get("role") == "system"
                      and isinstance(c[0].get("content"), str))
    if not systems:
        return {"text": "", "rows": 0, "of": len(conversations), "shared": False}
    text, count = systems.most_common(1)[0]
    return {"text": text, "rows": count, "of": len(conversations), "shared": count == len(conversations)}


def record_training_system_prompt(run_dir: Path, conversations: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Write what shared_system_prompt finds in the training rows into the run folder; returns it."""
    found = shared_system_prompt(conversations)
    write_json_atomic(run_dir / TRAINING_SYSTEM_FILE, found)
    return found


def training_system_prompt(run_dir: Path) -> str:
    """The system prompt every training row of the run carried, or "" (none, several, or a run trained before
    the studio recorded it)."""
    found = read_json(run_dir / TRAINING_SYSTEM_FILE) or {}
    text = found.get("text")
    return text if found.get("shared") is True and isinstance(text, str) else ""
