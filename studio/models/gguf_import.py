"""Import a GGUF file (llama.cpp's and Ollama's model format) as an ordinary model folder in the workspace.

transformers reads GGUF (with the `gguf` package): it parses the metadata into a config and a tokenizer, and
de-quantizes every tensor into a dense one. What comes out is a plain model whose weights no longer depend on
the file's quantization, so it is saved as safetensors in `workspace/models/NAME` with its tokenizer, chat
template and a note of where it came from (IMPORT_NOTE). Train, chat, evaluate and export then treat it like any
other model folder: name it as `NAME` or `models/NAME`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from studio.hf_import import import_transformers
from studio.workspace import PathError, Workspace

IMPORT_NOTE = "gguf_import.json"  # in the model folder: the source file, its checksum, architecture and quant types
DTYPES = {"auto": None, "bf16": "bfloat16", "f16": "float16", "f32": "float32"}
# Float tensor types the file may hold as they are; the quantized ones are checked against gguf's dequantizers.
FLOAT_TYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Metadata readers refuse these before any weights are read (they are not causal LMs the studio can train).
_PATCH_LOCK = threading.Lock()
NOT_CHAT_MODELS = {"t5", "t5encoder", "umt5", "bert", "nomic-bert", "clip"}


class GGUFImportError(ValueError):
    """A GGUF file the studio cannot import: not GGUF, an unsupported architecture or quantization type."""


@dataclass
class GGUFInfo:
    """What a GGUF file's metadata says, read without loading its weights."""

    path: str
    architecture: str
    name: str
    tensor_types: dict[str, int]  # quantization type name -> how many tensors have it
    parameters: int
    vocab_size: int
    context_length: int
    chat_template: str
    tokenizer_pre: str  # llama.cpp's pre-tokenizer name (e.g. smollm), kept for a later GGUF export


def supported_architectures() -> list[str]:
    """The GGUF architectures transformers can read (and so the studio can import), sorted."""
    import_transformers()
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer") and a not in NOT_CHAT_MODELS)


def supported_quant_types() -> list[str]:
    """The tensor types the installed `gguf` package can de-quantize, plus the plain float types."""
    from gguf import GGMLQuantizationType
    from gguf.quants import _type_traits

    return sorted({*FLOAT_TYPES, *(GGMLQuantizationType(t).name for t in _type_traits)})


def read_info(path: Path) -> GGUFInfo:
    """The metadata of GGUF file `path`; GGUFImportError when it is not a GGUF file, or its architecture or a
    tensor type cannot be read (the message names it and lists what can). Reads the header and tensor table
    only, with transformers' own header reader (milliseconds; gguf's GGUFReader takes seconds on a big vocabulary)."""
    import numpy as np
    from gguf import GGMLQuantizationType
    import_transformers()
    from transformers.integrations.gguf.reader import GgufHeader, read_gguf_metadata

    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise GGUFImportError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        metadata, _names = read_gguf_metadata(str(path))
        arch = str(metadata.get("general.architecture", ""))
        tensors = GgufHeader.from_file(str(path)).tensors if arch in supported_architectures() else ()
    except (ValueError, OSError, KeyError, IndexError) as error:  # a truncated or corrupt file
        raise GGUFImportError(f"{path} could not be read as GGUF: {error}") from error
    if arch not in supported_architectures():
        raise GGUFImportError(f"{path.name} holds a {arch or 'unnamed'} model; the studio imports these GGUF "
                              f"architectures: {', '.join(supported_architectures())}")
    types = Counter(GGMLQuantizationType(t.ggml_type).name for t in tensors)
    unknown = sorted(set(types) - set(supported_quant_types()))
    if unknown:
        raise GGUFImportError(f"{path.name} has tensors quantized as {', '.join(unknown)}, which the installed gguf "
                              f"package cannot de-quantize; supported: {', '.join(supported_quant_types())}")
    tokens = metadata.get("tokenizer.ggml.tokens", 0)  # string arrays come back as their length
    return GGUFInfo(
        path=str(path), architecture=arch, name=str(metadata.get("general.name", path.stem)),
        tensor_types=dict(types), parameters=int(sum(int(np.prod(t.shape)) for t in tensors)),
        vocab_size=tokens if isinstance(tokens, int) else len(tokens),
        context_length=int(metadata.get(f"{arch}.context_length", 0)),
        chat_template=str(metadata.get("tokenizer.chat_template", "")),
        tokenizer_pre=str(metadata.get("tokenizer.ggml.pre", "")),
    )


def default_name(path: Path) -> str:
    """The model folder name an import gets by default: the file name without .gguf, cleaned to a safe name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.")[:64] or "imported"


def check_name(workspace: Workspace, name: str) -> Path:
    """The new folder `workspace/models/NAME`; PathError when the name is unusable or the folder exists."""
    if not NAME_PATTERN.match(name):
        raise PathError(f"model name {name!r} must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)")
    folder = workspace.models_dir / name
    if folder.exists():
        raise PathError(f"{folder} already exists; choose another --name or delete that folder")
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _target_dtype(info: GGUFInfo, dtype: str):
    """The torch dtype to save in: the one asked for, or the file's float type; bf16 for a quantized file."""
    import torch

    if dtype not in DTYPES:
        raise GGUFImportError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if DTYPES[dtype]:
        return getattr(torch, DTYPES[dtype])
    # Norms are F32 in every file; the big matrices say what the model was stored in.
    weights = [t for t in info.tensor_types if t != "F32"] or ["F32"]
    return getattr(torch, FLOAT_TYPES[weights[0]]) if len(weights) == 1 and weights[0] in FLOAT_TYPES else torch.bfloat16


@contextlib.contextmanager
def _parsed_once():
    """While importing, gguf's reader parses the file once and its tensor-name map is built once. transformers'
    loader parses the file for the tokenizer, the config and the weights (3-7 s each for SmolLM2's 49,152 tokens
    and 48,900 merges) and builds the name map for every module (397 times, 25 ms each); both depend only on their
    arguments and are read, never changed."""
    import gguf

    with _PATCH_LOCK:  # one import at a time swaps the functions, so each puts back the real ones
        originals = gguf.GGUFReader, gguf.get_tensor_name_map
        gguf.GGUFReader = functools.lru_cache(maxsize=2)(originals[0])
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=8)(originals[1])
        try:
            yield
        finally:
            gguf.GGUFReader, gguf.get_tensor_name_map = originals


def load_dequantized(path: Path, dtype, progress: Callable[[float, str], None] = lambda fraction, step: None) -> tuple:
    """(model, tokenizer) read from GGUF file `path` by transformers, the weights de-quantized to `dtype`. The
    model is returned as a plain one: the GGUF quantizer transformers attaches only records where the weights came
    from (they are dense tensors now), and it would make save_pretrained refuse the model."""
    import_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with _parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        progress(0.3, "de-quantizing weights")
        # dequantize=True: every weight unpacked now, even where a GGUF matmul kernel could keep it in blocks.
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype,
                                                     quantization_config=GgufConfig(dequantize=True))
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def import_gguf(workspace: Workspace, path: str | Path, name: str = "", dtype: str = "auto",
                progress: Callable[[float, str], None] = lambda fraction, step: None) -> Path:
    """Import GGUF file `path` as the model folder `workspace/models/NAME` (NAME defaults to the file name):
    safetensors in the model's dtype (`dtype` auto: the file's float type, bf16 for a quantized file), tokenizer,
    chat template, generation config and IMPORT_NOTE. `progress(fraction, step)` hears each step as it begins.
    Returns the folder. GGUFImportError/PathError say what is wrong; nothing is left behind on failure."""
    path = Path(path)
    started = time.perf_counter()
    folder = check_name(workspace, name or default_name(path))
    progress(0.0, "reading metadata")
    info = read_info(path)
    target = _target_dtype(info, dtype)
    partial = folder.with_name(f".{folder.name}.importing")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        progress(0.1, "reading the tokenizer")
        model, tokenizer = load_dequantized(path, target, progress)
        progress(0.7, "saving safetensors")
        eos = tokenizer.eos_token_id  # replies end at the chat template's end-of-turn token
        model.generation_config.eos_token_id = eos
        model.generation_config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        progress(0.95, "checksum")
        note = {**asdict(info), "file_size": path.stat().st_size, "sha256": _sha256(path), "saved_dtype": str(target).removeprefix("torch."),
                "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.perf_counter() - started, 1)}
        (partial / IMPORT_NOTE).write_text(json.dumps(note, indent=2, ensure_ascii=False), encoding="utf-8")
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    progress(1.0, "done")
    return folder


def import_note(model_dir: Path) -> dict | None:
    """The import note of a model folder made from a GGUF file, or None for any other folder."""
    try:
        return json.loads((Path(model_dir) / IMPORT_NOTE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
