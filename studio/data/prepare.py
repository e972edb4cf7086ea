"""SFT dataset preparation, as the worker runs it: load, split, tokenise with masks, apply the cutoff.

One function per step so the Data tab, the CLI and the tests can follow exactly the trainer's path:
`load_for_config` (the dataset and validation file a config names), `split_indices` (validation rows by
fraction or count, fixed seed), and `prepare_sft` (token ids + labels from studio/data/masking.py, rows
longer than `cutoff_len` truncated, rows left with no trained token dropped).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio import config as cfg
from studio.data.dataset_info import find_entry, read_info
from studio.data.library import open_dataset
from studio.data.loading import DataError, LoadedDataset
from studio.data.mixing import combine, dataset_refs
from studio.data.tool_calls import tool_notes
from studio.data.masking import (
    ENCODE_BATCH,
    IGNORE_INDEX,
    TokenizedConversation,
    tokenize_conversations,
)
from studio.workspace import Workspace


@dataclass
class PreparedSFT:
    """What the SFT trainer gets: datasets of input_ids/labels, and the conversations behind them (for probes)."""

    train: Any  # datasets.Dataset
    eval: Any  # datasets.Dataset or None
    train_rows: list[list[dict[str, Any]]]
    val_rows: list[list[dict[str, Any]]]
    notes: list[str]  # what happened on the way (for the run log)


def load_for_config(workspace: Workspace, config: cfg.RunConfig, validation: bool = False) -> LoadedDataset | None:
    """The dataset (or, with `validation`, the separate validation file; None when there is none) a config names,
    loaded with its column map and bad-row choice: several (`a,b`) are mixed as mix_strategy says, and with a
    dataset_dir the names are entries of its dataset_info.json."""
    data = config.data
    ref = getattr(data, "val_file", "") if validation else data.dataset
    refs = dataset_refs(ref)
    if not refs:
        return None
    loaded = [_open_one(workspace, data, one) for one in refs]
    return combine(loaded, getattr(data, "mix_strategy", "concat"), getattr(data, "interleave_probs", ""), config.train.seed)


def _open_one(workspace: Workspace, data: cfg.DataSection, ref: str) -> LoadedDataset:
    skip_bad = getattr(data, "skip_bad_rows", False)
    folder_ref = getattr(data, "dataset_dir", "").strip()
    if folder_ref and not Path(ref).suffix:  # a name, not a file: an entry of the folder's dataset_info.json
        folder = workspace.confine(folder_ref)
        if ref not in read_info(folder):
            find_entry(folder, ref)  # refused, listing the folder's datasets
        ref = str(folder / ref)
    return open_dataset(workspace, ref, getattr(data, "column_map", ""), skip_bad, getattr(data, "text_split", "auto"))


def split_indices(n_rows: int, val_size: float, seed: int) -> tuple[list[int], list[int]]:
    """(training row indices, validation row indices): `val_size` rows (a fraction below 1, or a count)
    picked at random with `seed`; both lists in file order. ValueError when no training row would be left."""
    if val_size <= 0:
        return list(range(n_rows)), []
    n_val = int(val_size) if val_size >= 1 else max(1, round(n_rows * val_size))
    if n_val >= n_rows:
        raise ValueError(f"val_size={val_size:g} holds out {n_val} of the {n_rows} rows, leaving none to train on; lower val_size")
    held_out = set(random.Random(seed).sample(range(n_rows), n_val))
    return [i for i in range(n_rows) if i not in held_out], sorted(held_out)


def require_chat(dataset: LoadedDataset) -> None:
    """DataError unless the rows are conversations (what supervised fine-tuning learns from), or answers labelled
    good or bad (of which SFT learns the good ones)."""
    if dataset.kind not in ("chat", "kto"):
        raise DataError(f"{dataset.name} holds {dataset.kind} rows (format {dataset.format}); supervised fine-tuning "
                        "needs conversations: messages, conversations, instruction+output or prompt+completion columns")


def good_answers_only(dataset: LoadedDataset) -> tuple[LoadedDataset, str | None]:
    """For labelled (KTO) rows: the dataset with only the rows labelled good, and a note saying how many bad rows
    are left out and how to learn from them; other datasets as they are, with no note."""
    if dataset.kind != "kto":
        return dataset, None
    keep = [i for i, row in enumerate(dataset.examples) if row["label"]]
    bad = len(dataset) - len(keep)
    note = (f"{dataset.name} labels its answers good or bad: supervised fine-tuning trains on the {len(keep)} good "
            f"answers only; the {bad} answers labelled bad are not trained on (stage=kto learns from both)")
    if not keep:
        raise DataError(f"{dataset.name}: every answer is labelled bad, so supervised fine-tuning has nothing to learn; "
                        "use stage=kto")
    kept = dataclasses.replace(dataset, examples=[dataset.examples[i] for i in keep],
                               locations=[dataset.locations[i] for i in keep])
    return kept, note


def encode(tokenizer, dataset: LoadedDataset, data: cfg.DataSection,
           progress: Callable[[int, int], None] | None = None) -> list[TokenizedConversation]:
    """Every row of `dataset` tokenised with the config's masking options, in batches, reporting (done, total)."""
    encoded: list[TokenizedConversation] = []
    conversations = dataset.conversations
    tools = [row.get("tools") for row in dataset.examples]
    for start in range(0, len(conversations), ENCODE_BATCH):
        end = start + ENCODE_BATCH
        encoded += tokenize_conversations(tokenizer, conversations[start:end], getattr(data, "train_on_prompt", False),
                                          getattr(data, "mask_history", False), tools[start:end])
        if progress:
            progress(len(encoded), len(conversations))
    return encoded


def apply_cutoff(encoded: list[TokenizedConversation], cutoff_len: int) -> tuple[list[TokenizedConversation], int, list[int]]:
    """(rows truncated to `cutoff_len` tokens, how many were longer, indices of rows left with no trained token)."""
    truncated = sum(1 for e in encoded if len(e.input_ids) > cutoff_len)
    cut = [TokenizedConversation(e.input_ids[:cutoff_len], e.labels[:cutoff_len]) for e in encoded]
    dropped = [i for i, e in enumerate(cut) if all(label == IGNORE_INDEX for label in e.labels)]
    return cut, truncated, dropped


def prepare_sft(workspace: Workspace, config: cfg.RunConfig, tokenizer,
                progress: Callable[[int, int], None] | None = None) -> PreparedSFT:
    """Load, split, tokenise and cut the SFT data a config names; DataError when nothing trainable is left."""
    from datasets import Dataset

    loaded = load_for_config(workspace, config)
    require_chat(loaded)
    notes = [f"dataset {loaded.name}: {len(loaded)} conversations (format {loaded.format}: {loaded.reason})"]
    loaded, labelled = good_answers_only(loaded)
    notes += [labelled] if labelled else []
    if loaded.skipped:
        notes.append(f"skipped {loaded.skipped} bad rows (first: {loaded.problems[0]})")
    val_loaded = load_for_config(workspace, config, validation=True)
    if val_loaded is not None:
        require_chat(val_loaded)
        val_loaded, _ = good_answers_only(val_loaded)
        train_idx, val_idx = list(range(len(loaded))), []
        notes.append(f"validation file {val_loaded.name}: {len(val_loaded)} conversations")
    else:
        train_idx, val_idx = split_indices(len(loaded), config.data.val_size, config.train.seed)
        if val_idx:
            notes.append(f"holding out {len(val_idx)} rows for validation, training on {len(train_idx)}")
    cutoff = config.train.cutoff_len
    notes += tool_notes(tokenizer, loaded.examples)
    whole = encode(tokenizer, loaded, config.data, progress)
    cut_tokens = sum(max(0, len(e.input_ids) - cutoff) for e in whole)
    encoded, truncated, dropped = apply_cutoff(whole, cutoff)
    lengths = sorted(len(e.input_ids) for e in whole)
    notes.append(f"tokens per row: median {lengths[len(lengths) // 2]}; {truncated} of {len(whole)} rows longer than "
                 f"cutoff_len {cutoff} are truncated ({cut_tokens:,} tokens cut; raise cutoff_len to keep them)"
                 f"{f', {len(dropped)} left with no trained token are dropped' if dropped else ''}")
    keep = set(range(len(encoded))) - set(dropped)
    train_idx = [i for i in train_idx if i in keep]
    if not train_idx:
        raise DataError(f"{loaded.name}: no row has a trained (assistant) token within cutoff_len {cutoff}; raise cutoff_len")
    if val_loaded is not None:
        val_encoded, _, val_dropped = apply_cutoff(encode(tokenizer, val_loaded, config.data), cutoff)
        val_pairs = [(e, c) for i, (e, c) in enumerate(zip(val_encoded, val_loaded.conversations)) if i not in set(val_dropped)]
    else:
        val_pairs = [(encoded[i], loaded.conversations[i]) for i in val_idx if i in keep]

    def dataset(rows: list[TokenizedConversation]):
        return Dataset.from_dict({"input_ids": [e.input_ids for e in rows], "labels": [e.labels for e in rows]})

    conversations = loaded.conversations
    return PreparedSFT(
        train=dataset([encoded[i] for i in train_idx]),
        eval=dataset([e for e, _ in val_pairs]) if val_pairs else None,
        train_rows=[conversations[i] for i in train_idx],
        val_rows=[c for _, c in val_pairs],
        notes=notes,
    )
