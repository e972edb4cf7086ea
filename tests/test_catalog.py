"""The model catalog: every entry complete, its architecture numbers giving the size the model is known by,
and config.json reading (local folders as plain JSON; Hub ids fetched, or a clear message offline)."""

from __future__ import annotations

import json

import pytest

from studio.models.architecture import (
    Architecture,
    ModelInfoError,
    from_hf_config,
    model_architecture,
)
from studio.models.catalog import load_catalog, recommended_overrides, resolve_model
from studio.workspace import Workspace

CATALOG = load_catalog()
REAL_MODELS = [name for name in CATALOG if name != "tiny-demo"]


def test_catalog_has_at_least_25_current_models_from_half_a_billion_to_70b():
    assert len(REAL_MODELS) >= 25
    sizes = [CATALOG[n].params_b for n in REAL_MODELS]
    assert min(sizes) <= 0.5 and max(sizes) >= 70
    families = {n.split("-")[0] for n in REAL_MODELS}
    assert {"qwen2.5", "qwen3", "llama", "mistral", "gemma", "phi", "deepseek", "smollm2"} <= families


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_entry_is_complete(name):
    preset = CATALOG[name]
    assert preset.license and preset.template and preset.lora_targets and preset.params_b > 0
    assert name == "tiny-demo" or preset.hub_id.count("/") == 1
    arch = Architecture.from_dict(preset.architecture)
    assert arch.num_heads % arch.num_kv_heads == 0, "query heads must be a multiple of the KV heads"
    assert arch.max_positions >= 512
    assert (arch.num_experts == 0) == (arch.experts_per_token == 0)


@pytest.mark.parametrize("name", REAL_MODELS)
def test_architecture_numbers_give_the_size_the_model_is_known_by(name):
    preset = CATALOG[name]
    computed = Architecture.from_dict(preset.architecture).total_params() / 1e9
    assert computed == pytest.approx(preset.params_b, rel=0.03), f"{name}: {computed:.3f}B from its numbers vs {preset.params_b}B"


def test_tiny_demo_numbers_count_exactly_the_parameters_of_the_built_model(tmp_path):
    from transformers import AutoModelForCausalLM

    workspace = Workspace(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(workspace, "tiny-demo"))
    real = sum(p.numel() for p in model.parameters())
    assert Architecture.from_dict(CATALOG["tiny-demo"].architecture).total_params() == real
    assert model_architecture(workspace, "tiny-demo") == Architecture.from_dict(CATALOG["tiny-demo"].architecture)


def test_tiny_demo_is_the_same_model_when_several_page_events_first_ask_for_it_at_once(tmp_path, tiny_demo_dir):
    # a fresh studio's first page load resolves the model from several events at once; each first start must
    # still build the one tiny-demo (the demo's trained answers depend on it)
    import threading

    from studio.models.demo import ensure_demo_model

    askers = [threading.Thread(target=ensure_demo_model, args=(tmp_path,)) for _ in range(3)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    built = (tmp_path / "tiny-demo" / "model.safetensors").read_bytes()
    assert built == (tiny_demo_dir / "model.safetensors").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-demo"]  # no half-built folder left beside it


def test_building_tiny_demo_writes_nothing_to_the_terminal(tmp_path, capfd):
    # the studio's first start builds it: its terminal shows the studio's URL, not transformers' shard bar
    from transformers.utils import logging as hf_logging

    from studio.models.demo import ensure_demo_model

    shown_before = hf_logging.is_progress_bar_enabled()
    ensure_demo_model(tmp_path)
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("", "")
    assert hf_logging.is_progress_bar_enabled() == shown_before  # other loads draw their bars as they did


def test_existing_keys_still_work():
    assert recommended_overrides("tiny-demo")["learning_rate"] == 0.002
    assert recommended_overrides("not-in-catalog") == {}


def _config_folder(workspace: Workspace, name: str, config) -> str:
    folder = workspace.root / "models" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
    return f"models/{name}"


@pytest.mark.parametrize("kind", ["llama", "phi3", "mixtral"])
def test_config_json_of_a_local_folder_counts_the_parameters_transformers_builds(tmp_path, kind):
    import transformers

    small = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300}
    config = {
        "llama": lambda: transformers.LlamaConfig(**small, tie_word_embeddings=True),
        "phi3": lambda: transformers.Phi3Config(**small, pad_token_id=0),
        "mixtral": lambda: transformers.MixtralConfig(**small, num_local_experts=4, num_experts_per_tok=2),
    }[kind]()
    workspace = Workspace(tmp_path)
    arch = model_architecture(workspace, _config_folder(workspace, kind, config))
    model = transformers.AutoModelForCausalLM.from_config(config)
    assert arch.total_params() == sum(p.numel() for p in model.parameters())
    assert arch.fused_projections == (kind == "phi3")


def test_multimodal_config_reads_its_text_part():
    arch = from_hf_config({"model_type": "gemma3", "text_config": {"hidden_size": 2560, "num_hidden_layers": 34, "num_attention_heads": 8,
                           "num_key_value_heads": 4, "head_dim": 256, "intermediate_size": 10240, "vocab_size": 262208}})
    assert (arch.hidden_size, arch.num_layers, arch.head_dim, arch.vocab_size) == (2560, 34, 256, 262208)


def test_folder_without_config_and_odd_config_are_named(tmp_path):
    workspace = Workspace(tmp_path)
    (tmp_path / "models" / "empty").mkdir(parents=True)
    with pytest.raises(ValueError, match="has no config.json"):
        model_architecture(workspace, "models/empty")
    (tmp_path / "models" / "odd").mkdir()
    (tmp_path / "models" / "odd" / "config.json").write_text('{"model_type": "resnet"}', encoding="utf-8")
    with pytest.raises(ModelInfoError, match="lacks hidden_size"):
        model_architecture(workspace, "models/odd")


def test_remote_code_is_never_run_to_estimate(tmp_path):
    workspace = Workspace(tmp_path)
    folder = tmp_path / "models" / "custom"
    folder.mkdir(parents=True)
    (folder / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n", encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({"auto_map": {"AutoConfig": "modeling_evil.EvilConfig"}, "hidden_size": 64,
                                                    "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100}), encoding="utf-8")
    assert model_architecture(workspace, "models/custom").hidden_size == 64


def test_hub_id_offline_says_so_plainly_and_a_cached_config_works_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    workspace = Workspace(tmp_path)
    with pytest.raises(ModelInfoError, match="not reachable from here"):
        model_architecture(workspace, "SomeOrg/some-model")
    from studio.models.architecture import cached_config_path

    cached = cached_config_path(workspace, "SomeOrg/some-model")
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps({"hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4, "vocab_size": 1000}), encoding="utf-8")
    assert model_architecture(workspace, "SomeOrg/some-model").num_layers == 3
