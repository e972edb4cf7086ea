"""Build `tiny-demo`: a small Llama-architecture chat model that needs no network.

Its byte-level BPE tokenizer is trained on the bundled sample data and it has a ChatML chat template;
its weights are randomly initialised from a fixed seed, so the same folder comes out every time. It is
saved as an ordinary transformers folder (config.json, model.safetensors, tokenizer files) that train,
chat and export treat like any other model. A random model knows nothing: everything it answers after
fine-tuning, it learned from the data.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

from studio.hf_import import import_transformers
from studio.workspace import SAMPLES_DIR

DEMO_NAME = "tiny-demo"
VOCAB_SIZE = 1024
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
ARCHITECTURE = dict(
    hidden_size=192,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rope_theta=10000.0,
    tie_word_embeddings=False,
)
OUTPUT_INIT_STD = 0.1
BUILD_MARKER = "tiny-demo.json"
# Builds in one process take turns: the weights come from torch's one global generator, and two builds drawing
# from it at once (the studio's first page load asks for the model from several events) would each get a
# different mix of numbers, so the demo would not be the same model from one first start to the next.
_BUILD_LOCK = threading.Lock()


def _training_texts() -> list[str]:
    texts = []
    for path in sorted(SAMPLES_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [m["content"] for m in row.get("messages", [])]
    return texts


def _build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    import_transformers()
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_training_texts(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _build_model(tokenizer):
    import torch
    import_transformers()
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **ARCHITECTURE,
    )
    with torch.random.fork_rng(devices=[]):  # the caller's own random state is left as it was
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        # With the default std (0.02) a frozen random output layer caps the top logit near 4 (hidden states are
        # RMS-normalised), so even a perfectly tuned adapter gives flat probabilities and sampling rambles.
        # A wider output layer lets fine-tuning produce confident answers.
        torch.nn.init.normal_(model.lm_head.weight, std=OUTPUT_INIT_STD)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, max_new_tokens=64
    )
    return model


def _make_readable(folder: Path) -> None:
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def ensure_demo_model(models_dir: Path) -> Path:
    """Return the tiny-demo folder under `models_dir`, building it first if it is not there yet."""
    target = models_dir / DEMO_NAME
    if (target / BUILD_MARKER).is_file():
        return target
    with _BUILD_LOCK:
        if not (target / BUILD_MARKER).is_file():  # not built by the thread this one waited for
            _build_into(models_dir, target)
    return target


def _save_without_a_bar(model, folder: Path) -> None:
    """`model.save_pretrained(folder)` without transformers' "Writing model shards" bar: the build happens on the
    studio's first start or a CLI command's, and their terminals show their own lines only."""
    from transformers.utils import logging as hf_logging

    was_shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        if was_shown:
            hf_logging.enable_progress_bar()


def _build_into(models_dir: Path, target: Path) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-demo-", dir=models_dir))
    try:
        tokenizer = _build_tokenizer()
        model = _build_model(tokenizer)
        _save_without_a_bar(model, staging)
        tokenizer.save_pretrained(staging)
        (staging / BUILD_MARKER).write_text(json.dumps({"name": DEMO_NAME, **ARCHITECTURE}, indent=2))
        _make_readable(staging)  # mkdtemp and safetensors create owner-only files; a model folder is shared
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / BUILD_MARKER).is_file():  # not a concurrent build that finished first
                shutil.rmtree(target, ignore_errors=True)
                os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
