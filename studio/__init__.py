"""Fine-tuning Studio: a no-code web studio to fine-tune open LLMs with the Hugging Face stack."""

import os

# CUDA numbers GPUs fastest first unless told otherwise, NVML by PCI bus: number them alike in the studio and
# every process it starts (set before anything initialises CUDA), so GPU 1 in the hardware panel is cuda:1.
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
