"""How a run's METHOD and EFFICIENCY options turn into a model, a PEFT wrapper and trainer arguments.

Read top to bottom, a run goes:
1. `choose_precision` — the weights' dtype and the Trainer's mixed-precision flags for this device.
2. `load_model` — transformers loads the weights (quantised with bitsandbytes for qlora; attention kernel;
   RoPE scaling to train beyond the native context).
3. `peft_config` — the PEFT config the TRL trainer wraps the model with (LoRA / DoRA / rsLoRA / PiSSA, IA³,
   prompt, prefix or P-tuning); `apply_freeze` marks only the chosen layers trainable for freeze tuning;
   full fine-tuning leaves every weight trainable.
4. `trainer_arguments` — the optimizer, precision, gradient checkpointing, NEFTune and Liger settings for any
   TRL trainer config; `sft_arguments` adds padding-free packing for the SFT/PT trainers.
5. `finish_setup` — once the trainer has wrapped the model: PiSSA's initial adapter saved, and LoRA+'s
   optimizer (B matrices at a higher learning rate) put in place of the Trainer's own.
6. `save_trained` — the adapter (PiSSA converted back to plain LoRA) or the whole model folder.
Every stage's recipe (studio/train/stages.py, worker.py) uses these, so a method works the same in each stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from studio import config as cfg
from studio.workspace import ADAPTER_DIR, FULL_MODEL_DIR

PISSA_INIT_DIR = "pissa_init"  # in the run folder: the adapter as initialised, needed to convert PiSSA to LoRA
PROMPT_METHODS = ("prompt_tuning", "prefix_tuning", "p_tuning")


@dataclass
class Precision:
    """What the weights are loaded as and which mixed precision the Trainer runs."""

    dtype: object  # torch dtype of the loaded weights
    bf16: bool
    fp16: bool
    label: str


def choose_precision(config: cfg.RunConfig, device: str) -> Precision:
    """The precision for `config.train.precision` on `device`. Mixed precision keeps fp32 master weights
    for what is trained (full/freeze load fp32, PEFT adapters stay fp32) and computes in bf16/fp16; frozen
    base weights of a PEFT method are loaded in the half type, which halves their memory."""
    import torch

    wanted = config.train.precision
    if wanted == "auto":
        if device != "cuda":
            wanted = "fp32"
        else:
            wanted = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if wanted == "fp32":
        return Precision(torch.float32, False, False, "fp32")
    if wanted == "pure_bf16":
        return Precision(torch.bfloat16, True, False, "pure bf16 (weights and optimizer state in bf16)")
    half = torch.bfloat16 if wanted == "bf16" else torch.float16
    trains_base = config.method.method in ("full", "freeze")
    weights = torch.float32 if trains_base or device != "cuda" else half
    return Precision(weights, wanted == "bf16", wanted == "fp16", f"{wanted} mixed precision")


def quantization_config(config: cfg.RunConfig, device: str):
    """transformers' BitsAndBytesConfig for qlora (None for every other method)."""
    if config.method.method != "qlora":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    meth = config.method
    if meth.quant_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = meth.compute_dtype
    if compute == "auto":
        compute = "fp32" if device != "cuda" else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=meth.quant_type,
        bnb_4bit_use_double_quant=meth.double_quant,
        bnb_4bit_compute_dtype=dtypes[compute],
        bnb_4bit_quant_storage=dtypes[compute],
    )


def model_config(source: str, config: cfg.RunConfig):
    """The model's transformers config with the run's RoPE scaling applied (None when rope_scaling is none).
    The context the model reads grows to native × rope_factor."""
    t = config.train
    if t.rope_scaling == "none":
        return None
    from transformers import AutoConfig

    model_cfg = AutoConfig.from_pretrained(source, trust_remote_code=config.model.trust_remote_code)
    native = model_cfg.max_position_embeddings
    rope = dict(getattr(model_cfg, "rope_parameters", None) or {})
    rope.update(rope_type=t.rope_scaling, factor=float(t.rope_factor))
    if t.rope_scaling == "yarn":
        rope["original_max_position_embeddings"] = native
    model_cfg.rope_parameters = rope
    model_cfg.max_position_embeddings = int(native * t.rope_factor)
    return model_cfg


def load_model(source: str, config: cfg.RunConfig, device: str, log: Callable[[str], None] = print,
               auto_class=None, **extra):
    """(the model loaded for training with `config`'s method and efficiency options, its Precision).
    `auto_class` (default AutoModelForCausalLM) and `extra` from_pretrained arguments serve other heads (rm)."""
    from transformers import AutoModelForCausalLM

    precision = choose_precision(config, device)
    kwargs = {"dtype": precision.dtype, "attn_implementation": config.train.attn_impl,
              "trust_remote_code": config.model.trust_remote_code}
    quant = quantization_config(config, device)
    if quant is not None:
        from studio.train.distributed import local_device_index

        # one quantised copy per process, on this process's own GPU (DDP); FSDP shards the quant-storage dtype
        kwargs.update(quantization_config=quant, device_map={"": local_device_index() if device == "cuda" else "cpu"})
        log(f"quantising the frozen weights to {config.method.quant_bits} bits with bitsandbytes")
    rope = model_config(source, config)
    if rope is not None:
        kwargs["config"] = rope
        log(f"RoPE scaling {config.train.rope_scaling} × {config.train.rope_factor:g}: "
            f"context {rope.max_position_embeddings} tokens")
    model = (auto_class or AutoModelForCausalLM).from_pretrained(source, **kwargs, **extra)
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        # fp32 norms and embeddings for stable training; the Trainer turns gradient checkpointing on itself
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    log(f"precision: {precision.label}; attention: {config.train.attn_impl}")
    return model, precision


def peft_config(config: cfg.RunConfig, model_type: str | None = None):
    """The PEFT config of the run's method (None for full and freeze, which train the model's own weights);
    `model_type` (e.g. llama) lets IA³ say plainly when PEFT has no default modules for the architecture."""
    meth = config.method
    if meth.method in ("lora", "qlora"):
        from peft import LoraConfig

        targets = meth.lora_targets.strip()
        return LoraConfig(
            r=meth.lora_rank,
            lora_alpha=meth.lora_alpha,
            lora_dropout=meth.lora_dropout,
            target_modules="all-linear" if targets == "all-linear" else [t.strip() for t in targets.split(",")],
            use_rslora=meth.use_rslora,
            use_dora=meth.use_dora,
            init_lora_weights="pissa" if meth.pissa_init else True,
            task_type="CAUSAL_LM",
        )
    if meth.method == "ia3":
        from peft import IA3Config
        from peft.utils import (
            TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as IA3_DEFAULTS,
        )

        if model_type is not None and model_type not in IA3_DEFAULTS:
            raise ValueError(f"method ia3 has no default modules for {model_type} models; use lora for this model")
        return IA3Config(task_type="CAUSAL_LM")  # PEFT's per-architecture defaults: k, v and the MLP's down projection
    if meth.method == "prompt_tuning":
        from peft import PromptTuningConfig

        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=meth.num_virtual_tokens)
    if meth.method == "prefix_tuning":
        from peft import PrefixTuningConfig

        return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=meth.num_virtual_tokens)
    if meth.method == "p_tuning":
        from peft import PromptEncoderConfig

        return PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=meth.num_virtual_tokens)
    return None


def apply_freeze(model, config: cfg.RunConfig, log: Callable[[str], None] = print) -> None:
    """Freeze tuning: leave only the chosen layers/modules trainable (other methods: nothing to do here)."""
    meth = config.method
    if meth.method != "freeze":
        return
    trainable = freeze_all_but(model, meth.freeze_trainable_layers, meth.freeze_trainable_modules)
    where = f"the last {meth.freeze_trainable_layers} layers" if meth.freeze_trainable_layers else "every layer"
    log(f"freeze tuning: {trainable:,} weights of {where} ({meth.freeze_trainable_modules}) train, the rest is frozen")


def finish_setup(trainer, config: cfg.RunConfig, run_dir: Path, log: Callable[[str], None] = print) -> None:
    """What needs the trainer's PEFT-wrapped model: PiSSA's initial adapter saved (to convert the result back to
    plain LoRA) and the LoRA+ optimizer put in place of the one the Trainer would build."""
    if config.method.pissa_init and config.method.method == "lora":
        peft_cfg = trainer.model.peft_config["default"]
        peft_cfg.init_lora_weights = True  # saved as plain LoRA: the start point of the conversion
        trainer.model.save_pretrained(str(run_dir / PISSA_INIT_DIR))
        peft_cfg.init_lora_weights = "pissa"
        log("PiSSA: the adapter starts from the weights' principal components")
    optimizer = loraplus_optimizer(trainer.model, trainer.args, config)
    if optimizer is not None:
        trainer.optimizer = optimizer
        log(f"LoRA+: the B matrices learn at {config.method.loraplus_ratio:g} × the learning rate")


def freeze_all_but(model, last_layers: int, modules: str) -> int:
    """Freeze every weight except those of the last `last_layers` transformer layers (0 = every layer) whose
    names contain one of `modules` (comma-separated, or `all`). Returns how many weights stay trainable;
    ValueError naming the choice when it leaves nothing to train or asks for more layers than the model has."""
    import re

    total = model.config.get_text_config().num_hidden_layers
    if last_layers > total:
        raise ValueError(f"freeze_trainable_layers={last_layers} but the model has only {total} layers: use at most {total}")
    first = total - last_layers if last_layers else 0
    parts = [] if modules.strip() == "all" else [m.strip() for m in modules.split(",")]
    trainable = 0
    for name, param in model.named_parameters():
        layer = re.search(r"\.(\d+)\.", name)
        in_layers = layer is not None and int(layer.group(1)) >= first
        in_modules = not parts or any(f".{part}." in f".{name}" for part in parts)
        param.requires_grad = in_layers and in_modules
        trainable += param.numel() if param.requires_grad else 0
    if trainable == 0:
        raise ValueError(f"freeze_trainable_modules={modules!r} matches no weight in the last {total - first} layers: "
                         "use name parts of the model's modules, e.g. mlp or self_attn")
    return trainable


def trainer_arguments(config: cfg.RunConfig, device: str, precision: Precision,
                      log: Callable[[str], None] = print) -> dict:
    """The keyword arguments every TRL trainer config takes from the efficiency options."""
    t = config.train
    args = {"optim": optimizer_name(t.optim), "bf16": precision.bf16, "fp16": precision.fp16}
    if t.optim == "galore_adamw":
        args["optim_target_modules"] = "all-linear"
    key = checkpointing_key()
    if t.gradient_checkpointing and device == "cuda":
        args.update({key: True, f"{key}_kwargs": {"use_reentrant": False}})
    else:
        args[key] = False
        if t.gradient_checkpointing:
            log("gradient checkpointing is off on a CPU: it saves GPU memory at the cost of time, and memory is not the limit here")
    if t.neftune_alpha > 0:
        args["neftune_noise_alpha"] = t.neftune_alpha
    if t.use_liger:
        args["use_liger_kernel"] = True
    return args


def sft_arguments(config: cfg.RunConfig) -> dict:
    """SFTConfig keyword arguments of the SFT/PT trainers: padding-free packing when `packing` is on (rows are
    concatenated with position ids that restart at each row, so no row attends to another)."""
    if not config.train.packing:
        return {"packing": False}
    return {"packing": True, "packing_strategy": "bfd", "padding_free": True}


def checkpointing_key() -> str:
    """The training-arguments name of gradient (activation) checkpointing in the installed transformers:
    `activation_checkpointing` where it exists (the older name is deprecated there), else the older one."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def optimizer_name(optim: str) -> str:
    """transformers' `optim` value for the studio's optimizer name."""
    return {"adamw_8bit": "adamw_bnb_8bit"}.get(optim, optim)


def loraplus_optimizer(model, training_args, config: cfg.RunConfig):
    """The LoRA+ optimizer (the chosen optimizer, B matrices at loraplus_ratio × the learning rate), or None
    when LoRA+ is off and the Trainer builds the optimizer itself."""
    if config.method.method not in ("lora", "qlora") or config.method.loraplus_ratio <= 0:
        return None
    from peft.optimizers import create_loraplus_optimizer
    from transformers import Trainer

    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    kwargs = {k: v for k, v in kwargs.items() if k != "lr"}
    return create_loraplus_optimizer(model, optimizer_cls, lr=training_args.learning_rate,
                                     loraplus_lr_ratio=config.method.loraplus_ratio,
                                     loraplus_weight_decay=training_args.weight_decay, **kwargs)


def output_dir_name(config: cfg.RunConfig) -> str:
    """The run-folder name of what the method saves: an adapter, or a whole model (full and freeze)."""
    return ADAPTER_DIR if config.method.method in cfg.PEFT_METHODS else FULL_MODEL_DIR


def save_trained(trainer, out_dir: Path, config: cfg.RunConfig, run_dir: Path) -> None:
    """Save what was trained to `out_dir`: the adapter or the model. A PiSSA adapter is converted to a plain
    LoRA adapter on the original weights, so it loads like any other."""
    init_dir = run_dir / PISSA_INIT_DIR
    if config.method.pissa_init and config.method.method == "lora" and init_dir.is_dir():
        trainer.model.save_pretrained(str(out_dir), path_initial_model_for_weight_conversion=str(init_dir))
        return
    trainer.save_model(str(out_dir))
