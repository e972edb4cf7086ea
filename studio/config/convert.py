"""A config to and from text: `key=value` overrides, nested data, YAML files, with schema migrations."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from studio.config.schema import SECTIONS, ConfigError, Problem, RunConfig, section_of, field_info, flat_keys
from studio.safe_yaml import YamlError, load_yaml, read_yaml_text


def _coerce(key: str, value: Any, problems: list[Problem]) -> Any:
    """Convert `value` to the type of field `key`; records a problem and returns None when it cannot."""
    kind = field_info(key).type
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind == "str":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    problems.append(Problem(key, f"expected a {kind}, got {value!r}"))
    return None


def _coerce_choice(key: str, value: Any, problems: list[Problem]) -> Any:
    """`value` converted to field `key`'s type and, when the field has choices, one of them; records a problem
    and returns None when it is neither."""
    coerced = _coerce(key, value, problems)
    allowed = field_info(key).metadata.get("choices")
    if coerced is not None and allowed and coerced not in allowed:
        problems.append(Problem(key, f"must be one of {', '.join(map(str, allowed))}, got {coerced!r}"))
        return None
    return coerced


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a copy of `config` with flat `key: value` pairs applied; ConfigError lists every bad key or value.
    The pseudo-key `preset` (quick, balanced, quality) applies that hyperparameter preset under the other keys."""
    problems: list[Problem] = []
    if "preset" in overrides:
        overrides = _with_preset(config, overrides)
    result = dataclasses.replace(
        config, **{name: dataclasses.replace(getattr(config, name)) for name in SECTIONS}
    )
    for key, value in overrides.items():
        try:
            field_info(key)
        except KeyError:
            problems.append(Problem(key, f"unknown key; known keys: {', '.join(flat_keys())}"))
            continue
        coerced = _coerce_choice(key, value, problems)
        if coerced is None:
            continue
        section = section_of(key)
        setattr(getattr(result, section) if section else result, key, coerced)
    if problems:
        raise ConfigError(problems)
    return result


def _with_preset(config: RunConfig, overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` with the keys of the preset it names filled in underneath (keys set explicitly win)."""
    from studio.presets import PresetError, preset_overrides

    rest = {key: value for key, value in overrides.items() if key != "preset"}
    try:
        return {**preset_overrides(str(overrides["preset"]), str(rest.get("method", config.method.method))), **rest}
    except PresetError as error:
        raise ConfigError([Problem("preset", str(error).removeprefix("preset: "))]) from error


def parse_cli_overrides(items: list[str]) -> dict[str, Any]:
    """Turn `key=value` strings into a dict; values are read as YAML scalars (so `1e-3` is a number)."""
    overrides: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(item, "expected key=value, for example learning_rate=1e-3"))
            continue
        if "\n" in raw:
            value = raw  # text with line breaks (probe_prompts): YAML would fold them into spaces
        else:
            try:
                value = load_yaml(raw, key) if raw.strip() else ""
            except YamlError:
                value = raw
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d*)?[eE][+-]?\d+", raw.strip()):
            value = float(raw)  # YAML 1.1 reads "1e-3" as a string
        overrides[key.strip()] = value
    if problems:
        raise ConfigError(problems)
    return overrides


def to_flat(config: RunConfig) -> dict[str, Any]:
    """The config as flat `key: value` pairs, the names used on the command line."""
    flat = {"run_name": config.run_name}
    for name in SECTIONS:
        flat.update(dataclasses.asdict(getattr(config, name)))
    return flat


def to_dict(config: RunConfig) -> dict[str, Any]:
    """The config as nested plain data, in the same shape as the YAML file."""
    return dataclasses.asdict(config)


def from_dict(data: Any, source: str = "config") -> RunConfig:
    """Build a RunConfig from nested data (as in the YAML file); ConfigError names every unknown or bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(source, "expected a mapping of sections (model:, data:, method:, train:)")])
    data = migrate(data, source)
    problems: list[Problem] = []
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                problems.append(Problem(key, "expected a mapping of keys under this section"))
                continue
            known = {f.name for f in dataclasses.fields(SECTIONS[key])}
            for sub_key, sub_value in value.items():
                if sub_key not in known:
                    problems.append(Problem(f"{key}.{sub_key}", f"unknown key; {key} accepts: {', '.join(sorted(known))}"))
                else:
                    flat[sub_key] = sub_value
        elif key == "run_name":
            flat[key] = value
        else:
            problems.append(Problem(str(key), f"unknown key; sections are {', '.join(SECTIONS)}, plus run_name"))
    try:
        config = apply_overrides(RunConfig(), flat)
    except ConfigError as error:
        problems += error.problems
    if problems:
        raise ConfigError(problems)
    return config


# The shape of a saved config. Raise it when a key is renamed or its meaning changes, and add to MIGRATIONS the
# function that turns a config of the version before into this one, so that every saved run still opens.
SCHEMA_VERSION = 1
MIGRATIONS: dict[int, Any] = {}  # version N -> function(nested data of version N) -> nested data of version N + 1


def migrate(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Nested config data (a parsed YAML file) brought to SCHEMA_VERSION; a file without `schema_version` is
    version 1, the first one written. ConfigError for a version this studio does not know."""
    data = dict(data)
    version = data.pop("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
        raise ConfigError([Problem("schema_version", f"{source} is config schema {version!r}; this studio reads 1 to "
                                   f"{SCHEMA_VERSION}: update the studio, or remove the file's newer keys")])
    while version < SCHEMA_VERSION:
        data, version = MIGRATIONS[version](data), version + 1
    return data


def to_yaml(config: RunConfig) -> str:
    """The config as YAML text, one section per block, after its schema_version."""
    return yaml.safe_dump({"schema_version": SCHEMA_VERSION, **to_dict(config)}, sort_keys=False, allow_unicode=True)


def written_keys(text: str) -> set[str]:
    """The flat keys a YAML config text sets explicitly (sections flattened); empty when it is not a mapping."""
    try:
        data = load_yaml(text)
    except YamlError:
        return set()
    keys: set[str] = set()
    for key, value in (data.items() if isinstance(data, dict) else ()):
        keys |= {str(k) for k in value} if isinstance(value, dict) else {str(key)}
    return keys - {"schema_version"}


def from_yaml(text: str, source: str = "config.yaml") -> RunConfig:
    """Parse YAML text (safe loader only) into a RunConfig; ConfigError on bad YAML or bad keys."""
    try:
        data = load_yaml(text, source)
    except YamlError as error:
        raise ConfigError([Problem(source, str(error).removeprefix(source).lstrip(":, "))]) from error
    return from_dict(data, source)


def gpu_list(gpus: str) -> list[int]:
    """The GPU indices in `gpus` ("0,1" → [0, 1]; "" → [] meaning every visible GPU). ValueError names a bad part."""
    indices = []
    for part in (p.strip() for p in gpus.split(",") if p.strip()):
        if not part.isdigit():
            raise ValueError(f"{part!r} is not a GPU index: use numbers separated by commas, e.g. 0,1")
        indices.append(int(part))
    if len(set(indices)) != len(indices):
        raise ValueError(f"a GPU is named twice in {gpus!r}")
    return indices


def read_config(path) -> RunConfig:
    """The RunConfig in the YAML file at `path`; ConfigError naming the file when it is too large, not UTF-8,
    bad YAML or holds bad keys or values."""
    try:
        text = read_yaml_text(path)
    except YamlError as error:
        raise ConfigError([Problem(str(path), str(error).removeprefix(str(path)).lstrip(":, "))]) from error
    return from_yaml(text, str(path))
