"""Write a saved model folder (safetensors, config.json, tokenizer) as one GGUF file that llama.cpp, Ollama and
transformers' GGUF reader load, with the `gguf` package's GGUFWriter.

Supported: the llama family (LlamaForCausalLM, MistralForCausalLM; tiny-demo and SmolLM2 are llama models) and
Qwen2ForCausalLM. Tensor names come from gguf's own name map; what GGUF expects differently from transformers
is done here: llama's query and key rows are reordered for llama.cpp's rotary layout, 1-D tensors (norms,
biases) stay float32, and the tokenizer is written as a byte-level BPE vocabulary ("gpt2") with its merges,
special token ids and chat template.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from studio.hf_import import import_transformers

# transformers class -> (GGUF architecture, whether q/k rows are reordered for llama.cpp's rotary layout)
ARCHITECTURES = {"LlamaForCausalLM": ("llama", True), "MistralForCausalLM": ("llama", True),
                 "Qwen2ForCausalLM": ("qwen2", False)}
OUT_TYPES = ("f16", "bf16", "q8_0")


class GGUFExportError(ValueError):
    """A model the studio cannot write as GGUF (an architecture, tokenizer or setting with no mapping)."""


def supported_architectures() -> list[str]:
    """The transformers model classes that can be written as GGUF."""
    return sorted(ARCHITECTURES)


def check_exportable(config: dict) -> str:
    """The GGUF architecture for a model's config.json mapping; GGUFExportError naming what is supported."""
    kind = (config.get("architectures") or ["(none)"])[0]
    if kind not in ARCHITECTURES:
        raise GGUFExportError(f"{kind} has no GGUF mapping in the studio; GGUF export supports "
                              f"{', '.join(supported_architectures())}. Export the merged safetensors instead.")
    rope = config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type not in ("default", "linear"):
        raise GGUFExportError(f"RoPE scaling {rope_type!r} has no GGUF mapping in the studio (default and linear do)")
    return ARCHITECTURES[kind][0]


def _reorder_rotary_rows(weight, heads: int):
    """Query/key rows from transformers' half-split rotary layout to llama.cpp's interleaved pairs, per head."""
    rows = weight.shape[0]
    half = rows // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _tensor_data(name: str, array, out_type: str):
    """(data, raw GGML type or None) for one tensor: 1-D tensors as float32, matrices in `out_type`; q8_0 falls
    back to f16 for a matrix whose rows do not split into q8_0's 32-value blocks."""
    import numpy as np
    from gguf import GGMLQuantizationType, quants

    if array.ndim == 1 or name.endswith("_norm.weight"):
        return array.astype(np.float32), None
    if out_type == "q8_0" and array.shape[-1] % 32 == 0:
        return quants.quantize(array.astype(np.float32), GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
    if out_type == "bf16":
        return quants.quantize(array.astype(np.float32), GGMLQuantizationType.BF16), GGMLQuantizationType.BF16
    return array.astype(np.float16), None


def _add_hyperparameters(writer, config: dict, name: str, out_type: str) -> None:
    from gguf import LlamaFileType, RopeScalingType

    heads = config["num_attention_heads"]
    writer.add_name(name)
    writer.add_file_type({"f16": LlamaFileType.MOSTLY_F16, "bf16": LlamaFileType.MOSTLY_BF16,
                          "q8_0": LlamaFileType.MOSTLY_Q8_0}[out_type])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_rope_dimension_count(config.get("head_dim") or config["hidden_size"] // heads)
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    if (rope.get("rope_type") or rope.get("type")) == "linear":
        writer.add_rope_scaling_type(RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))


def _add_tokenizer(writer, model_dir: Path, vocab_size: int, tokenizer_pre: str) -> None:
    """The vocabulary as byte-level BPE tokens in id order (padded to the model's vocab size), token types,
    merges, special token ids and the chat template."""
    from gguf import SpecialVocab, TokenType
    import_transformers()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    if not by_id or max(by_id) >= vocab_size:
        raise GGUFExportError(f"the tokenizer has {len(by_id)} tokens but the model's vocab_size is {vocab_size}")
    def token_type(index: int) -> TokenType:
        if index not in by_id:  # an embedding row no token uses (a vocab padded to a round size)
            return TokenType.UNUSED
        if index in added:
            return TokenType.CONTROL if added[index].special else TokenType.USER_DEFINED
        return TokenType.NORMAL

    tokens = [by_id.get(index, f"[PAD{index}]") for index in range(vocab_size)]
    types = [token_type(index) for index in range(vocab_size)]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tokenizer_pre or "default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise GGUFExportError(f"{model_dir / 'tokenizer.json'} holds no BPE merges: only byte-level BPE tokenizers "
                              "(Llama 3, Qwen2, SmolLM, tiny-demo) can be written as GGUF here")
    if tokenizer.pad_token_id is not None:
        special.special_token_ids.setdefault("pad", tokenizer.pad_token_id)
    special.add_to_gguf(writer, quiet=True)
    if "bos" not in special.add_special_token:  # said outright, so llama.cpp does not guess from the vocab type
        probe = tokenizer("a")["input_ids"]
        writer.add_add_bos_token(tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id])


def write_gguf(model_dir: Path, out_path: Path, out_type: str = "f16", name: str = "", tokenizer_pre: str = "",
               progress: Callable[[float], None] = lambda fraction: None) -> Path:
    """Write the model folder `model_dir` (config.json, *.safetensors, tokenizer) to GGUF file `out_path` with
    matrices in `out_type` (f16, bf16 or q8_0). `tokenizer_pre` is llama.cpp's pre-tokenizer name (an imported
    model's; "default" otherwise). `progress` hears the fraction of tensors written. Returns `out_path`."""
    import gguf
    from safetensors import safe_open

    if out_type not in OUT_TYPES:
        raise GGUFExportError(f"GGUF type {out_type!r} is not one of {', '.join(OUT_TYPES)}")
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    arch = check_exportable(config)
    reorder = ARCHITECTURES[config["architectures"][0]][1]
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    model_arch = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch)
    names = gguf.get_tensor_name_map(model_arch, config["num_hidden_layers"])
    writer = gguf.GGUFWriter(out_path, arch)
    _add_hyperparameters(writer, config, name or model_dir.name, out_type)
    _add_tokenizer(writer, model_dir, config["vocab_size"], tokenizer_pre)
    files = sorted(model_dir.glob("*.safetensors"))
    for file in files:
        with safe_open(file, "pt") as handle:
            for key in handle.keys():
                if key == "lm_head.weight" and config.get("tie_word_embeddings"):
                    continue  # tied: GGUF readers reuse the embedding matrix
                target = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if target is None:
                    raise GGUFExportError(f"tensor {key} in {file.name} has no GGUF name for {arch}")
                array = handle.get_tensor(key).float().numpy()
                if reorder and key.endswith(("q_proj.weight", "k_proj.weight")):
                    array = _reorder_rotary_rows(array, heads if key.endswith("q_proj.weight") else kv_heads)
                data, raw = _tensor_data(target, array, out_type)
                writer.add_tensor(target, data, raw_dtype=raw)
    progress(0.5)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    progress(1.0)
    return out_path
