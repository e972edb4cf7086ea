"""Quality checks on normalised rows: duplicates, very short or long answers, one prompt with different answers,
and likely secrets or personal data. Each check gives a count and the rows (locations) it concerns."""

from __future__ import annotations

import hashlib
import re
import statistics
import unicodedata
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from studio.data.formats import conversation_of

SHOW_ROWS = 10
SHORT_ANSWER_CHARS = 2
LONG_ANSWER_FACTOR = 10  # an answer this many times longer than the median answer is flagged
PATTERNS = {
    # every repeat is bounded (the limits of real addresses), so a long run of word characters and dots is read
    # in linear time; unbounded repeats made one 94 kB answer take 46 s
    "email address": re.compile(r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.[A-Za-z]{2,24}\b"),
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


def _digest(text: str) -> int:
    """A 64-bit fingerprint of `text`: a small int, so a million rows' fingerprints fit in a few tens of MB."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", errors="surrogatepass"), digest_size=8).digest(), "big")


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


class QualityChecks:
    """The checks, fed one row at a time (`add`), so a dataset can be checked as it streams by. Memory: one
    64-bit fingerprint per distinct row and prompt, an answer length and a location per row."""

    def __init__(self) -> None:
        self.first_exact: set[int] = set()
        self.first_near: set[int] = set()
        self.exact_dupes: list[int] = []
        self.near_dupes: list[int] = []
        self.answer_of_prompt: dict[int, int] = {}  # prompt fingerprint -> fingerprint of its first answer
        self.other_answers: dict[tuple[int, int], int] = {}  # (prompt, another answer) -> first row giving it
        self.flagged: dict[str, list[int]] = defaultdict(list)
        self.answer_lengths = array("l")
        self.locations: list[str] = []
        self.plain_text = False  # rows are plain text (no answers to judge)
        self.placeholders: set[str] = set()  # names of {{name}} placeholders found

    def add(self, row: dict[str, Any], location: str) -> None:
        """Check one normalised row found at `location`."""
        index = len(self.locations)
        self.locations.append(location)
        if index == 0:
            self.plain_text = "text" in row
        whole = _whole(row)
        exact, near = _digest(whole), _digest(_norm(whole))
        if exact in self.first_exact:
            self.exact_dupes.append(index)
        elif near in self.first_near:
            self.near_dupes.append(index)
        self.first_exact.add(exact)
        self.first_near.add(near)
        prompt, answer = _prompt_answer(row)
        self.answer_lengths.append(len(answer.strip()))
        if prompt:
            asked, answered = _digest(_norm(prompt)), _digest(_norm(answer))
            if self.answer_of_prompt.setdefault(asked, answered) != answered:
                self.other_answers.setdefault((asked, answered), index)
        unquoted = CODE_BLOCK.sub("", whole)
        found = PLACEHOLDER.findall(unquoted)
        if found:
            self.flagged["placeholder"].append(index)
            self.placeholders.update(found)
        for name, pattern in PATTERNS.items():
            if pattern.search(whole):
                self.flagged[name].append(index)

    def findings(self) -> list[Finding]:
        """Every check with a non-zero count, in a fixed order."""
        findings = []

        def add(check: str, indices: list[int]) -> None:
            if indices:
                findings.append(Finding(check, len(indices), [self.locations[i] for i in indices[:SHOW_ROWS]]))

        lengths = self.answer_lengths
        names = ", ".join("{{" + name + "}}" for name in sorted(self.placeholders))
        add(f"template placeholder left in the text ({names}); the model would learn to say it: fill it in with "
            "`python -m studio data fill DATASET NAME=VALUE …`", self.flagged["placeholder"])
        add("exact duplicate of an earlier row", self.exact_dupes)
        add("near-duplicate of an earlier row (differs only in case, spacing or punctuation)", self.near_dupes)
        add("same prompt with a different answer than an earlier row", sorted(self.other_answers.values()))
        if not self.plain_text:
            add(f"very short answer (≤ {SHORT_ANSWER_CHARS} characters)", [i for i, n in enumerate(lengths) if n <= SHORT_ANSWER_CHARS])
            median = statistics.median(lengths) if lengths else 0
            if median:
                add(f"very long answer (over {LONG_ANSWER_FACTOR}× the median of {median:.0f} characters)",
                    [i for i, n in enumerate(lengths) if n > LONG_ANSWER_FACTOR * median])
        for name in PATTERNS:
            add(f"likely {name}", self.flagged[name])
        return findings


def quality_report(rows: list[dict[str, Any]], locations: list[str]) -> list[Finding]:
    """Every check with a non-zero count, in a fixed order."""
    checks = QualityChecks()
    for row, location in zip(rows, locations):
        checks.add(row, location)
    return checks.findings()
