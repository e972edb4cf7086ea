"""Will it fit? The verdict on an estimate (studio/memory.py) against the chosen GPU's free memory (or the
RAM, without a GPU), the ranked fixes that make it fit (each a change of config keys with its new
estimate), the largest micro-batch and longest cutoff that fit, and a disk check.

Verdicts: `fits` (at most 90% of the available memory), `tight` (above 90%), `won't fit` (above 100%).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from studio.memory import (
    Estimate,
    EstimateInputs,
    GiB,
    estimate,
    trainable_params,
    with_changes,
)

FITS, TIGHT, WONT_FIT, UNKNOWN = "fits", "tight", "won't fit", "unknown"
TIGHT_SHARE = 0.9
MAX_BATCH = 4096


@dataclass
class Fix:
    """One way to make the run fit: the config keys to change, and the estimate after the change."""

    title: str
    change: dict[str, Any]
    total_gb: float
    fits: bool


@dataclass
class Assessment:
    """An estimate judged against the memory available to it."""

    estimate: Estimate
    available: float  # bytes: the GPU's free memory (or the RAM available, for a CPU run)
    device: str  # e.g. "GPU 0 (NVIDIA H100 80GB HBM3)", or "CPU (RAM)"
    verdict: str
    fixes: list[Fix] = field(default_factory=list)
    max_batch: int = 0  # largest micro-batch that fits at this cutoff (0: not even 1)
    max_seq: int = 0  # longest cutoff that fits at this micro-batch (0: not even 16 tokens)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Plain data for `python -m studio estimate --json` and the run folder's estimate.json."""
        e = self.estimate
        return {
            "total_gb": round(e.total / GiB, 3),
            "reserved_gb": round(e.reserved / GiB, 3),
            "available_gb": round(self.available / GiB, 3),
            "device": self.device,
            "verdict": self.verdict,
            "phase": e.phase,
            "components": e.gb(),
            "trainable_params": e.trainable_params,
            "total_params": e.total_params,
            "fixes": [asdict(f) for f in self.fixes],
            "max_batch": self.max_batch,
            "max_seq": self.max_seq,
            "warnings": self.warnings + e.notes,
            "inputs": {k: v for k, v in asdict(e.inputs).items() if k != "arch"},
        }


def verdict(total: float, available: float) -> str:
    """fits / tight / won't fit for `total` bytes against `available` bytes."""
    if total > available:
        return WONT_FIT
    return TIGHT if total > TIGHT_SHARE * available else FITS


def _fits(inputs: EstimateInputs, available: float) -> bool:
    return estimate(inputs).total <= available


def largest_batch(inputs: EstimateInputs, available: float) -> int:
    """The largest micro-batch (up to 4096) that fits at this cutoff; 0 when not even 1 does."""
    if not _fits(with_changes(inputs, batch_size=1), available):
        return 0
    low, high = 1, 2
    while high <= MAX_BATCH and _fits(with_changes(inputs, batch_size=high), available):
        low, high = high, high * 2
    high = min(high, MAX_BATCH + 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _fits(with_changes(inputs, batch_size=middle), available) else (low, middle)
    return low


def longest_cutoff(inputs: EstimateInputs, available: float) -> int:
    """The longest cutoff (16 up to the model's max positions, a multiple of 16) that fits at this
    micro-batch; 0 when not even 16 tokens do."""
    low, high = 16, max(16, inputs.arch.max_positions)
    if not _fits(with_changes(inputs, seq_len=low), available):
        return 0
    if _fits(with_changes(inputs, seq_len=high), available):
        return high
    while high - low > 16:
        middle = (low + high) // 32 * 16
        low, high = (middle, high) if _fits(with_changes(inputs, seq_len=middle), available) else (low, middle)
    return low


def _candidates(inputs: EstimateInputs, available: float, p95_tokens: int | None) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(title, config change, estimate-input change) for every fix that applies, least costly first."""
    found = []
    on_gpu = inputs.device != "cpu"
    if on_gpu and not inputs.gradient_checkpointing:
        found.append(("Turn on gradient checkpointing (about 30% slower, far fewer activations)",
                      {"gradient_checkpointing": True}, {"gradient_checkpointing": True}))
    if on_gpu and not inputs.use_liger and inputs.stage != "rm":
        found.append(("Use Liger kernels: fused cross-entropy never holds the full logits (needs liger-kernel)",
                      {"use_liger": True}, {"use_liger": True}))
    if inputs.batch_size > 1:
        fitting = largest_batch(inputs, available)
        smaller = max(1, min(inputs.batch_size - 1, fitting)) if fitting else 1
        while inputs.batch_size % smaller and smaller > 1:  # keep the effective batch exactly
            smaller -= 1
        accum = inputs.grad_accum * inputs.batch_size // smaller
        found.append((f"Micro-batch {smaller} with gradient accumulation {accum} (same effective batch, slower)",
                      {"batch_size": smaller, "grad_accum": accum}, {"batch_size": smaller, "grad_accum": accum}))
    if trainable_params(inputs) > 1e8 and inputs.optim in ("adamw_torch_fused", "adamw_torch", "paged_adamw_32bit"):
        found.append(("8-bit AdamW: optimizer state in a quarter of the memory", {"optim": "adamw_8bit"}, {"optim": "adamw_8bit"}))
        found.append(("Paged 8-bit AdamW: 8-bit state that can spill to CPU RAM at peaks", {"optim": "paged_adamw_8bit"}, {"optim": "paged_adamw_8bit"}))
    if p95_tokens and 16 <= p95_tokens < inputs.seq_len:
        cutoff = -(-p95_tokens // 16) * 16
        found.append((f"Cutoff {cutoff}: the data's 95th-percentile length (the longest 5% of rows are truncated)",
                      {"cutoff_len": cutoff}, {"seq_len": cutoff}))
    if on_gpu and inputs.method in ("lora", "full", "freeze"):
        found.append(("QLoRA: LoRA on a 4-bit quantised model (needs bitsandbytes)",
                      {"method": "qlora", "quant_bits": 4}, {"method": "qlora", "quant_bits": 4}))
    if inputs.method in ("full", "freeze"):
        found.append(("LoRA: train a small adapter instead of the weights", {"method": "lora"}, {"method": "lora"}))
    return found


def fixes(inputs: EstimateInputs, available: float, p95_tokens: int | None = None) -> list[Fix]:
    """Ranked fixes: those that make it fit, least costly first (then a combination when no single one
    does), then those that only help, smallest new total first. Only changes that lower the estimate."""
    now = estimate(inputs).total
    single = []
    for title, change, input_change in _candidates(inputs, available, p95_tokens):
        total = estimate(with_changes(inputs, **input_change)).total
        if total < now:
            single.append(Fix(title, change, round(total / GiB, 3), total <= available))
    fitting = [f for f in single if f.fits]
    helping = sorted((f for f in single if not f.fits), key=lambda f: f.total_gb)
    combined: list[Fix] = []
    if not fitting and len(single) > 1:
        change: dict[str, Any] = {}
        current = inputs
        for title, config_change, input_change in _candidates(inputs, available, p95_tokens):
            if config_change.get("optim") == "paged_adamw_8bit" or config_change.get("method") == "lora" and "method" in change:
                continue
            current = with_changes(current, **input_change)
            change.update(config_change)
            total = estimate(current).total
            if total <= available:
                combined.append(Fix("Together: " + change_text(change, ", "), dict(change), round(total / GiB, 3), True))
                break
    return combined + fitting + helping


def assess(inputs: EstimateInputs, available: float, device: str, p95_tokens: int | None = None) -> Assessment:
    """The estimate of `inputs`, its verdict against `available` bytes, fixes when it is above 90%, and the
    largest batch and cutoff that fit."""
    result = estimate(inputs)
    judged = verdict(result.total, available)
    return Assessment(
        estimate=result,
        available=available,
        device=device,
        verdict=judged,
        fixes=fixes(inputs, available, p95_tokens) if judged != FITS else [],
        max_batch=largest_batch(inputs, available),
        max_seq=longest_cutoff(inputs, available),
    )


def disk_needed(inputs: EstimateInputs, save_total_limit: int = 2) -> float:
    """Bytes of disk a run needs: the 16-bit download, the saved result, and the checkpoints it keeps
    (trained weights plus optimizer state each)."""
    result = estimate(inputs)
    download = result.total_params * 2
    saved = result.total_params * 2 if inputs.method in ("full", "freeze") else result.trainable_params * 4
    per_checkpoint = result.components["trainable"] + result.components["optimizer"] * max(1, inputs.num_gpus)
    return download + saved + save_total_limit * per_checkpoint


def assess_config(config: Any, hardware: Any, workspace: Any = None, gpu_index: int = 0, p95_tokens: int | None = None,
                  allow_download: bool = True) -> Assessment:
    """Assess a RunConfig on this machine: on GPU `gpu_index` when there is one, else on the CPU against the
    available RAM. With several GPUs (strategy other than single) the estimate is per GPU, over the chosen GPUs
    (`gpus`, or all), checked against the first chosen one: DDP keeps a full copy on each; FSDP and ZeRO shard."""
    from studio.memory import from_run_config
    from studio.config import gpu_list

    strategy, chosen = getattr(config.train, "strategy", "single"), []
    if strategy != "single":
        try:
            chosen = [i for i in gpu_list(getattr(config.train, "gpus", "")) if hardware.gpu(i)]
        except ValueError:  # a bad `gpus` is reported by the config's validation
            pass
        chosen = chosen or [g.index for g in hardware.gpus]
        gpu_index = chosen[0] if chosen else gpu_index
    gpu = hardware.gpu(gpu_index)
    inputs = from_run_config(config, gpu, workspace=workspace, allow_download=allow_download, num_gpus=max(len(chosen), 1))
    if gpu is None:
        result = assess(inputs, float(hardware.ram_available), "CPU (RAM)", p95_tokens)
        if result.estimate.total_params > 0.6e9:
            result.warnings.append(f"no GPU: a {result.estimate.total_params / 1e9:.1f}B model trains very slowly on a CPU; pick a small model such as tiny-demo or smollm2-135m-instruct")
    else:
        result = assess(inputs, float(gpu.free), f"GPU {gpu.index} ({gpu.name})", p95_tokens)
    disk = disk_needed(inputs, getattr(config.train, "save_total_limit", 2))
    if hardware.disk_free and disk > hardware.disk_free:
        result.warnings.append(f"disk: the run needs about {disk / GiB:.1f} GB (download, checkpoints, result) but the workspace has {hardware.disk_free / GiB:.1f} GB free")
    return result


def change_text(change: dict[str, Any], separator: str = " ") -> str:
    """A fix's config change as `key=value` pairs, the way the CLI takes them (e.g. `batch_size=1 grad_accum=2`)."""
    return separator.join(f"{key}={value}" for key, value in change.items())


def fit_check(config: Any, hardware: Any, workspace: Any = None, allow_download: bool = True) -> tuple[str, str]:
    """(verdict, one-paragraph message) for Start: `won't fit` means ask the user before launching. A model
    whose architecture cannot be read gives `unknown` with the reason; the run may still be started."""
    from studio.models.architecture import ModelInfoError
    from studio.workspace import PathError

    try:
        result = assess_config(config, hardware, workspace, allow_download=allow_download)
    except (ModelInfoError, PathError) as error:
        return UNKNOWN, f"no memory estimate: {error}"
    e = result.estimate
    message = f"Estimated peak {e.total / GiB:.1f} GB of {result.available / GiB:.1f} GB on {result.device}: {result.verdict}."
    if result.fixes:
        best = result.fixes[0]
        message += f" Best fix: {best.title} → {best.total_gb:.1f} GB."
    for warning in result.warnings:
        message += f" Note: {warning}."
    return result.verdict, message


def format_text(result: Assessment) -> str:
    """The assessment as the text `python -m studio estimate` prints: breakdown, verdict, fixes, limits."""
    e = result.estimate
    lines = [f"{name:16} {gb:8.2f} GB" for name, gb in e.gb().items() if gb > 0]
    lines.append(f"{'total':16} {e.total / GiB:8.2f} GB  (peak during the {e.phase}; torch reserves {e.reserved / GiB:.2f} GB of it)")
    lines.append(f"trainable parameters: {e.trainable_params:,} of {e.total_params:,}")
    lines.append(f"verdict: {result.verdict} on {result.device} with {result.available / GiB:.1f} GB free")
    for number, fix in enumerate(result.fixes, 1):
        change = change_text(fix.change)
        lines.append(f"  fix {number}: {fix.title} [{change}] → {fix.total_gb:.2f} GB{'' if fix.fits else ' (still too much)'}")
    lines.append(f"largest micro-batch that fits at cutoff {e.inputs.seq_len}: {result.max_batch or 'none'}; "
                 f"longest cutoff that fits at micro-batch {e.inputs.batch_size}: {result.max_seq or 'none'}")
    lines += [f"note: {w}" for w in result.warnings + e.notes]
    return "\n".join(lines)


def save_estimate(workspace: Any, run_dir: Any, config: Any) -> dict[str, Any]:
    """Write the run's estimate.json (the assessment on this machine's first GPU, or its CPU) and return it;
    a model whose architecture is not known offline gets {"error": why} instead. Never downloads."""
    import json

    from studio import hardware
    from studio.models.architecture import ModelInfoError
    from studio.workspace import ESTIMATE_FILE, PathError

    try:
        data = assess_config(config, hardware.detect(workspace.root), workspace, allow_download=False).to_json()
    except (ModelInfoError, PathError) as error:
        data = {"error": f"no memory estimate: {error}"}
    (run_dir / ESTIMATE_FILE).write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return data
