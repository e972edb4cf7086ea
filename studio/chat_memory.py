"""Memory for a model loaded to answer (Chat, Compare, Evaluate) beside a training run: whether loading may go
ahead now, and giving a dropped model's memory back."""

from __future__ import annotations

from dataclasses import dataclass

from studio import run_folder
from studio.workspace import PathError, Workspace


@dataclass
class LoadRefusal:
    """Why a model may not be loaded for chat now: a training run needs the GPU memory it would take."""

    training_run: str
    needed_bytes: int
    free_bytes: int


def load_refusal(workspace: Workspace, run: str, gpus: list | None = None) -> LoadRefusal | None:
    """A LoadRefusal when a training run is active on this CUDA machine and the GPU's free memory is below what
    run `run`'s model needs (its weights in 16 bits, plus a fifth for the generation cache); None when loading
    may go ahead. `gpus` (hardware.GPU list) defaults to the machine's."""
    from studio.hardware import detect_gpus
    from studio.models.architecture import ModelInfoError, model_architecture

    gpus = detect_gpus() if gpus is None else gpus
    # Without a GPU the model goes to system RAM, which the OS shares and pages for both processes: a training
    # run on the CPU is slowed, not killed, and a model that trains on a CPU is small enough to chat beside it.
    if not gpus:
        return None
    training = next((r.run_id for r in run_folder.list_runs(workspace) if r.state == "running"), None)
    if training is None:
        return None
    try:
        params = model_architecture(workspace, run_folder.load_config(workspace.run_dir(run)).model.model,
                                    allow_download=False).total_params()
    except (ModelInfoError, PathError, OSError):
        return None  # nothing to estimate from offline: loading goes ahead and CUDA reports if it does not fit
    needed, free = int(params * 2 * 1.2), gpus[0].free
    return LoadRefusal(training, needed, free) if free < needed else None


def free_memory() -> bool:
    """Give the memory of models no longer referenced back: Python's garbage, and CUDA's cached blocks.
    Returns True when GPU memory was given back too."""
    import gc
    import sys

    gc.collect()
    # torch only when something imported it (a model was loaded); importing it here would cost seconds. Another
    # thread may be importing it right now, so its cuda module may not be there yet: then nothing is cached on a GPU.
    cuda = getattr(sys.modules.get("torch"), "cuda", None)
    if cuda is None or not hasattr(cuda, "empty_cache") or not cuda.is_available():
        return False
    cuda.empty_cache()
    return True
