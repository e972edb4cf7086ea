"""RunConfig, the whole of a run's settings in sections, and the flat keys (`lora_rank`) that name each field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from studio.config.fields import DataSection, MethodSection, ModelSection, _field
from studio.config.training import StageSection, TrainSection


SECTIONS = {"model": ModelSection, "data": DataSection, "method": MethodSection, "stage": StageSection,
            "train": TrainSection}


@dataclass
class RunConfig:
    run_name: str = _field("", "Optional name shown in the Runs list.", "可选的运行名称，显示在运行列表中。")
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    method: MethodSection = field(default_factory=MethodSection)
    stage: StageSection = field(default_factory=StageSection)
    train: TrainSection = field(default_factory=TrainSection)


@dataclass
class Problem:
    """One thing wrong with a config: the key it concerns and what to do about it."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(ValueError):
    """Raised with every problem found in a config, so the user can fix them all in one go."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


def field_info(key: str) -> dataclasses.Field:
    """The dataclass field behind a flat key such as `lora_rank` or `run_name`; KeyError when unknown."""
    for f in dataclasses.fields(RunConfig):
        if f.name == key and f.name not in SECTIONS:
            return f
    for section in SECTIONS.values():
        for f in dataclasses.fields(section):
            if f.name == key:
                return f
    raise KeyError(key)


def flat_keys() -> list[str]:
    """Every key accepted on the command line (`key=value`), in display order."""
    keys = [f.name for f in dataclasses.fields(RunConfig) if f.name not in SECTIONS]
    for section in SECTIONS.values():
        keys += [f.name for f in dataclasses.fields(section)]
    return keys


def section_of(key: str) -> str | None:
    """The section (`model`, `data`, …) holding flat key `key`; None for a top-level key such as run_name."""
    for name, section in SECTIONS.items():
        if key in {f.name for f in dataclasses.fields(section)}:
            return name
    return None
