"""RunConfig: every problem reported at once, unknown keys named, safe YAML round trip, CLI key=value parsing."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from studio import config as cfg
from studio.models.catalog import MODELS_DIR


def _problem_keys(problems) -> list[str]:
    return sorted(p.key for p in problems)


def test_default_config_is_valid():
    assert cfg.validate(cfg.RunConfig()) == []


def test_validate_returns_every_problem_at_once_each_naming_its_key():
    config = cfg.apply_overrides(cfg.RunConfig(), {"learning_rate": 0, "batch_size": 0})
    config = dataclasses.replace(config, method=dataclasses.replace(config.method, method="bogus"))  # built in code
    problems = cfg.validate(config)
    assert _problem_keys(problems) == ["batch_size", "learning_rate", "method"]
    text = "\n".join(str(p) for p in problems)
    assert "learning_rate:" in text and "batch_size:" in text and "'bogus'" in text

    with pytest.raises(cfg.ConfigError) as caught:
        cfg.check(config)
    assert _problem_keys(caught.value.problems) == ["batch_size", "learning_rate", "method"]
    for key in ("learning_rate", "batch_size", "method"):
        assert key in str(caught.value)


def test_lora_values_are_checked_only_for_lora():
    bad_lora = {"lora_rank": 0, "lora_dropout": 1.0, "lora_targets": "q_proj;rm -rf"}
    problems = cfg.validate(cfg.apply_overrides(cfg.RunConfig(), bad_lora))
    assert _problem_keys(problems) == ["lora_dropout", "lora_rank", "lora_targets"]
    full = cfg.apply_overrides(cfg.RunConfig(), {**bad_lora, "method": "full"})
    assert cfg.validate(full) == []


def test_unknown_key_in_yaml_is_rejected_and_named():
    text = "run_name: x\ntrain:\n  learnig_rate: 0.1\n  batch_size: 2\nmystery: 1\n"
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.from_yaml(text)
    keys = _problem_keys(caught.value.problems)
    assert keys == ["mystery", "train.learnig_rate"]
    assert "learnig_rate" in str(caught.value) and "mystery" in str(caught.value)
    # the message says what IS accepted, so the typo can be fixed
    assert "learning_rate" in str(caught.value)


def test_unknown_key_in_overrides_is_rejected_and_named():
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.apply_overrides(cfg.RunConfig(), {"learnig_rate": 0.1, "batch_size": 2})
    assert _problem_keys(caught.value.problems) == ["learnig_rate"]
    assert "learnig_rate" in str(caught.value)


def test_yaml_round_trip_of_a_non_default_config():
    original = cfg.apply_overrides(
        cfg.RunConfig(),
        {
            "run_name": "round trip 1",
            "model": "qwen2.5-0.5b-instruct",
            "trust_remote_code": True,
            "dataset": "datasets/mine.jsonl",
            "val_file": "datasets/mine-val.jsonl",
            "dataset_dir": "datasets/lf",
            "text_split": "line",
            "mix_strategy": "interleave",
            "interleave_probs": "0.7,0.3",
            "column_map": "prompt=question,response=answer",
            "skip_bad_rows": True,
            "train_on_prompt": True,
            "mask_history": True,
            "method": "full",
            "lora_rank": 32,
            "lora_alpha": 64,
            "lora_dropout": 0.05,
            "lora_targets": "q_proj,v_proj",
            "use_rslora": True,
            "use_dora": True,
            "pissa_init": True,
            "loraplus_ratio": 16.0,
            "quant_bits": 8,
            "quant_type": "fp4",
            "double_quant": False,
            "compute_dtype": "bf16",
            "freeze_trainable_layers": 3,
            "freeze_trainable_modules": "mlp",
            "num_virtual_tokens": 12,
            "stage": "dpo",
            "dpo_beta": 0.3,
            "dpo_loss": "ipo",
            "dpo_sft_weight": 0.5,
            "orpo_beta": 0.2,
            "kto_beta": 0.05,
            "kto_desirable_weight": 1.5,
            "kto_undesirable_weight": 0.8,
            "reward_funcs": "number_match,format,my_reward",
            "reward_weights": "1,0.5,0.25",
            "reward_answer_column": "solution",
            "reward_format": r"<answer>\d+</answer>",
            "reward_length_target": 80,
            "reward_json_schema": "schema.json",
            "reward_file": "rewards.py",
            "allow_reward_code": True,
            "grpo_generations": 8,
            "grpo_max_completion_len": 512,
            "grpo_temperature": 0.7,
            "grpo_beta": 0.04,
            "grpo_loss": "dr_grpo",
            "grpo_vllm": True,
            "dry_run": True,
            "epochs": 1.5,
            "max_steps": 123,
            "learning_rate": 3e-5,
            "batch_size": 2,
            "grad_accum": 8,
            "cutoff_len": 512,
            "seed": 7,
            "logging_steps": 5,
            "report_to": "tensorboard",
            "val_size": 0.1,
            "eval_steps": 20,
            "early_stop_patience": 3,
            "save_steps": 25,
            "save_total_limit": 4,
            "keep_best": False,
            "probe_steps": 10,
            "probe_prompts": "What is Amberlee known for?\n你好",
            "optim": "adafactor",
            "precision": "bf16",
            "gradient_checkpointing": False,
            "attn_impl": "eager",
            "packing": True,
            "use_liger": True,
            "neftune_alpha": 5.0,
            "rope_scaling": "yarn",
            "rope_factor": 4.0,
            "strategy": "fsdp",
            "gpus": "0,1",
            "offload": True,
            "processes": 3,
        },
    )
    assert original != cfg.RunConfig()
    text = cfg.to_yaml(original)
    assert cfg.from_yaml(text) == original
    # every field differs from its default, so nothing was silently dropped on the way
    defaults = cfg.to_flat(cfg.RunConfig())
    assert all(value != defaults[key] for key, value in cfg.to_flat(original).items())


def test_cli_override_reads_scientific_notation_as_float():
    overrides = cfg.parse_cli_overrides(["learning_rate=1e-3", "batch_size=16", "run_name=my run"])
    assert overrides["learning_rate"] == 0.001 and isinstance(overrides["learning_rate"], float)
    assert overrides["batch_size"] == 16
    config = cfg.apply_overrides(cfg.RunConfig(), overrides)
    assert config.train.learning_rate == 0.001
    assert config.train.batch_size == 16
    assert config.run_name == "my run"


def test_cli_override_without_equals_sign_is_named():
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse_cli_overrides(["learning_rate"])
    assert "learning_rate" in str(caught.value) and "key=value" in str(caught.value)


def test_bad_type_names_the_key_and_the_value():
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.apply_overrides(cfg.RunConfig(), cfg.parse_cli_overrides(["batch_size=abc", "learning_rate=fast"]))
    assert _problem_keys(caught.value.problems) == ["batch_size", "learning_rate"]
    message = str(caught.value)
    assert "batch_size" in message and "'abc'" in message and "int" in message
    assert "'fast'" in message


def test_bad_type_in_yaml_is_named():
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.from_yaml("train:\n  batch_size: abc\n")
    assert _problem_keys(caught.value.problems) == ["batch_size"]


@pytest.mark.parametrize(
    "text",
    ["train: [unclosed", "model:\n  model: tiny-demo\n bad indent: 1\n", "\t- tab", "train: {a: 1"],
)
def test_bad_yaml_text_gives_config_error(text):
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.from_yaml(text, source="my.yaml")
    assert "my.yaml" in str(caught.value)


def test_yaml_that_is_not_a_mapping_is_rejected():
    with pytest.raises(cfg.ConfigError):
        cfg.from_yaml("- just\n- a list\n")
    with pytest.raises(cfg.ConfigError):
        cfg.from_yaml("train: 5\n")


def test_yaml_python_object_tag_is_rejected_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    text = f'run_name: !!python/object/apply:os.system ["touch {marker}"]\n'
    with pytest.raises(cfg.ConfigError):
        cfg.from_yaml(text)
    assert not marker.exists()


@pytest.mark.parametrize("preset", sorted(p.name for p in MODELS_DIR.glob("*.yaml")))
def test_every_preset_recommendation_is_a_valid_config(preset):
    data = yaml.safe_load((MODELS_DIR / preset).read_text(encoding="utf-8"))
    config = cfg.apply_overrides(cfg.RunConfig(), {"model": data["name"], **(data.get("recommended") or {})})
    assert cfg.validate(config) == []


def test_every_field_has_help_text_in_both_languages():
    for key in cfg.flat_keys():
        metadata = cfg.field_info(key).metadata
        assert metadata.get("help"), key
        assert metadata.get("help_zh"), key
    assert len(cfg.flat_keys()) == len(set(cfg.flat_keys())), "a key appears in two sections"
    assert set(cfg.flat_keys()) == set(cfg.to_flat(cfg.RunConfig()))
    assert dataclasses.is_dataclass(cfg.RunConfig)


def test_cli_value_with_line_breaks_keeps_them():
    overrides = cfg.parse_cli_overrides(["probe_prompts=What is Amberlee known for?\nWho is the mayor of Dunmere?"])
    assert overrides["probe_prompts"] == "What is Amberlee known for?\nWho is the mayor of Dunmere?"
    assert cfg.probe_prompt_list(overrides["probe_prompts"]) == ["What is Amberlee known for?", "Who is the mayor of Dunmere?"]


def test_a_value_outside_a_fields_choices_is_refused_wherever_it_is_set(tmp_path):
    """The command line, a config file and Load config read keys through one policy: an unknown choice is named
    even for a key the chosen method does not use."""
    from studio.layering import layered_config
    from studio.ui.train_form import config_from_file

    with pytest.raises(cfg.ConfigError, match="quant_type: must be one of nf4, fp4, got 'bogus'"):
        cfg.apply_overrides(cfg.RunConfig(), {"method": "lora", "quant_type": "bogus"})
    text = "method:\n  method: lora\n  quant_type: bogus\n"
    for read in (lambda: layered_config(text, "mine.yaml"), lambda: config_from_file(text, "mine.yaml")):
        with pytest.raises(cfg.ConfigError, match="quant_type: must be one of nf4, fp4, got 'bogus'"):
            read()


def test_a_saved_config_carries_its_schema_version_and_one_without_it_still_reads():
    text = cfg.to_yaml(cfg.RunConfig(run_name="kept"))
    assert text.startswith(f"schema_version: {cfg.SCHEMA_VERSION}\n")
    assert cfg.from_yaml(text) == cfg.RunConfig(run_name="kept")
    assert cfg.from_yaml(text.split("\n", 1)[1]) == cfg.RunConfig(run_name="kept")  # written before it was versioned
    with pytest.raises(cfg.ConfigError, match="schema_version: mine.yaml is config schema 99"):
        cfg.from_yaml(text.replace(f"schema_version: {cfg.SCHEMA_VERSION}", "schema_version: 99"), "mine.yaml")


def test_the_layers_stack_defaults_catalog_preset_file_and_keys_in_that_order():
    from studio.layering import layered_config
    from studio.presets import preset_overrides

    plain = layered_config(overrides={"model": "tiny-demo"})
    assert plain.train.learning_rate == 0.002  # the catalog's recommendation for tiny-demo
    quick = preset_overrides("quick", "lora")
    with_preset = layered_config(overrides={"model": "tiny-demo", "preset": "quick"})
    assert with_preset.train.epochs == quick["epochs"]
    file_text = "train:\n  epochs: 7\n"
    from_file = layered_config(file_text, "mine.yaml", {"model": "tiny-demo", "preset": "quick"})
    assert from_file.train.epochs == 7  # the file wins over the preset
    typed = layered_config(file_text, "mine.yaml", {"model": "tiny-demo", "preset": "quick", "epochs": 9})
    assert typed.train.epochs == 9  # key=value wins over the file
    full = layered_config(overrides={"model": "tiny-demo", "method": "full"})
    assert full.train.learning_rate != plain.train.learning_rate  # a full fine-tune starts at its own rate
