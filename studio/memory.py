"""Peak GPU memory of a training run, by component, before it starts. The formula and its sources are in
docs/vram.md; every number below is in bytes and per GPU.

    peak = context + workspace + reference model + weights + trainable + optimizer states
           + max(forward/backward phase: activations + logits + gradients live then,
                 optimizer-step phase: all gradients + the optimizer's temporaries)

`estimate(inputs)` returns an `Estimate` whose components (bytes) add up to its total. `from_run_config`
turns a RunConfig into `EstimateInputs`; the verdict and the fixes live in studio/fit.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from studio.models.architecture import MLP_MODULES, Architecture

GiB = 2**30
CUDA_CONTEXT = 0.5 * GiB  # CUDA runtime, cuBLAS/cuDNN handles and kernels: outside torch's allocator
CUBLAS_WORKSPACE = 0.25 * GiB  # cuBLAS/cuBLASLt workspaces and the allocator's smallest segments
FRAGMENTATION = 0.05  # share of the per-step tensors the caching allocator holds on top (reserved vs allocated)
LOGIT_BYTES = 12  # per token per vocabulary entry at the loss: fp32 upcast + log-softmax output + its gradient
EAGER_SCORE_BYTES = 7  # per score element in eager attention: fp32 softmax + bf16 copy + dropout mask
GALORE_RANK = 128
NF4_BLOCK = 64  # weights per 4-bit quantisation block (one absmax constant each)
DOUBLE_QUANT_BLOCK = 256  # absmax constants per second-level block when they are quantised again
PEFT_METHODS = ("lora", "qlora", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning")
PAIRED_STAGES = ("dpo", "orpo", "rm", "kto")  # two sequences per row: chosen + rejected (kto: answer + KL pair)
REFERENCE_STAGES = ("dpo", "kto")  # need the frozen starting model as a reference


@dataclass
class EstimateInputs:
    """Everything the estimate depends on. Defaults are the studio's config defaults."""

    arch: Architecture
    method: str = "lora"  # lora | qlora | full | freeze | ia3 | prompt_tuning | prefix_tuning | p_tuning
    stage: str = "sft"  # pt | sft | dpo | orpo | kto | rm | grpo
    batch_size: int = 4
    seq_len: int = 1024  # cutoff_len (grpo: it stands for the prompt, which is kept whole)
    completion_len: int = 0  # grpo: the longest sampled answer, trained after its prompt
    kl_reference: bool = False  # grpo with grpo_beta > 0: the starting model is kept as the KL reference
    vllm: bool = False  # grpo sampling with vLLM in the training process
    grad_accum: int = 1  # does not change the peak; kept so a fix can keep the effective batch
    lora_rank: int = 8
    lora_targets: str = "all-linear"
    lora_dropout: float = 0.0
    use_dora: bool = False
    quant_bits: int = 4
    double_quant: bool = True
    freeze_trainable_layers: int = 2
    num_virtual_tokens: int = 20
    optim: str = "adamw_torch_fused"
    precision: str = "auto"  # auto | bf16 | fp16 | fp32 | pure_bf16
    gradient_checkpointing: bool = True
    attn_impl: str = "sdpa"  # sdpa | flash_attention_2 | eager
    use_liger: bool = False  # fused RMSNorm/SwiGLU and chunked (fused) cross-entropy
    num_gpus: int = 1
    zero_stage: int = 0  # DeepSpeed ZeRO stage over num_gpus (0 = plain data parallel)
    offload_optimizer: bool = False  # CPU offload (FSDP/ZeRO): optimizer state and step in CPU RAM
    device: str = "cuda"  # "cpu": fp32, no checkpointing (the worker ignores it there), no CUDA context


@dataclass
class Estimate:
    """The predicted peak, by component (bytes, summing to `total`), and the phase in which it happens."""

    inputs: EstimateInputs
    components: dict[str, float]
    phase: str  # "forward/backward" or "optimizer step"
    trainable_params: int
    total_params: int
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        """Predicted peak memory per GPU, in bytes (what nvidia-smi shows at the peak)."""
        return sum(self.components.values())

    @property
    def reserved(self) -> float:
        """The part torch's caching allocator holds (torch.cuda.max_memory_reserved): all but the CUDA context."""
        return self.total - self.components.get("cuda_context", 0.0)

    def gb(self) -> dict[str, float]:
        """The components in GB (GiB), rounded for display."""
        return {name: round(value / GiB, 3) for name, value in self.components.items()}


def sequence_len(inputs: EstimateInputs) -> int:
    """Tokens of one trained sequence: the cutoff, plus a GRPO answer after its prompt."""
    return inputs.seq_len + inputs.completion_len


def compute_bytes(inputs: EstimateInputs) -> int:
    """Bytes per element of weights and activations: 2 (bf16/fp16) on a GPU, 4 on a CPU or with fp32."""
    return 4 if inputs.device == "cpu" or inputs.precision == "fp32" else 2


def master_bytes(inputs: EstimateInputs) -> int:
    """Bytes per trainable parameter (and per gradient element): PEFT adapters are kept in fp32; full and
    freeze keep fp32 master weights under mixed precision, and bf16 ones under pure_bf16."""
    return 2 if inputs.precision == "pure_bf16" and inputs.method in ("full", "freeze") else 4


def target_modules(inputs: EstimateInputs) -> dict[str, tuple[int, int]]:
    """The linear modules of one layer that LoRA adapts, (in, out) by name: `all-linear` or the listed names
    (names the architecture does not have are ignored, as PEFT would fail on them anyway)."""
    shapes = inputs.arch.linear_shapes()
    wanted = inputs.lora_targets.strip()
    if wanted == "all-linear":
        return shapes
    names = {name.strip().split(".")[-1] for name in wanted.split(",")}
    return {name: shape for name, shape in shapes.items() if name in names}


def _trained_layers(inputs: EstimateInputs) -> int:
    n = inputs.freeze_trainable_layers
    return inputs.arch.num_layers if n <= 0 else min(n, inputs.arch.num_layers)


def trainable_params(inputs: EstimateInputs) -> int:
    """How many parameters the method trains."""
    a, r, method = inputs.arch, inputs.lora_rank, inputs.method
    if method in ("lora", "qlora"):
        per_layer = sum(a.copies(n) * (r * (i + o) + (o if inputs.use_dora else 0)) for n, (i, o) in target_modules(inputs).items())
        return a.num_layers * per_layer
    if method == "full":
        return a.total_params()
    if method == "freeze":
        return _trained_layers(inputs) * a.layer_params()
    if method == "ia3":  # scalings on k_proj and v_proj outputs and on down_proj's input
        return a.num_layers * (2 * a.num_kv_heads * a.head_dim + (a.moe_intermediate_size or a.intermediate_size) * a.copies("down_proj"))
    if method == "prompt_tuning":
        return inputs.num_virtual_tokens * a.hidden_size
    if method == "p_tuning":  # virtual tokens plus the MLP prompt encoder (hidden size = model width)
        return inputs.num_virtual_tokens * a.hidden_size + 3 * a.hidden_size * a.hidden_size
    if method == "prefix_tuning":  # a key and a value vector per virtual token per layer
        return inputs.num_virtual_tokens * a.num_layers * 2 * a.num_kv_heads * a.head_dim
    raise ValueError(f"unknown method {method!r}")


def weight_bytes(inputs: EstimateInputs) -> tuple[float, float]:
    """(frozen/working weights, trainable parameters) in bytes. QLoRA stores the layers' linear weights in
    4 bits with one fp32 absmax per 64 weights (double quantisation: 8-bit absmax plus one fp32 per 256
    blocks), or in 8 bits with an fp32 scale per output row; embeddings, norms and the head stay 16-bit."""
    a, d = inputs.arch, compute_bytes(inputs)
    total, trained = a.total_params(), trainable_params(inputs)
    if inputs.method in ("full", "freeze"):
        frozen = (total - trained) * d
        if master_bytes(inputs) == 4 and d == 2:
            frozen += trained * d  # mixed precision: autocast's 16-bit working copy of the trained weights
        return frozen, trained * master_bytes(inputs)
    adapter = trained * 4
    if inputs.method != "qlora":
        return total * d, adapter
    linear = a.linear_params()
    if inputs.quant_bits == 8:
        rows = a.num_layers * sum(o * a.copies(n) for n, (_i, o) in a.linear_shapes().items())
        quantised = linear * 1 + rows * 4
    else:
        constants = 1 / NF4_BLOCK + 4 / (NF4_BLOCK * DOUBLE_QUANT_BLOCK) if inputs.double_quant else 4 / NF4_BLOCK
        quantised = linear * (0.5 + constants)
    return quantised + (total - linear) * d, adapter


def _matrix_shapes(inputs: EstimateInputs) -> list[tuple[int, int, int]]:
    """(rows, cols, count) of the trainable matrices, for optimizers that treat matrices specially."""
    a, r = inputs.arch, inputs.lora_rank
    if inputs.method in ("lora", "qlora"):
        return [(i, r, a.num_layers * a.copies(n)) for n, (i, _o) in target_modules(inputs).items()] + \
               [(r, o, a.num_layers * a.copies(n)) for n, (_i, o) in target_modules(inputs).items()]
    if inputs.method in ("full", "freeze"):
        layers = a.num_layers if inputs.method == "full" else _trained_layers(inputs)
        shapes = [(i, o, layers * a.copies(n)) for n, (i, o) in a.linear_shapes().items()]
        if inputs.method == "full":
            shapes.append((a.vocab_size, a.hidden_size, 1 if a.tied_embeddings else 2))
        return shapes
    return []


def optimizer_bytes(inputs: EstimateInputs) -> float:
    """Optimizer state: AdamW two moments in the master dtype (4+4 bytes, or 2+2 under pure_bf16); 8-bit
    AdamW 1+1 bytes; paged 32-bit AdamW 8; Adafactor a factored second moment (rows + cols per matrix);
    SGD none; GaLore AdamW moments of rank-128 projections plus the projection matrices."""
    trained, optim = trainable_params(inputs), inputs.optim
    if optim in ("adamw_torch_fused", "adamw_torch", "paged_adamw_32bit"):
        return trained * 2 * (4 if optim == "paged_adamw_32bit" else master_bytes(inputs))
    if optim in ("adamw_8bit", "paged_adamw_8bit"):
        return trained * 2
    if optim == "sgd":
        return 0.0
    matrices = _matrix_shapes(inputs)
    in_matrices = sum(rows * cols * n for rows, cols, n in matrices)
    vectors = max(0, trained - in_matrices)
    if optim == "adafactor":
        return 4 * (sum((rows + cols) * n for rows, cols, n in matrices) + vectors)
    if optim == "galore_adamw":
        projected = sum(n * (2 * GALORE_RANK * max(rows, cols) + GALORE_RANK * min(rows, cols)) for rows, cols, n in matrices)
        return 4 * projected + 8 * vectors
    raise ValueError(f"unknown optimizer {optim!r}")


def _layer_activation_bytes(inputs: EstimateInputs) -> float:
    """Bytes one decoder layer keeps for the backward pass, per token (derivation in docs/vram.md)."""
    a, d, seq = inputs.arch, compute_bytes(inputs), sequence_len(inputs)
    h, q, kv = a.hidden_size, a.num_heads * a.head_dim, a.num_kv_heads * a.head_dim
    mlp = (a.moe_intermediate_size or a.intermediate_size) if a.num_experts else a.intermediate_size
    active = a.experts_per_token if a.num_experts else 1
    base_trained = inputs.method in ("full", "freeze")
    norm = d * h + 4 if inputs.use_liger else 4 * h + (2 * d * h if base_trained else 0)
    attention = 2 * d * q + 2 * d * kv + 4 * a.num_heads  # rotated q and k, v, output, log-sum-exp
    if inputs.attn_impl == "eager":
        attention += (EAGER_SCORE_BYTES if d == 2 else 9) * a.num_heads * seq
    glu = 2 if inputs.use_liger else 3  # gate out, SiLU out, up out (Liger recomputes SiLU)
    mlp_bytes = active * (glu + (1 if base_trained else 0)) * d * mlp + 4 * a.num_experts
    extra = 0.0
    if inputs.method in ("lora", "qlora"):
        for name, (i, o) in target_modules(inputs).items():
            copies = active if name in MLP_MODULES else 1
            extra += copies * (d * i + d * inputs.lora_rank + (3 * i if inputs.lora_dropout > 0 else 0))
            if inputs.use_dora:  # DoRA rescales the base output by the magnitude: that output is kept for backward
                extra += copies * d * o
    return 2 * norm + attention + mlp_bytes + extra


def activation_bytes(inputs: EstimateInputs) -> float:
    """Activations kept for the backward pass, all layers, one micro-batch. With gradient checkpointing
    only each layer's input is kept, plus one layer's activations while it is recomputed."""
    a = inputs.arch
    tokens = inputs.batch_size * sequence_len(inputs) * (2 if inputs.stage in PAIRED_STAGES else 1)
    if inputs.method in ("prompt_tuning", "p_tuning"):
        tokens += inputs.batch_size * inputs.num_virtual_tokens
    per_layer = _layer_activation_bytes(inputs)
    checkpointing = inputs.gradient_checkpointing and inputs.device != "cpu"
    if checkpointing:
        per_token = a.num_layers * compute_bytes(inputs) * a.hidden_size + per_layer
    else:
        per_token = a.num_layers * per_layer
    return tokens * per_token


def logits_bytes(inputs: EstimateInputs) -> float:
    """The loss: batch × length × vocab logits, upcast to fp32 for the cross-entropy, with its gradient.
    Fused (chunked) cross-entropy never holds them all; a reward model's head outputs one score."""
    a = inputs.arch
    tokens = inputs.batch_size * sequence_len(inputs) * (2 if inputs.stage in PAIRED_STAGES else 1)
    if inputs.stage == "rm":
        return 0.0
    if inputs.use_liger:
        return tokens * 8 * a.hidden_size  # one chunk of logits at a time: about a hidden state in fp32
    return tokens * a.vocab_size * LOGIT_BYTES


def generation_bytes(inputs: EstimateInputs) -> float:
    """GRPO's sampling with transformers' generate: the KV cache of a whole generation batch (batch_size ×
    grad_accum answers, prompt and answer) and each new token's logits; 0 for other stages and with vLLM
    (which samples in memory of its own)."""
    if inputs.stage != "grpo" or inputs.vllm:
        return 0.0
    a = inputs.arch
    answers = inputs.batch_size * inputs.grad_accum
    kv_cache = answers * sequence_len(inputs) * a.num_layers * 2 * a.num_kv_heads * a.head_dim * compute_bytes(inputs)
    return kv_cache + answers * a.vocab_size * 8  # the new token's fp32 logits and the softmax sampled from


def _shard(value: float, inputs: EstimateInputs, from_stage: int) -> float:
    return value / inputs.num_gpus if inputs.num_gpus > 1 and inputs.zero_stage >= from_stage else value


def estimate(inputs: EstimateInputs) -> Estimate:
    """The predicted peak memory per GPU, by component (see the module docstring for the sum)."""
    a, notes = inputs.arch, []
    frozen, trained_bytes = weight_bytes(inputs)
    trained = trainable_params(inputs)
    grads = _shard(trained * master_bytes(inputs), inputs, 2)
    optimizer = _shard(optimizer_bytes(inputs), inputs, 1)
    frozen, trained_bytes = _shard(frozen, inputs, 3), _shard(trained_bytes, inputs, 3)
    if inputs.num_gpus > 1 and inputs.zero_stage >= 3:
        frozen += 2 * a.layer_params() * compute_bytes(inputs)  # the gathered layer in use and the prefetched next
    needs_reference = inputs.stage in REFERENCE_STAGES or (inputs.stage == "grpo" and inputs.kl_reference)
    reference = a.total_params() * compute_bytes(inputs) if needs_reference and inputs.method in ("full", "freeze") else 0.0
    reference = _shard(reference, inputs, 3)
    activations, logits = activation_bytes(inputs), logits_bytes(inputs)
    if inputs.method in ("full", "freeze"):  # during backward, gradients appear as activations are freed
        early_grads = (a.vocab_size * a.hidden_size * master_bytes(inputs)) if inputs.method == "full" else 0.0
        early_grads = min(grads, _shard(early_grads, inputs, 2))
    else:
        early_grads = grads  # adapters: small, present in full by the end of backward
    # the step-by-step AdamW builds a gradient-sized temporary; the fused kernel updates in place
    step_temp = trained * master_bytes(inputs) if inputs.optim in ("adamw_torch", "paged_adamw_32bit", "galore_adamw") else 0.0
    step_temp = _shard(step_temp, inputs, 1)
    if inputs.offload_optimizer:  # the state lives in CPU RAM and the step runs there
        optimizer, step_temp = 0.0, 0.0
        notes.append("CPU offload: the optimizer state is kept in CPU RAM (not counted here) and each step is slower")
    backward_phase = activations + logits + early_grads
    step_phase = grads + step_temp
    if inputs.optim.startswith("paged"):
        notes.append("paged optimizer: its state can move to CPU RAM when the GPU runs short, so the true peak may be lower")
    on_gpu = inputs.device != "cpu"
    sampling = generation_bytes(inputs)
    if inputs.vllm:
        notes.append("vLLM keeps its own share of the GPU for sampling (TRL's vllm_gpu_memory_utilization, 0.3 by "
                     "default), not counted here")
    if sampling > max(backward_phase, step_phase):
        phase, live = "generation", {"activations": 0.0, "logits": 0.0, "gradients": grads, "generation": sampling}
    elif backward_phase >= step_phase:
        phase, live = "forward/backward", {"activations": activations, "logits": logits, "gradients": early_grads}
    else:
        phase, live = "optimizer step", {"activations": 0.0, "logits": 0.0, "gradients": step_phase}
    dynamic = sum(live.values())
    # QLoRA unpacks one linear weight at a time to 16 bits for its matmul (forward and backward)
    dequantised = max(i * o for i, o in a.linear_shapes().values()) * compute_bytes(inputs) if inputs.method == "qlora" else 0.0
    # DoRA builds each adapted weight densely (W + BA) to take its column norms: one matrix and its sum at a time
    adapted = target_modules(inputs).values() if inputs.method in ("lora", "qlora") and inputs.use_dora else ()
    dora_dense = max((i * o for i, o in adapted), default=0) * 2 * compute_bytes(inputs)
    components = {
        "weights": frozen,
        "trainable": trained_bytes,
        "optimizer": optimizer,
        **live,
        "reference_model": reference,
        "cuda_context": CUDA_CONTEXT if on_gpu else 0.0,
        "workspace": (CUBLAS_WORKSPACE + FRAGMENTATION * dynamic + dequantised + dora_dense) if on_gpu else 0.0,
    }
    return Estimate(inputs, components, phase, trained, a.total_params(), notes)


def with_changes(inputs: EstimateInputs, **changes: Any) -> EstimateInputs:
    """A copy of `inputs` with some fields changed."""
    return dataclasses.replace(inputs, **changes)


# How each strategy spreads memory over N GPUs, as a ZeRO stage: FSDP full shard = stage 3 (weights, gradients,
# optimizer state), shard-grad-op = stage 2, DDP = 0 (a full copy per GPU).
STRATEGY_ZERO_STAGE = {"single": 0, "ddp": 0, "fsdp": 3, "fsdp_shard_grad_op": 2, "deepspeed_zero2": 2, "deepspeed_zero3": 3}


def from_run_config(config: Any, gpu: Any = None, arch: Architecture | None = None, workspace: Any = None,
                    allow_download: bool = True, num_gpus: int = 1) -> EstimateInputs:
    """EstimateInputs for a RunConfig on `gpu` (a hardware.GPU, or None for a CPU run), spread over `num_gpus`
    GPUs as its `strategy` says. The architecture comes from `arch`, or is looked up for config.model.model
    (needs `workspace` for non-catalog models). Keys other parts of the config may not have yet are read with
    their defaults."""
    if arch is None:
        from studio.models.architecture import model_architecture

        arch = model_architecture(workspace, config.model.model, allow_download) if workspace is not None else _catalog_arch(config.model.model)
    m, t = config.method, config.train
    stage_section = getattr(config, "stage", None)
    stage = getattr(stage_section, "stage", "sft") if stage_section is not None else "sft"
    return EstimateInputs(
        arch=arch,
        method=getattr(m, "method", "lora"),
        stage=stage,
        batch_size=t.batch_size,
        seq_len=t.cutoff_len,
        completion_len=stage_section.grpo_max_completion_len if stage == "grpo" else 0,
        kl_reference=stage == "grpo" and stage_section.grpo_beta > 0,
        vllm=stage == "grpo" and stage_section.grpo_vllm,
        grad_accum=t.grad_accum,
        lora_rank=getattr(m, "lora_rank", 8),
        lora_targets=getattr(m, "lora_targets", "all-linear"),
        lora_dropout=getattr(m, "lora_dropout", 0.0),
        use_dora=getattr(m, "use_dora", False),
        quant_bits=getattr(m, "quant_bits", 4),
        double_quant=getattr(m, "double_quant", True),
        freeze_trainable_layers=getattr(m, "freeze_trainable_layers", 2),
        num_virtual_tokens=getattr(m, "num_virtual_tokens", 20),
        optim=getattr(t, "optim", "adamw_torch_fused"),
        precision=getattr(t, "precision", "auto"),
        gradient_checkpointing=getattr(t, "gradient_checkpointing", True),
        attn_impl=getattr(t, "attn_impl", "sdpa"),
        use_liger=getattr(t, "use_liger", False),
        num_gpus=num_gpus if gpu is not None else 1,
        zero_stage=STRATEGY_ZERO_STAGE.get(getattr(t, "strategy", "single"), 0),
        offload_optimizer=getattr(t, "offload", False) and STRATEGY_ZERO_STAGE.get(getattr(t, "strategy", "single"), 0) > 0,
        device="cuda" if gpu is not None else "cpu",
    )


def _catalog_arch(model: str) -> Architecture:
    from studio.models.architecture import ModelInfoError
    from studio.models.catalog import load_catalog

    preset = load_catalog().get(model.strip())
    if preset is None:
        raise ModelInfoError(f"{model} is not in the catalog: pass its architecture or the workspace to read its config.json")
    return Architecture.from_dict(preset.architecture)
