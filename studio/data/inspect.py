"""Inspect a dataset: format and why, rows read and skipped, the first errors, quality checks and, given a model,
the token report. What `python -m studio data inspect` prints and what the Data tab shows come from here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from studio.data.library import read_dataset, source_of
from studio.data.loading import MAX_PROBLEMS_SHOWN, LoadedDataset, describe_source, load_records
from studio.data.masking import TemplateError
from studio.data.quality import QualityChecks, quality_report
from studio.data.readers import is_hub_ref, iter_file_records
from studio.data.tokens import TokenReport, token_report
from studio.hf_import import import_transformers
from studio.workspace import Workspace


def load_tokenizer(workspace: Workspace, model: str, trust_remote_code: bool = False):
    """The tokenizer (with its chat template) of a model choice; TemplateError naming the model when it cannot
    be loaded (for example a Hub model on an offline machine)."""
    from studio.models.catalog import resolve_model

    source = resolve_model(workspace, model)
    try:
        if _plain_fast_tokenizer(source):  # seconds faster: no model-class lookup, same tokenizer.json and template
            import_transformers()
            from transformers import PreTrainedTokenizerFast

            return PreTrainedTokenizerFast.from_pretrained(source)
        import_transformers()
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise TemplateError(f"the tokenizer of model {model} ({source}) cannot be loaded: {error}. Choose a model "
                            "that is in the workspace or reachable (tiny-demo works offline)") from error
    return tokenizer


def _plain_fast_tokenizer(source: str) -> bool:
    """Whether a local model folder's tokenizer is a plain tokenizer.json one (no model-specific class)."""
    import json
    from pathlib import Path

    folder = Path(source)
    config = folder / "tokenizer_config.json"
    if not (folder / "tokenizer.json").is_file() or not config.is_file():
        return False
    try:
        tokenizer_class = json.loads(config.read_text(encoding="utf-8")).get("tokenizer_class")
    except ValueError:
        return False
    return tokenizer_class in ("TokenizersBackend", "PreTrainedTokenizerFast")


def run_cutoff(model: str | None) -> int:
    """The cutoff_len a run of `model` would use when none is set: the catalog's recommendation, else the default."""
    from studio import config as cfg
    from studio.models.catalog import recommended_overrides

    default = cfg.RunConfig().train.cutoff_len
    return int(recommended_overrides(model).get("cutoff_len", default)) if model else default


def summary(dataset: LoadedDataset, errors_shown: int = MAX_PROBLEMS_SHOWN) -> dict[str, Any]:
    """Format, reason, row counts and the first errors (with line numbers) of a loaded dataset."""
    return {
        "dataset": dataset.name,
        "format": dataset.format,
        "reason": dataset.reason,
        "kind": dataset.kind,
        "rows": len(dataset),
        "rows_read": dataset.rows_read,
        "skipped": dataset.skipped,
        "problem_counts": dataset.problem_counts(),
        "errors": [{"line": p.line, "location": p.location, "kind": p.kind, "message": p.message}
                   for p in dataset.problems[:errors_shown]],
    }


def measure_tokens(workspace: Workspace, dataset: LoadedDataset, model: str, train_on_prompt: bool = False,
                   mask_history: bool = False, progress: Callable[[int, int], None] | None = None) -> TokenReport:
    """The token report of every row with `model`'s tokenizer and chat template (the trainer's masking)."""
    tokenizer = load_tokenizer(workspace, model)
    return token_report(tokenizer, dataset.examples, train_on_prompt, mask_history, progress)


def inspect_dataset(workspace: Workspace, ref: str, model: str | None = None, cutoff: int | None = None, column_map: str = "",
                    train_on_prompt: bool = False, mask_history: bool = False,
                    progress: Callable[[int, int], None] | None = None, text_split: str = "auto") -> dict[str, Any]:
    """Everything known about dataset `ref` as one JSON-ready dict: the summary, `quality` findings and, with a
    model, `tokens` (p50, p95, p99, max, over_cutoff, dropped, tokens, trained_tokens, cutoff). Without a `cutoff`,
    the one a run of `model` would use."""
    cutoff = cutoff or run_cutoff(model)
    if not model and not is_hub_ref(ref):  # no token report: check the rows as they stream by, hold none
        checks = QualityChecks()
        path, detected = source_of(workspace, ref)
        dataset = load_records(path.name, iter_file_records(path, text_split), column_map, keep=False,
                               detected=detected, on_row=checks.add)
        describe_source(path, dataset, text_split)
        result = {**summary(dataset), "rows": dataset.rows_read - dataset.skipped}
        result["quality"] = [vars(f) for f in checks.findings()]
        return result
    dataset = read_dataset(workspace, ref, column_map, text_split=text_split)
    result = summary(dataset)
    result["quality"] = [vars(f) for f in quality_report(dataset.examples, dataset.locations)]
    if model:
        report = measure_tokens(workspace, dataset, model, train_on_prompt, mask_history, progress)
        result["tokens"] = {**report.stats(cutoff), "cutoff": cutoff, "model": model}
    return result


def format_text(result: dict[str, Any]) -> str:
    """The inspect result as lines for a terminal."""
    lines = [f"dataset:  {result['dataset']}",
             f"format:   {result['format']} ({result['reason']})",
             f"rows:     {result['rows']} usable of {result['rows_read']} read, {result['skipped']} skipped"]
    if result["problem_counts"]:
        lines.append("problems: " + ", ".join(f"{kind} {n}" for kind, n in result["problem_counts"].items()))
        lines += [f"  {e['location']}: {e['message']}" for e in result["errors"]]
        if result["skipped"] > len(result["errors"]):
            lines.append(f"  … and {result['skipped'] - len(result['errors'])} more")
    for finding in result.get("quality", []):
        lines.append(f"check:    {finding['count']} × {finding['check']} (e.g. {', '.join(finding['rows'][:3])})")
    tokens = result.get("tokens")
    if tokens and "blocks" in tokens:
        lines.append(f"tokens ({tokens['model']}): p50 {tokens['p50']}, max {tokens['max']} per document; "
                     f"{tokens['tokens']:,} tokens joined into {tokens['blocks']} blocks of cutoff {tokens['cutoff']} "
                     f"({tokens['split']} documents span several); all {tokens['trained_tokens']:,} trained per epoch, none cut")
    elif tokens:
        lines.append(f"tokens ({tokens['model']}): p50 {tokens['p50']}, p95 {tokens['p95']}, p99 {tokens['p99']}, "
                     f"max {tokens['max']}; {tokens['over_cutoff']} rows over cutoff {tokens['cutoff']}, "
                     f"{tokens['dropped']} dropped; {tokens['trained_tokens']:,} of {tokens['tokens']:,} tokens trained per epoch")
    return "\n".join(lines)
