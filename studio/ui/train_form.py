"""What the Train tab shows and how its values become a RunConfig, read from the config fields' metadata.

No gradio here, so the form's logic is tested directly (tests/test_train_form.py). Every control comes from
a field in studio/config.py: its type picks the widget, `choices` the options, `help`/`help_zh` the info
text and `show_when` (flat key → allowed values, all must hold) whether it applies. A field added to the
config appears in the tab without touching this file; only the short list of keys shown up front and the
validation/checkpoint group are named here.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio import config as cfg
from studio.models.architecture import ModelInfoError
from studio.models.catalog import recommended_keys
from studio.layering import layered_config, starting_learning_rate
from studio.models.modules import ALL_LINEAR, linear_module_names
from studio.workspace import PathError, Workspace

# Shown up front, in this order (keys not in the config yet are skipped).
BASIC_KEYS = ("run_name", "stage", "method", "epochs", "max_steps", "learning_rate", "batch_size", "grad_accum", "cutoff_len")
# The folded "Validation, checkpoints and probes" group.
VALIDATION_KEYS = ("val_size", "val_file", "eval_steps", "early_stop_patience", "save_steps", "save_total_limit", "keep_best", "probe_steps", "probe_prompts")
# Text fields that take several lines.
MULTILINE_KEYS = ("probe_prompts",)
# Text fields that name layers of the model (comma-separated in the config): offered as a multiselect of the
# model's linear layer names.
MODULE_KEYS = ("lora_targets",)
# A field whose show_when names one of these keys goes into that method's or stage's own group.
SWITCH_KEYS = ("method", "stage")
# Names of method and stage values in group titles (a value not listed is shown as it is).
VALUE_NAMES = {
    "lora": "LoRA", "qlora": "QLoRA", "full": "full", "freeze": "freeze", "ia3": "IA³", "prompt_tuning": "prompt tuning",
    "prefix_tuning": "prefix tuning", "p_tuning": "P-tuning", "pt": "PT", "sft": "SFT", "dpo": "DPO", "orpo": "ORPO",
    "kto": "KTO", "rm": "RM", "grpo": "GRPO",
}
MAX_CONFIG_BYTES = 1_000_000


@dataclass(frozen=True)
class FieldSpec:
    """One config field as the form sees it."""

    key: str
    kind: str  # bool | int | float | str
    default: Any
    choices: tuple = ()
    show_when: tuple[tuple[str, tuple], ...] = ()  # ((flat key, allowed values), ...)
    section: str = ""  # "" for top-level keys such as run_name


@dataclass
class Group:
    """A block of controls: the basics, a method's or stage's settings, or the rest of a config section."""

    group_id: str  # "basic", "validation", "method=lora,qlora", "stage=dpo", "section=train", ...
    keys: list[str]
    switch: str = ""  # "method" or "stage" for a method's/stage's group
    values: tuple = ()  # the method/stage values it applies to


def field_spec(key: str) -> FieldSpec:
    """The FieldSpec of flat config key `key` (KeyError when unknown)."""
    info = cfg.field_info(key)
    default = info.default if info.default is not dataclasses.MISSING else None
    show_when = tuple((k, tuple(v)) for k, v in (info.metadata.get("show_when") or {}).items())
    kind = info.type if info.type in ("bool", "int", "float", "str") else "str"
    return FieldSpec(key, kind, default, tuple(info.metadata.get("choices") or ()), show_when, section_of(key))


def section_of(key: str) -> str:
    """The config section holding flat key `key` ("" for top-level keys)."""
    for name, section in cfg.SECTIONS.items():
        if key in {f.name for f in dataclasses.fields(section)}:
            return name
    return ""


def applies(spec: FieldSpec, values: dict[str, Any]) -> bool:
    """True when every condition of the field's show_when holds for the current `values`."""
    return all(values.get(key) in allowed for key, allowed in spec.show_when)


def trigger_keys(specs: list[FieldSpec]) -> list[str]:
    """The keys whose value decides whether some field applies (their changes re-check visibility)."""
    keys: list[str] = []
    for spec in specs:
        keys += [key for key, _allowed in spec.show_when if key not in keys]
    return keys


def plan_groups(keys: list[str]) -> list[Group]:
    """Arrange the controls for `keys`: basics first, then one group per method or stage condition, the
    validation group, then the remaining keys of each section. Empty groups are left out."""
    specs = [field_spec(k) for k in keys]
    basic = Group("basic", [k for k in BASIC_KEYS if k in keys])
    switched: dict[str, Group] = {}
    validation = Group("validation", [k for k in VALIDATION_KEYS if k in keys])
    by_section: dict[str, Group] = {}
    placed = set(basic.keys) | set(validation.keys)
    for spec in specs:
        if spec.key in placed:
            continue
        condition = next(((k, allowed) for k, allowed in spec.show_when if k in SWITCH_KEYS), None)
        if condition:
            switch, allowed = condition
            group_id = f"{switch}={','.join(allowed)}"
            switched.setdefault(group_id, Group(group_id, [], switch, allowed)).keys.append(spec.key)
        else:
            name = spec.section or "run"
            by_section.setdefault(name, Group(f"section={name}", [])).keys.append(spec.key)
    for group_id, group in list(switched.items()):
        # a lone field for fewer of a switch's values joins the group for more of them (PiSSA, LoRA only, sits
        # with the LoRA/QLoRA settings rather than in an accordion of its own); its cell still shows only where
        # it applies
        wider = next((g for g in switched.values() if g is not group and g.switch == group.switch
                      and set(group.values) < set(g.values)), None)
        if len(group.keys) == 1 and wider is not None:
            wider.keys += group.keys
            del switched[group_id]
    ordered = [basic, *switched.values(), validation, *by_section.values()]
    return [group for group in ordered if group.keys]


def group_applies(group: Group, specs: dict[str, FieldSpec], values: dict[str, Any]) -> bool:
    """True when at least one field of the group applies (an accordion with nothing to show is hidden)."""
    return any(applies(specs[key], values) for key in group.keys)


def names_from_text(text: str | None) -> list[str]:
    """The names in comma-separated `text` (what a module multiselect shows), blanks dropped."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def offered_with(names: list[str], choices: list[str]) -> list[str]:
    """`choices`, then each of `names` not among them: every name a module multiselect shows must be one of its
    choices, or Gradio draws it as "[object Object]"."""
    return choices + [name for name in names if name not in choices]


# The comma-separated text the config keeps for the names picked in a module multiselect, made in the browser:
# a Preview or Start clicked right after a pick reads the text, and a server round trip could still be on its way.
TEXT_FROM_NAMES_JS = "(names) => (names || []).join(',')"


def module_choices(workspace: Workspace, model: str) -> list[str]:
    """What the `lora_targets` multiselect offers for `model`: all-linear, then the names of its linear layers
    (only all-linear while they cannot be known offline; names typed by hand are accepted all the same)."""
    try:
        return [ALL_LINEAR, *linear_module_names(workspace, model)]
    except (ModelInfoError, PathError):
        return [ALL_LINEAR]


def config_from_values(values: dict[str, Any], base: cfg.RunConfig | None = None) -> tuple[cfg.RunConfig | None, list[cfg.Problem]]:
    """The RunConfig the controls describe (on top of `base` for keys without a control) and every problem
    with it. The config is None only when some value could not be read at all (an emptied number box)."""
    problems = [cfg.Problem(key, "enter a value") for key, value in values.items() if value is None]
    given = {key: value for key, value in values.items() if value is not None}
    try:
        config = cfg.apply_overrides(base or cfg.RunConfig(), given)
    except cfg.ConfigError as error:
        return None, problems + list(error.problems)
    if problems:
        return None, problems
    return config, cfg.validate(config)


def problems_by_key(problems: list[cfg.Problem]) -> dict[str, list[str]]:
    """Problem messages grouped by the flat key they concern (the order they were found in)."""
    grouped: dict[str, list[str]] = {}
    for problem in problems:
        grouped.setdefault(problem.key, []).append(problem.message)
    return grouped


def baseline(model: str) -> cfg.RunConfig:
    """The config the layering policy gives `model` with nothing else set (what the Train tab starts from)."""
    return layered_config(overrides={"model": model})


def starting_values(model: str, method: str, stage: str = "sft") -> dict[str, Any]:
    """What each key the catalog recommends for some model starts at for `model`, `method` and `stage`: the
    layered config's value (defaults, then the catalog's recommendations for `model`, the rate for the method
    and stage)."""
    flat = cfg.to_flat(layered_config(overrides={"model": model, "method": method, "stage": stage}))
    return {key: flat[key] for key in recommended_keys() if key in flat}


def learning_rate_for_method(model: str, method: str, current: float | None, stage: str = "sft") -> float | None:
    """The learning rate to show after the method or stage changes to `method` and `stage`: their starting
    rate when `current` is still a rate some method and stage start with (the user did not pick it), else None
    (keep the user's rate)."""
    untouched = current is None or any(abs(current - starting_learning_rate(model, m, s)) <= 1e-12
                                       for m in field_spec("method").choices for s in ("sft", "grpo"))
    return starting_learning_rate(model, method, stage) if untouched else None


def preset_values(name: str, method: str) -> dict[str, Any]:
    """The keys hyperparameter preset `name` fills into the form: all it sets, its learning rate resolved for
    the method it chooses (or, when it chooses none, for the current `method`)."""
    from studio.presets import preset_overrides, read_preset

    return preset_overrides(name, str(read_preset(name).get("method", method)))


def cli_value(spec: FieldSpec, value: Any) -> str:
    """`value` written so that `key=<text>` on the command line reads back as exactly `value`."""
    if spec.kind == "bool":
        return "true" if value else "false"
    if spec.kind in ("int", "float"):
        return repr(value)
    text = str(value)
    if "\n" in text:
        return text  # the CLI takes a value with line breaks verbatim
    read = cfg.parse_cli_overrides([f"{spec.key}={text}"])[spec.key]
    return text if isinstance(read, str) and read == text else json.dumps(text, ensure_ascii=False)


def cli_line(config: cfg.RunConfig, workspace: str | None = None) -> str:
    """The `python -m studio train key=value …` line that starts exactly this config. It names every key whose
    value differs from the default or from the model's catalog recommendation, and always the learning rate
    (where the command line starts it depends on both the model and the method), so the line does not rely
    on the catalog staying as it is."""
    defaults, recommended = cfg.to_flat(cfg.RunConfig()), cfg.to_flat(baseline(config.model.model))
    words = ["python", "-m", "studio", "train"]
    if workspace:
        words += ["--workspace", workspace]
    for key, value in cfg.to_flat(config).items():
        if value != defaults[key] or value != recommended[key] or key == "learning_rate":
            words.append(f"{key}={cli_value(field_spec(key), value)}")
    return " ".join(shlex.quote(word) for word in words)


def read_config_file(path: Path) -> cfg.RunConfig:
    """The config in the YAML file at `path` (an upload), read as config_from_file does; ConfigError when the
    file is too large, not UTF-8 text, or holds bad YAML, keys, values or choices."""
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise cfg.ConfigError([cfg.Problem(path.name, f"larger than {MAX_CONFIG_BYTES // 1000} kB; is this a config file?")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise cfg.ConfigError([cfg.Problem(path.name, f"not UTF-8 text ({error.reason} at byte {error.start})")]) from error
    return config_from_file(text, path.name)


def config_from_file(text: str, source: str) -> cfg.RunConfig:
    """The config a YAML file describes, as `python -m studio train FILE` reads it (studio/layering.py: the keys
    the file sets over the model's recommendations and the defaults). ConfigError names every bad key, value and
    choice at once."""
    return layered_config(text, source)


REWARD_CODE_BYTES = 64_000  # a reward file larger than this is not shown in the page (it is still checked)


def reward_file_text(workspace: Workspace, path_text: str | None) -> str | None:
    """The text of the reward file `path_text` names, shown in the Train tab before anyone allows it to run;
    None when it is empty, outside the workspace, not a .py file or too large to show."""
    try:
        path = workspace.confine(path_text or "")
    except PathError:
        return None
    if path.suffix != ".py" or not path.is_file() or path.stat().st_size > REWARD_CODE_BYTES:
        return None
    return path.read_text(encoding="utf-8", errors="replace")


REWARDS_FOLDER = "rewards"  # where reward files uploaded in the Train tab are kept, inside the workspace


def save_reward_upload(workspace: Workspace, temp_path: str) -> str:
    """Copy an uploaded reward file into the workspace's rewards/ folder under a safe name; returns the path
    reward_file takes (workspace-relative). ValueError when it is not a .py file or too large to show."""
    import shutil

    from studio.data.library import safe_name

    source = Path(temp_path)
    if source.suffix.lower() != ".py":
        raise ValueError(f"{source.name}: a reward file is Python code; upload a .py file")
    if source.stat().st_size > REWARD_CODE_BYTES:
        raise ValueError(f"{source.name} is {source.stat().st_size:,} bytes; a reward file may have at most "
                         f"{REWARD_CODE_BYTES:,} (it is shown in the page before it may run)")
    folder = workspace.root / REWARDS_FOLDER
    folder.mkdir(exist_ok=True)
    target = folder / safe_name(source.name)
    shutil.copyfile(source, target)
    return str(target.relative_to(workspace.root))
