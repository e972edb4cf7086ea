"""Fine-tuning Studio: a no-code web studio to fine-tune open LLMs with the Hugging Face stack."""

import os

# CUDA numbers GPUs fastest first unless told otherwise, NVML by PCI bus: number them alike in the studio and
# every process it starts (set before anything initialises CUDA), so GPU 1 in the hardware panel is cuda:1.
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")

# peft reads a transformers property that transformers 5 deprecated: a warning at every load that no user can act on
import warnings  # noqa: E402

warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
