"""Fine-tuning Studio: a no-code web studio to fine-tune open LLMs with the Hugging Face stack."""

import os

# CUDA numbers GPUs fastest first unless told otherwise, NVML by PCI bus: number them alike in the studio and
# every process it starts (set before anything initialises CUDA), so GPU 1 in the hardware panel is cuda:1.
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")

# peft reads a transformers property that transformers 5 deprecated: a warning at every load that no user can act on
import warnings  # noqa: E402

warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

# bitsandbytes 0.50 on a CPU with AVX512-BF16 asks the `kernels` package for a faster 4-bit kernel from the Hub at
# import; refused (untrusted publisher, or offline) both log a line into every CLI answer and train.log, and
# bitsandbytes then uses its own kernel. Nothing there for a user to act on.
import logging  # noqa: E402

_HUB_KERNEL = "kernels-community/quantization-bitsandbytes"


def _not_about_the_hub_kernel(record: logging.LogRecord) -> bool:
    return _HUB_KERNEL not in record.getMessage()


for _name in ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub"):
    logging.getLogger(_name).addFilter(_not_about_the_hub_kernel)
