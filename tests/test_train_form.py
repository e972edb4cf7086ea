"""The Train tab's form, without a browser: controls built from the config fields, values ↔ config ↔ YAML
and the command line exactly, show_when, and every problem tied to its field."""

from __future__ import annotations

import shlex

import gradio as gr
import pytest

from studio.layering import config_from_cli
from studio import config as cfg
from studio.ui import train_form as form
from studio.ui.locales import field_help
from studio.ui.strings import TEXT


def changed_value(spec: form.FieldSpec):
    """A value other than the field's default, of the field's type (another choice where there are choices)."""
    if spec.choices:
        return next(choice for choice in reversed(spec.choices) if choice != spec.default)
    if spec.kind == "bool":
        return not spec.default
    if spec.kind == "int":
        return spec.default + 3
    if spec.kind == "float":
        return spec.default + 0.25
    return f"{spec.default}changed" if spec.default else "changed value"


def every_key_changed() -> dict:
    return {key: changed_value(form.field_spec(key)) for key in cfg.flat_keys()}


def test_values_config_and_yaml_round_trip_exactly_for_every_key():
    values = every_key_changed()
    config, _problems = form.config_from_values(values)  # problems or not, every value is kept
    assert config is not None
    assert cfg.to_flat(config) == values
    back = form.config_from_file(cfg.to_yaml(config), "saved.yaml")
    assert cfg.to_flat(back) == values
    assert cfg.to_yaml(back) == cfg.to_yaml(config)


@pytest.mark.parametrize(
    ("text", "learning_rate"),
    [
        ("model:\n  model: tiny-demo\ntrain:\n  epochs: 2\n  seed: 7\n", 0.002),  # tiny-demo's recommendation
        ("method:\n  method: full\ntrain:\n  epochs: 2\n  seed: 7\n", 1e-5),  # full fine-tuning's own rate
        ("method:\n  method: full\ntrain:\n  epochs: 2\n  seed: 7\n  learning_rate: 0.003\n", 0.003),
    ],
)
def test_a_partial_file_loads_as_the_command_line_reads_it(tmp_path, text, learning_rate):
    from studio.workspace import Workspace

    workspace = Workspace(tmp_path)
    (workspace.root / "partial.yaml").write_text(text, encoding="utf-8")
    loaded = form.config_from_file(text, "partial.yaml")
    assert loaded == config_from_cli("partial.yaml", [], workspace)
    assert (loaded.train.epochs, loaded.train.seed, loaded.train.learning_rate) == (2.0, 7, learning_rate)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"run_name": "true", "learning_rate": 3e-5, "epochs": 2.5, "val_size": 0.15, "eval_steps": 5},
        {"run_name": "1e-3", "probe_prompts": "key: value"},
        {"run_name": "0x1F", "probe_prompts": "Where is Amberlee?\n- a list? no: a prompt\n"},
        {"run_name": "  on  ", "model": "qwen2.5-0.5b-instruct", "method": "full", "lora_targets": "q_proj, v_proj"},
        {"run_name": "null", "probe_prompts": "中文 提示 'quoted' \"double\" $HOME `tick`"},
    ],
)
def test_the_command_line_starts_exactly_the_previewed_config(tmp_path, overrides):
    from studio.workspace import Workspace

    config = cfg.apply_overrides(cfg.RunConfig(), overrides)
    assert cfg.validate(config) == []
    line = form.cli_line(config, workspace=str(tmp_path))
    words = shlex.split(line)
    assert words[:6] == ["python", "-m", "studio", "train", "--workspace", str(tmp_path)]
    assert config_from_cli(None, words[6:], Workspace(tmp_path)) == config


def test_the_command_line_names_what_differs_from_the_defaults_or_the_model_recommendations():
    line = form.cli_line(cfg.apply_overrides(form.baseline("tiny-demo"), {"seed": 7}))
    words = shlex.split(line)[4:]
    assert "seed=7" in words and "learning_rate=0.002" in words and "epochs=15.0" in words
    assert not any(word.startswith(("batch_size=4", "grad_accum=", "model=", "method=")) for word in words)
    assert "lora_rank=8" in shlex.split(form.cli_line(cfg.RunConfig()))  # the default, where tiny-demo recommends 16


@pytest.mark.parametrize(
    ("model", "method", "current", "expected"),
    [
        ("tiny-demo", "full", 0.002, 1e-5),  # tiny-demo's LoRA rate, untouched: full fine-tuning's own rate
        ("tiny-demo", "lora", 1e-5, 0.002),  # full's rate, untouched: back to the catalog's LoRA rate
        ("tiny-demo", "full", 0.0007, None),  # a rate the user typed is kept
    ],
)
def test_changing_the_method_moves_only_a_learning_rate_the_user_did_not_choose(model, method, current, expected):
    assert form.learning_rate_for_method(model, method, current) == expected


def test_grpo_starts_at_a_tenth_of_the_models_rate_and_back():
    assert form.learning_rate_for_method("tiny-demo", "lora", 0.002, "grpo") == pytest.approx(0.0002)
    assert form.learning_rate_for_method("tiny-demo", "full", 0.0002, "grpo") == pytest.approx(1e-6)
    assert form.learning_rate_for_method("tiny-demo", "lora", 1e-6, "sft") == 0.002  # untouched: back to SFT's
    assert form.learning_rate_for_method("tiny-demo", "lora", 0.00042, "grpo") is None  # typed: kept


def test_the_starting_learning_rate_is_what_the_command_line_starts_with(tmp_path):
    from studio.workspace import Workspace

    for method in form.field_spec("method").choices:
        try:
            config = config_from_cli(None, [f"method={method}"], Workspace(tmp_path))
        except cfg.ConfigError:
            continue  # a method this machine cannot run (e.g. qlora without bitsandbytes)
        assert config.train.learning_rate == form.starting_learning_rate("tiny-demo", method), method
    config = config_from_cli(None, ["stage=grpo", "method=full"], Workspace(tmp_path))
    assert config.train.learning_rate == pytest.approx(1e-6)


def test_a_preset_fills_the_form_with_its_rate_for_the_method_it_chooses():
    from studio.presets import preset_names, read_preset

    assert preset_names()
    for name in preset_names():
        written = read_preset(name)
        values = form.preset_values(name, "full")
        config, problems = form.config_from_values({**cfg.to_flat(cfg.RunConfig()), **values})
        assert problems == [], name
        method = written.get("method", "full")
        rates = written.get("learning_rate")
        if isinstance(rates, dict) and method in rates:
            assert config.train.learning_rate == rates[method], name


def test_a_field_applies_only_when_every_show_when_condition_holds():
    spec = form.FieldSpec("quant_type", "str", "nf4", ("nf4", "fp4"), (("method", ("qlora",)), ("quant_bits", (4,))))
    assert form.applies(spec, {"method": "qlora", "quant_bits": 4})
    assert not form.applies(spec, {"method": "qlora", "quant_bits": 8})
    assert not form.applies(spec, {"method": "lora", "quant_bits": 4})
    assert form.applies(form.FieldSpec("seed", "int", 42), {})  # no condition: always shown


def test_groups_place_every_key_once_and_method_and_stage_settings_in_their_own_groups():
    keys = cfg.flat_keys()
    groups = form.plan_groups(keys)
    placed = [key for group in groups for key in group.keys]
    assert sorted(placed) == sorted(keys)
    assert groups[0].group_id == "basic" and groups[0].keys[:1] == ["run_name"]
    for group in groups:
        for key in group.keys:
            conditions = dict(form.field_spec(key).show_when)
            switches = [k for k in form.SWITCH_KEYS if k in conditions]
            if group.switch:  # a method's/stage's group holds only fields for those values (a lone field for
                # fewer of them joins it, and its cell shows only where it applies)
                assert set(conditions[group.switch]) <= set(group.values)
            elif group.group_id != "basic":
                assert not switches, f"{key} depends on {switches} but sits in the always-shown {group.group_id}"


def test_the_lora_settings_are_one_group():
    lora = [group for group in form.plan_groups(cfg.flat_keys()) if "lora_rank" in group.keys or "pissa_init" in group.keys]
    assert len(lora) == 1 and {"lora_rank", "use_dora", "pissa_init"} <= set(lora[0].keys)
    assert not form.applies(form.field_spec("pissa_init"), {**cfg.to_flat(cfg.RunConfig()), "method": "qlora"})


@pytest.mark.parametrize("method", form.field_spec("method").choices)
def test_choosing_a_method_shows_only_the_groups_that_apply_to_it(method):
    specs = {key: form.field_spec(key) for key in cfg.flat_keys()}
    values = {**cfg.to_flat(cfg.RunConfig()), "method": method}
    for group in form.plan_groups(cfg.flat_keys()):
        if group.switch == "method":
            assert form.group_applies(group, specs, values) == (method in group.values), group.group_id
    lora_like = method in dict(specs["lora_rank"].show_when).get("method", ())
    assert form.applies(specs["lora_rank"], values) == lora_like


def test_every_problem_is_reported_at_once_under_its_own_key():
    values = {**cfg.to_flat(cfg.RunConfig()), "batch_size": 0, "learning_rate": 5.0, "lora_rank": 0, "run_name": "bad/name"}
    config, problems = form.config_from_values(values)
    grouped = form.problems_by_key(problems)
    assert config is not None
    assert {"batch_size", "learning_rate", "lora_rank", "run_name"} <= set(grouped)
    assert "at least 1" in grouped["batch_size"][0]


def test_an_emptied_number_box_is_a_problem_of_that_field_not_a_default():
    values = {**cfg.to_flat(cfg.RunConfig()), "epochs": None, "batch_size": 0}
    config, problems = form.config_from_values(values)
    grouped = form.problems_by_key(problems)
    assert config is None
    assert grouped["epochs"] == ["enter a value"]


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"train: [unclosed\n", "not valid YAML"),
        (b"train:\n  epoch: 3\n", "train.epoch"),
        (b"method:\n  method: magic\n", "method"),
        (b"train:\n  epoch: 3\nmethod:\n  method: magic\n", "magic"),  # every problem at once
        (b"train:\n  batch_size: lots\n", "batch_size"),
        ("run_name: caf\u00e9\n".encode("latin-1"), "not UTF-8"),
        (b"#" * (form.MAX_CONFIG_BYTES + 1), "larger than"),
    ],
)
def test_a_bad_config_file_is_refused_with_what_is_wrong(tmp_path, content, named):
    path = tmp_path / "mine.yaml"
    path.write_bytes(content)
    with pytest.raises(cfg.ConfigError) as error:
        form.read_config_file(path)
    assert named in str(error.value)


def test_every_config_field_has_a_label_in_both_languages():
    missing = [key for key in cfg.flat_keys() if f"field.{key}" not in TEXT or not all(TEXT[f"field.{key}"])]
    assert missing == []


def test_the_tabs_build_one_control_per_config_key_with_the_field_help_as_info(workspace):
    from studio.ui.context import UIContext
    from studio.ui.data_tab import create_data_tab
    from studio.ui.model_tab import create_model_tab
    from studio.ui.train_tab import create_train_tab

    ctx = UIContext(workspace=workspace)
    with gr.Blocks():
        ctx.language = gr.Radio(choices=["English", "简体中文"], value="English")
        create_data_tab(ctx)
        create_model_tab(ctx)
        before_train = set(ctx.shared)
        create_train_tab(ctx)
    assert "method" not in before_train  # the method is chosen in the Train tab now
    for key in cfg.flat_keys():
        control = ctx.shared[key]
        assert control.info == field_help(key), key
        value = control.value
        assert value == cfg.to_flat(ctx.initial)[key] or (value in (None, "") and not cfg.to_flat(ctx.initial)[key]), key


def test_a_new_model_brings_its_own_starting_values_and_leaves_none_of_the_old_ones():
    demo, qwen = form.starting_values("tiny-demo", "lora"), form.starting_values("qwen2.5-7b-instruct", "lora")
    defaults = cfg.to_flat(cfg.RunConfig())
    assert demo["cutoff_len"] == 256 and demo["batch_size"] == 8 and demo["lora_rank"] == 16
    # qwen recommends only a rate and epochs: tiny-demo's cutoff, batch and rank go back to the defaults
    assert (qwen["cutoff_len"], qwen["batch_size"], qwen["lora_rank"]) == (defaults["cutoff_len"], defaults["batch_size"], defaults["lora_rank"])
    assert qwen["learning_rate"] == 1e-4 and form.starting_values("qwen2.5-7b-instruct", "full")["learning_rate"] != 1e-4


def test_the_catalogs_lora_targets_are_what_trains():
    from studio.layering import layered_config

    assert form.starting_values("mixtral-8x7b-instruct-v0.1", "lora")["lora_targets"] == "q_proj,k_proj,v_proj,o_proj"
    assert layered_config(overrides={"model": "mixtral-8x7b-instruct-v0.1"}).method.lora_targets == "q_proj,k_proj,v_proj,o_proj"
    assert layered_config(overrides={"model": "mixtral-8x7b-instruct-v0.1", "lora_targets": "q_proj"}).method.lora_targets == "q_proj"
