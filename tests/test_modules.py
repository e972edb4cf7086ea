"""Target modules come from the model's real layer names: tiny-demo's, a local folder's, a cached Hub config's
and a catalog model's without its config; a run naming a layer the model lacks is refused before it starts;
the Train tab's multiselect maps to and from the config's comma-separated text."""

from __future__ import annotations

import json

import pytest

from studio import config as cfg
from studio import jobs
from studio.models import modules
from studio.models.architecture import cached_config_path
from studio.ui import train_form as form

LLAMA_NAMES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 32064}  # phi3 pads with id 32000


def save_tiny_config(folder, model_type: str) -> None:
    """Write a config.json for a tiny random `model_type` model into `folder` (no weights are needed)."""
    from transformers import AutoConfig

    numbers = {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 128} if model_type == "gpt2" else TINY
    AutoConfig.for_model(model_type, **numbers).save_pretrained(folder)


def test_tiny_demo_offers_exactly_the_llama_projections_and_not_the_output_head(workspace):
    names = modules.linear_module_names(workspace, "tiny-demo")
    assert names == LLAMA_NAMES
    assert "lm_head" not in names
    assert form.module_choices(workspace, "tiny-demo") == ["all-linear", *LLAMA_NAMES]


@pytest.mark.parametrize(
    ("model_type", "names"),
    [
        ("qwen2", LLAMA_NAMES),
        ("phi3", ["o_proj", "qkv_proj", "gate_up_proj", "down_proj"]),  # fused attention and MLP projections
        ("gpt2", ["c_attn", "c_proj", "c_fc"]),  # transformers' Conv1D layers, which LoRA adapts too
    ],
)
def test_a_model_folder_in_the_workspace_offers_its_own_layer_names(workspace, model_type, names):
    folder = workspace.root / "my-models" / model_type
    save_tiny_config(folder, model_type)
    assert modules.linear_module_names(workspace, f"my-models/{model_type}") == names


def test_a_hub_model_offers_the_names_in_its_cached_config_and_only_all_linear_when_none_is_cached(workspace):
    cached = cached_config_path(workspace, "someone/tiny-phi")
    cached.parent.mkdir(parents=True)
    save_tiny_config(workspace.root / "phi", "phi3")
    cached.write_text((workspace.root / "phi" / "config.json").read_text())
    assert modules.linear_module_names(workspace, "someone/tiny-phi") == ["o_proj", "qkv_proj", "gate_up_proj", "down_proj"]
    assert form.module_choices(workspace, "someone/never-fetched") == ["all-linear"]


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"model_type": "my_secret_arch", "auto_map": {"AutoConfig": "x.Y"}}, "my_secret_arch"),  # code never run
        ({"model_type": "phi3", **TINY, "vocab_size": 128}, "phi3"),  # its padding id lies outside the vocabulary
    ],
)
def test_a_config_that_cannot_be_built_offers_only_all_linear(workspace, config, named):
    folder = workspace.root / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(modules.ModelInfoError, match=named):
        modules.linear_module_names(workspace, "custom")
    assert form.module_choices(workspace, "custom") == ["all-linear"]
    assert modules.target_problems(workspace, cfg.apply_overrides(cfg.RunConfig(), {"model": "custom", "lora_targets": "x"})) == []


@pytest.mark.parametrize(
    ("model", "names"),
    [
        ("phi-4-mini-instruct", ["o_proj", "qkv_proj", "gate_up_proj", "down_proj"]),
        ("qwen3-30b-a3b", ["q_proj", "k_proj", "v_proj", "o_proj"]),  # its experts are not Linear layers
        ("gemma-2-2b-it", LLAMA_NAMES),
    ],
)
def test_a_catalog_model_offers_its_family_names_without_its_config_json(workspace, model, names):
    assert modules.linear_module_names(workspace, model) == names


def test_a_run_naming_a_layer_the_model_lacks_is_refused_before_any_run_folder(workspace):
    config = cfg.apply_overrides(cfg.RunConfig(), {"lora_targets": "q_proj,nope"})
    assert cfg.validate(config) == []  # well-formed names: only the model can say `nope` is not one of them
    with pytest.raises(cfg.ConfigError) as error:
        jobs.create_run(workspace, config)
    (problem,) = error.value.problems
    assert problem.key == "lora_targets"
    assert "nope" in problem.message and "q_proj" not in problem.message.split(":")[0]
    assert "gate_proj" in problem.message  # the names it may use
    assert not workspace.runs_dir.exists() or not any(workspace.runs_dir.iterdir())


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        ({"lora_targets": "q_proj, self_attn.v_proj"}, False),  # a name or the end of a layer's path, as PEFT matches
        ({"lora_targets": "all-linear"}, False),
        ({"lora_targets": "attn"}, True),  # part of a name is not a layer
        ({"method": "full", "lora_targets": "nope"}, False),  # lora_targets does not apply to full fine-tuning
    ],
)
def test_which_targets_are_refused(workspace, overrides, refused):
    config = cfg.apply_overrides(cfg.RunConfig(), overrides)
    assert bool(modules.target_problems(workspace, config)) == refused


def test_the_multiselect_shows_the_names_in_the_configs_text():
    assert form.names_from_text("q_proj, v_proj") == ["q_proj", "v_proj"]
    assert form.names_from_text("all-linear") == ["all-linear"]
    assert form.names_from_text("") == []
    config, problems = form.config_from_values({"lora_targets": "k_proj,o_proj"})  # what the page's join makes
    assert problems == [] and config.method.lora_targets == "k_proj,o_proj"


def test_listing_layer_names_leaves_models_built_by_other_threads_real(monkeypatch):
    """The studio serves requests in threads: while one lists a model's layers on the meta device, a chat model
    loading in another thread must still get real tensors."""
    import threading

    import torch
    import transformers

    inside, release = threading.Event(), threading.Event()

    def from_config(config, **kwargs):  # stands in for building the model: wait here, inside the meta context
        inside.set()
        release.wait(10)
        return torch.nn.Linear(4, 4)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_config", from_config)
    lister = threading.Thread(target=modules._linear_paths, args=(transformers.LlamaConfig(),))
    lister.start()
    try:
        assert inside.wait(10)
        assert torch.nn.Linear(2, 2).weight.device.type == "cpu"  # built while the other thread is on meta
    finally:
        release.set()
        lister.join()
