"""RunConfig: everything that defines a training run, as typed dataclasses with YAML round trip.

Each field carries its help text (English and Chinese) in its metadata: that is the single source the
CLI, the validation messages and the UI's info text are built from. `validate()` returns every
problem at once; `ConfigError` carries them all.

The parts, lowest first: `fields` (model, data and method sections) and `training` (stage and training
sections), `schema` (RunConfig and its flat keys), `convert` (overrides, nested data, YAML, migrations),
`rules` (validation). Import the names from here (`from studio import config as cfg`).
"""

from studio.config.convert import (
    MIGRATIONS, SCHEMA_VERSION, apply_overrides, from_dict, from_yaml, gpu_list, migrate, parse_cli_overrides,
    read_config, to_dict, to_flat, to_yaml, written_keys,
)
from studio.config.fields import (
    MAX_PROBE_PROMPTS, MAX_REAL, MAX_TEXT_CHARS, MAX_WHOLE, METHODS, OPTIMIZERS, PEFT_METHODS, REPORTERS,
    DataSection, MethodSection, ModelSection,
)
from studio.config.rules import check, gpu_summary, package_installed, probe_prompt_list, reward_names, validate
from studio.config.schema import SECTIONS, ConfigError, Problem, RunConfig, field_info, flat_keys, section_of
from studio.config.training import DPO_LOSSES, GRPO_LOSSES, STAGES, StageSection, TrainSection

__all__ = [
    "MIGRATIONS", "SCHEMA_VERSION", "apply_overrides", "from_dict", "from_yaml", "gpu_list", "migrate",
    "parse_cli_overrides", "read_config", "to_dict", "to_flat", "to_yaml", "written_keys",
    "MAX_PROBE_PROMPTS", "MAX_REAL", "MAX_TEXT_CHARS", "MAX_WHOLE", "METHODS", "OPTIMIZERS", "PEFT_METHODS",
    "REPORTERS", "DataSection", "MethodSection", "ModelSection",
    "check", "gpu_summary", "package_installed", "probe_prompt_list", "reward_names", "validate",
    "SECTIONS", "ConfigError", "Problem", "RunConfig", "field_info", "flat_keys", "section_of",
    "DPO_LOSSES", "GRPO_LOSSES", "STAGES", "StageSection", "TrainSection",
]
