"""Hyperparameter presets (presets/hparams/NAME.yaml) and each method's default learning rate.

A preset is a YAML file of flat config keys (the names used on the command line), applied with the
pseudo-key `preset=NAME`: it fills in what the user did not set, and every key the user sets wins over it.
Its `learning_rate` may be a mapping method → rate, because a LoRA learning rate is not a full fine-tuning
one: the entry for the run's method applies.

Without a preset and without an explicit learning rate, a method other than LoRA/QLoRA trains at its own
default (METHOD_LEARNING_RATES); the catalog's recommended learning rates are LoRA rates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.safe_yaml import read_yaml_file
from studio.workspace import PRESETS_DIR

HPARAMS_DIR = PRESETS_DIR / "hparams"

# Typical peak learning rates per method (AdamW): adapters train few weights and need large steps, full
# fine-tuning moves every weight and needs small ones; virtual tokens start from nothing and need the largest.
METHOD_LEARNING_RATES = {
    "lora": 2e-4,
    "qlora": 2e-4,
    "full": 1e-5,
    "freeze": 5e-5,
    "ia3": 3e-3,
    "prompt_tuning": 3e-2,
    "prefix_tuning": 1e-2,
    "p_tuning": 1e-3,
}
LORA_LIKE = ("lora", "qlora")  # methods the catalog's recommended learning rates are meant for


class PresetError(ValueError):
    """An unknown preset name or a malformed preset file; the message says which and what to do."""


def preset_names() -> list[str]:
    """The names of the hyperparameter presets, in file-name order."""
    return sorted(path.stem for path in HPARAMS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The file of preset `name`; PresetError naming the known presets when there is none."""
    names = preset_names()
    if name not in names:
        raise PresetError(f"preset: unknown preset {name!r}; choose one of {', '.join(names)}")
    return HPARAMS_DIR / f"{name}.yaml"


def read_preset(name: str) -> dict[str, Any]:
    """The keys preset `name` sets, as written in its file (learning_rate may still be per method)."""
    path = preset_path(name)
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a mapping of config keys")
    return data


def preset_overrides(name: str, method: str) -> dict[str, Any]:
    """The flat `key: value` pairs preset `name` applies to a run with `method`: its per-method learning rate
    resolved (the method's default when the preset does not list it)."""
    values = dict(read_preset(name))
    rates = values.get("learning_rate")
    if isinstance(rates, dict):
        values["learning_rate"] = rates.get(method, METHOD_LEARNING_RATES.get(method, METHOD_LEARNING_RATES["lora"]))
    return values


def method_learning_rate(method: str) -> float:
    """The default peak learning rate for `method` (the LoRA one for an unknown method)."""
    return METHOD_LEARNING_RATES.get(method, METHOD_LEARNING_RATES["lora"])
