"""Several datasets in one run (`dataset=a,b`): concatenated, or interleaved at random with given probabilities
until one of them runs out (LLaMA-Factory's `interleave_under`). The datasets must hold the same kind of rows;
each row keeps where it came from (`a.jsonl line 3`), so problems and probes still name the file and line."""

from __future__ import annotations

import random

from studio.data.loading import LoadedDataset, RowProblem
from studio.data.readers import DataError


def dataset_refs(text: str) -> list[str]:
    """The dataset references in a `dataset` setting: one, or several separated by commas."""
    return [ref.strip() for ref in text.split(",") if ref.strip()]


def parse_probs(text: str, count: int) -> list[float]:
    """`count` probabilities from `0.7,0.3` (normalised to sum to 1); equal ones when `text` is empty."""
    if not text.strip():
        return [1 / count] * count
    try:
        probs = [float(p) for p in text.split(",")]
    except ValueError:
        raise DataError(f"interleave_probs {text!r}: write one number per dataset, e.g. 0.7,0.3") from None
    if len(probs) != count or any(p < 0 for p in probs) or sum(probs) <= 0:
        raise DataError(f"interleave_probs {text!r}: give {count} non-negative numbers, one per dataset, not all 0")
    return [p / sum(probs) for p in probs]


def _interleave(datasets: list[LoadedDataset], probs: list[float], seed: int) -> list[tuple[int, int]]:
    """(dataset index, row index) pairs drawn at random with `probs` until the drawn dataset has no row left."""
    rng, taken, order = random.Random(seed), [0] * len(datasets), []
    while True:
        pick = rng.choices(range(len(datasets)), weights=probs)[0]
        if taken[pick] >= len(datasets[pick]):
            return order
        order.append((pick, taken[pick]))
        taken[pick] += 1


def combine(datasets: list[LoadedDataset], strategy: str = "concat", probs: str = "", seed: int = 42) -> LoadedDataset:
    """One dataset made of `datasets` (see the module docstring); DataError when their kinds differ."""
    if len(datasets) == 1:
        return datasets[0]
    kinds = {d.kind for d in datasets}
    if len(kinds) > 1:
        raise DataError("datasets of different kinds cannot train together: "
                        + ", ".join(f"{d.name} holds {d.kind} rows" for d in datasets))
    if strategy == "interleave":
        order = _interleave(datasets, parse_probs(probs, len(datasets)), seed)
    else:
        order = [(i, row) for i, d in enumerate(datasets) for row in range(len(d))]
    used = [sum(1 for i, _ in order if i == index) for index in range(len(datasets))]
    formats = {d.format for d in datasets}
    mixed = LoadedDataset(
        path=" + ".join(d.name for d in datasets), format=formats.pop() if len(formats) == 1 else "mixed",
        kind=kinds.pop(), columns=datasets[0].columns, rows_read=sum(d.rows_read for d in datasets),
        reason=f"{strategy} of " + "; ".join(f"{d.name} ({used[i]} of {len(d)} rows, {d.format}: {d.reason})"
                                             for i, d in enumerate(datasets)),
        examples=[datasets[i].examples[row] for i, row in order],
        locations=[f"{datasets[i].name} {datasets[i].locations[row]}" for i, row in order],
        problems=[RowProblem(f"{d.name} {p.location}", p.line, p.kind, p.message) for d in datasets for p in d.problems])
    return mixed
