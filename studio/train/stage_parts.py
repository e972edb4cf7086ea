"""What every stage recipe shares: the stage of a config, messages as a chat template sees them, and a TRL
config made from the worker's training arguments."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from studio import config as cfg


def stage_of(config: cfg.RunConfig) -> str:
    """The run's stage (`sft` for configs written before stages existed)."""
    section = getattr(config, "stage", None)
    return getattr(section, "stage", "sft")


def chat_messages(turns: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages as the chat template sees them: role and content only (no per-message training weights); tool
    calls as JSON lines in the content (the documented fallback of studio/data/tool_calls.py)."""
    return [{"role": m["role"], "content": "\n".join(filter(None, [m["content"], *map(_call_line, m.get("tool_calls", []))]))}
            for m in turns]


def _call_line(call: dict[str, Any]) -> str:
    return json.dumps(call, ensure_ascii=False)


def stage_args(config_class, base_args, **options):
    """`config_class` (DPOConfig, …) with every TrainingArguments value of the worker's SFTConfig, plus options."""
    from transformers import TrainingArguments

    shared = {f.name: getattr(base_args, f.name) for f in dataclasses.fields(TrainingArguments) if f.init}
    return config_class(**{**shared, **options})
