"""What makes a config runnable: every problem with its values at once, each naming its key and what to do."""

from __future__ import annotations

import functools
import math
import re

from studio.config.convert import gpu_list, to_flat
from studio.config.fields import MAX_PROBE_PROMPTS, MAX_REAL, MAX_TEXT_CHARS, MAX_WHOLE, METHODS
from studio.config.schema import ConfigError, Problem, RunConfig, field_info
from studio.config.training import DPO_LOSSES, GRPO_LOSSES, STAGES


def _range_problems(config: RunConfig) -> list[Problem]:
    """Numbers no run could use: past the field's `max` (metadata), past 2**31 - 1 for any whole number (what
    the trainer's and tokenizer's C code can hold), not finite, or texts over MAX_TEXT_CHARS."""
    problems = []
    for key, value in to_flat(config).items():
        info = field_info(key)
        top = info.metadata.get("max", MAX_WHOLE if info.type == "int" else MAX_REAL)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            continue
        if isinstance(value, str):
            if len(value) > MAX_TEXT_CHARS:
                problems.append(Problem(key, f"is {len(value):,} characters long; use at most {MAX_TEXT_CHARS:,}"))
        elif not math.isfinite(value):
            problems.append(Problem(key, f"must be a finite number, got {value}"))
        elif abs(value) > top:
            shown = f"{value:.3g}" if isinstance(value, float) or abs(value) > 10**12 else str(value)
            limit = f"at most {int(top):,}" if value > 0 else f"at least {-int(top):,}"
            problems.append(Problem(key, f"must be {limit}, got {shown}"))
    return problems


def validate(config: RunConfig) -> list[Problem]:
    """Every problem with the values in `config` (empty when it is good to run)."""
    problems: list[Problem] = _range_problems(config)
    m, d, t = config.model, config.data, config.train
    if not m.model.strip():
        problems.append(Problem("model", "choose a model (for example tiny-demo)"))
    if not d.dataset.strip():
        problems.append(Problem("dataset", "choose a dataset: a bundled sample or an uploaded file"))
    if t.max_steps < 0:
        problems.append(Problem("max_steps", f"must be 0 (use epochs) or more, got {t.max_steps}"))
    if t.max_steps == 0 and t.epochs <= 0:
        problems.append(Problem("epochs", f"must be above 0 when max_steps is 0, got {t.epochs}"))
    if not 0 < t.learning_rate <= 1:
        problems.append(Problem("learning_rate", f"must be above 0 and at most 1, got {t.learning_rate}"))
    if t.batch_size < 1:
        problems.append(Problem("batch_size", f"must be at least 1, got {t.batch_size}"))
    if t.grad_accum < 1:
        problems.append(Problem("grad_accum", f"must be at least 1, got {t.grad_accum}"))
    if not 16 <= t.cutoff_len <= 1_048_576:
        problems.append(Problem("cutoff_len", f"must be between 16 and 1048576 tokens, got {t.cutoff_len}"))
    if t.logging_steps < 1:
        problems.append(Problem("logging_steps", f"must be at least 1, got {t.logging_steps}"))
    if d.val_size < 0 or (d.val_size >= 1 and not float(d.val_size).is_integer()):
        problems.append(Problem("val_size", f"use a fraction below 1 (e.g. 0.1), a whole row count, or 0 for none; got {d.val_size}"))
    if getattr(d, "column_map", "").strip():
        from studio.data.formats import parse_column_map

        try:
            parse_column_map(d.column_map)
        except ValueError as error:
            problems.append(Problem("column_map", str(error).removeprefix("column_map: ")))
    for key in ("eval_steps", "early_stop_patience", "save_steps", "probe_steps"):
        if getattr(t, key) < 0:
            problems.append(Problem(key, f"must be 0 (off) or more, got {getattr(t, key)}"))
    for key, what in (("eval_steps", "evaluate"), ("early_stop_patience", "stop early")):
        if getattr(t, key) > 0 and d.val_size <= 0 and not getattr(d, "val_file", "").strip():
            problems.append(Problem(key, f"needs validation rows to {what} on: set val_size (e.g. 0.1) or val_file, or set {key}=0"))
    if t.save_total_limit < 1:
        problems.append(Problem("save_total_limit", f"must be at least 1, got {t.save_total_limit}"))
    prompts = probe_prompt_list(t.probe_prompts)
    if len(prompts) > MAX_PROBE_PROMPTS:
        problems.append(Problem("probe_prompts", f"use at most {MAX_PROBE_PROMPTS} prompts (one per line), got {len(prompts)}"))
    if len(config.run_name) > 80 or not re.fullmatch(r"[\w .\-]*", config.run_name):
        problems.append(Problem("run_name", "use at most 80 letters, digits, spaces, dots, dashes or underscores"))
    return (problems + _stage_problems(config) + _method_problems(config) + _efficiency_problems(config)
            + _distributed_problems(config))


def _distributed_problems(config: RunConfig) -> list[Problem]:
    """Problems with the strategy, the GPUs and the process count (what the distributed launch needs)."""
    t = config.train
    allowed = field_info("strategy").metadata["choices"]
    if t.strategy not in allowed:
        return [Problem("strategy", f"must be one of {', '.join(allowed)}, got {t.strategy!r}")]
    problems: list[Problem] = []
    if t.strategy.startswith("deepspeed") and not package_installed("deepspeed"):
        problems.append(Problem("strategy", f"{t.strategy} needs the deepspeed package: pip install deepspeed (or use ddp or fsdp)"))
    if t.strategy == "single":
        return problems
    if t.dry_run:
        problems.append(Problem("dry_run", "a dry run measures one device: set strategy=single for it"))
    try:
        chosen = gpu_list(t.gpus)
    except ValueError as error:
        problems.append(Problem("gpus", str(error)))
        chosen = []
    visible = gpu_summary()["count"]
    if visible == 0:
        if chosen:
            problems.append(Problem("gpus", f"GPUs {t.gpus} were chosen but this machine has none: leave gpus empty to run CPU processes"))
        if t.strategy.startswith("deepspeed"):
            problems.append(Problem("strategy", f"{t.strategy} needs CUDA GPUs and none was found: use ddp or fsdp for CPU processes"))
        if not 1 <= t.processes <= 64:
            problems.append(Problem("processes", f"must be between 1 and 64, got {t.processes}"))
    elif any(index >= visible for index in chosen):
        problems.append(Problem("gpus", f"this machine has GPUs 0 to {visible - 1}; {t.gpus!r} names one it lacks"))
    return problems


def _stage_problems(config: RunConfig) -> list[Problem]:
    """Problems with the stage and its options (only the options of the chosen stage are checked)."""
    s = config.stage
    if s.stage not in STAGES:
        return [Problem("stage", f"must be one of {', '.join(STAGES)}, got {s.stage!r}")]
    problems: list[Problem] = []
    checks = {
        "dpo": (("dpo_beta", s.dpo_beta > 0, "must be above 0"), ("dpo_sft_weight", s.dpo_sft_weight >= 0, "must be 0 (off) or more"),
                ("dpo_loss", s.dpo_loss in DPO_LOSSES, f"must be one of {', '.join(DPO_LOSSES)}")),
        "orpo": (("orpo_beta", s.orpo_beta > 0, "must be above 0"),),
        "kto": (("kto_beta", s.kto_beta > 0, "must be above 0"),
                ("kto_desirable_weight", s.kto_desirable_weight > 0, "must be above 0"),
                ("kto_undesirable_weight", s.kto_undesirable_weight > 0, "must be above 0")),
    }
    for key, ok, message in checks.get(s.stage, ()):
        if not ok:
            problems.append(Problem(key, f"{message}, got {getattr(s, key)!r}"))
    if s.stage == "kto" and config.train.batch_size < 2:
        problems.append(Problem("batch_size", "KTO compares each answer with others in its batch: use batch_size 2 or more"))
    if s.stage == "grpo":
        problems += _grpo_problems(config)
    return problems


def reward_names(text: str) -> list[str]:
    """The reward function names in `reward_funcs` (comma-separated, blanks dropped)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def _grpo_problems(config: RunConfig) -> list[Problem]:
    """Problems with the GRPO options that need no files (the reward file and schema are read at start)."""
    s, t = config.stage, config.train
    problems: list[Problem] = []
    names = reward_names(s.reward_funcs)
    if not names:
        problems.append(Problem("reward_funcs", "name at least one reward function (for example exact_match,format)"))
    bad = [name for name in names if not name.isidentifier()]
    if bad:
        problems.append(Problem("reward_funcs", f"{', '.join(map(repr, bad))} is not a function name"))
    if len(set(names)) < len(names):
        problems.append(Problem("reward_funcs", "names a reward function twice: give it a larger weight instead"))
    if s.reward_weights.strip():
        try:
            weights = [float(w) for w in s.reward_weights.split(",")]
        except ValueError:
            problems.append(Problem("reward_weights", f"use numbers separated by commas (e.g. 1,0.5), got {s.reward_weights!r}"))
        else:
            if len(weights) != len(names):
                problems.append(Problem("reward_weights", f"gives {len(weights)} weights for {len(names)} reward functions "
                                                          f"({', '.join(names)}): give one each, or leave it empty for 1 each"))
            elif not all(math.isfinite(w) for w in weights):
                problems.append(Problem("reward_weights", "weights must be finite numbers"))
    if s.reward_file.strip() and not s.allow_reward_code:
        problems.append(Problem("allow_reward_code", f"reward_file {s.reward_file} is Python code that runs in the training "
                                                      "process: read it, then tick allow_reward_code"))
    if "length" in names and s.reward_length_target < 1:
        problems.append(Problem("reward_length_target", f"must be at least 1 character, got {s.reward_length_target}"))
    if s.grpo_generations < 2:
        problems.append(Problem("grpo_generations", f"GRPO compares answers to the same prompt: use 2 or more, got {s.grpo_generations}"))
    elif (t.batch_size * t.grad_accum) % s.grpo_generations:
        problems.append(Problem("batch_size", f"batch_size × grad_accum ({t.batch_size} × {t.grad_accum}) must be a multiple of "
                                              f"grpo_generations ({s.grpo_generations}): a prompt's answers are scored together"))
    if s.grpo_max_completion_len < 1:
        problems.append(Problem("grpo_max_completion_len", f"must be at least 1 token, got {s.grpo_max_completion_len}"))
    if s.grpo_temperature <= 0:
        problems.append(Problem("grpo_temperature", f"must be above 0 (answers are sampled), got {s.grpo_temperature}"))
    if s.grpo_beta < 0:
        problems.append(Problem("grpo_beta", f"must be 0 (off) or more, got {s.grpo_beta}"))
    if s.grpo_loss not in GRPO_LOSSES:
        problems.append(Problem("grpo_loss", f"must be one of {', '.join(GRPO_LOSSES)}, got {s.grpo_loss!r}"))
    if s.grpo_vllm and not package_installed("vllm"):
        problems.append(Problem("grpo_vllm", "needs the vllm package: pip install vllm (or turn grpo_vllm off)"))
    elif s.grpo_vllm and not gpu_summary()["count"]:
        problems.append(Problem("grpo_vllm", "vLLM samples on a CUDA GPU and none was found: turn grpo_vllm off"))
    return problems


_NAMES = r"[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*"  # comma-separated module names


def _method_problems(config: RunConfig) -> list[Problem]:
    """Problems with the method and the options of the chosen method (others are not checked)."""
    meth = config.method
    if meth.method not in METHODS:
        return [Problem("method", f"must be one of {', '.join(METHODS)}, got {meth.method!r}")]
    problems: list[Problem] = []
    if meth.method in ("lora", "qlora"):
        if meth.lora_rank < 1:
            problems.append(Problem("lora_rank", f"must be at least 1, got {meth.lora_rank}"))
        if meth.lora_alpha < 1:
            problems.append(Problem("lora_alpha", f"must be at least 1, got {meth.lora_alpha}"))
        if not 0 <= meth.lora_dropout < 1:
            problems.append(Problem("lora_dropout", f"must be in [0, 1), got {meth.lora_dropout}"))
        if not re.fullmatch(rf"all-linear|{_NAMES}", meth.lora_targets.strip()):
            problems.append(Problem("lora_targets", "use all-linear or module names separated by commas, e.g. q_proj,v_proj"))
        if meth.loraplus_ratio != 0 and meth.loraplus_ratio < 1:
            problems.append(Problem("loraplus_ratio", f"use 0 (off) or a ratio of 1 or more (16 is typical), got {meth.loraplus_ratio}"))
    if meth.method == "qlora":
        if meth.pissa_init:
            problems.append(Problem("pissa_init", "PiSSA needs the unquantised weights: use method=lora, or turn pissa_init off"))
        if meth.quant_bits not in (4, 8):
            problems.append(Problem("quant_bits", f"must be 4 or 8, got {meth.quant_bits}"))
        for key in ("quant_type", "compute_dtype"):
            allowed = field_info(key).metadata["choices"]
            if getattr(meth, key) not in allowed:
                problems.append(Problem(key, f"must be one of {', '.join(allowed)}, got {getattr(meth, key)!r}"))
        if not package_installed("bitsandbytes"):
            problems.append(Problem("method", "qlora needs the bitsandbytes package: pip install bitsandbytes (or use method=lora)"))
    if meth.method == "freeze":
        modules = meth.freeze_trainable_modules.strip()
        if meth.freeze_trainable_layers < 0:
            problems.append(Problem("freeze_trainable_layers", f"must be 0 (no layer limit) or more, got {meth.freeze_trainable_layers}"))
        if not re.fullmatch(rf"all|{_NAMES}", modules):
            problems.append(Problem("freeze_trainable_modules", "use all or name parts separated by commas, e.g. mlp or self_attn,mlp"))
        elif meth.freeze_trainable_layers == 0 and modules == "all":
            problems.append(Problem("freeze_trainable_layers", "0 layers with modules `all` trains every weight: set a layer count, choose modules, or use method=full"))
    if meth.method in ("prompt_tuning", "prefix_tuning", "p_tuning") and meth.num_virtual_tokens < 1:
        problems.append(Problem("num_virtual_tokens", f"must be at least 1, got {meth.num_virtual_tokens}"))
    return problems


def _efficiency_problems(config: RunConfig) -> list[Problem]:
    """Problems with the efficiency options: unknown values, combinations that cannot work, and what they need
    installed (a package, a CUDA GPU) that this machine lacks."""
    t, method = config.train, config.method.method
    problems: list[Problem] = []
    for key in ("optim", "precision", "attn_impl", "rope_scaling"):
        allowed = field_info(key).metadata["choices"]
        if getattr(t, key) not in allowed:
            problems.append(Problem(key, f"must be one of {', '.join(allowed)}, got {getattr(t, key)!r}"))
    if ("8bit" in t.optim or "paged" in t.optim) and not package_installed("bitsandbytes"):
        problems.append(Problem("optim", f"{t.optim} needs the bitsandbytes package: pip install bitsandbytes (or use adamw_torch_fused)"))
    if t.optim == "galore_adamw":
        if method not in ("full", "freeze"):
            problems.append(Problem("optim", f"galore_adamw projects full-weight gradients: use it with method=full or freeze, not {method}"))
        if not package_installed("galore_torch"):
            problems.append(Problem("optim", "galore_adamw needs the galore-torch package: pip install galore-torch"))
    if t.precision in ("fp16", "pure_bf16") and not gpu_summary()["cuda"]:
        problems.append(Problem("precision", f"{t.precision} needs a CUDA GPU and none was found: use auto (fp32 on a CPU)"))
    elif t.precision in ("bf16", "pure_bf16") and gpu_summary()["cuda"] and not gpu_summary()["bf16"]:
        problems.append(Problem("precision", f"this GPU ({gpu_summary()['name']}) has no bf16 support: use auto or fp16"))
    if t.attn_impl == "flash_attention_2":
        if not package_installed("flash_attn"):
            problems.append(Problem("attn_impl", "flash_attention_2 needs the flash-attn package: pip install flash-attn (or use sdpa)"))
        elif not gpu_summary()["cuda"]:
            problems.append(Problem("attn_impl", "flash_attention_2 needs a CUDA GPU and none was found: use sdpa"))
    if t.use_liger:
        if not package_installed("liger_kernel"):
            problems.append(Problem("use_liger", "Liger kernels need the liger-kernel package: pip install liger-kernel (or turn use_liger off)"))
        elif not gpu_summary()["cuda"]:
            problems.append(Problem("use_liger", "Liger kernels need a CUDA GPU and none was found: turn use_liger off"))
    if t.packing:
        if config.stage.stage not in ("sft", "pt"):
            problems.append(Problem("packing", f"packing works for the sft and pt stages, not {config.stage.stage}: turn packing off"))
        if method in ("prompt_tuning", "prefix_tuning", "p_tuning"):
            problems.append(Problem("packing", f"{method} adds virtual tokens in front of each sequence, which packed rows would share: turn packing off"))
    if t.neftune_alpha < 0:
        problems.append(Problem("neftune_alpha", f"must be 0 (off) or more, got {t.neftune_alpha}"))
    if t.rope_scaling != "none" and t.rope_factor <= 1:
        problems.append(Problem("rope_factor", f"must be above 1 to stretch the context, got {t.rope_factor}"))
    return problems


def package_installed(package: str) -> bool:
    """True when `package` can be imported here (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec(package) is not None


@functools.cache
def gpu_summary() -> dict:
    """What this machine's first CUDA GPU offers: {"cuda", "bf16", "name", "count"} (hardware.cuda_gpus)."""
    from studio.hardware import cuda_gpus

    gpus = cuda_gpus()
    if not gpus:
        return {"cuda": False, "bf16": False, "name": None, "count": 0}
    return {"cuda": True, "bf16": gpus[0].bf16, "name": gpus[0].name, "count": len(gpus)}


def probe_prompt_list(text: str) -> list[str]:
    """The probe prompts in `probe_prompts`: one per non-empty line."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def check(config: RunConfig) -> RunConfig:
    """Return `config` unchanged when valid; otherwise raise ConfigError with all its problems."""
    problems = validate(config)
    if problems:
        raise ConfigError(problems)
    return config
