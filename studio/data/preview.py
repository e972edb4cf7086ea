"""Paged preview and search of a dataset, raw and normalised, without loading a big file to show a page.

A JSONL file is read where the page is: the first page straight from the start of the file, later pages by
seeking to byte offsets from a line index that a background thread builds (numpy over 16 MB chunks, a few
bytes per row). Search scans the file in chunks. Other file types are small enough to hold: their records
are read once per preview. `open_preview(path)` keeps recent previews so page turns reuse them.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.data.formats import Detected, RowError, detect_format, normalise
from studio.data.readers import Record, iter_file_records, parse_json_line

CHUNK_BYTES = 16 * 1024 * 1024
PAGE_SIZE = 10
SHOWN_CHARS = 20_000  # of any one text in a previewed row
INDEX_WAIT_SECONDS = 0.2  # how long a page waits for the line index before saying "still counting"
DETECT_ROWS = 50
KEEP_PREVIEWS = 4


@dataclass
class PreviewRow:
    """One row as the file has it and as the trainer will see it (or why it cannot be used)."""

    location: str
    raw: str
    row: dict[str, Any] | None
    error: str | None


class LineIndex:
    """Byte offsets of the start of every line of a file, built in a background thread."""

    def __init__(self, path: Path):
        import numpy as np

        self.path = path
        self.size = path.stat().st_size
        self.parts = [np.zeros(1, dtype=np.int64)]  # line 1 starts at byte 0
        self.scanned = 0
        self.done = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._build, name=f"index {path.name}", daemon=True)
        self.thread.start()

    def _build(self) -> None:
        import numpy as np

        with open(self.path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                starts = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10).astype(np.int64) + (self.scanned + 1)
                with self.lock:
                    self.parts.append(starts[starts < self.size])
                    self.scanned += len(chunk)
        with self.lock:
            self.done = True

    def lines_known(self) -> int:
        """How many line starts are indexed so far (all lines once `done`)."""
        with self.lock:
            return sum(len(p) for p in self.parts)

    def offset(self, line: int) -> tuple[int, int]:
        """(line number, byte offset) of the indexed line nearest at or before `line` (1-based)."""
        with self.lock:
            remaining = line - 1
            for part in self.parts:
                if remaining < len(part):
                    return line, int(part[remaining])
                remaining -= len(part)
            last = self.parts[-1] if len(self.parts[-1]) else self.parts[0]
            known = sum(len(p) for p in self.parts)
            return known, int(last[-1])

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the index to be complete; True when it is."""
        self.thread.join(timeout)
        return self.done


class Preview:
    """Pages and search over one dataset source (file or folder), with the format detected from its first rows."""

    def __init__(self, path: Path, detected: Detected | None = None, column_map: str = ""):
        self.path = path
        self.column_map = column_map
        self.index: LineIndex | None = None
        self.records: list[Record] | None = None
        if path.is_file() and path.suffix.lower() == ".jsonl":
            head = [(loc, n, value) for loc, n, (_raw, value) in itertools.islice(self._jsonl_from(1, 0), DETECT_ROWS)]
            self.index = LineIndex(path)
        else:
            self.records = list(iter_file_records(path))
            head = self.records[:DETECT_ROWS]
        self.detected, self.detect_error = (detected, None) if detected else self._detect(head)

    def _detect(self, head: list[Record]) -> tuple[Detected | None, str | None]:
        dicts = [value for _location, _line, value in head if isinstance(value, dict)]
        if not dicts:
            return None, "no readable rows at the start of the file"
        try:
            return detect_format(list(dict.fromkeys(k for d in dicts for k in d)), dicts[0], self.column_map), None
        except ValueError as error:
            return None, str(error)

    def _jsonl_from(self, line: int, offset: int):
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            for number, raw in enumerate(handle, start=line):
                if raw.strip():
                    yield f"line {number}", number, (raw, parse_json_line(raw))

    def rows_known(self) -> tuple[int, bool]:
        """(number of rows known so far, whether that is all of them). For JSONL: lines, blank ones included."""
        if self.index is None:
            return len(self.records or []), True
        self.index.wait(INDEX_WAIT_SECONDS)  # a small file is indexed by then: its count, not "N+ (still counting)"
        return self.index.lines_known(), self.index.done

    def _as_row(self, location: str, value: Any, raw: bytes | None = None) -> PreviewRow:
        raw_text = (raw[:SHOWN_CHARS * 4].decode("utf-8", errors="replace").rstrip("\n") if raw is not None
                    else json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, RowError) else "")
        raw_text = shortened(raw_text, len(raw) if raw is not None else None)
        if isinstance(value, RowError):
            return PreviewRow(location, raw_text, None, str(value))
        if self.detected is None:
            return PreviewRow(location, raw_text, None, self.detect_error)
        try:
            return PreviewRow(location, raw_text, shortened(normalise(value, self.detected)), None)
        except RowError as error:
            return PreviewRow(location, raw_text, None, str(error))

    def page(self, number: int, size: int = PAGE_SIZE) -> list[PreviewRow]:
        """Rows of page `number` (0-based): for JSONL, `size` lines from line number × size + 1."""
        if self.records is not None:
            return [self._as_row(loc, value) for loc, _line, value in self.records[number * size:(number + 1) * size]]
        first = number * size + 1
        line, offset = self.index.offset(first) if first > 1 else (1, 0)
        rows = []
        for location, line_number, (raw, value) in self._jsonl_from(line, offset):
            if line_number >= first + size:
                break
            if line_number >= first:
                rows.append(self._as_row(location, value, raw))
        return rows

    def rows_at(self, lines: list[int]) -> list[PreviewRow]:
        """The JSONL rows at these line numbers (for search results); records by position for other files."""
        if self.records is not None:
            return [self._as_row(loc, value) for i, (loc, _l, value) in enumerate(self.records, start=1) if i in set(lines)]
        rows = []
        for wanted in lines:
            line, offset = self.index.offset(wanted)
            for location, number, (raw, value) in self._jsonl_from(line, offset):
                if number >= wanted:
                    if number == wanted:
                        rows.append(self._as_row(location, value, raw))
                    break
        return rows

    def search(self, query: str, limit: int = PAGE_SIZE) -> tuple[list[PreviewRow], bool]:
        """Rows whose raw text contains `query` (case-insensitive), the first `limit`, and whether there are more."""
        query = query.strip()
        if not query:
            return [], False
        if self.records is not None:
            needle = query.lower()
            hits = [i for i, (_loc, _l, value) in enumerate(self.records, start=1)
                    if needle in json.dumps(value, ensure_ascii=False, default=str).lower()]
            return self.rows_at(hits[:limit]), len(hits) > limit
        lines = search_lines(self.path, query, limit + 1)
        return self.rows_at(lines[:limit]), len(lines) > limit


def shortened(value: Any, total: int | None = None) -> Any:
    """`value` with every text longer than SHOWN_CHARS cut there and ending with how much was left out (the
    preview is for reading: a 30 MB answer is not sent to the browser). `total`: the whole size in bytes when
    `value` was already cut from a longer original."""
    if isinstance(value, str):
        full = total if total is not None else len(value)
        if full <= SHOWN_CHARS and len(value) <= SHOWN_CHARS:
            return value
        unit = "bytes" if total is not None else "characters"
        return value[:SHOWN_CHARS] + f" … [cut here for the preview: {full:,} {unit} in all]"
    if isinstance(value, dict):
        return {key: shortened(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shortened(item) for item in value]
    return value


def search_lines(path: Path, query: str, limit: int) -> list[int]:
    """Line numbers (1-based) of up to `limit` lines of `path` that contain `query`, ignoring case; JSON-escaped
    spellings of the query (\\uXXXX) match too."""
    needles = {query.lower().encode("utf-8"), json.dumps(query.lower())[1:-1].encode("ascii")}
    found: list[int] = []
    line_base = 1
    carry = b""
    with open(path, "rb") as handle:
        while len(found) < limit:
            chunk = handle.read(CHUNK_BYTES)
            if not chunk and not carry:
                break
            block = carry + chunk
            cut = block.rfind(b"\n") + 1 if chunk else len(block)
            block, carry = block[:cut], block[cut:]
            lowered = block.lower()
            hits = sorted({lowered.count(b"\n", 0, pos) for n in needles if n
                           for pos in itertools.islice(_positions(lowered, n), limit)})
            found += [line_base + h for h in hits]
            line_base += block.count(b"\n")
            if not chunk:
                break
    return sorted(set(found))[:limit]


def _positions(haystack: bytes, needle: bytes):
    start = haystack.find(needle)
    while start != -1:
        yield start
        start = haystack.find(needle, start + 1)


_previews: OrderedDict[tuple, Preview] = OrderedDict()
_previews_lock = threading.Lock()


def open_preview(path: Path, detected: Detected | None = None, column_map: str = "") -> Preview:
    """A Preview of `path` (in the format `detected` declares, else the one detected from its first rows), reused
    while the file is unchanged (so page turns do not re-read the file)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, column_map.strip(), repr(detected))
    with _previews_lock:
        if key in _previews:
            _previews.move_to_end(key)
            return _previews[key]
    preview = Preview(path, detected, column_map)
    with _previews_lock:
        _previews[key] = preview
        while len(_previews) > KEEP_PREVIEWS:
            _previews.popitem(last=False)
    return preview
