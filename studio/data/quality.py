"""Quality checks on normalised rows: duplicates, very short or long answers, one prompt with different answers,
and likely secrets or personal data. Each check gives a count and the rows (locations) it concerns."""

from __future__ import annotations

import hashlib
import re
import statistics
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from studio.data.formats import conversation_of

SHOW_ROWS = 10
SHORT_ANSWER_CHARS = 2
LONG_ANSWER_FACTOR = 10  # an answer this many times longer than the median answer is flagged
PATTERNS = {
    "email address": re.compile(r"\b[\w.+-]+@[\w-]+(\.[\w-]+)*\.[A-Za-z]{2,}\b"),
    # the last group has four digits (555-123-4567, +44 20 7946 0958), so 1000-200-400 is not a phone number
    "phone number": re.compile(r"(?<![\w+-])(\+\d{1,3}[ .-]?)?(\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{4}(?![\w-])"),
    "API key or token": re.compile(r"\b(sk-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{30,}|"
                                   r"AKIA[0-9A-Z]{16}|xox[abp]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


# {{name}} left from a template; dotted ones ({{secrets.TOKEN}}) and those in ``` code are code, not placeholders
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")
CODE_BLOCK = re.compile(r"```.*?(```|$)", re.DOTALL)


@dataclass
class Finding:
    """One quality check: what it found, how many rows, and the first rows concerned."""

    check: str
    count: int
    rows: list[str] = field(default_factory=list)


def _norm(text: str) -> str:
    """Text folded for near-duplicate comparison: case, width, punctuation and spacing ignored."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def _whole(row: dict[str, Any]) -> str:
    return "\x1f".join(f"{m['role']}:{m['content']}" for m in conversation_of(row)) if "text" not in row else row["text"]


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    """`text` with each `{{name}}` that `values` names replaced by its value; other placeholders stay."""
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def _prompt_answer(row: dict[str, Any]) -> tuple[str, str]:
    messages = conversation_of(row)
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    prompt = "\n".join(m["content"] for m in messages if m["role"] != "assistant")
    return prompt, answers[-1] if answers else ""


def quality_report(rows: list[dict[str, Any]], locations: list[str]) -> list[Finding]:
    """Every check with a non-zero count, in a fixed order."""
    exact: dict[str, list[int]] = defaultdict(list)
    near: dict[str, list[int]] = defaultdict(list)
    answers_by_prompt: dict[str, dict[str, int]] = defaultdict(dict)
    flagged: dict[str, list[int]] = defaultdict(list)
    answer_lengths = []
    pairs = []
    for index, row in enumerate(rows):
        whole = _whole(row)
        exact[_digest(whole)].append(index)
        near[_digest(_norm(whole))].append(index)
        prompt, answer = _prompt_answer(row)
        pairs.append((prompt, answer))
        answer_lengths.append(len(answer.strip()))
        if prompt:
            answers_by_prompt[_digest(_norm(prompt))].setdefault(_digest(_norm(answer)), index)
        if PLACEHOLDER.search(CODE_BLOCK.sub("", whole)):
            flagged["placeholder"].append(index)
        for name, pattern in PATTERNS.items():
            if pattern.search(whole):
                flagged[name].append(index)
    findings = []

    def add(check: str, indices: list[int]) -> None:
        if indices:
            findings.append(Finding(check, len(indices), [locations[i] for i in indices[:SHOW_ROWS]]))

    placeholders = sorted({name for index in flagged["placeholder"] for name in PLACEHOLDER.findall(CODE_BLOCK.sub("", _whole(rows[index])))})
    add(f"template placeholder left in the text ({', '.join('{{' + n + '}}' for n in placeholders)}); the model would "
        "learn to say it: fill it in with `python -m studio data fill DATASET NAME=VALUE …`", flagged["placeholder"])
    add("exact duplicate of an earlier row", [i for group in exact.values() for i in group[1:]])
    exact_dupes = {i for group in exact.values() for i in group[1:]}
    add("near-duplicate of an earlier row (differs only in case, spacing or punctuation)",
        [i for group in near.values() for i in group[1:] if i not in exact_dupes])
    add("same prompt with a different answer than an earlier row",
        sorted(i for answers in answers_by_prompt.values() if len(answers) > 1 for i in list(answers.values())[1:]))
    if "text" not in (rows[0] if rows else {}):
        add(f"very short answer (≤ {SHORT_ANSWER_CHARS} characters)", [i for i, n in enumerate(answer_lengths) if n <= SHORT_ANSWER_CHARS])
        median = statistics.median(answer_lengths) if answer_lengths else 0
        if median:
            add(f"very long answer (over {LONG_ANSWER_FACTOR}× the median of {median:.0f} characters)",
                [i for i, n in enumerate(answer_lengths) if n > LONG_ANSWER_FACTOR * median])
    for name in PATTERNS:
        add(f"likely {name}", flagged[name])
    return findings
