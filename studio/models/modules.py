"""The names of a model's linear layers: what `lora_targets` may name, and the check that it names only those.

The model is built from its config on PyTorch's meta device (`with torch.device("meta")`, which is local to the
calling thread, unlike accelerate's `init_empty_weights`, which patches torch for every thread of the studio
and so would turn a chat model loading at the same moment into empty tensors): no weights
are read or allocated, and code from a model's repository never runs (`trust_remote_code` is never set here),
so a model whose architecture transformers does not know has no names to offer. The config comes from:

- tiny-demo and a folder in the workspace: the folder's config.json;
- a Hugging Face id (a catalog model's or any other): its config.json as the memory estimate cached it in the
  workspace (studio/models/architecture.py), or the Hugging Face cache's copy. Nothing is downloaded here;
- a catalog model whose config.json is in neither place: a transformers config made from the catalog's
  architecture numbers, with the model type its Hub id names (llama, qwen2, qwen3, mistral, mixtral, gemma2,
  gemma3, phi3). The layer names come from the architecture's code, so they are the real model's; only
  settings the catalog does not record (e.g. a vision tower's size) are transformers' defaults. A catalog
  model of another family gets the names the memory estimate assumes (Architecture.linear_shapes).
"""

from __future__ import annotations

import functools
from pathlib import Path

from studio import config as cfg
from studio.hf_import import import_transformers
from studio.models.architecture import (
    Architecture,
    ModelInfoError,
    cached_config_path,
    read_config_json,
)
from studio.models.catalog import load_catalog, resolve_model
from studio.workspace import PathError, Workspace

ALL_LINEAR = "all-linear"
OUTPUT_HEADS = ("lm_head", "score")  # the output layer of a causal LM and of a reward model: never adapted
# (text in a catalog entry's Hub id, lower case; transformers model type), first match wins
HUB_ID_MODEL_TYPES = (
    ("mixtral", "mixtral"), ("mistral", "mistral"), ("qwen3", "qwen3"), ("qwen", "qwen2"), ("gemma-3", "gemma3"),
    ("gemma-2", "gemma2"), ("phi-", "phi3"), ("llama", "llama"), ("smollm", "llama"),
)


def _linear_paths(config) -> tuple[str, ...]:
    """The dotted paths of every linear layer (torch Linear or transformers' Conv1D) of the causal LM that
    `config` describes, built without weights; the output head is left out."""
    import torch
    import_transformers()
    from transformers import AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except Exception as error:  # a config.json's values reach the layers' constructors, which fail in many ways
        raise ModelInfoError(f"cannot build a {config.model_type} model from its config to list its layers: {error}") from error
    return tuple(
        path for path, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, Conv1D)) and path.rsplit(".", 1)[-1] not in OUTPUT_HEADS
    )


@functools.lru_cache(maxsize=32)
def _paths_from_config_file(path: str, _mtime: float) -> tuple[str, ...]:
    import_transformers()
    from transformers import CONFIG_MAPPING

    data = read_config_json(Path(path))
    model_type = str(data.get("model_type", ""))
    if model_type not in CONFIG_MAPPING:
        raise ModelInfoError(
            f"{path} is a {model_type or 'unnamed'} model, an architecture transformers does not know; "
            "its layers are not listed (code from a model's repository is never run to list them)"
        )
    try:
        config = CONFIG_MAPPING[model_type].from_dict(data)
    except Exception as error:  # whatever the file holds reaches the config class's checks
        raise ModelInfoError(f"{path} does not describe a {model_type} model transformers can build: {error}") from error
    return _linear_paths(config)


def _catalog_model_type(hub_id: str, architecture: Architecture) -> str | None:
    """The transformers model type of a catalog model, from its Hub id; None for a family not listed."""
    lowered = hub_id.lower()
    model_type = next((kind for text, kind in HUB_ID_MODEL_TYPES if text in lowered), None)
    if model_type == "qwen3" and architecture.num_experts:
        return "qwen3_moe"
    if model_type == "gemma3" and not architecture.other_params:
        return "gemma3_text"  # the 1B model has no vision tower
    return model_type


@functools.lru_cache(maxsize=32)
def _paths_from_catalog(name: str) -> tuple[str, ...]:
    import_transformers()
    from transformers import AutoConfig

    preset = load_catalog()[name]
    arch = Architecture.from_dict(preset.architecture)
    model_type = _catalog_model_type(preset.hub_id or "", arch)
    if model_type is None:
        return tuple(arch.linear_shapes())
    numbers = {
        "hidden_size": arch.hidden_size, "num_hidden_layers": arch.num_layers, "num_attention_heads": arch.num_heads,
        "num_key_value_heads": arch.num_kv_heads, "head_dim": arch.head_dim, "intermediate_size": arch.intermediate_size,
        "vocab_size": arch.vocab_size, "tie_word_embeddings": arch.tied_embeddings, "max_position_embeddings": arch.max_positions,
    }
    if arch.num_experts:
        numbers.update(num_experts=arch.num_experts, num_local_experts=arch.num_experts,
                       num_experts_per_tok=arch.experts_per_token, moe_intermediate_size=arch.moe_intermediate_size)
    if model_type == "gemma3":  # a vision-language model: the numbers are its language model's
        return _linear_paths(AutoConfig.for_model(model_type, text_config=numbers))
    return _linear_paths(AutoConfig.for_model(model_type, **numbers))


def _cached_hub_config(workspace: Workspace, hub_id: str) -> Path | None:
    """The config.json of `hub_id` as cached in the workspace or the Hugging Face cache; None when neither has it."""
    from huggingface_hub import try_to_load_from_cache

    ours = cached_config_path(workspace, hub_id)
    if ours.is_file():
        return ours
    try:
        theirs = try_to_load_from_cache(hub_id, "config.json")
    except ValueError:  # not a valid repository id
        return None
    return Path(theirs) if isinstance(theirs, str) else None


def linear_module_paths(workspace: Workspace, model: str) -> tuple[str, ...]:
    """The dotted paths of model choice `model`'s linear layers (output head excluded), e.g.
    `model.layers.0.self_attn.q_proj`. ModelInfoError or PathError say why they cannot be known offline."""
    source = resolve_model(workspace, model)  # tiny-demo is built on first use; a path must lie in the workspace
    config_file = Path(source) / "config.json" if Path(source).is_absolute() else _cached_hub_config(workspace, source)
    if config_file is not None and config_file.is_file():
        return _paths_from_config_file(str(config_file), config_file.stat().st_mtime)
    if model.strip() in load_catalog():
        return _paths_from_catalog(model.strip())
    raise ModelInfoError(
        f"config.json of {source} is not cached: open the model's memory estimate once while online, "
        "or pick a catalog model or a folder in the workspace"
    )


def linear_module_names(workspace: Workspace, model: str) -> list[str]:
    """The distinct names (last path part, e.g. q_proj, gate_up_proj) of model choice `model`'s linear layers,
    in the order the model holds them; the output head (lm_head, score) is not among them. ModelInfoError or
    PathError say why they cannot be known offline."""
    return _distinct_names(linear_module_paths(workspace, model))


def _distinct_names(paths: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(path.rsplit(".", 1)[-1] for path in paths))


def target_problems(workspace: Workspace, config: cfg.RunConfig) -> list[cfg.Problem]:
    """A problem naming each module in the config's `lora_targets` that is not a linear layer of its model
    (PEFT's rule: a layer's path or the end of one, after a dot), with the names it may use. Empty when
    lora_targets is all-linear or does not apply to the method, and when the model's layers cannot be known
    offline (then PEFT says so when the run starts)."""
    applies_to = dict(cfg.field_info("lora_targets").metadata.get("show_when") or {}).get("method", ())
    targets = config.method.lora_targets.strip()
    if config.method.method not in applies_to or targets == ALL_LINEAR:
        return []
    model = config.model.model
    try:
        paths = linear_module_paths(workspace, model)
    except (ModelInfoError, PathError):
        return []
    wanted = [name.strip() for name in targets.split(",") if name.strip()]
    unknown = [name for name in wanted if not any(path == name or path.endswith("." + name) for path in paths)]
    if not unknown:
        return []
    names = ", ".join(_distinct_names(paths))
    return [cfg.Problem("lora_targets", f"{', '.join(unknown)}: not a linear module of {model}; use {ALL_LINEAR} or some of: {names}")]
