"""The one policy that says what config a run gets, shared by `python -m studio train`, `estimate`, Load config
and the Train form, so that each reads a file and a set of keys the same way.

Layers, each over the one before: the defaults → the catalog's recommendations for the chosen model → a
hyperparameter preset (`preset=quick|balanced|quality`) → the keys a YAML file sets → `key=value` items. A
method other than LoRA/QLoRA whose learning rate is set in none of the chosen layers starts at its own rate (the
catalog's rates are LoRA rates)."""

from __future__ import annotations

from typing import Any

from studio import config as cfg
from studio.models.catalog import recommended_overrides
from studio.presets import LORA_LIKE, method_learning_rate, preset_overrides
from studio.safe_yaml import read_yaml_text
from studio.workspace import Workspace


def keys_in_file(text: str, source: str) -> dict[str, Any]:
    """The flat `key: value` pairs a YAML config file sets, checked like every config file (unknown keys, bad
    values and choices are named); ConfigError lists every problem."""
    from_file = cfg.from_yaml(text, source)
    written = cfg.written_keys(text)
    return {key: value for key, value in cfg.to_flat(from_file).items() if key in written}


GRPO_RATE_SCALE = 0.1  # reinforcement learning takes smaller steps: a GRPO run starts at a tenth of the SFT rate


def starting_learning_rate(model: str, method: str, stage: str = "sft") -> float:
    """The learning rate a run starts with when none is set: the catalog's recommendation for `model` with
    LoRA-like methods, otherwise the method's own default; a tenth of that for stage grpo."""
    if method in LORA_LIKE:
        rate = float(recommended_overrides(model).get("learning_rate", cfg.RunConfig().train.learning_rate))
    else:
        rate = method_learning_rate(method)
    return rate * GRPO_RATE_SCALE if stage == "grpo" else rate


def layered_config(file_text: str | None = None, source: str = "config.yaml",
                   overrides: dict[str, Any] | None = None) -> cfg.RunConfig:
    """The config that the layers above give for an optional YAML file's text and flat `overrides` (which may
    hold the pseudo-key `preset`). It is not validated as a whole (see config.check); ConfigError names every
    bad key, value or choice in the file and the overrides."""
    chosen = dict(overrides or {})
    preset = chosen.pop("preset", None)
    from_file = keys_in_file(file_text, source) if file_text is not None else {}
    model = str(chosen.get("model", from_file.get("model", cfg.RunConfig().model.model)))
    method = str(chosen.get("method", from_file.get("method", cfg.RunConfig().method.method)))
    stage = str(chosen.get("stage", from_file.get("stage", cfg.RunConfig().stage.stage)))
    try:
        from_preset = preset_overrides(str(preset), method) if preset is not None else {}
    except ValueError as error:
        raise cfg.ConfigError([cfg.Problem("preset", str(error).removeprefix("preset: "))]) from error
    explicit = {**from_preset, **from_file, **chosen}
    merged = {**recommended_overrides(model), **explicit}
    if "learning_rate" not in explicit:
        merged["learning_rate"] = starting_learning_rate(model, method, stage)
    return cfg.apply_overrides(cfg.RunConfig(), merged)


def config_from_cli(config_file: str | None, items: list[str], workspace: Workspace) -> cfg.RunConfig:
    """The config for a new run from the command line: an optional YAML file (confined to the workspace) and
    `key=value` items, layered as above and validated; ConfigError lists every problem."""
    return cfg.check(layered_from_cli(config_file, items, workspace))


def layered_from_cli(config_file: str | None, items: list[str], workspace: Workspace) -> cfg.RunConfig:
    """The layered config of an optional YAML file (confined to the workspace) and `key=value` items, unchecked."""
    overrides = cfg.parse_cli_overrides(items)
    if not config_file:
        return layered_config(overrides=overrides)
    path = workspace.confine(config_file)
    return layered_config(read_yaml_text(path), str(path), overrides)
