"""RunConfig: everything that defines a training run, as typed dataclasses with YAML round trip.

Each field carries its help text (English and Chinese) in its metadata: that is the single source the
CLI, the validation messages and the UI's info text are built from. `validate()` returns every
problem at once; `ConfigError` carries them all.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import yaml


def _field(default: Any, help_en: str, help_zh: str, **extra: Any) -> Any:
    """A dataclass field whose metadata holds its help text in both UI languages."""
    return field(default=default, metadata={"help": help_en, "help_zh": help_zh, **extra})


METHODS = ("lora", "full")
MAX_PROBE_PROMPTS = 10


@dataclass
class ModelSection:
    model: str = _field(
        "tiny-demo",
        "Model to fine-tune: `tiny-demo` (built-in, offline), a preset name, a Hugging Face id, "
        "or a local folder inside the workspace.",
        "要微调的模型：`tiny-demo`（内置离线演示模型）、预设名称、Hugging Face 模型 ID，或工作区内的本地文件夹。",
    )
    trust_remote_code: bool = _field(
        False,
        "Run Python code shipped with the model. Only tick this for a model you trust.",
        "运行模型自带的 Python 代码。仅对你信任的模型勾选。",
    )


@dataclass
class DataSection:
    dataset: str = _field(
        "demo-chat",
        "A bundled sample name (e.g. `demo-chat`) or a JSONL/JSON/CSV file inside the workspace.",
        "内置示例数据集名称（如 `demo-chat`），或工作区内的 JSONL/JSON/CSV 文件。",
    )
    val_size: float = _field(
        0.0,
        "Rows held out for validation: a fraction below 1 (0.1 = 10%) or a row count of 1 or more, "
        "picked with the run's seed; 0 = no validation.",
        "留作验证集的样本：小于 1 的比例（0.1 即 10%）或不小于 1 的条数，按运行的随机种子抽取；0 表示不验证。",
    )


@dataclass
class MethodSection:
    method: str = _field(
        "lora",
        "`lora` trains a small adapter on top of frozen weights; `full` updates every weight.",
        "`lora` 在冻结的权重上训练一个小的适配器；`full` 更新全部权重。",
        choices=METHODS,
    )
    lora_rank: int = _field(
        8, "LoRA rank: higher learns more, uses more memory.", "LoRA 秩：越大学得越多，占用显存越多。"
    )
    lora_alpha: int = _field(
        16, "LoRA scaling (alpha); commonly twice the rank.", "LoRA 缩放系数 alpha，通常取秩的两倍。"
    )
    lora_dropout: float = _field(0.0, "Dropout on the LoRA path (0 to <1).", "LoRA 分支的 dropout（0 到 1 之间）。")
    lora_targets: str = _field(
        "all-linear",
        "Modules that get adapters: `all-linear`, or comma-separated names such as `q_proj,v_proj`.",
        "添加适配器的模块：`all-linear`，或用逗号分隔的模块名，如 `q_proj,v_proj`。",
    )


@dataclass
class TrainSection:
    epochs: float = _field(3.0, "Passes over the dataset (ignored when max_steps > 0).", "训练轮数（max_steps > 0 时忽略）。")
    max_steps: int = _field(
        0, "Stop after this many optimizer steps; 0 means use epochs.", "训练的最大步数；0 表示按轮数训练。"
    )
    learning_rate: float = _field(2e-4, "Peak learning rate.", "峰值学习率。")
    batch_size: int = _field(4, "Rows per device per step (micro-batch).", "每个设备每步的样本数（微批大小）。")
    grad_accum: int = _field(
        1,
        "Micro-batches accumulated per optimizer step; effective batch = batch_size × grad_accum.",
        "梯度累积步数；有效批大小 = batch_size × grad_accum。",
    )
    cutoff_len: int = _field(
        1024, "Longest sequence in tokens; longer rows are truncated.", "最大序列长度（token 数），更长的样本会被截断。"
    )
    seed: int = _field(42, "Random seed, for a reproducible run.", "随机种子，用于复现训练。")
    logging_steps: int = _field(1, "Write metrics every N steps.", "每 N 步记录一次指标。")
    eval_steps: int = _field(
        0,
        "Evaluate on the validation rows every N steps; 0 = once per epoch (needs val_size).",
        "每 N 步在验证集上评估一次；0 表示每轮评估一次（需要设置 val_size）。",
    )
    early_stop_patience: int = _field(
        0,
        "Stop when the validation loss has not improved for N evaluations; 0 = never (needs val_size).",
        "验证损失连续 N 次评估没有改善时提前停止；0 表示不提前停止（需要设置 val_size）。",
    )
    save_steps: int = _field(
        100,
        "Save a checkpoint every N steps, so a stopped, killed or crashed run can be resumed; 0 = no checkpoints.",
        "每 N 步保存一个检查点，停止、被终止或崩溃的运行可以从中恢复；0 表示不保存检查点。",
    )
    save_total_limit: int = _field(
        2, "Keep only the newest N checkpoints (older ones are deleted).", "只保留最新的 N 个检查点（更早的会被删除）。"
    )
    probe_steps: int = _field(
        50,
        "Every N steps, answer the probe prompts (greedy) so you can watch the model learn; 0 = off.",
        "每 N 步用探测提示生成回答（贪心解码），便于观察模型的学习过程；0 表示关闭。",
    )
    probe_prompts: str = _field(
        "",
        "Probe prompts, one per line; empty = the prompts of up to 3 validation rows (or the first 3 rows).",
        "探测提示，每行一个；留空则使用最多 3 条验证样本（或前 3 条样本）的提示。",
    )


SECTIONS = {"model": ModelSection, "data": DataSection, "method": MethodSection, "train": TrainSection}


@dataclass
class RunConfig:
    run_name: str = _field("", "Optional name shown in the Runs list.", "可选的运行名称，显示在运行列表中。")
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    method: MethodSection = field(default_factory=MethodSection)
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


def _section_of(key: str) -> str | None:
    for name, section in SECTIONS.items():
        if key in {f.name for f in dataclasses.fields(section)}:
            return name
    return None


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


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a copy of `config` with flat `key: value` pairs applied; ConfigError lists every bad key or value."""
    problems: list[Problem] = []
    result = dataclasses.replace(
        config, **{name: dataclasses.replace(getattr(config, name)) for name in SECTIONS}
    )
    for key, value in overrides.items():
        try:
            field_info(key)
        except KeyError:
            problems.append(Problem(key, f"unknown key; known keys: {', '.join(flat_keys())}"))
            continue
        coerced = _coerce(key, value, problems)
        if coerced is None:
            continue
        section = _section_of(key)
        setattr(getattr(result, section) if section else result, key, coerced)
    if problems:
        raise ConfigError(problems)
    return result


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
                value = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError:
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
            problems.append(Problem(str(key), "unknown key; sections are model, data, method, train, plus run_name"))
    try:
        config = apply_overrides(RunConfig(), flat)
    except ConfigError as error:
        problems += error.problems
    if problems:
        raise ConfigError(problems)
    return config


def to_yaml(config: RunConfig) -> str:
    """The config as YAML text, one section per block."""
    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)


def from_yaml(text: str, source: str = "config.yaml") -> RunConfig:
    """Parse YAML text (safe loader only) into a RunConfig; ConfigError on bad YAML or bad keys."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError([Problem(source, f"not valid YAML: {error}")]) from error
    return from_dict(data, source)


def validate(config: RunConfig) -> list[Problem]:
    """Every problem with the values in `config` (empty when it is good to run)."""
    problems: list[Problem] = []
    m, d, meth, t = config.model, config.data, config.method, config.train
    if not m.model.strip():
        problems.append(Problem("model", "choose a model (for example tiny-demo)"))
    if not d.dataset.strip():
        problems.append(Problem("dataset", "choose a dataset: a bundled sample or an uploaded file"))
    if meth.method not in METHODS:
        problems.append(Problem("method", f"must be one of {', '.join(METHODS)}, got {meth.method!r}"))
    if meth.method == "lora":
        if meth.lora_rank < 1:
            problems.append(Problem("lora_rank", f"must be at least 1, got {meth.lora_rank}"))
        if meth.lora_alpha < 1:
            problems.append(Problem("lora_alpha", f"must be at least 1, got {meth.lora_alpha}"))
        if not 0 <= meth.lora_dropout < 1:
            problems.append(Problem("lora_dropout", f"must be in [0, 1), got {meth.lora_dropout}"))
        if not re.fullmatch(r"all-linear|[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*", meth.lora_targets.strip()):
            problems.append(Problem("lora_targets", "use all-linear or module names separated by commas, e.g. q_proj,v_proj"))
    if t.max_steps < 0:
        problems.append(Problem("max_steps", f"must be 0 (use epochs) or more, got {t.max_steps}"))
    if t.max_steps == 0 and t.epochs <= 0:
        problems.append(Problem("epochs", f"must be above 0 when max_steps is 0, got {t.epochs}"))
    if not 0 < t.learning_rate <= 1:
        problems.append(Problem("learning_rate", f"must be above 0 and at most 1, got {t.learning_rate}"))
    if t.batch_size < 1:
        problems.append(Problem("batch_size", f"must be at least 1, got {t.batch_size}"))
    if t.grad_accum < 1:
        problems.append(Problem("grad_accum", f"must be at least 1, got {t.grad_accum}"))
    if not 16 <= t.cutoff_len <= 1_048_576:
        problems.append(Problem("cutoff_len", f"must be between 16 and 1048576 tokens, got {t.cutoff_len}"))
    if t.logging_steps < 1:
        problems.append(Problem("logging_steps", f"must be at least 1, got {t.logging_steps}"))
    if d.val_size < 0 or (d.val_size >= 1 and not float(d.val_size).is_integer()):
        problems.append(Problem("val_size", f"use a fraction below 1 (e.g. 0.1), a whole row count, or 0 for none; got {d.val_size}"))
    for key in ("eval_steps", "early_stop_patience", "save_steps", "probe_steps"):
        if getattr(t, key) < 0:
            problems.append(Problem(key, f"must be 0 (off) or more, got {getattr(t, key)}"))
    for key, what in (("eval_steps", "evaluate"), ("early_stop_patience", "stop early")):
        if getattr(t, key) > 0 and d.val_size <= 0:
            problems.append(Problem(key, f"needs validation rows to {what} on: set val_size (e.g. 0.1), or set {key}=0"))
    if t.save_total_limit < 1:
        problems.append(Problem("save_total_limit", f"must be at least 1, got {t.save_total_limit}"))
    prompts = probe_prompt_list(t.probe_prompts)
    if len(prompts) > MAX_PROBE_PROMPTS:
        problems.append(Problem("probe_prompts", f"use at most {MAX_PROBE_PROMPTS} prompts (one per line), got {len(prompts)}"))
    if len(config.run_name) > 80 or not re.fullmatch(r"[\w .\-]*", config.run_name):
        problems.append(Problem("run_name", "use at most 80 letters, digits, spaces, dots, dashes or underscores"))
    return problems


def probe_prompt_list(text: str) -> list[str]:
    """The probe prompts in `probe_prompts`: one per non-empty line."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def check(config: RunConfig) -> RunConfig:
    """Return `config` unchanged when valid; otherwise raise ConfigError with all its problems."""
    problems = validate(config)
    if problems:
        raise ConfigError(problems)
    return config
