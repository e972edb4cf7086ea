"""Reward functions for GRPO training: the built-in rewards and format presets, and the list of reward functions
a run uses, built-in or from the user's Python file (loaded and guarded by studio/train/reward_code.py).

TRL's GRPOTrainer calls every reward function as `fn(prompts=..., completions=..., completion_ids=..., **kwargs)`,
where a completion is text or a list of message dicts, and kwargs hold each extra dataset column as a list (one
value per completion) plus `trainer_state`, `log_extra` and `log_metric`. A reward returns one float per
completion, or None where it does not apply; TRL names the logged metric after the function's `__name__`.
"""

from __future__ import annotations

import json
import re
import reprlib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from studio.train.reward_code import RewardError, content_text, guarded, load_user_rewards, prompt_excerpt

__all__ = ["BUILTIN_REWARDS", "FORMAT_PRESETS", "RewardError", "RewardSettings", "build_reward_functions",
           "completion_text", "load_user_rewards", "prompt_excerpt", "resolve_format", "score_completion"]

BUILTIN_REWARDS: dict[str, str] = {
    "exact_match": "1 when the answer (inside the last <answer> tag, if any) equals the reference column, "
                   "ignoring case and spacing",
    "number_match": "1 when the last number in the answer equals the reference's number ('#### 72' works)",
    "format": "1 when the whole completion matches the format regex or a preset such as think_answer",
    "length": "how close the completion's length in characters is to the target (1 at the target, 0 at twice it)",
    "valid_json": "1 when the completion (a ``` fence allowed) is valid JSON that matches the schema, if one is given",
    "no_repetition": "1 minus the share of repeated 3-word sequences (3-character ones for text without spaces)",
}


def _tag_block(name: str) -> str:
    """A regex for one `<name>…</name>` block whose inside is not blank and holds no other `<name>` tag."""
    not_a_tag = rf"(?!</?{name}>)"
    return rf"<{name}>\s*{not_a_tag}\S(?:{not_a_tag}.)*</{name}>"


FORMAT_PRESETS: dict[str, str] = {
    "think_answer": _tag_block("think") + r"\s*" + _tag_block("answer"),
    "answer_tag": _tag_block("answer"),
}

# The kwargs TRL passes that are not extra dataset columns.
TRL_KWARGS = ("prompts", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments")

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+")
_JSON_FENCE = re.compile(r"```(?:json)?[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL | re.IGNORECASE)


@dataclass
class RewardSettings:
    """What the built-in rewards read: the reference column, the format regex, the target length and a schema."""

    answer_column: str = "answer"
    format_regex: str = "think_answer"  # a FORMAT_PRESETS name or a regex
    length_target: int = 200  # characters
    json_schema: dict | None = None


# --- text helpers ---------------------------------------------------------------------------------------------


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as it is; for a list of messages, the contents of its assistant
    messages joined with newlines."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "\n".join(content_text(m.get("content")) for m in completion
                         if isinstance(m, dict) and m.get("role") == "assistant")
    raise RewardError(f"a completion must be text or a list of messages, not {type(completion).__name__}: "
                      f"{reprlib.repr(completion)}")


def _answer_part(text: str) -> str:
    """What is inside the last <answer>…</answer> tag, or the whole text when there is none."""
    inside = _ANSWER_TAG.findall(text)
    return inside[-1] if inside else text


def _normalised(text: str) -> str:
    """Text compared by exact_match: NFKC, casefolded, whitespace collapsed, a trailing period dropped."""
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return text.removesuffix(".").rstrip()


def _numbers(text: str) -> list[Decimal]:
    """The numbers in `text`, in order ("1,234.50" is 1234.5)."""
    return [Decimal(found.replace(",", "")) for found in _NUMBER.findall(text)]


def _reference_number(reference: str) -> Decimal | None:
    """The number a reference answer gives: the first number after `####` when present, else its last number."""
    if "####" in reference:
        found = _numbers(reference.split("####")[-1])
        return found[0] if found else None
    found = _numbers(reference)
    return found[-1] if found else None


def _without_fence(text: str) -> str:
    """The text inside a surrounding ```json … ``` or ``` … ``` fence, or the stripped text when there is none."""
    text = text.strip()
    fenced = _JSON_FENCE.fullmatch(text)
    return fenced.group(1) if fenced else text


def _tokens(text: str) -> list[str]:
    """Words split at whitespace; for text without spaces (e.g. Chinese), its characters."""
    words = text.split()
    return words if len(words) > 1 else list(text.strip())


# --- built-in rewards -----------------------------------------------------------------------------------------


def _column(kwargs: dict, column: str, reward: str) -> list:
    """The values of dataset column `column`; RewardError saying how to provide it when the rows lack it."""
    if column in kwargs:
        return kwargs[column]
    have = sorted(key for key, value in kwargs.items() if key not in TRL_KWARGS and isinstance(value, list))
    raise RewardError(f'{reward} needs the reference answers in a dataset column named "{column}", but the rows have '
                      f"no such column (they have: {', '.join(have) or 'no extra columns'}). Map or rename a column to "
                      f'"{column}", or set the answer column to the one that holds the reference answers.')


def resolve_format(text: str) -> str:
    """The regex for a FORMAT_PRESETS name, or `text` itself when it is a regex that compiles; RewardError
    saying which regex is wrong and why."""
    if text in FORMAT_PRESETS:
        return FORMAT_PRESETS[text]
    if not text.strip():
        raise RewardError(f"the format regex is empty: give a regex or a preset: {', '.join(FORMAT_PRESETS)}")
    try:
        re.compile(text)
    except re.error as error:
        raise RewardError(f"the format regex {text!r} does not compile: {error} "
                          f"(or use a preset: {', '.join(FORMAT_PRESETS)})") from error
    return text


def _json_validator(schema: dict) -> Callable[[Any], bool]:
    """A check that a parsed JSON value matches `schema`; RewardError when the schema itself is not valid."""
    try:
        import jsonschema
    except ImportError as error:
        raise RewardError("valid_json with a JSON schema needs the jsonschema package: "
                          "pip install jsonschema") from error
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise RewardError(f"the JSON schema for valid_json is not a valid schema: {error.message}") from error
    return validator_class(schema).is_valid


def _exact_match(settings: RewardSettings) -> Callable:
    column = settings.answer_column

    def exact_match(completions, **kwargs):
        references = _column(kwargs, column, "exact_match")
        return [None if reference is None
                else float(_normalised(_answer_part(completion_text(c))) == _normalised(str(reference)))
                for c, reference in zip(completions, references)]

    return exact_match


def _number_match(settings: RewardSettings) -> Callable:
    column = settings.answer_column

    def number_match(completions, **kwargs):
        references = _column(kwargs, column, "number_match")
        scores = []
        for row, (completion, reference) in enumerate(zip(completions, references)):
            if reference is None:  # a row without a reference: not applicable
                scores.append(None)
                continue
            expected = _reference_number(str(reference))
            if expected is None:
                raise RewardError(f'number_match: the reference answer on row {row} has no number: '
                                  f'{reprlib.repr(str(reference))}. Each row\'s "{column}" column needs a number '
                                  f'(GSM8K style "… #### 72" works).')
            found = _numbers(_answer_part(completion_text(completion)))
            scores.append(float(bool(found) and found[-1] == expected))
        return scores

    return number_match


def _format(settings: RewardSettings) -> Callable:
    pattern = re.compile(resolve_format(settings.format_regex), re.DOTALL)

    def format_reward(completions, **kwargs):
        return [float(pattern.fullmatch(completion_text(c).strip()) is not None) for c in completions]

    return format_reward


def _length(settings: RewardSettings) -> Callable:
    target = settings.length_target
    if not isinstance(target, int) or target <= 0:
        raise RewardError(f"the length reward's target must be a whole number of characters above 0, "
                          f"not {target!r}")

    def length(completions, **kwargs):
        return [max(0.0, 1 - abs(len(completion_text(c)) - target) / target) for c in completions]

    return length


def _valid_json(settings: RewardSettings) -> Callable:
    matches_schema = _json_validator(settings.json_schema) if settings.json_schema is not None else None

    def parses(text: str) -> bool:
        try:
            value = json.loads(_without_fence(text))
        except ValueError:
            return False
        return matches_schema is None or matches_schema(value)

    def valid_json(completions, **kwargs):
        return [float(parses(completion_text(c))) for c in completions]

    return valid_json


def _no_repetition(settings: RewardSettings) -> Callable:
    def score(text: str) -> float:
        tokens = _tokens(text)
        if len(tokens) < 3:
            return 1.0
        grams = [tuple(tokens[i:i + 3]) for i in range(len(tokens) - 2)]
        return len(set(grams)) / len(grams)

    def no_repetition(completions, **kwargs):
        return [score(completion_text(c)) for c in completions]

    return no_repetition


_BUILDERS: dict[str, Callable[[RewardSettings], Callable]] = {
    "exact_match": _exact_match,
    "number_match": _number_match,
    "format": _format,
    "length": _length,
    "valid_json": _valid_json,
    "no_repetition": _no_repetition,
}


def build_reward_functions(names: list[str], settings: RewardSettings,
                           user_file: Path | None = None) -> list[Callable]:
    """One TRL reward function per name, in order: a built-in by that name, else the function of that name in
    `user_file`. Each is named after its reward and raises RewardError (naming the function and the row) when it
    fails or returns something other than one number per completion."""
    if not names:
        raise RewardError(f"choose at least one reward function (built in: {', '.join(BUILTIN_REWARDS)})")
    user_names = [name for name in names if name not in BUILTIN_REWARDS]
    if user_names and user_file is None:
        raise RewardError(f"unknown reward {', '.join(user_names)}: the built-in rewards are "
                          f"{', '.join(BUILTIN_REWARDS)}; for your own, give a Python file that defines it")
    user = load_user_rewards(Path(user_file), user_names) if user_names else {}
    return [guarded(name, _BUILDERS[name](settings) if name in BUILTIN_REWARDS else user[name]) for name in names]


def score_completion(functions: list[Callable], prompt: Any, completion: Any, row: dict) -> dict[str, float | None]:
    """Each reward function's score of one completion of `prompt`, given the row's extra columns, by function
    name (no token ids are known here: completion_ids is None)."""
    columns = {key: [value] for key, value in row.items() if key not in ("prompt", "completion", "completion_ids")}
    return {fn.__name__: fn(prompts=[prompt], completions=[completion], completion_ids=None, **columns)[0]
            for fn in functions}
