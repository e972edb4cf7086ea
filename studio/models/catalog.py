"""The model catalog (presets/models/*.yaml) and turning a model choice into something loadable.

Each entry: hub id, licence, chat-template family, default LoRA targets, the size it is known by, the
architecture numbers (so memory estimates work offline; see studio/models/architecture.py) and the
hyperparameters recommended for it."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.models.demo import DEMO_NAME, ensure_demo_model
from studio.safe_yaml import read_yaml_file
from studio.workspace import PRESETS_DIR, PathError, Workspace

MODELS_DIR = PRESETS_DIR / "models"
NAME_IN_MODELS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # a folder name in workspace/models


@dataclass
class ModelPreset:
    """One catalog entry: where the weights come from and what works well with them."""

    name: str
    hub_id: str | None
    license: str = ""
    template: str = ""
    lora_targets: str = "all-linear"
    params_b: float = 0.0  # the size the model is known by, in billions of parameters (its model card)
    architecture: dict[str, Any] = field(default_factory=dict)
    recommended: dict[str, Any] = field(default_factory=dict)


_parsed: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}  # file -> ((mtime, size), its YAML as read)


def _read_preset_file(path: Path) -> dict[str, Any]:
    """The YAML of one catalog file, read again only when the file changed (the Train tab asks for the
    catalog once per field it builds, and each handler asks again: parsing every file each time took seconds)."""
    stat = path.stat()
    signature = (stat.st_mtime_ns, stat.st_size)
    cached = _parsed.get(path)
    if cached is None or cached[0] != signature:
        cached = _parsed[path] = (signature, read_yaml_file(path))
    return copy.deepcopy(cached[1])  # callers get entries of their own to change


def load_catalog() -> dict[str, ModelPreset]:
    """Every preset in presets/models, by name, in file-name order."""
    presets = {}
    for path in sorted(MODELS_DIR.glob("*.yaml")):
        preset = ModelPreset(**_read_preset_file(path))
        presets[preset.name] = preset
    return presets


def recommended_overrides(model: str) -> dict[str, Any]:
    """Hyperparameters the catalog recommends for `model`, its LoRA targets included (empty for models not
    in the catalog)."""
    preset = load_catalog().get(model)
    return {"lora_targets": preset.lora_targets, **preset.recommended} if preset else {}


def recommended_keys() -> set[str]:
    """Every config key the catalog recommends a value of for some model: what a change of model re-sets."""
    return {key for preset in load_catalog().values() for key in ("lora_targets", *preset.recommended)}


def is_hub_model(workspace: Workspace, model: str) -> bool:
    """True when `model` is fetched from the Hugging Face Hub (a preset with a hub id, or an `org/name` id
    that is not a folder in the workspace): only then does the worker need the user's Hub token."""
    model = model.strip()
    preset = load_catalog().get(model)
    if preset is not None:
        return preset.hub_id is not None
    return not model.startswith((".", "/", "~")) and not (workspace.root / model).exists() and model.count("/") == 1


PICKLE_WEIGHTS = ("pytorch_model*.bin", "model*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def _refuse_pickled_weights(folder, model: str) -> None:
    """PathError when the folder's weights exist only as pickles (which can run code when loaded)."""
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted({path.name for pattern in PICKLE_WEIGHTS for path in folder.glob(pattern)})
    if pickles:
        raise PathError(
            f"{model}: this model's weights are a pickle ({', '.join(pickles[:3])}); only safetensors are loaded. "
            "Convert them where you trust the file: load the model with transformers and save_pretrained() it again "
            "(it writes model.safetensors)"
        )


def resolve_model(workspace: Workspace, model: str) -> str:
    """What to pass to `from_pretrained` for a model choice: a local folder or a Hugging Face id.

    `tiny-demo` is built on first use; a preset name maps to its hub id; a path (absolute, or starting with
    `.` or `/`, or an existing folder in the workspace) must lie inside the workspace or an allowed folder."""
    model = model.strip()
    if model == DEMO_NAME:
        return str(ensure_demo_model(workspace.models_dir))
    preset = load_catalog().get(model)
    if preset and preset.hub_id:
        return preset.hub_id
    if NAME_IN_MODELS.match(model) and (workspace.models_dir / model / "config.json").is_file():
        return str(workspace.models_dir / model)  # an imported (or otherwise saved) model in workspace/models
    looks_like_path = model.startswith((".", "/", "~")) or (workspace.root / model).exists()
    if looks_like_path:
        folder = workspace.confine(model)
        if folder.suffix.lower() == ".gguf":
            raise PathError(f"{model} is a GGUF file; import it as a model folder first: python -m studio model "
                            f"import {model} (or the Model tab's GGUF import), then choose the model by its name")
        if not (folder / "config.json").is_file():
            raise PathError(f"{model} has no config.json; choose a folder saved with save_pretrained")
        _refuse_pickled_weights(folder, model)
        return str(folder)
    if model.count("/") != 1 or any(part == "" for part in model.split("/")):
        raise PathError(
            f"{model!r} is not tiny-demo, a catalog preset, a local folder or a Hugging Face id like Qwen/Qwen2.5-0.5B-Instruct"
        )
    return model


def local_models(workspace: Workspace) -> list[str]:
    """Names of the model folders in workspace/models (imported GGUF models, tiny-demo once built), sorted."""
    return sorted(p.name for p in workspace.models_dir.iterdir()
                  if NAME_IN_MODELS.match(p.name) and (p / "config.json").is_file())


def model_choices(workspace: Workspace) -> list[str]:
    """Every model a user can pick by name: the catalog, then the folders in workspace/models."""
    catalog = list(load_catalog())
    return catalog + [name for name in local_models(workspace) if name not in catalog]
