"""System samples while a run loads and trains: CPU, RAM and every GPU NVML can see, to system.jsonl.

One line every 2 s: {"time": epoch s, "elapsed": s since the worker started, "cpu_percent", "ram_used_gb",
"ram_total_gb", "gpus": [{"index", "name", "memory_used_mb", "memory_total_mb", "utilization_percent",
"temperature_c", "power_w"}]}. GB and MB are GiB and MiB. Without a GPU or NVML, "gpus" is []. A reading
a GPU does not support (e.g. power on some boards) is null.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psutil

from studio.hardware import cuda_handles, nvml_ready
from studio.workspace import SYSTEM_FILE, this_process_started
from studio.workspace import append_jsonl

INTERVAL_S = 2.0


def _reading(read, scale: float = 1.0) -> float | None:
    """One NVML reading scaled to float, or None where the GPU does not support it."""
    import pynvml

    try:
        return round(float(read()) * scale, 1)
    except pynvml.NVMLError:
        return None


def gpu_samples() -> list[dict[str, Any]]:
    """One dict per GPU NVML sees (empty without NVML)."""
    if not nvml_ready():
        return []
    import pynvml

    gpus = []
    for index, handle in cuda_handles(pynvml):
        name = pynvml.nvmlDeviceGetName(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        gpus.append({
            "index": index,
            "name": name.decode() if isinstance(name, bytes) else str(name),
            "memory_used_mb": round(memory.used / 2**20, 1),
            "memory_total_mb": round(memory.total / 2**20, 1),
            "utilization_percent": _reading(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            "temperature_c": _reading(lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
            "power_w": _reading(lambda: pynvml.nvmlDeviceGetPowerUsage(handle), 1e-3),
        })
    return gpus


def sample(started: float | None = None) -> dict[str, Any]:
    """One system sample. `started` (epoch s) defaults to this process's start time.

    cpu_percent is the whole machine's use since the previous call (0.0 on the very first call)."""
    now = time.time()
    if started is None:
        started = this_process_started()
    memory = psutil.virtual_memory()
    return {
        "time": round(now, 3),
        "elapsed": round(now - started, 2),
        "cpu_percent": float(psutil.cpu_percent(interval=None)),
        "ram_used_gb": round((memory.total - memory.available) / 2**30, 3),
        "ram_total_gb": round(memory.total / 2**30, 3),
        "gpus": gpu_samples(),
    }


class SystemSampler:
    """A daemon thread appending one sample to run_dir/system.jsonl every `interval` s until stop()."""

    def __init__(self, run_dir: Path, interval: float = INTERVAL_S):
        self.path = run_dir / SYSTEM_FILE
        self.interval = interval
        self.started = this_process_started()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="system-sampler", daemon=True)

    def _loop(self) -> None:
        psutil.cpu_percent(interval=None)  # prime the counter so the first sample measures something
        wait = 0.5
        while not self.done.wait(wait):
            append_jsonl(self.path, sample(self.started))
            wait = self.interval

    def start(self) -> "SystemSampler":
        self.thread.start()
        return self

    def stop(self) -> None:
        """Write a last sample and end the thread."""
        self.done.set()
        self.thread.join(timeout=5)
        append_jsonl(self.path, sample(self.started))

    def __enter__(self) -> "SystemSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

