"""A model's architecture numbers (what the memory estimate needs), from the catalog or from a config.json.

Catalog models carry their numbers in presets/models/*.yaml, so estimates work offline. Any other model is
read from its config.json: a local folder's file is read as plain JSON (no code from the model ever runs to
estimate), and a Hugging Face id's config.json is fetched once with huggingface_hub and cached in the
workspace (workspace/models/configs/), so later estimates work offline too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from studio.workspace import PathError, Workspace

CONFIG_CACHE = "configs"  # under workspace/models/
MLP_MODULES = ("gate_proj", "up_proj", "down_proj", "gate_up_proj")


class ModelInfoError(ValueError):
    """The architecture of a model cannot be known (offline and not cached, no config.json, odd config)."""


@dataclass(frozen=True)
class Architecture:
    """The numbers that size a decoder-only transformer. MoE models have `num_experts` > 0 experts of
    `moe_intermediate_size` each, `experts_per_token` of them active per token."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool = False
    max_positions: int = 4096
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    other_params: int = 0  # parameters outside the language model (e.g. a vision tower), loaded all the same
    fused_projections: bool = False  # Phi-3 style: one qkv_proj and one gate_up_proj instead of three and two

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        """Build from a catalog entry's `architecture` mapping; ModelInfoError names a missing or bad key."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ModelInfoError(f"unknown architecture keys {sorted(unknown)}; known: {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ModelInfoError(f"architecture is incomplete: {error}") from error

    def to_dict(self) -> dict[str, Any]:
        """The numbers as a plain mapping (the catalog's `architecture` format)."""
        return asdict(self)

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each linear layer inside one decoder layer, by module name. For an
        MoE model the MLP names are one expert's; `experts_in_layer` says how many there are."""
        h, q, kv = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        mlp = self.moe_intermediate_size if self.num_experts else self.intermediate_size
        if self.fused_projections:
            return {"qkv_proj": (h, q + 2 * kv), "o_proj": (q, h), "gate_up_proj": (h, 2 * mlp), "down_proj": (mlp, h)}
        return {
            "q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
            "gate_proj": (h, mlp), "up_proj": (h, mlp), "down_proj": (mlp, h),
        }

    @property
    def experts_in_layer(self) -> int:
        """How many copies of the MLP projections one layer holds (1 for a dense model)."""
        return max(1, self.num_experts)

    def layer_params(self) -> int:
        """Parameters of one decoder layer: attention, MLP (every expert), router and two norms."""
        router = self.hidden_size * self.num_experts
        return self.linear_params() // self.num_layers + router + 2 * self.hidden_size

    def embedding_params(self) -> int:
        """Input embedding plus output head (counted once when they are tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    def total_params(self) -> int:
        """Every parameter the model loads (embeddings, layers, final norm, anything outside the LM)."""
        return self.embedding_params() + self.num_layers * self.layer_params() + self.hidden_size + self.other_params

    def linear_params(self) -> int:
        """Parameters in the decoder layers' linear projections: what 4-/8-bit quantisation compresses."""
        per_layer = sum(i * o * self.copies(name) for name, (i, o) in self.linear_shapes().items())
        return self.num_layers * per_layer

    def copies(self, module: str) -> int:
        """How many copies of linear `module` one layer holds: every expert has its own MLP projections."""
        return self.experts_in_layer if module in MLP_MODULES else 1


def _first(config: dict[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if config.get(name) is not None:
            return config[name]
    return default


def from_hf_config(config: dict[str, Any], source: str = "config.json") -> Architecture:
    """Read the architecture from a transformers config.json mapping (text part of multimodal configs too);
    ModelInfoError names what is missing."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    try:
        hidden = int(_first(text, "hidden_size", "n_embd", "d_model"))
        layers = int(_first(text, "num_hidden_layers", "n_layer", "num_layers"))
        heads = int(_first(text, "num_attention_heads", "n_head"))
        vocab = int(_first(text, "vocab_size", default=_first(config, "vocab_size")))
    except (TypeError, ValueError) as error:
        raise ModelInfoError(
            f"{source} lacks hidden_size, num_hidden_layers, num_attention_heads or vocab_size: "
            "the estimate needs a decoder-only transformer's config"
        ) from error
    experts = int(_first(text, "num_local_experts", "num_experts", "n_routed_experts", default=0) or 0)
    tied = _first(text, "tie_word_embeddings", default=_first(config, "tie_word_embeddings", default=True))
    return Architecture(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=int(_first(text, "num_key_value_heads", "num_kv_heads", default=heads)),
        head_dim=int(_first(text, "head_dim", default=hidden // heads)),
        intermediate_size=int(_first(text, "intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)),
        vocab_size=vocab,
        tied_embeddings=bool(tied),
        max_positions=int(_first(text, "max_position_embeddings", "n_positions", "max_seq_len", default=4096)),
        num_experts=experts,
        experts_per_token=int(_first(text, "num_experts_per_tok", "moe_topk", default=0) or 0) if experts else 0,
        moe_intermediate_size=int(_first(text, "moe_intermediate_size", "intermediate_size", default=0)) if experts else 0,
        fused_projections=str(_first(config, "model_type", default="")).startswith("phi3"),
    )


def read_config_json(path: Path) -> dict[str, Any]:
    """The mapping in a config.json file, read as plain JSON; ModelInfoError when it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ModelInfoError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise ModelInfoError(f"{path} is not a JSON object")
    return data


def read_config_file(path: Path) -> Architecture:
    """The architecture in a config.json file, read as plain JSON; ModelInfoError when it cannot be read."""
    return from_hf_config(read_config_json(path), str(path))


def cached_config_path(workspace: Workspace, hub_id: str) -> Path:
    """Where the config.json of Hub model `hub_id` is cached in the workspace."""
    return workspace.models_dir / CONFIG_CACHE / (hub_id.replace("/", "__") + ".json")


def fetch_hub_config(workspace: Workspace, hub_id: str) -> Path:
    """The cached config.json of `hub_id`, downloaded with huggingface_hub on first use.

    ModelInfoError says plainly when it cannot be fetched (offline, unknown or gated model)."""
    cached = cached_config_path(workspace, hub_id)
    if cached.is_file():
        return cached
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
    )

    try:
        downloaded = Path(hf_hub_download(hub_id, "config.json"))
    except HfHubHTTPError as error:
        raise ModelInfoError(f"the Hub refused config.json of {hub_id} (unknown, private or gated model?): {error}") from error
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, OSError) as error:
        raise ModelInfoError(
            f"cannot fetch config.json of {hub_id}: the Hugging Face Hub is not reachable from here (offline). "
            "Pick a catalog model, or a folder in the workspace that holds the model's config.json"
        ) from error
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(downloaded.read_bytes())
    return cached


def model_architecture(workspace: Workspace, model: str, allow_download: bool = True) -> Architecture:
    """The architecture of a model choice: a catalog entry (offline), a local folder's config.json, or a
    Hugging Face id's config.json (fetched and cached; only the cache when `allow_download` is false).
    ModelInfoError or PathError say why not."""
    from studio.models.catalog import NAME_IN_MODELS, load_catalog

    model = model.strip()
    preset = load_catalog().get(model)
    if preset is not None:
        return Architecture.from_dict(preset.architecture)
    imported = workspace.models_dir / model / "config.json"
    if NAME_IN_MODELS.match(model) and imported.is_file():  # an imported model, chosen by its name
        return read_config_file(imported)
    looks_like_path = model.startswith((".", "/", "~")) or (workspace.root / model).exists()
    if looks_like_path:
        folder = workspace.confine(model)
        if not (folder / "config.json").is_file():
            raise PathError(f"{model} has no config.json; choose a folder saved with save_pretrained")
        return read_config_file(folder / "config.json")
    if model.count("/") != 1 or any(part == "" for part in model.split("/")):
        raise ModelInfoError(f"{model!r} is not a catalog model, a folder in the workspace or a Hugging Face id like Qwen/Qwen2.5-0.5B-Instruct")
    if not allow_download and not cached_config_path(workspace, model).is_file():
        raise ModelInfoError(f"config.json of {model} is not cached yet: open the estimate once while online")
    return read_config_file(fetch_hub_config(workspace, model))
