"""What bench/gpu_check.py runs with: random-weight models built from architecture numbers, rows of chosen
lengths, one worker run launched exactly as the studio launches it (with a time limit), and the figures read
back from its run folder (status, dry_run.json, system.jsonl, train.log). Model FLOPs utilisation too.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio import config as cfg
from studio.models.architecture import Architecture

# Tiny shapes for the CPU rehearsal: the same two families, a few layers, within tiny-demo's 1024-token vocabulary.
TINY_ARCHITECTURES = {
    "tiny-qwen2": ("qwen2", Architecture(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16,
                                         intermediate_size=128, vocab_size=1024, tied_embeddings=True, max_positions=2048)),
    "tiny-llama": ("llama", Architecture(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=4, head_dim=16,
                                         intermediate_size=160, vocab_size=1024, tied_embeddings=False, max_positions=2048)),
}
# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, matched on the device name in this order.
PEAK_BF16_FLOPS = [("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989.4e12), ("H200", 989.4e12), ("GH200", 989.4e12),
                   ("B200", 2250e12), ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12), ("RTX 4090", 165e12)]
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def model_type_of(catalog_name: str) -> str:
    """transformers' model type for a catalog model built from its numbers (Qwen2 or Llama shapes)."""
    return "qwen2" if catalog_name.startswith(("qwen2", "deepseek-r1-distill-qwen")) else "llama"


def build_random_model(arch: Architecture, model_type: str, folder: Path, tokenizer_dir: Path) -> None:
    """Save a model of `arch` with random bf16 weights (initialised on the GPU when there is one: seconds instead
    of minutes for 7B) in `folder`, with tiny-demo's tokenizer, whose ids all lie inside any such vocabulary."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        model_type, hidden_size=arch.hidden_size, num_hidden_layers=arch.num_layers, num_attention_heads=arch.num_heads,
        num_key_value_heads=arch.num_kv_heads, head_dim=arch.head_dim, intermediate_size=arch.intermediate_size,
        vocab_size=arch.vocab_size, tie_word_embeddings=arch.tied_embeddings, max_position_embeddings=arch.max_positions,
        bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    for file in tokenizer_dir.iterdir():
        if file.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(file, folder / file.name)


def build_in_subprocess(arch: Architecture, model_type: str, folder: Path, tokenizer_dir: Path, timeout_s: float) -> None:
    """build_random_model in a process of its own, so the caller never holds GPU memory or a CUDA context.
    subprocess.TimeoutExpired after `timeout_s`."""
    command = [sys.executable, __file__, "build", model_type, json.dumps(arch.to_dict()), str(folder), str(tokenizer_dir)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **WORKER_ENV}, timeout=max(1.0, timeout_s), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the {model_type} model for {folder.name} failed: {done.stderr[-1500:]}")


def write_rows(path: Path, rows: int, min_words: int, max_words: int, seed: int = 0) -> None:
    """Conversations whose answers hold between min_words and max_words word pairs (each pair is a few tokens of
    tiny-demo's tokenizer): equal bounds fill every sequence to the cutoff; mixed ones show what padding costs."""
    pick = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            n = pick.randint(min_words, max_words)
            answer = " ".join(f"lantern{j % 97} harbour{j % 89}" for j in range(n))
            out.write(json.dumps({"messages": [{"role": "user", "content": f"Tell story {i}."},
                                               {"role": "assistant", "content": answer}]}) + "\n")


def run_worker(workspace_dir: Path, overrides: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Create a run from `overrides` and run it with the studio's worker (`python -m studio train --config …`) in
    its own process, killed after `timeout_s`. Returns what its run folder says: state, phase, dry_run figures,
    error, seconds, the log's precision line, the GPU samples' summary and the run folder."""
    from studio import jobs
    from studio import run_folder
    from studio.workspace import DRY_RUN_FILE, LOG_FILE, Workspace

    run_dir = jobs.create_run(Workspace(workspace_dir), cfg.check(cfg.apply_overrides(cfg.RunConfig(), overrides)))
    command = [sys.executable, "-m", "studio", "--workspace", str(workspace_dir), "train", "--config", str(run_dir / "config.yaml")]
    started = time.monotonic()
    timed_out = False
    with (run_dir / LOG_FILE).open("a", encoding="utf-8") as log:
        try:
            exit_code = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=max(1.0, timeout_s),
                                       env={**os.environ, **WORKER_ENV}, check=False).returncode
        except subprocess.TimeoutExpired:
            exit_code, timed_out = None, True
    status = run_folder.run_status(run_dir)
    log_text = (run_dir / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    dry = json.loads((run_dir / DRY_RUN_FILE).read_text(encoding="utf-8")) if (run_dir / DRY_RUN_FILE).exists() else {}
    return {
        "state": "timed out" if timed_out else status.get("state"),
        "phase": status.get("phase"),
        "exit_code": exit_code,
        "seconds": round(time.monotonic() - started, 1),
        "dry_run": dry,
        "error": (f"stopped after the time limit of {timeout_s:.0f} s" if timed_out else status.get("error")),
        "precision_line": next((line.split("] ", 1)[-1] for line in log_text.splitlines() if "precision:" in line), None),
        "log_tail": log_text[-1200:] if (timed_out or status.get("state") != "completed") else "",
        "gpu_samples": gpu_sampling(run_dir),
        "run_dir": run_dir,
    }


def gpu_sampling(run_dir: Path) -> dict[str, Any]:
    """What the worker's system sampler wrote about GPU 0: samples taken, peak memory, peak utilisation and power."""
    from studio.workspace import SYSTEM_FILE, read_jsonl_from

    rows, _ = read_jsonl_from(run_dir / SYSTEM_FILE, 0)
    gpu0 = [g for row in rows for g in row.get("gpus", []) if g.get("index") == 0]

    def peak(key: str) -> float | None:
        values = [g[key] for g in gpu0 if g.get(key) is not None]
        return max(values) if values else None

    return {"samples": len(rows), "samples_with_gpu": len(gpu0), "name": gpu0[0]["name"] if gpu0 else None,
            "peak_memory_used_mb": peak("memory_used_mb"), "peak_utilization_percent": peak("utilization_percent"),
            "peak_power_w": peak("power_w"), "peak_temperature_c": peak("temperature_c")}


def peak_bf16_flops(gpu_name: str | None) -> float | None:
    """The GPU's dense bf16 peak in FLOP/s (None for a CPU or a GPU not in the table)."""
    if not gpu_name:
        return None
    return next((flops for key, flops in PEAK_BF16_FLOPS if key in gpu_name), None)


def model_flops_per_token(arch: Architecture, seq_len: int) -> float:
    """Training FLOPs per token by the usual convention (6 × the non-embedding parameters, the output head
    included, plus 12 × layers × attention width × sequence length for the attention scores). LoRA and QLoRA
    skip the frozen weights' gradients, so they execute about two thirds of it: MFU stays comparable across
    methods, as the figure people quote for full fine-tuning."""
    matmul_params = arch.total_params() - arch.vocab_size * arch.hidden_size * (0 if arch.tied_embeddings else 1)
    return 6 * matmul_params + 12 * arch.num_layers * arch.num_heads * arch.head_dim * seq_len


def mfu(tokens_per_s: float | None, arch: Architecture, seq_len: int, gpu_name: str | None) -> float | None:
    """Model FLOPs utilisation (0..1) of a measured speed, or None without a known GPU peak or a speed."""
    peak = peak_bf16_flops(gpu_name)
    if not peak or not tokens_per_s:
        return None
    return round(tokens_per_s * model_flops_per_token(arch, seq_len) / peak, 4)


if __name__ == "__main__":  # python bench/gpu_check_runs.py build MODEL_TYPE ARCHITECTURE_JSON FOLDER TOKENIZER_DIR
    _, verb, kind, numbers, target, tokenizer = sys.argv
    if verb != "build":
        sys.exit(f"error: unknown verb {verb!r}; the only one is build")
    build_random_model(Architecture.from_dict(json.loads(numbers)), kind, Path(target), Path(tokenizer))
