"""The rows an evaluation answers: a run's validation split, its training data, or a file the user chose.

A row is a conversation cut before its last assistant message: the turns before it are the prompt, that
message is the reference answer. The validation split is the one the run trained with (the run's val_file,
or the rows studio/data/prepare.py's `split_indices` held out with the run's val_size and seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio import config as cfg
from studio.data.library import dataset_settings, open_dataset
from studio.data.loading import LoadedDataset
from studio.data.prepare import load_for_config, split_indices
from studio.workspace import Workspace

VALIDATION = ""  # the data choice meaning "the run's validation split"
TRAINING = "training"  # the data choice meaning "the run's own training data"


class EvalError(ValueError):
    """An evaluation that cannot start or run, with what to do about it."""


@dataclass
class EvalRow:
    """One prompt (the conversation before the reference) and the reference answer, with where it came from."""

    prompt: list[dict[str, str]]
    reference: str
    location: str = ""

    @property
    def prompt_text(self) -> str:
        """The prompt for a table cell: the user's message alone, or every turn as "role: text" lines."""
        if len(self.prompt) == 1 and self.prompt[0]["role"] == "user":
            return self.prompt[0]["content"]
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.prompt)


def split_row(messages: list[dict[str, Any]], location: str = "") -> EvalRow | None:
    """The EvalRow of a conversation (None when it has no assistant message with a turn before it)."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None or last == 0:  # no assistant turn, or one with nothing before it to prompt with
        return None
    prompt = [{"role": m["role"], "content": str(m.get("content", ""))} for m in messages[:last]]
    return EvalRow(prompt, str(messages[last].get("content", "")), location)


def _rows_of(dataset: LoadedDataset, indices: list[int] | None = None) -> list[EvalRow]:
    indices = range(len(dataset)) if indices is None else indices
    conversations = dataset.conversations
    rows = [split_row(conversations[i], dataset.locations[i] if i < len(dataset.locations) else "") for i in indices]
    usable = [row for row in rows if row is not None]
    if not usable:
        raise EvalError(f"{dataset.name} has no row with a prompt and an assistant answer to compare with (format "
                        f"{dataset.format}); evaluate on conversations, instruction/output or prompt/completion rows")
    return usable


def validation_rows(workspace: Workspace, config: cfg.RunConfig, run_id: str) -> tuple[list[EvalRow], str]:
    """(the rows of the run's validation split, a description of where they came from). EvalError when the run
    held out no rows."""
    val_file = load_for_config(workspace, config, validation=True)
    if val_file is not None:
        return _rows_of(val_file), f"validation file {val_file.name}"
    if config.data.val_size <= 0:
        raise EvalError(f"run {run_id} held out no validation rows (val_size 0 and no val_file): evaluate on a file "
                        f"instead, or on its training data ({config.data.dataset}) to see what it learned")
    loaded = load_for_config(workspace, config)
    _, held_out = split_indices(len(loaded), config.data.val_size, config.train.seed)
    return _rows_of(loaded, held_out), f"validation split of {loaded.name} ({len(held_out)} rows held out)"


def training_rows(workspace: Workspace, config: cfg.RunConfig) -> tuple[list[EvalRow], str]:
    """(every row of the run's training dataset, a description): shows what the run learned, not how it
    does on unseen rows."""
    loaded = load_for_config(workspace, config)
    return _rows_of(loaded), f"training data {loaded.name}"


def file_rows(workspace: Workspace, ref: str) -> tuple[list[EvalRow], str]:
    """(the rows of dataset `ref`: a file in the workspace, a bundled sample or hf:ID, read as the Data tab
    reads it, with the column map and bad-row choice saved for it, a description). PathError for a path that
    is missing or outside the workspace; DataError for a file that is empty or cannot be read."""
    settings = dataset_settings(workspace, ref)
    loaded = open_dataset(workspace, ref, settings.get("column_map", ""), bool(settings.get("skip_bad_rows", False)))
    return _rows_of(loaded), f"file {loaded.name}"


def eval_rows(workspace: Workspace, config: cfg.RunConfig, run_id: str, data: str) -> tuple[list[EvalRow], str]:
    """The rows for data choice `data` (VALIDATION, TRAINING or a dataset reference) and where they came from."""
    if data.strip() == VALIDATION:
        return validation_rows(workspace, config, run_id)
    if data.strip() == TRAINING:
        return training_rows(workspace, config)
    return file_rows(workspace, data)
