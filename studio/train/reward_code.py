"""The user's own reward functions and the guard around every reward: importing a reward file (a failure names
the line), picking its functions by name, and running any reward so that an exception names the function and the
row it failed on, and a result that is not one number per completion says what came back."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import numbers
import reprlib
import sys
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXCERPT_CHARS = 60


class RewardError(Exception):
    """A reward that cannot be built or that failed, with a message the user can act on."""



def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def prompt_excerpt(prompt: Any) -> str:
    """At most EXCERPT_CHARS characters of a prompt on one line (a message list: its last user message)."""
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        prompt = content_text(users[-1].get("content")) if users else ""
    text = " ".join(str(prompt or "").split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 1] + "…"


# --- user rewards ---------------------------------------------------------------------------------------------


def _import_failure(path: Path, error: BaseException) -> RewardError:
    """RewardError naming the file, the line in it where importing failed (when known) and the exception."""
    line = None
    if isinstance(error, SyntaxError) and error.filename and Path(error.filename).resolve() == path.resolve():
        line = error.lineno
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno  # the innermost frame in the user's file
    where = f", line {line}" if line else ""
    detail = error.msg if isinstance(error, SyntaxError) else str(error)
    return RewardError(f"reward file {path}{where} failed to import: {type(error).__name__}: {detail}")


def _import_file(path: Path):
    """The module the Python file at `path` defines, under a unique name that leaves no trace in sys.modules."""
    if not path.is_file():
        raise RewardError(f"reward file {path} does not exist")
    name = f"studio_user_rewards_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RewardError(f"reward file {path} is not a Python file: give a .py file")
    module = importlib.util.module_from_spec(spec)
    # In sys.modules only while it runs: dataclasses and typing look their module up there at import time.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:
        raise _import_failure(path, error) from error
    finally:
        sys.modules.pop(name, None)
    return module


def _defined_functions(module) -> list[str]:
    """The public functions a user's module defines itself (not those it imports)."""
    return [name for name, value in vars(module).items()
            if inspect.isfunction(value) and not name.startswith("_") and value.__module__ == module.__name__]


def _takes_completions(fn: Callable) -> bool:
    """Whether `fn` can be called with `completions=` as a keyword."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    by_keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return any(p.kind is p.VAR_KEYWORD or (p.name == "completions" and p.kind in by_keyword) for p in parameters)


def load_user_rewards(path: Path, names: list[str]) -> dict[str, Callable]:
    """Import the Python file at `path` and return its functions called `names`, by name, in that order.
    RewardError when the file fails to import (with the line), a name is missing (listing the functions the file
    defines), or a function cannot take `completions` as a keyword."""
    path = Path(path)
    module = _import_file(path)
    found = {}
    for name in names:
        fn = getattr(module, name, None)
        if not callable(fn):
            defined = ", ".join(_defined_functions(module)) or "none"
            raise RewardError(f"reward file {path} has no function {name!r}; the functions it defines are: {defined}")
        if not _takes_completions(fn):
            raise RewardError(f"reward function {name} in {path} cannot take the completions: give it a `completions` "
                              f"parameter and **kwargs, e.g. def {name}(completions, **kwargs)")
        found[name] = fn
    return found


# --- the guard around every reward ----------------------------------------------------------------------------


def _accepted_keywords(fn: Callable) -> set[str] | None:
    """The keyword names `fn` takes, or None when it takes any (**kwargs)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _call(fn: Callable, accepted: set[str] | None, kwargs: dict) -> Any:
    """Call `fn` with the kwargs it takes (a function without **kwargs would refuse TRL's others); an async
    reward is run to completion."""
    if accepted is not None:
        kwargs = {key: value for key, value in kwargs.items() if key in accepted}
    result = fn(**kwargs)
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return result


def _one_row(kwargs: dict, row: int, rows: int) -> dict:
    """The call's kwargs cut down to row `row`: per-row lists become one-item lists; logging is switched off so a
    re-run logs nothing twice."""
    cut = {}
    for key, value in kwargs.items():
        if key in ("log_extra", "log_metric"):
            cut[key] = lambda *args, **kw: None
        elif isinstance(value, (list, tuple)) and len(value) == rows:
            cut[key] = [value[row]]
        else:
            cut[key] = value
    return cut


def _failure(name: str, fn: Callable, accepted: set[str] | None, kwargs: dict, error: Exception) -> RewardError:
    """RewardError for a reward that raised `error`: re-run row by row to name the first row that fails."""
    rows = len(kwargs["completions"])
    for row in range(rows):
        try:
            _call(fn, accepted, _one_row(kwargs, row, rows))
        except Exception as row_error:
            prompts = kwargs.get("prompts")
            prompt = prompts[row] if isinstance(prompts, (list, tuple)) and len(prompts) == rows else ""
            return RewardError(f'reward function {name} failed on row {row} (prompt: "{prompt_excerpt(prompt)}"): '
                               f"{type(row_error).__name__}: {row_error}")
    return RewardError(f"reward function {name} failed on a batch of {rows} completions (each row alone works): "
                       f"{type(error).__name__}: {error}")


def _checked(name: str, result: Any, rows: int) -> list[float | None]:
    """`result` as a list of floats (None kept); RewardError saying what came back when it is not one score per
    completion."""
    expected = f"expected a list of {rows} numbers, one per completion (None where the reward does not apply)"
    if not isinstance(result, (list, tuple)):
        raise RewardError(f"reward function {name} returned {type(result).__name__} {reprlib.repr(result)}; {expected}")
    if len(result) != rows:
        raise RewardError(f"reward function {name} returned {len(result)} values for {rows} completions; {expected}")
    for position, value in enumerate(result):
        if value is not None and not isinstance(value, numbers.Real):  # numpy floats are Real too
            raise RewardError(f"reward function {name} returned {reprlib.repr(value)} ({type(value).__name__}) at "
                              f"position {position}; {expected}")
    return [None if value is None else float(value) for value in result]


def guarded(name: str, fn: Callable) -> Callable:
    """`fn` behind TRL's signature, named `name`, with its failures and bad results turned into RewardError."""
    accepted = _accepted_keywords(fn)

    def reward(prompts, completions, completion_ids=None, **kwargs):
        call_kwargs = {"prompts": prompts, "completions": completions, "completion_ids": completion_ids, **kwargs}
        try:
            result = _call(fn, accepted, call_kwargs)
        except RewardError:
            raise
        except Exception as error:
            raise _failure(name, fn, accepted, call_kwargs, error) from error
        return _checked(name, result, len(completions))

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = fn.__doc__
    return reward
