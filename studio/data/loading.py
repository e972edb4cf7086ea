"""Load a dataset: read every record, detect the format (and say why), normalise and check each row.

`load_dataset_file(path)` returns a LoadedDataset of normalised rows (see studio/data/formats.py) with the
line or record each came from, and every bad row as a RowProblem (line, kind, what is wrong). With
`skip_bad=False` (the default) a file with any bad row is refused with a DataError listing the first ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.data.dataset_info import entry_of_path
from studio.data.formats import (
    Detected,
    RowError,
    conversation_of,
    detect_format,
    normalise,
)
from studio.data.readers import (
    FILE_SUFFIXES,
    DataError,
    Record,
    is_hub_ref,
    iter_file_records,
    peek,
    text_layout,
)
from studio.workspace import SAMPLES_DIR, Workspace

__all__ = ["DataError", "LoadedDataset", "RowProblem", "list_samples", "load_dataset_file", "load_records", "resolve_dataset"]

SUPPORTED_SUFFIXES = FILE_SUFFIXES
MAX_PROBLEMS_SHOWN = 10
PROBLEM_KINDS = {"json": "malformed JSON", "encoding": "not UTF-8", "type": "wrong type", "missing": "missing field",
                 "empty": "empty field", "role": "unknown role", "ending": "does not end with the assistant",
                 "size": "row too large"}


@dataclass
class RowProblem:
    """One row that cannot be used: where it is, what kind of problem, and the message."""

    location: str
    line: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass
class LoadedDataset:
    """Normalised rows read from one dataset, where each came from, and the rows that were skipped."""

    path: Path | str
    format: str
    reason: str = ""
    kind: str = "chat"
    columns: dict[str, str] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows_read: int = 0

    @property
    def name(self) -> str:
        return self.path.name if isinstance(self.path, Path) else str(self.path)

    @property
    def conversations(self) -> list[list[dict[str, Any]]]:
        """The message lists of the rows (for preference/kto rows: prompt and the chosen/given answer)."""
        return [conversation_of(row) for row in self.examples]

    @property
    def skipped(self) -> int:
        return len(self.problems)

    def problem_counts(self) -> dict[str, int]:
        """How many rows have each kind of problem (readable names), most common first."""
        return dict(Counter(PROBLEM_KINDS.get(p.kind, p.kind) for p in self.problems).most_common())

    def __len__(self) -> int:
        return len(self.examples)


def list_samples() -> list[str]:
    """Names of the bundled sample datasets (files in presets/datasets/)."""
    return sorted(p.stem for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)


def resolve_dataset(workspace: Workspace, ref: str) -> Path:
    """The file or folder behind a dataset reference: a bundled sample name or a path inside the workspace."""
    ref = ref.strip()
    for path in SAMPLES_DIR.iterdir():
        if path.stem == ref and path.suffix.lower() in SUPPORTED_SUFFIXES:
            return path
    if is_hub_ref(ref):
        raise DataError(f"{ref} is a Hugging Face dataset, not a file")
    entry = entry_of_path(workspace, ref)
    if entry:  # FOLDER/NAME: the file of entry NAME in FOLDER/dataset_info.json
        return entry[0]
    path = workspace.confine(ref)
    if path.is_dir() and not any(path.glob("*.txt")) and not any((path / m).exists() for m in ("dataset_info.json", "state.json", "dataset_dict.json")):
        raise DataError(f"{ref} is a folder; choose a {', '.join(SUPPORTED_SUFFIXES)} file or a folder saved with save_to_disk")
    return path


def detect(name: str, head: list[Record], column_map: str = "") -> Detected:
    """The format of a dataset from its first records; DataError naming the first line when nothing fits."""
    dicts = [(location, value) for location, _line, value in head if isinstance(value, dict)]
    if not dicts:
        if not head:
            raise DataError(f"{name}: the file has no rows")
        location, _line, value = head[0]
        what = value if isinstance(value, RowError) else f"expected a JSON object, got {type(value).__name__}"
        raise DataError(f"{name}, {location}: {what}")
    columns = list(dict.fromkeys(key for _location, value in dicts for key in value))
    try:
        detected = detect_format(columns, dicts[0][1], column_map)
    except ValueError as error:
        raise DataError(f"{name}, {dicts[0][0]}: {error}") from error
    unused = [column for column in columns if column not in detected.columns.values()]
    if unused and detected.format == "prompt_only":  # every other column is the rewards' reference
        detected.reason += f"; the reward functions can read {', '.join(f'`{c}`' for c in unused)}"
    elif unused:  # said, never silently dropped (a label or weight column especially)
        detected.reason += f"; not used: {', '.join(f'`{c}`' for c in unused)} (map them with column_map if they matter)"
    return detected


def load_records(name: str, records: Iterator[Record], column_map: str = "", keep: bool = True,
                 progress: Callable[[int], None] | None = None, detected: Detected | None = None,
                 on_row: Callable[[dict[str, Any], str], None] | None = None) -> LoadedDataset:
    """Detect (unless `detected` says the format), normalise and check `records`; every bad row becomes a
    RowProblem. With keep=False the rows are counted and checked but not kept (to check a file too big to hold).
    `progress(rows_read)` every 10,000 rows; `on_row(row, location)` for each good row as it is read."""
    head, records = peek(records)
    if detected is None:
        detected = detect(name, head, column_map)
    dataset = LoadedDataset(path=name, format=detected.format, reason=detected.reason, kind=detected.kind,
                            columns=detected.columns)
    for location, line, value in records:
        dataset.rows_read += 1
        if progress and dataset.rows_read % 10_000 == 0:
            progress(dataset.rows_read)
        try:
            if isinstance(value, RowError):
                raise value
            row = normalise(value, detected)
        except RowError as error:
            dataset.problems.append(RowProblem(location, line, error.kind, str(error)))
            continue
        if on_row:
            on_row(row, location)
        if keep:
            dataset.examples.append(row)
            dataset.locations.append(location)
    return dataset


def refusal(dataset: LoadedDataset, skip_bad: bool) -> str | None:
    """Why `dataset` cannot be trained on as loaded (bad rows while not skipping, or no good row), else None."""
    name = dataset.name
    if dataset.rows_read == 0:
        return f"{name}: the file has no rows"
    if not dataset.problems:
        return None
    good = dataset.rows_read - dataset.skipped
    if skip_bad and good > 0:
        return None
    shown = "\n".join(f"  {p}" for p in dataset.problems[:MAX_PROBLEMS_SHOWN])
    more = f"\n  … and {dataset.skipped - MAX_PROBLEMS_SHOWN} more" if dataset.skipped > MAX_PROBLEMS_SHOWN else ""
    counts = ", ".join(f"{kind}: {n}" for kind, n in dataset.problem_counts().items())
    what = ("Fix these rows and upload the file again." if good == 0 else
            "Fix these rows and upload the file again, or skip them (skip_bad_rows=true) to train on the good rows.")
    return (f"{name}: {dataset.skipped} of {dataset.rows_read} rows cannot be used (format {dataset.format}; {counts}):\n"
            f"{shown}{more}\n{what}")


def describe_source(path: Path, dataset: LoadedDataset, text_split: str = "auto") -> None:
    """Add to the dataset's reason how its source was split into rows, where that is a choice (.txt files)."""
    if path.is_file() and path.suffix.lower() == ".txt":
        lines = path.read_bytes().decode("utf-8-sig", errors="surrogateescape").splitlines()
        dataset.reason += f"; .txt file: {text_layout(lines, text_split)[1]}"


def load_dataset_file(path: Path, column_map: str = "", skip_bad: bool = False) -> LoadedDataset:
    """Read and check every row of a dataset file or folder.

    Returns the normalised rows; raises DataError naming the file and the first bad lines (up to ten) with what
    is wrong in each, so the user can fix them all at once — unless `skip_bad`, when bad rows are left out
    (and listed in `problems`) as long as at least one row is good."""
    dataset = load_records(path.name, iter_file_records(path), column_map)
    dataset.path = path
    describe_source(path, dataset)
    why = refusal(dataset, skip_bad)
    if why:
        raise DataError(why)
    return dataset
