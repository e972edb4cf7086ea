"""Hardware detection: the real no-GPU path of this machine, and the GPU path through a pynvml-shaped fake."""

from __future__ import annotations

from types import SimpleNamespace

import psutil

from studio import config as cfg
from studio import fit, hardware
from studio.memory import GiB


def test_this_machine_is_described_as_it_is(tmp_path):
    machine = hardware.detect(tmp_path)
    assert machine.cpu_cores == psutil.cpu_count()
    assert 0 < machine.ram_available <= machine.ram_total
    assert machine.disk_free > 0
    text = "\n".join(hardware.summary(machine))
    if machine.gpus:
        assert all(gpu.name in text for gpu in machine.gpus)
    else:  # a machine without a GPU says so plainly, and what to train on it
        assert machine.gpu(0) is None
        assert "No GPU: training runs on the CPU" in text and "tiny-demo" in text


class FakeNVML:
    """Two GPUs as pynvml reports them: an A100 (Ampere) and a T4 (Turing, no bf16)."""

    boards = ((b"NVIDIA A100-SXM4-80GB", 80 * GiB, 70 * GiB, (8, 0)), ("Tesla T4", 16 * GiB, 15 * GiB, (7, 5)))

    def nvmlDeviceGetCount(self):
        return len(self.boards)

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return self.boards[handle][0]

    def nvmlDeviceGetMemoryInfo(self, handle):
        _name, total, free, _cc = self.boards[handle]
        return SimpleNamespace(total=total, free=free, used=total - free)

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-{handle}a1b2c3"

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        return self.boards[handle][3]


def test_gpus_through_nvml(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "_flash_attn_installed", lambda: True)
    machine = hardware.detect(tmp_path, nvml=FakeNVML())
    a100, t4 = machine.gpus
    assert (a100.name, a100.total, a100.free) == ("NVIDIA A100-SXM4-80GB", 80 * GiB, 70 * GiB)
    assert a100.bf16 and a100.flash_attention
    assert t4.name == "Tesla T4" and not t4.bf16 and not t4.flash_attention
    text = "\n".join(hardware.summary(machine))
    assert "GPU 0: NVIDIA A100-SXM4-80GB, 70.0 of 80.0 GB free, bf16 yes, FlashAttention 2 yes" in text
    assert "No GPU" not in text


def test_fit_check_on_a_gpu_and_on_the_cpu(tmp_path):
    machine = hardware.detect(tmp_path, nvml=FakeNVML())
    big = cfg.apply_overrides(cfg.RunConfig(), {"model": "llama-3.1-8b-instruct", "method": "full"})
    verdict, message = fit.fit_check(big, machine)
    assert verdict == fit.WONT_FIT and "GPU 0 (NVIDIA A100-SXM4-80GB)" in message and "Best fix" in message
    small = cfg.apply_overrides(cfg.RunConfig(), {"model": "qwen2.5-0.5b-instruct", "method": "lora", "cutoff_len": 512})
    assert fit.fit_check(small, machine)[0] == fit.FITS
    cpu = hardware.Hardware(cpu_cores=2, ram_total=24 * GiB, ram_available=20 * GiB, disk_free=100 * GiB)
    verdict, message = fit.fit_check(cfg.apply_overrides(cfg.RunConfig(), {"model": "qwen2.5-7b-instruct"}), cpu)
    assert "CPU (RAM)" in message and "trains very slowly on a CPU" in message
    assert fit.fit_check(cfg.RunConfig(), cpu)[0] == fit.FITS  # tiny-demo on the CPU
    unknown = cfg.apply_overrides(cfg.RunConfig(), {"model": "Some/unknown-model"})
    assert fit.fit_check(unknown, cpu)[0] == fit.UNKNOWN


def test_disk_check_warns_when_the_workspace_is_too_small():
    cpu = hardware.Hardware(cpu_cores=2, ram_total=64 * GiB, ram_available=60 * GiB, disk_free=1 * GiB)
    result = fit.assess_config(cfg.apply_overrides(cfg.RunConfig(), {"model": "qwen2.5-1.5b-instruct"}), cpu)
    assert any(w.startswith("disk: the run needs about") for w in result.warnings)


def test_gpus_are_numbered_as_cuda_numbers_the_visible_ones(tmp_path, monkeypatch):
    """Under CUDA_VISIBLE_DEVICES the panel lists only the GPUs training can use, with the index torch gives
    them, and reads a UUID the way CUDA does; an entry naming no GPU ends the list, as in CUDA."""
    import pynvml

    assert hasattr(pynvml, "nvmlDeviceGetUUID")  # the fake offers only what nvidia-ml-py has
    for visible, expected in (("1", [(0, "Tesla T4")]), ("1,0", [(0, "Tesla T4"), (1, "NVIDIA A100-SXM4-80GB")]),
                              ("GPU-0a1", [(0, "NVIDIA A100-SXM4-80GB")]), ("0,7,1", [(0, "NVIDIA A100-SXM4-80GB")]),
                              ("", [])):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        machine = hardware.detect(tmp_path, nvml=FakeNVML())
        assert [(gpu.index, gpu.name) for gpu in machine.gpus] == expected, visible
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert [gpu.index for gpu in hardware.detect(tmp_path, nvml=FakeNVML()).gpus] == [0, 1]


def test_estimate_bar_draws_each_component_to_scale_against_the_free_memory_line():
    """The Model tab's bar: one segment per non-zero component, widths in proportion to their GB, the free
    memory line where the free GB fall on the same scale, and the legend naming each component with its GB."""
    import re

    from studio.ui.estimate_panel import estimate_chart

    cpu = hardware.Hardware(cpu_cores=2, ram_total=24 * GiB, ram_available=20 * GiB, disk_free=100 * GiB)
    result = fit.assess_config(cfg.apply_overrides(cfg.RunConfig(), {"model": "qwen2.5-1.5b-instruct"}), cpu)
    page = estimate_chart(result, "en")
    parts = {name: gb for name, gb in result.estimate.gb().items() if gb > 0}
    widths = dict(re.findall(r'data-part="(\w+)"[^>]*style="width:([\d.]+)%', page))
    assert set(widths) == set(parts)
    scale = max(sum(parts.values()), result.available / GiB) * 1.05
    for name, gb in parts.items():
        assert abs(float(widths[name]) - 100 * gb / scale) < 0.01, name
        assert f"{name} {gb:.2f} GB" in page
    line = float(re.search(r'class="estimate-free" style="left:([\d.]+)%', page)[1])
    assert abs(line - 100 * (result.available / GiB) / scale) < 0.01
    assert f"{result.device}: {result.available / GiB:.1f} GB free" in page
    chinese = estimate_chart(result, "zh")
    assert "可用" in chinese and "权重" in chinese
