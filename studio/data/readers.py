"""Read records from every supported source, one at a time, naming where each came from.

Sources: .jsonl, .json, .csv, .tsv, .parquet, .txt (one document per blank-line block), a folder saved with
`datasets.save_to_disk`, a folder of .txt files (one document per file), and `hf:ID[:CONFIG][@SPLIT]` for a
Hugging Face dataset. Each record comes as (location, line, value) where value is a dict or a RowError for
a line that cannot even be read (malformed JSON, bytes that are not UTF-8); the caller decides what to do.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.data.formats import RowError

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt")
HUB_PREFIX = "hf:"
SAVE_TO_DISK_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
MAX_LINE_BYTES = 16_000_000  # one JSONL row: four times what the longest sequence a run takes could use
MAX_JSON_BYTES = 64_000_000  # a .json file is one document, parsed whole (several times its size in memory)
MAX_EXPANDED_BYTES, EXPANSION_FACTOR = 128_000_000, 8  # a Parquet file may expand to the larger of these when read

Record = tuple[str, "int | None", Any]


class DataError(ValueError):
    """A dataset that cannot be used as it is; the message names the file, the line and what to do."""


def is_hub_ref(ref: str) -> bool:
    """True for `hf:ID[:CONFIG][@SPLIT]` references."""
    return ref.strip().startswith(HUB_PREFIX)


def parse_hub_ref(ref: str) -> tuple[str, str | None, str]:
    """(dataset id, config or None, split) of `hf:ID[:CONFIG][@SPLIT]`; the split defaults to train."""
    body = ref.strip()[len(HUB_PREFIX):]
    body, _, split = body.partition("@")
    name, _, config = body.partition(":")
    if not name or name.count("/") > 1 or any(ch.isspace() for ch in name):
        raise DataError(f"{ref!r}: write a Hugging Face dataset as hf:OWNER/NAME, hf:OWNER/NAME:CONFIG or hf:OWNER/NAME@SPLIT")
    return name, config or None, split or "train"


def _jsonl(path: Path) -> Iterator[Record]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                size = len(raw) + _skip_rest_of_line(handle)
                yield f"line {number}", number, RowError("size", f"{size / 1e6:,.0f} MB in one row, over the "
                                                         f"{MAX_LINE_BYTES // 1_000_000} MB a row may have (a run reads at most "
                                                         "1,048,576 tokens of it); split it into smaller rows")
                continue
            if not raw.strip():
                continue
            yield f"line {number}", number, parse_json_line(raw)


def _skip_rest_of_line(handle) -> int:
    """Read past the rest of the current line a block at a time; how many bytes that was."""
    skipped = 0
    while block := handle.readline(1 << 20):
        skipped += len(block)
        if block.endswith(b"\n"):
            break
    return skipped


def parse_json_line(raw: bytes) -> Any:
    """One JSONL line as its value, or a RowError saying why it cannot be read."""
    try:
        text = raw.decode("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8")
    except UnicodeDecodeError as error:
        return RowError("encoding", f"bytes that are not UTF-8 ({raw[error.start:error.start + 4]!r}); "
                                    "save the file as UTF-8 and upload it again")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        return RowError("json", f"not valid JSON ({error.msg} at column {error.colno}); each line must be one JSON object")
    except RecursionError:
        return RowError("json", "JSON nested too deeply to read (thousands of levels); each line must be one flat JSON object")


def _json(path: Path) -> Iterator[Record]:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:  # one JSON document is parsed whole; JSONL is read row by row
        raise DataError(f"{path.name}: {size / 1e6:,.0f} MB of JSON in one document, over the {MAX_JSON_BYTES // 1_000_000} MB "
                        "this reader holds at once; save it as JSONL (one JSON object per line), which is read row by row")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(f"{path.name}, line {line}: bytes that are not UTF-8 ({data[error.start:error.start + 4]!r}); "
                        "save the file as UTF-8 and upload it again") from error
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path.name}, line {error.lineno}: not valid JSON ({error.msg} at column {error.colno})") from error
    except RecursionError:
        raise DataError(f"{path.name}: JSON nested too deeply to read (thousands of levels); expected an array of "
                        "objects") from None
    if isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
        value = next(iter(value.values()))  # {"data": [...]} style wrappers
    if not isinstance(value, list):
        raise DataError(f"{path.name}: expected a JSON array of objects, got {type(value).__name__}")
    for index, row in enumerate(value, start=1):
        yield f"record {index}", None, row


def _table(path: Path, delimiter: str) -> Iterator[Record]:
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")  # bad bytes are caught per field
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not reader.fieldnames:
        raise DataError(f"{path.name}: the file has no header row")
    start = 2
    for row in _csv_rows(reader, path, lambda: start):
        if None in row:
            yield f"line {start}", start, RowError("type", f"has {len(row[None])} more cell(s) than the header has columns")
        else:
            yield f"line {start}", start, {k: v for k, v in row.items()}
        start = reader.line_num + 1


def _csv_rows(reader: csv.DictReader, path: Path, line: Any) -> Iterator[dict]:
    """The rows of `reader`; DataError naming the line (from `line()`) where the csv module gives up, such as
    a cell over its field size limit."""
    try:
        yield from reader
    except csv.Error as error:
        raise DataError(f"{path.name}, line {line()}: cannot be read as a table ({error}); check the quoting "
                        "around that line, or keep cells under 131,072 characters") from None


def _parquet(path: Path) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table_file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{path.name}: not a readable Parquet file ({error})") from error
    index, expanded = 0, 0
    limit = max(MAX_EXPANDED_BYTES, EXPANSION_FACTOR * path.stat().st_size)
    for batch in table_file.iter_batches(batch_size=32):
        expanded += batch.nbytes
        if expanded > limit:  # compressed columns can hold far more than the file's size (a "zip bomb")
            raise DataError(f"{path.name}: by row {index + batch.num_rows} it expands to over {limit // 1_000_000:,} MB when read "
                            f"({path.stat().st_size / 1e6:,.1f} MB on disk); split it into smaller files or export "
                            "it as JSONL")
        for row in batch.to_pylist():
            index += 1
            yield f"row {index}", None, row


def text_layout(lines: list[str], text_split: str = "auto") -> tuple[str, str]:
    """("line" or "blank", why): with text_split=auto, a .txt file with blank lines holds one document per
    blank-line block and one without any holds one document per line (a line-per-document dump such as a wiki
    extract); text_split=line or blank chooses."""
    if text_split in ("line", "blank"):
        return text_split, f"one document per {'line' if text_split == 'line' else 'blank-line block'} (text_split={text_split})"
    filled = sum(1 for line in lines if line.strip())
    if filled and filled < len(lines):
        return "blank", (f"{len(lines) - filled} blank lines separate its paragraphs → one document per blank-line "
                         "block (text_split=line for one per line)")
    return "line", "no blank lines → one document per line (text_split=blank for blank-line blocks)"


def _text_blocks(path: Path, text_split: str = "auto") -> Iterator[Record]:
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    if text_layout(text.splitlines(), text_split)[0] == "line":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield f"line {number}", number, {"text": line}
        return
    block: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            if not block:
                start = number
            block.append(line)
        elif block:
            yield f"line {start}", start, {"text": "\n".join(block)}
            block = []
    if block:
        yield f"line {start}", start, {"text": "\n".join(block)}


def _folder(path: Path) -> Iterator[Record]:
    if any((path / marker).is_file() for marker in SAVE_TO_DISK_MARKERS):
        yield from _saved_dataset(path)
        return
    texts = sorted(path.glob("*.txt"))
    if not texts:
        raise DataError(f"{path.name} is a folder without a dataset saved with save_to_disk or .txt files; "
                        f"choose a {', '.join(FILE_SUFFIXES)} file")
    for file in texts:
        yield file.name, None, {"text": file.read_bytes().decode("utf-8-sig", errors="surrogateescape")}


def _saved_dataset(path: Path) -> Iterator[Record]:
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except (OSError, ValueError) as error:
        raise DataError(f"{path.name}: cannot read the dataset saved there ({error})") from error
    if isinstance(data, DatasetDict):
        split = "train" if "train" in data else next(iter(data))
        data = data[split]
    for index, row in enumerate(data, start=1):
        yield f"row {index}", None, row


def iter_file_records(path: Path, text_split: str = "auto") -> Iterator[Record]:
    """Every record of the file or folder at `path`, in order (a .txt file split as `text_split` says, see
    text_layout); DataError when the whole file is unreadable."""
    if path.is_dir():
        return _folder(path)
    suffix = path.suffix.lower()
    readers = {".jsonl": _jsonl, ".json": _json, ".csv": lambda p: _table(p, ","), ".tsv": lambda p: _table(p, "\t"),
               ".parquet": _parquet, ".txt": lambda p: _text_blocks(p, text_split)}
    if suffix not in readers:
        raise DataError(f"{path.name}: unsupported file type {suffix or '(none)'}; use {', '.join(FILE_SUFFIXES)}, "
                        "or a folder saved with datasets' save_to_disk")
    return readers[suffix](path)


def iter_hub_records(ref: str) -> Iterator[Record]:
    """Every record of a Hugging Face dataset `hf:ID[:CONFIG][@SPLIT]`; DataError that names the id and says how
    to get the data in when it cannot be fetched (for example on an offline machine)."""
    import datasets

    name, config, split = parse_hub_ref(ref)
    try:
        data = datasets.load_dataset(name, config, split=split)
    except Exception as error:  # the hub client raises many types (offline, not found, gated): all mean "not here"
        offline = datasets.config.HF_HUB_OFFLINE or "offline" in str(error).lower() or "connect" in str(error).lower()
        why = "this machine is offline (or cannot reach huggingface.co)" if offline else f"{type(error).__name__}: {error}"
        raise DataError(
            f"Hugging Face dataset {name}{f' (config {config})' if config else ''}, split {split}, cannot be loaded: {why}. "
            f"On a machine with internet run: python -c \"import datasets; datasets.load_dataset('{name}'"
            f"{f', {config!r}' if config else ''}, split='{split}').save_to_disk('{name.replace('/', '_')}')\" "
            "then copy that folder into the workspace's datasets/ folder (or upload a .jsonl/.parquet export) and choose it."
        ) from error
    return ((f"row {index}", None, row) for index, row in enumerate(data, start=1))


def peek(records: Iterator[Record], n: int = 50) -> tuple[list[Record], Iterator[Record]]:
    """The first `n` records and an iterator that yields all of them again, from the first."""
    head = list(itertools.islice(records, n))
    return head, itertools.chain(head, records)
