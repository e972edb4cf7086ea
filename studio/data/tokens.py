"""Token report: sequence lengths and trained tokens of every row with the chosen model's tokenizer and template.

Rows are tokenised by studio/data/masking.py (the trainer's own function) in batches; with more than one CPU
core and many rows, chunks go to worker processes. The report answers: how long are the rows (p50/p95/p99/max),
how many are truncated at the cutoff, how many lose every trained token (dropped), how many tokens are trained
on, and roughly how long an epoch takes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.data.formats import conversation_of
from studio.data.masking import IGNORE_INDEX, tokenize_conversations

CHUNK_ROWS = 2048
PARALLEL_MIN_ROWS = 20_000


@dataclass
class TokenReport:
    """Per row: token count and the [start, end) token ranges trained on."""

    lengths: list[int]
    trained_ranges: list[list[tuple[int, int]]]
    packed: bool = False  # plain text for pt: documents joined and split into cutoff blocks, nothing cut

    def stats(self, cutoff: int) -> dict[str, Any]:
        """p50/p95/p99/max length, rows over the cutoff, rows dropped (no trained token left), tokens trained."""
        import numpy as np

        if not self.lengths:
            return {"rows": 0, "p50": 0, "p95": 0, "p99": 0, "max": 0, "over_cutoff": 0, "dropped": 0,
                    "tokens": 0, "trained_tokens": 0}
        lengths = np.asarray(self.lengths)
        if self.packed:
            total = int(lengths.sum())
            return {"rows": len(self.lengths), "p50": int(np.percentile(lengths, 50)), "p95": int(np.percentile(lengths, 95)),
                    "p99": int(np.percentile(lengths, 99)), "max": int(lengths.max()), "over_cutoff": 0,
                    "split": int((lengths > cutoff).sum()), "blocks": -(-total // cutoff), "dropped": 0,
                    "tokens": total, "trained_tokens": total}
        kept = [sum(max(0, min(b, cutoff) - a) for a, b in ranges) for ranges in self.trained_ranges]
        return {
            "rows": len(self.lengths),
            "p50": int(np.percentile(lengths, 50)),
            "p95": int(np.percentile(lengths, 95)),
            "p99": int(np.percentile(lengths, 99)),
            "max": int(lengths.max()),
            "over_cutoff": int((lengths > cutoff).sum()),
            "dropped": sum(1 for n in kept if n == 0),
            "tokens": int(np.minimum(lengths, cutoff).sum()),
            "trained_tokens": int(sum(kept)),
        }


def rendered_lengths(tokenizer, conversations: list[list[dict[str, Any]]]) -> list[int]:
    """Tokens of each conversation as the chat template renders it whole (what preference trainers read)."""
    lengths = []
    for start in range(0, len(conversations), CHUNK_ROWS):
        texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations[start:start + CHUNK_ROWS]]
        lengths += [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    return lengths


def _ranges(labels: list[int]) -> list[tuple[int, int]]:
    ranges, start = [], None
    for index, label in enumerate(labels):
        if label != IGNORE_INDEX and start is None:
            start = index
        elif label == IGNORE_INDEX and start is not None:
            ranges.append((start, index))
            start = None
    if start is not None:
        ranges.append((start, len(labels)))
    return ranges


def _measure(tokenizer, rows: list[dict[str, Any]], train_on_prompt: bool, mask_history: bool) -> tuple[list[int], list]:
    if rows and "text" in rows[0]:  # plain text: every token (and the EOS after each document) is trained on
        from studio.data.pretrain import document_tokens

        ids = document_tokens(tokenizer, [r["text"] for r in rows])
        return [len(i) for i in ids], [[(0, len(i))] for i in ids]
    encoded = tokenize_conversations(tokenizer, [conversation_of(r) for r in rows], train_on_prompt, mask_history,
                                     [r.get("tools") for r in rows])
    return [len(e.input_ids) for e in encoded], [_ranges(e.labels) for e in encoded]


_worker_tokenizer = None


def _init_worker(tokenizer) -> None:
    global _worker_tokenizer
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core already
    _worker_tokenizer = tokenizer


def _measure_in_worker(args: tuple) -> tuple[list[int], list]:
    rows, train_on_prompt, mask_history = args
    return _measure(_worker_tokenizer, rows, train_on_prompt, mask_history)


def token_report(tokenizer, rows: list[dict[str, Any]], train_on_prompt: bool = False, mask_history: bool = False,
                 progress: Callable[[int, int], None] | None = None, processes: int | None = None) -> TokenReport:
    """Measure every normalised row; `progress(done, total)` after each chunk. Uses `processes` worker processes
    (default: the usable CPU cores) when there are many rows, else this process."""
    import multiprocessing

    chunks = [rows[i:i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS)]
    processes = processes or len(os.sched_getaffinity(0))
    report = TokenReport([], [], packed=bool(rows) and "text" in rows[0])
    done = 0

    def add(result: tuple[list[int], list]) -> None:
        nonlocal done
        report.lengths += result[0]
        report.trained_ranges += result[1]
        done += len(result[0])
        if progress:
            progress(done, len(rows))

    if processes > 1 and len(rows) >= PARALLEL_MIN_ROWS:
        context = multiprocessing.get_context("fork")
        with context.Pool(processes, initializer=_init_worker, initargs=(tokenizer,)) as pool:
            for result in pool.imap(_measure_in_worker, [(c, train_on_prompt, mask_history) for c in chunks]):
                add(result)
    else:
        for chunk in chunks:
            add(_measure(tokenizer, chunk, train_on_prompt, mask_history))
    return report


def epoch_seconds(trained_tokens: int, total_tokens: int, parameters: int | None, tflops: float) -> float | None:
    """A rough time for one epoch: 6 × parameters FLOPs per token processed (forward and backward) at `tflops`
    sustained; None without a parameter count."""
    if not parameters or tflops <= 0:
        return None
    return 6 * parameters * total_tokens / (tflops * 1e12)
