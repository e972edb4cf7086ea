"""What this machine can train on: each GPU (nvidia-ml-py), CPU cores, RAM and free disk (psutil).

Without an NVIDIA GPU (no driver, or no nvidia-ml-py) the GPU list is empty and `summary()` says so plainly:
training then runs on the CPU, which suits only small models. NVML is initialised once per process, shared
with the system sampler of running trainings (studio/train/system.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

GiB = 2**30
CPU_FRIENDLY_PARAMS = 0.6e9  # up to about this size, a CPU trains a LoRA in reasonable time (minutes to hours)


@dataclass
class GPU:
    """One GPU as NVML reports it. Memory in bytes."""

    index: int
    name: str
    total: int
    free: int
    compute_capability: tuple[int, int]
    flash_attn_installed: bool = False

    @property
    def bf16(self) -> bool:
        """bf16 needs compute capability 8.0 (Ampere) or newer."""
        return self.compute_capability >= (8, 0)

    @property
    def flash_attention(self) -> bool:
        """FlashAttention 2 runs here: an Ampere or newer GPU and the flash_attn package installed."""
        return self.compute_capability >= (8, 0) and self.flash_attn_installed


@dataclass
class Hardware:
    """The machine: GPUs (empty without one), CPU cores, RAM (bytes) and free disk in the workspace (bytes)."""

    gpus: list[GPU] = field(default_factory=list)
    cpu_cores: int = 1
    ram_total: int = 0
    ram_available: int = 0
    disk_free: int = 0

    def gpu(self, index: int = 0) -> GPU | None:
        """The GPU with this index, or None (no such GPU, or none at all)."""
        return next((g for g in self.gpus if g.index == index), None)

    def with_gpus(self, free_gb: float, indices: list[int] | None = None) -> Hardware:
        """This machine as if it had GPUs `indices` (default [0]), each with `free_gb` GB free (and that much in
        all), for judging a config for another machine; they are taken to be Ampere or newer (bf16)."""
        size = int(free_gb * 2**30)
        return replace(self, gpus=[GPU(i, f"a GPU with {free_gb:g} GB", size, size, (8, 0)) for i in indices or [0]])


_nvml: dict[str, Any] = {"ready": None}  # NVML is initialised once per process


def nvml_ready() -> bool:
    """Initialise NVML once per process; False when there is no NVIDIA driver or no nvidia-ml-py."""
    if _nvml["ready"] is None:
        try:
            import pynvml
        except ImportError:
            _nvml["ready"] = False
            return False
        try:
            pynvml.nvmlInit()
            _nvml["ready"] = True
        except pynvml.NVMLError:  # no driver or no NVML library: no GPUs to report
            _nvml["ready"] = False
    return bool(_nvml["ready"])


def _flash_attn_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def cuda_handles(nvml: Any) -> list[tuple[int, Any]]:
    """(CUDA index, NVML handle) of each GPU that CUDA shows this process: those CUDA_VISIBLE_DEVICES selects
    (by index or by `GPU-…` UUID prefix, up to its first entry that names none, as CUDA reads it), numbered in that
    order; every GPU NVML sees when it is unset. NVML's order is the PCI bus order, which CUDA follows here
    (CUDA_DEVICE_ORDER, set in studio/__init__.py)."""
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
    wanted = os.environ.get("CUDA_VISIBLE_DEVICES")
    if wanted is None:
        return list(enumerate(handles))
    chosen: list[Any] = []
    for entry in (part.strip() for part in wanted.split(",")):
        if entry.isdigit() and int(entry) < len(handles):
            match = handles[int(entry)]
        elif entry.startswith("GPU-"):
            match = next((h for h in handles if _text(nvml.nvmlDeviceGetUUID(h)).startswith(entry)), None)
        else:
            match = None
        if match is None or match in chosen:
            break
        chosen.append(match)
    return list(enumerate(chosen))


def detect_gpus(nvml: Any = None) -> list[GPU]:
    """Every GPU CUDA shows this process, numbered as CUDA numbers them (see cuda_handles); [] without NVML.
    `nvml` stands in for the pynvml module (tests pass a fake one)."""
    if nvml is None:
        if not nvml_ready():
            return []
        import pynvml as nvml
    flash = _flash_attn_installed()
    gpus = []
    for index, handle in cuda_handles(nvml):
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
        gpus.append(GPU(index, _text(nvml.nvmlDeviceGetName(handle)), int(memory.total), int(memory.free), (int(major), int(minor)), flash))
    return gpus


def torch_device() -> str:
    """The device models load on in this process: "cuda" when torch sees a GPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cuda_gpus() -> list[GPU]:
    """The GPUs training can use, as detect_gpus gives them; where NVML cannot be read, what torch reports."""
    if nvml_ready():
        return detect_gpus()
    import torch

    if not torch.cuda.is_available():
        return []
    found = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        found.append(GPU(index, props.name, int(props.total_memory), int(props.total_memory), (props.major, props.minor),
                         _flash_attn_installed()))
    return found


def detect(workspace_root: Path | str, nvml: Any = None) -> Hardware:
    """The machine's hardware, with free disk measured where the workspace lies."""
    memory = psutil.virtual_memory()
    return Hardware(
        gpus=detect_gpus(nvml),
        cpu_cores=psutil.cpu_count(logical=True) or 1,
        ram_total=int(memory.total),
        ram_available=int(memory.available),
        disk_free=int(psutil.disk_usage(str(workspace_root)).free),
    )


def cpu_training_threads(processes_here: int = 1) -> int:
    """How many threads each CPU-training process should give PyTorch: the cores this process may use, less one
    left for the studio, the browser and the system sampler, shared between the run's `processes_here` processes
    on this machine; at least 1. (A training that takes every core stalls when anything else runs: torch's
    threads wait for each other at every operation. Measured on 2 cores with one of them busy: 0.16 steps/s
    with 2 threads, 5.0 with 1.)"""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, (cores - 1) // max(1, processes_here))


def leave_a_core_free(torch, processes_here: int = 1) -> int | None:
    """On a machine without CUDA, give PyTorch in this process cpu_training_threads(processes_here) threads, so a
    training, a chat reply or an evaluation never starves the studio's web server and the user's browser (and is
    not starved by them); left alone when CUDA computes or the user set OMP_NUM_THREADS. Returns the thread count
    set, or None when nothing was changed."""
    if torch.cuda.is_available() or os.environ.get("OMP_NUM_THREADS"):
        return None
    threads = cpu_training_threads(processes_here)
    torch.set_num_threads(threads)
    return threads


def summary(hardware: Hardware) -> list[str]:
    """Plain lines about the hardware (English; the UI localises its own panel)."""
    lines = []
    for g in hardware.gpus:
        lines.append(
            f"GPU {g.index}: {g.name}, {g.free / GiB:.1f} of {g.total / GiB:.1f} GB free, "
            f"bf16 {'yes' if g.bf16 else 'no'}, FlashAttention 2 {'yes' if g.flash_attention else 'no'}"
            + ("" if g.flash_attn_installed or not g.bf16 else " (pip install flash-attn to use it)")
        )
    if not hardware.gpus:
        lines.append(f"No GPU: training runs on the CPU, which suits small models (up to about {CPU_FRIENDLY_PARAMS / 1e9:.1f}B parameters, e.g. tiny-demo or SmolLM2).")
    lines.append(f"CPU: {hardware.cpu_cores} cores; RAM: {hardware.ram_available / GiB:.1f} of {hardware.ram_total / GiB:.1f} GB free; "
                 f"disk: {hardware.disk_free / GiB:.1f} GB free in the workspace")
    return lines
