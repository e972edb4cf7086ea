"""Compare two answers to the same prompt, and save which one people prefer as a DPO-ready dataset.

Two ways to pair answerers, never more than two copies of model weights:

    base vs tuned, a LoRA-style run   one copy: the tuned answer with the run's adapter on, the base answer
                                      from the same weights with the adapter switched off
    base vs tuned, a full fine-tune   two copies: the fine-tuned weights and, loaded separately, its base
    two runs, both adapters, one base one copy of the base holding both adapters by name
    two runs, one base, any full run  two copies: each run's own weights
    two runs on different bases       refused (CompareError): their answers would come from different models

A blind A/B comparison shows the two answers as "A" and "B" in an order drawn from a random seed recorded with
the comparison; who wrote which is revealed only after the rating. "A better" and "B better" are appended as
prompt/chosen/rejected rows to `datasets/preferences-<pair>.jsonl`, which the data studio reads as a
preference dataset (stage dpo, orpo, kto or rm). A tie, "both bad", and a pick between two identical or empty
answers teach DPO nothing (or break it), so they go to `datasets/.compare/<same name>-undecided.jsonl` instead,
where they are kept but not offered as a dataset.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio import run_folder
from studio.chat import (
    ChatModel,
    GenerationSettings,
    load_run,
    with_system,
)
from studio.workspace import ADAPTER_DIR, Workspace

MODES = ("base", "runs")  # base vs tuned; two runs
VERDICTS = ("a", "b", "tie", "both_bad")
DECISIVE = ("a", "b")
UNDECIDED_DIR = ".compare"  # under datasets/: hidden from the dataset library, like .cache and .info
_APPEND_LOCK = threading.Lock()


class CompareError(ValueError):
    """Two answerers that cannot be compared, or a rating that cannot be saved; the message says what to do."""


@dataclass
class Side:
    """One answerer: its name as revealed, the run it comes from, and how its answer is produced."""

    name: str
    run_id: str
    adapter: str | None  # the adapter switched on for its answers; None: adapter off (or a model without adapters)
    on_second: bool = False  # answered by the second loaded copy rather than the primary one


@dataclass
class ComparePair:
    """Two answerers over one or two loaded copies of weights; `primary` is the copy that sits in the studio's
    one model slot (so Chat can keep using it), `second` the extra copy a full fine-tune needs."""

    mode: str
    sides: tuple[Side, Side]
    primary: ChatModel
    second: ChatModel | None = None

    @property
    def slug(self) -> str:
        """The name the pair's preference file is made from: the tuned run, or both runs."""
        if self.mode == "base":
            return self.sides[0].run_id
        return f"{self.sides[0].run_id}-vs-{self.sides[1].run_id}"

    @property
    def copies(self) -> int:
        """How many copies of model weights the pair holds in memory (1 or 2)."""
        return 1 if self.second is None else 2

    def answer(self, side: Side, messages: list[dict[str, str]], settings: GenerationSettings) -> str:
        """The whole reply of `side` to `messages` (the caller holds the model slot's lock)."""
        model = self.second if side.on_second else self.primary
        switch = model.using_adapter(side.adapter) if model.adapter_names else contextlib.nullcontext()
        with switch:
            return model.reply(messages, settings)


def _run_kind(workspace: Workspace, run_id: str) -> tuple[str, str]:
    """(the run id, "adapter" or "full") for a run with trained weights; CompareError otherwise."""
    run_dir = workspace.run_dir(run_id)
    if not run_folder.run_has_weights(run_dir):
        raise CompareError(f"run {run_dir.name} has no trained weights to answer with (state: "
                           f"{run_folder.run_status(run_dir).get('state')}); choose a finished run")
    return run_dir.name, "adapter" if (run_dir / ADAPTER_DIR).is_dir() else "full"


def _base_model(workspace: Workspace, run_id: str) -> str:
    return run_folder.load_config(workspace.run_dir(run_id)).model.model


def load_pair(workspace: Workspace, mode: str, run_a: str, run_b: str = "") -> ComparePair:
    """Load what answers a comparison: mode "base" (run `run_a` against its own base model) or "runs" (`run_a`
    against `run_b`). Raises CompareError when the runs cannot be compared (no weights, the same run twice,
    different base models), PathError for an unknown run."""
    if mode not in MODES:
        raise CompareError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not (run_a or "").strip():
        raise CompareError("choose a run to compare")
    first, first_kind = _run_kind(workspace, run_a)
    base = _base_model(workspace, first)
    if mode == "base":
        tuned_name = f"tuned · {first}"
        base_name = f"base model · {base}"
        if first_kind == "adapter":
            primary = load_run(workspace, first)
            sides = (Side(tuned_name, first, primary.adapter_names[0]), Side(base_name, first, None))
            return ComparePair(mode, sides, primary)
        primary = load_run(workspace, first)
        second = load_run(workspace, first, base=True)
        return ComparePair(mode, (Side(tuned_name, first, None), Side(base_name, first, None, on_second=True)),
                           primary, second)

    if not (run_b or "").strip():
        raise CompareError("choose a second run to compare with (Run B)")
    other, other_kind = _run_kind(workspace, run_b)
    if other == first:
        raise CompareError(f"run A and run B are both {first}; choose two different runs, or compare the run "
                           "with its base model")
    other_base = _base_model(workspace, other)
    if other_base != base:
        raise CompareError(f"run {first} was trained on {base} and run {other} on {other_base}: runs on different "
                           "base models are not compared here (their answers would come from two different models). "
                           "Choose two runs of the same base model, or chat with each run on its own.")
    if first_kind == other_kind == "adapter":
        primary = load_run(workspace, first)
        primary.add_adapter_from_run(workspace, other, other)
        sides = (Side(f"run · {first}", first, primary.adapter_names[0]), Side(f"run · {other}", other, other))
        return ComparePair(mode, sides, primary)
    primary = load_run(workspace, first)
    second = load_run(workspace, other)
    sides = (Side(f"run · {first}", first, primary.adapter_names[0] if primary.adapter_names else None),
             Side(f"run · {other}", other, second.adapter_names[0] if second.adapter_names else None, on_second=True))
    return ComparePair(mode, sides, primary, second)


@dataclass
class Comparison:
    """One prompt answered by both sides. `answers` and `names` follow the pair's side order; `shown()` gives
    them in the order the user sees (A, B), which a blind comparison draws from `seed`."""

    prompt: list[dict[str, str]]  # the messages answered: a system message when given, then the user's
    answers: tuple[str, str]
    names: tuple[str, str]
    blind: bool
    seed: int
    slug: str
    verdict: str | None = None  # set once rated; a comparison is rated once
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def swapped(self) -> bool:
        """True when "A" shows the second side's answer."""
        return self.blind and random.Random(self.seed).random() < 0.5

    def shown(self) -> tuple[str, str]:
        """The answers as shown: (A, B)."""
        return self.answers[::-1] if self.swapped else self.answers

    def shown_names(self) -> tuple[str, str]:
        """Who wrote A and who wrote B; reveal these only after the rating."""
        return self.names[::-1] if self.swapped else self.names


def compare(pair: ComparePair, prompt: str, system_prompt: str = "", settings: GenerationSettings | None = None,
            blind: bool = False, seed: int | None = None) -> Comparison:
    """Both sides' replies to `prompt` (with `system_prompt` first when given). A blind comparison's order comes
    from `seed` (a fresh random one when None), recorded in the result. Raises CompareError for an empty prompt
    and ValueError when the chat template refuses a system prompt."""
    if not (prompt or "").strip():
        raise CompareError("type a prompt for both models to answer")
    settings = settings or GenerationSettings()
    messages = with_system([{"role": "user", "content": prompt}], system_prompt, pair.primary.tokenizer)
    answers = tuple(pair.answer(side, messages, settings) for side in pair.sides)
    return Comparison(prompt=messages, answers=answers, names=tuple(s.name for s in pair.sides), blind=bool(blind),
                      seed=random.randrange(2**31) if seed is None else int(seed), slug=pair.slug,
                      settings={"max_new_tokens": settings.max_new_tokens, "temperature": settings.temperature,
                                "top_p": settings.top_p, "seed": settings.seed})


def preference_file(workspace: Workspace, slug: str) -> Path:
    """The DPO-ready file where a pair's decisive ratings go: datasets/preferences-<slug>.jsonl."""
    return workspace.datasets_dir / f"preferences-{slug}.jsonl"


def undecided_file(workspace: Workspace, slug: str) -> Path:
    """Where ties, "both bad" and undecidable picks go: datasets/.compare/preferences-<slug>-undecided.jsonl."""
    return workspace.datasets_dir / UNDECIDED_DIR / f"preferences-{slug}-undecided.jsonl"


@dataclass
class SavedRating:
    """Where a rating went and how many rows each of the pair's two files now holds."""

    path: Path  # the file this rating was appended to
    in_dataset: bool  # True: a chosen/rejected row in the preference dataset; False: kept aside as undecided
    preferences: int  # rows in the preference dataset
    undecided: int  # rows kept aside
    note: str = ""  # why a pick was kept aside, when it was


def count_rows(path: Path) -> int:
    """The number of non-empty lines of a JSONL file (0 when it does not exist)."""
    if not path.is_file():
        return 0
    with path.open("rb") as lines:
        return sum(1 for line in lines if line.strip())


def _append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _APPEND_LOCK, path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        out.flush()


def save_rating(workspace: Workspace, comparison: Comparison, verdict: str) -> SavedRating:
    """Record the user's pick for `comparison` ("a", "b", "tie" or "both_bad", about the answers as shown) and
    mark it rated. "a"/"b" become a prompt/chosen/rejected row of the preference dataset, unless the answers
    are identical or one is empty (kept aside with a note, like ties). Raises CompareError for an unknown
    verdict or a comparison already rated."""
    if verdict not in VERDICTS:
        raise CompareError(f"a rating must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    if comparison.verdict is not None:
        raise CompareError("this comparison is already rated; answer a new prompt to rate again")
    shown, names = comparison.shown(), comparison.shown_names()
    row: dict[str, Any] = {
        "verdict": verdict, "shown": {"A": names[0], "B": names[1]}, "blind": comparison.blind,
        "order_seed": comparison.seed, "settings": comparison.settings,
        "rated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    note = ""
    if verdict in DECISIVE:
        if shown[0].strip() == shown[1].strip():
            note = "the two answers are the same text, so neither can be preferred"
        elif not (shown[0].strip() and shown[1].strip()):
            note = "one answer is empty, so it cannot be a preference pair"
    if verdict in DECISIVE and not note:
        chosen, rejected = (0, 1) if verdict == "a" else (1, 0)
        path = preference_file(workspace, comparison.slug)
        _append(path, {"prompt": comparison.prompt,
                       "chosen": [{"role": "assistant", "content": shown[chosen]}],
                       "rejected": [{"role": "assistant", "content": shown[rejected]}],
                       "chosen_by": names[chosen], "rejected_by": names[rejected], **row})
    else:
        path = undecided_file(workspace, comparison.slug)
        _append(path, {"prompt": comparison.prompt, "answer_a": shown[0], "answer_b": shown[1],
                       **({"note": note} if note else {}), **row})
    comparison.verdict = verdict
    return SavedRating(path, path.parent == workspace.datasets_dir,
                       count_rows(preference_file(workspace, comparison.slug)),
                       count_rows(undecided_file(workspace, comparison.slug)), note)
