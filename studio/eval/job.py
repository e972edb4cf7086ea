"""Run an evaluation: base and tuned answers to every row, their loss on the references, and the scores.

`prepare(workspace, run, settings)` checks everything a user can get wrong (no weights, a reward model, bad
data, an evaluation of this run already going) and makes the results folder; `execute(plan)` does the work
(in the CLI's foreground or a studio thread, see `start_in_background`) and writes, in
runs/<id>/eval/<timestamp>/:

    progress.json   state (loading, running, completed, cancelled, failed), phase (loading, base, loading_tuned,
                    tuned, or the final state), answers done of total
    results.jsonl   one line per finished row: prompt, reference, base and tuned answers, per-row scores
    results.csv     the same rows as CSV (written at the end, also when cancelled)
    metrics.json    the Scores of the base and the tuned model side by side

The base answers come from the same loaded weights with the adapter switched off; a full fine-tune has no
adapter, so its base model is loaded after the tuned one is let go (never both in memory). All base answers
are made first, then the tuned ones, so each row is written once both are known. A CANCEL file in the
results folder (request_cancel) stops the work before the next answer.
"""

from __future__ import annotations

import csv
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from studio import run_folder
from studio.eval.metrics import bleu, exact_match, rouge_l, summarise
from studio.eval.rows import VALIDATION, EvalError, EvalRow, eval_rows
from studio.workspace import (
    REWARD_MODEL_DIR,
    PathError,
    Workspace,
    append_jsonl,
    process_alive,
    read_json,
    read_jsonl_from,
    this_process_started,
    write_json_atomic,
)

EVAL_DIR = "eval"  # runs/<id>/eval/<timestamp>/ holds one evaluation
PROGRESS_FILE = "progress.json"
RESULTS_FILE = "results.jsonl"
CSV_FILE = "results.csv"
SCORES_FILE = "metrics.json"
CANCEL_FILE = "CANCEL"
LOCK_FILE = "running.lock"  # in runs/<id>/eval/: one evaluation of a run at a time
FINISHED = ("completed", "cancelled", "failed")
CSV_COLUMNS = ("prompt", "reference", "base", "tuned", "base_exact", "tuned_exact", "base_rouge_l", "tuned_rouge_l",
               "base_bleu", "tuned_bleu", "base_loss", "tuned_loss", "location")


@dataclass
class EvalSettings:
    """What to evaluate on and how much: `data` is "" (the run's validation split), "training" (its training
    data) or a dataset reference; at most `max_rows` rows; answers of up to `max_new_tokens` tokens (greedy)."""

    data: str = VALIDATION
    max_rows: int = 200
    max_new_tokens: int = 128


@dataclass
class EvalPlan:
    """A checked evaluation ready to execute: the run, its results folder and the rows to answer."""

    workspace: Workspace
    run_dir: Path
    eval_dir: Path
    rows: list[EvalRow]
    source: str  # where the rows came from, in words
    rows_available: int
    settings: EvalSettings


# --- files --------------------------------------------------------------------------------------------

def eval_dirs(run_dir: Path) -> list[Path]:
    """The run's evaluation folders, newest first."""
    folder = run_dir / EVAL_DIR
    found = [p for p in folder.iterdir() if p.is_dir() and (p / PROGRESS_FILE).is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda p: p.name, reverse=True)


def latest_eval(run_dir: Path, finished_only: bool = False) -> Path | None:
    """The run's newest evaluation folder (with `finished_only`, the newest that completed), or None."""
    for path in eval_dirs(run_dir):
        if not finished_only or read_progress(path).get("state") == "completed":
            return path
    return None


def read_progress(eval_dir: Path) -> dict[str, Any]:
    """The evaluation's progress.json ({} when unreadable). One left unfinished by a process that has ended (the
    studio was stopped mid-way) reads as failed, saying so."""
    progress = read_json(eval_dir / PROGRESS_FILE) or {}
    if progress and progress.get("state") not in FINISHED and active_eval(eval_dir.parent.parent) != eval_dir:
        # it may have ended between the two reads: the final state is written before the lock is released
        progress = read_json(eval_dir / PROGRESS_FILE) or progress
        if progress.get("state") not in FINISHED:
            progress.update(state="failed", error="the studio or command running this evaluation stopped before it "
                                                  "finished; start it again")
    return progress


def read_scores(eval_dir: Path) -> dict[str, Any] | None:
    """The evaluation's metrics.json, or None before it is written."""
    return read_json(eval_dir / SCORES_FILE)


def read_results(eval_dir: Path) -> list[dict[str, Any]]:
    """The rows written so far to results.jsonl."""
    rows, _ = read_jsonl_from(eval_dir / RESULTS_FILE)
    return rows


def request_cancel(eval_dir: Path) -> bool:
    """Ask a running evaluation to stop before its next answer; False when it is not running."""
    if read_progress(eval_dir).get("state") in FINISHED or not (eval_dir / PROGRESS_FILE).is_file():
        return False
    (eval_dir / CANCEL_FILE).touch()
    return True


def _update_progress(eval_dir: Path, **fields: Any) -> None:
    progress = read_progress(eval_dir)
    progress.update(fields, updated=time.time())
    write_json_atomic(eval_dir / PROGRESS_FILE, progress)


def write_csv(eval_dir: Path) -> Path:
    """Write results.csv from results.jsonl (same rows, same order); returns its path."""
    path = eval_dir / CSV_FILE
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:  # the BOM lets spreadsheet apps read Chinese
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(read_results(eval_dir))
    return path


# --- one evaluation of a run at a time ------------------------------------------------------------------

def _holder_alive(held: dict[str, Any] | None, lock: Path) -> bool:
    """Whether the process that took `lock` still runs (the same process: a pid the system reused is not)."""
    if held is None:  # being written this instant, or torn: trust it for a few seconds
        return time.time() - lock.stat().st_mtime < 5
    return process_alive(held.get("pid"), held.get("pid_started"))


def _holds_unfinished(held: dict[str, Any] | None, lock: Path, run_dir: Path) -> bool:
    """Whether `lock` is held by a live process whose evaluation has not yet written its final state (it
    releases the lock a moment after writing "cancelled" or "completed", and by then it is over for the user)."""
    if not _holder_alive(held, lock):
        return False
    progress = read_json(run_dir / EVAL_DIR / str((held or {}).get("eval_dir", "")) / PROGRESS_FILE) or {}
    return progress.get("state") not in FINISHED


def _take_lock(run_dir: Path, eval_dir: Path) -> None:
    lock = run_dir / EVAL_DIR / LOCK_FILE
    for _ in range(3):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            held = read_json(lock)
            if _holds_unfinished(held, lock, run_dir):
                where = (held or {}).get("eval_dir", "")
                raise EvalError(f"run {run_dir.name} is already being evaluated ({where}); wait for it to finish or "
                                "cancel it, then start again") from None
            lock.unlink(missing_ok=True)  # left by a process that ended without releasing it
            continue
        os.close(handle)
        write_json_atomic(lock, {"pid": os.getpid(), "pid_started": this_process_started(), "eval_dir": eval_dir.name})
        return
    raise EvalError(f"could not take the evaluation lock of run {run_dir.name}; try again")


def active_eval(run_dir: Path) -> Path | None:
    """The folder of the run's evaluation that is going on now, or None."""
    lock = run_dir / EVAL_DIR / LOCK_FILE
    if not lock.is_file():
        return None
    held = read_json(lock)
    if not held or not _holds_unfinished(held, lock, run_dir):
        return None
    return run_dir / EVAL_DIR / str(held.get("eval_dir", ""))


def _release_lock(run_dir: Path, eval_dir: Path) -> None:
    lock = run_dir / EVAL_DIR / LOCK_FILE
    if (read_json(lock) or {}).get("eval_dir") == eval_dir.name:
        lock.unlink(missing_ok=True)


# --- the work -----------------------------------------------------------------------------------------

def prepare(workspace: Workspace, run: str, settings: EvalSettings) -> EvalPlan:
    """Check an evaluation of `run` and make its results folder. Raises PathError (unknown run, no weights, a
    data path missing or outside the workspace), DataError (unreadable or empty data) or EvalError (a reward
    model, no validation rows, bad settings, the run already being evaluated, the GPU needed by training)."""
    from studio.chat_memory import load_refusal

    run_dir = workspace.run_dir(run)
    if (run_dir / REWARD_MODEL_DIR).is_dir():
        raise EvalError(f"run {run_dir.name} is a reward model (stage rm): it scores answers and does not write them, "
                        "so there are no answers to evaluate")
    if not run_folder.run_has_weights(run_dir):
        raise PathError(f"run {run_dir.name} has no trained weights yet (state: {run_folder.run_status(run_dir).get('state')}); "
                        "evaluate it when it has finished")
    if settings.max_rows < 1 or settings.max_new_tokens < 1:
        raise EvalError(f"max rows ({settings.max_rows}) and max new tokens ({settings.max_new_tokens}) must be 1 or more")
    rows, source = eval_rows(workspace, run_folder.load_config(run_dir), run_dir.name, settings.data)
    refusal = load_refusal(workspace, run_dir.name)
    if refusal is not None:
        raise EvalError(f"run {refusal.training_run} is training on the GPU and only {refusal.free_bytes / 2**30:.1f} GB is "
                        f"free; evaluating needs about {refusal.needed_bytes / 2**30:.1f} GB: evaluate when it has finished")
    (run_dir / EVAL_DIR).mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    eval_dir = run_dir / EVAL_DIR / stamp
    for n in range(2, 100):
        if not eval_dir.exists():
            break
        eval_dir = run_dir / EVAL_DIR / f"{stamp}-{n}"
    _take_lock(run_dir, eval_dir)
    chosen = rows[: settings.max_rows]
    try:
        eval_dir.mkdir()
        write_json_atomic(eval_dir / PROGRESS_FILE, {
            "run": run_dir.name, "state": "loading", "phase": "loading", "done": 0, "total": 2 * len(chosen),
            "rows": len(chosen), "rows_available": len(rows), "source": source, "started": time.time(),
            "updated": time.time(), "settings": asdict(settings)})
    except OSError:
        _release_lock(run_dir, eval_dir)
        raise
    return EvalPlan(workspace, run_dir, eval_dir, chosen, source, len(rows), settings)


def answer_loss(chat, row: EvalRow, cutoff_len: int) -> tuple[float, int] | None:
    """(mean loss per answer token, answer tokens) of the reference answer after the prompt, with the trainer's
    masking (only the answer's tokens count) and cutoff; None when no answer token is left within the cutoff."""
    import torch

    from studio.data.masking import IGNORE_INDEX, tokenize_conversations
    from studio.data.prepare import apply_cutoff

    conversation = [*row.prompt, {"role": "assistant", "content": row.reference}]
    encoded = tokenize_conversations(chat.tokenizer, [conversation], train_on_prompt=False, mask_history=True)
    cut, _, dropped = apply_cutoff(encoded, cutoff_len)
    if dropped:
        return None
    device = chat.model.device
    with torch.no_grad():
        output = chat.model(input_ids=torch.tensor([cut[0].input_ids], device=device),
                            labels=torch.tensor([cut[0].labels], device=device))
    return float(output.loss), sum(1 for label in cut[0].labels[1:] if label != IGNORE_INDEX)


def _answer_rows(plan: EvalPlan, chat, side: str, done: int, on_answer=None) -> list[tuple[str, Any]] | None:
    """(answer, answer_loss) of every row by `chat` as it is now, each passed to `on_answer(index, answer, loss)`
    too; None when cancelled. The progress counts on from `done` answers."""
    from studio.chat import GenerationSettings

    settings = GenerationSettings(max_new_tokens=plan.settings.max_new_tokens, temperature=0.0)
    cutoff = run_folder.load_config(plan.run_dir).train.cutoff_len
    answers = []
    started = time.time()
    for index, row in enumerate(plan.rows):
        if (plan.eval_dir / CANCEL_FILE).exists():
            return None
        answer, loss = chat.reply(row.prompt, settings), answer_loss(chat, row, cutoff)
        answers.append((answer, loss))
        if on_answer:
            on_answer(index, answer, loss)
        _update_progress(plan.eval_dir, state="running", phase=side, done=done + index + 1,
                         rows_per_s=round((index + 1) / max(time.time() - started, 1e-6), 3))
    return answers


def _result_row(row: EvalRow, base: tuple[str, Any], tuned: tuple[str, Any]) -> dict[str, Any]:
    """One line of results.jsonl: the row, both answers, and each answer's scores and loss."""
    line: dict[str, Any] = {"prompt": row.prompt_text, "reference": row.reference, "location": row.location,
                            "messages": row.prompt}
    for side, (answer, loss) in (("base", base), ("tuned", tuned)):
        line.update({side: answer, f"{side}_exact": exact_match(answer, row.reference),
                     f"{side}_rouge_l": round(rouge_l(answer, row.reference), 2),
                     f"{side}_bleu": round(bleu(answer, row.reference), 2),
                     f"{side}_loss": round(loss[0], 4) if loss else None})
    return line


def _write_scores(plan: EvalPlan, results: list[dict[str, Any]], losses: dict[str, list], state: str) -> dict[str, Any]:
    references = [r["reference"] for r in results]
    scores = {"run": plan.run_dir.name, "source": plan.source, "state": state, "rows": len(results),
              "rows_available": plan.rows_available, "settings": asdict(plan.settings), "finished": time.time()}
    for side in ("base", "tuned"):
        scores[side] = asdict(summarise([r[side] for r in results], references, losses[side][: len(results)]))
    write_json_atomic(plan.eval_dir / SCORES_FILE, scores)
    return scores


def execute(plan: EvalPlan) -> dict[str, Any] | None:
    """Answer every row with the base and the tuned model, write the results and scores; returns the scores
    (metrics.json's content), or None when cancelled before any row was finished. A failure is written to
    progress.json and raised; Ctrl-C (KeyboardInterrupt) finishes as cancelled and is raised."""
    from studio.chat import load_run
    from studio.chat_memory import free_memory
    from studio.workspace import ADAPTER_DIR

    workspace, run = plan.workspace, plan.run_dir.name
    results: list[dict[str, Any]] = []
    losses: dict[str, list] = {"base": [], "tuned": []}
    state = "cancelled"
    chat = None
    try:
        has_adapter = (plan.run_dir / ADAPTER_DIR).is_dir()
        chat = load_run(workspace, run, base=not has_adapter)  # a full fine-tune: its base model first
        with chat.using_adapter(None):
            base = _answer_rows(plan, chat, "base", 0)
        if base is not None:
            losses["base"] = [loss for _, loss in base]
            if not has_adapter:
                chat = None
                free_memory()
                _update_progress(plan.eval_dir, phase="loading_tuned")
                chat = load_run(workspace, run)

            def on_tuned(index: int, answer: str, loss) -> None:
                line = _result_row(plan.rows[index], base[index], (answer, loss))
                append_jsonl(plan.eval_dir / RESULTS_FILE, line)
                results.append(line)
                losses["tuned"].append(loss)

            tuned = _answer_rows(plan, chat, "tuned", len(plan.rows), on_tuned)
            state = "cancelled" if tuned is None else "completed"
    except KeyboardInterrupt:
        state = "cancelled"
        raise
    except Exception as error:
        state = "failed"
        _update_progress(plan.eval_dir, state="failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        chat = None
        free_memory()
        scores = _write_scores(plan, results, losses, state) if results else None
        write_csv(plan.eval_dir)
        if state != "failed":
            _update_progress(plan.eval_dir, state=state, phase=state, finished=time.time())
        (plan.eval_dir / CANCEL_FILE).unlink(missing_ok=True)
        _release_lock(plan.run_dir, plan.eval_dir)
    return scores


def start_in_background(workspace: Workspace, run: str, settings: EvalSettings) -> Path:
    """Check and start an evaluation of `run` in a thread of this process; returns its results folder at once
    (poll read_progress). Raises what `prepare` raises, before anything runs."""
    import logging

    plan = prepare(workspace, run, settings)

    def work() -> None:
        try:
            execute(plan)
        except Exception:  # already written to progress.json for the UI; the log keeps the traceback
            logging.getLogger(__name__).exception("evaluation %s failed", plan.eval_dir)

    threading.Thread(target=work, name=f"eval-{plan.run_dir.name}", daemon=True).start()
    return plan.eval_dir


def evaluate(workspace: Workspace, run: str, settings: EvalSettings) -> tuple[Path, dict[str, Any] | None]:
    """Check and run an evaluation of `run` in this thread (the CLI); returns (its results folder, its scores)."""
    plan = prepare(workspace, run, settings)
    return plan.eval_dir, execute(plan)


def format_scores(scores: dict[str, Any] | None) -> str:
    """The scores as a text table, base model beside the tuned one (for the terminal)."""
    if not scores:
        return "no row was finished, so there are no scores"
    lines = [f"{scores['rows']} rows of {scores['source']} ({scores['state']})", f"{'metric':16} {'base':>10} {'tuned':>10}"]
    for key, label, digits in (("loss", "loss", 4), ("perplexity", "perplexity", 2), ("exact_match", "exact match %", 1),
                               ("rouge_l", "ROUGE-L F", 1), ("bleu", "BLEU", 1)):
        cells = [scores[side].get(key) for side in ("base", "tuned")]
        lines.append(f"{label:16} " + " ".join(f"{'-' if v is None else f'{v:.{digits}f}':>10}" for v in cells))
    return "\n".join(lines)
