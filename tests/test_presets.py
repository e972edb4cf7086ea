"""Every YAML file under presets/ is valid; hyperparameter presets also dry-run on tiny-demo; `preset=NAME`
fills in only what the user did not set, with the learning rate of the run's method."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import run_cli

from studio import config as cfg
from studio.layering import config_from_cli as build_config
from studio.presets import METHOD_LEARNING_RATES, preset_overrides
from studio.workspace import PRESETS_DIR, Workspace

ALL_YAML = sorted(PRESETS_DIR.rglob("*.yaml"))
HPARAMS = sorted((PRESETS_DIR / "hparams").glob("*.yaml"))


def test_the_three_hparams_presets_exist():
    assert {p.stem for p in HPARAMS} == {"quick", "balanced", "quality"}


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(PRESETS_DIR)))
def test_every_preset_file_gives_a_valid_config(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: expected a mapping"
    if path.parent.name == "models":
        configs = [cfg.apply_overrides(cfg.RunConfig(), {"model": data["name"], **(data.get("recommended") or {})})]
    elif path.parent.name == "hparams":
        configs = [cfg.apply_overrides(cfg.RunConfig(), {"preset": path.stem, "method": m}) for m in cfg.METHODS
                   if m != "qlora" or cfg.package_installed("bitsandbytes")]
    else:
        configs = [cfg.from_dict(data, str(path))]  # any other YAML under presets/ is a whole run config
    for config in configs:
        assert cfg.validate(config) == [], f"{path} ({config.method.method}): {cfg.validate(config)}"


@pytest.mark.parametrize("path", HPARAMS, ids=lambda p: p.stem)
def test_hparams_preset_is_documented_key_by_key(path):
    text = path.read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("python -m studio train " in line and f"preset={path.stem}" in line for line in header), "CLI line"
    assert len(" ".join(header)) > 150, "the header says when to use the preset"
    for line in text.splitlines():
        if line and not line.startswith(("#", " ")):  # a top-level key: its trade-off comment on the same line
            assert "#" in line and len(line.split("#", 1)[1].strip()) > 10, f"{path.name}: no comment on {line!r}"
    rates = yaml.safe_load(text)["learning_rate"]
    assert set(rates) == set(cfg.METHODS), "a learning rate for every method"
    assert rates["full"] < rates["lora"] < rates["prompt_tuning"]


@pytest.mark.slow
@pytest.mark.parametrize("path", HPARAMS, ids=lambda p: p.stem)
def test_hparams_preset_dry_runs_on_tiny_demo(path, workspace):
    result = run_cli("train", f"preset={path.stem}", "dry_run=true", "run_name=preset", workspace=workspace.root,
                     timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = [workspace.runs_dir / r for r in workspace.run_ids()]
    status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    assert status["state"] == "completed" and status["dry_run"]["steps"] > 0, status
    config = cfg.from_yaml((run_dir / "config.yaml").read_text(encoding="utf-8"))
    expected = preset_overrides(path.stem, "lora")
    assert {k: cfg.to_flat(config)[k] for k in expected} == expected, "the run used the preset's values"


def test_keys_set_by_the_user_win_over_the_preset(tmp_path):
    workspace = Workspace(tmp_path)
    config = build_config(None, ["preset=quick", "lora_rank=32", "epochs=2"], workspace)
    assert (config.method.lora_rank, config.train.epochs) == (32, 2)
    assert config.train.grad_accum == preset_overrides("quick", "lora")["grad_accum"]
    assert config.train.probe_steps == 20, "the preset wins over the catalog's recommendation for tiny-demo"
    file = tmp_path / "mine.yaml"
    file.write_text("train:\n  cutoff_len: 512\n", encoding="utf-8")
    assert build_config(str(file), ["preset=balanced"], workspace).train.cutoff_len == 512


def test_each_method_gets_its_own_learning_rate(tmp_path):
    workspace = Workspace(tmp_path)
    assert build_config(None, ["preset=quality", "method=full"], workspace).train.learning_rate == 1e-5
    assert build_config(None, ["preset=quality"], workspace).train.learning_rate == 1e-4
    # no preset: the catalog's rate is a LoRA rate, so other methods get their own default
    catalog_lora = build_config(None, [], workspace).train.learning_rate
    assert catalog_lora == 0.002  # tiny-demo's recommendation (a random model needs a high rate)
    assert build_config(None, ["method=ia3"], workspace).train.learning_rate == METHOD_LEARNING_RATES["ia3"]
    assert build_config(None, ["method=full", "learning_rate=3e-4"], workspace).train.learning_rate == 3e-4


def test_an_unknown_preset_is_named_with_the_known_ones(tmp_path):
    with pytest.raises(cfg.ConfigError, match="unknown preset 'fast'; choose one of balanced, quality, quick"):
        cfg.apply_overrides(cfg.RunConfig(), {"preset": "fast"})
    result = run_cli("train", "preset=fast", workspace=tmp_path)
    assert result.returncode == 2 and "choose one of balanced, quality, quick" in result.stderr
