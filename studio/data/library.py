"""The dataset library in the workspace: uploads, their saved settings, and cached normalised copies.

`open_dataset(workspace, ref, column_map, skip_bad)` is how the trainer, the run checks and the UI load a
dataset: a bundled sample, a file or folder in the workspace, or `hf:ID[:CONFIG][@SPLIT]`. The normalised
rows are cached under datasets/.cache keyed by the source's size and modification time and the column map,
so a second run reads the cache instead of parsing and checking the source again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.data.dataset_info import INFO_FILE, entry_of_path, list_entries
from studio.data.formats import Detected
from studio.data.loading import (
    LoadedDataset,
    describe_source,
    RowProblem,
    load_records,
    refusal,
    resolve_dataset,
)
from studio.data.readers import (
    FILE_SUFFIXES,
    DataError,
    is_hub_ref,
    iter_file_records,
    iter_hub_records,
)
from studio.workspace import PathError, Workspace, read_json, write_json_atomic

CACHE_VERSION = 3  # bump when the normalised row shape changes


@dataclass
class LibraryEntry:
    """One dataset in the library, as listed in the Data tab."""

    name: str  # path relative to the workspace, e.g. datasets/mine.jsonl
    format: str
    rows: int | None
    skipped: int | None
    size_bytes: int
    modified: float
    column_map: str = ""


def _source_stamp(path: Path) -> str:
    """Changes whenever the file (or any file in the folder) changes."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def _cache_file(workspace: Workspace, source: str, stamp: str, column_map: str) -> Path:
    source_key = hashlib.sha256(source.encode()).hexdigest()[:12]
    version_key = hashlib.sha256(f"{CACHE_VERSION}|{stamp}|{column_map.strip()}".encode()).hexdigest()[:12]
    return workspace.dataset_cache_dir / f"{source_key}-{version_key}.jsonl"


def _write_cache(cache: Path, dataset: LoadedDataset) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    for stale in cache.parent.glob(f"{cache.name.split('-')[0]}-*.jsonl"):  # older versions of this source
        stale.unlink(missing_ok=True)
    meta = {"format": dataset.format, "reason": dataset.reason, "kind": dataset.kind, "columns": dataset.columns,
            "rows_read": dataset.rows_read, "problems": [vars(p) for p in dataset.problems]}
    tmp = cache.with_name(f".{cache.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(meta, ensure_ascii=False) + "\n")
        handle.writelines(json.dumps({"l": location, "e": example}, ensure_ascii=False) + "\n" for example, location in zip(dataset.examples, dataset.locations))
    tmp.replace(cache)


def _read_cache(cache: Path, name: str | Path) -> LoadedDataset | None:
    examples, locations = [], []
    try:
        with open(cache, encoding="utf-8") as handle:
            meta = json.loads(handle.readline())
            for line in handle:  # row by row: a list of the parsed lines beside the examples would double the peak
                row = json.loads(line)
                examples.append(row["e"])
                locations.append(row["l"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return LoadedDataset(path=name, format=meta["format"], reason=meta["reason"], kind=meta["kind"],
                         columns=meta["columns"], rows_read=meta["rows_read"],
                         problems=[RowProblem(**p) for p in meta["problems"]], examples=examples, locations=locations)


def open_dataset(workspace: Workspace, ref: str, column_map: str = "", skip_bad: bool = False,
                 text_split: str = "auto") -> LoadedDataset:
    """Load dataset `ref` (sample name, workspace path or hf: id) through the cache, for training.

    Returns the normalised rows; raises DataError (bad rows while not skipping, no usable row, unreadable file)
    or PathError (a path outside the workspace), each naming what is wrong and where."""
    dataset = read_dataset(workspace, ref, column_map, text_split=text_split)
    why = refusal(dataset, skip_bad)
    if why:
        raise DataError(why)
    return dataset


def source_of(workspace: Workspace, ref: str) -> tuple[Path, Detected | None]:
    """(file or folder, the format its dataset_info.json entry declares or None) behind a local dataset `ref`, as
    training reads it: FOLDER/NAME, an entry of FOLDER/dataset_info.json, is its file in the declared format."""
    entry = entry_of_path(workspace, ref)
    return entry if entry else (resolve_dataset(workspace, ref), None)


def read_dataset(workspace: Workspace, ref: str, column_map: str = "", use_cache: bool = True,
                 text_split: str = "auto") -> LoadedDataset:
    """Every good row of dataset `ref` and every bad one as a problem (to report), through the cache (a .txt file
    split into documents as `text_split` says). DataError only when the source cannot be read at all or its
    format not recognised."""
    ref = ref.strip()
    if is_hub_ref(ref):
        source, stamp, name = ref, "hub", ref
        cache = _cache_file(workspace, source, stamp, column_map)
        dataset = _read_cache(cache, name) if use_cache and cache.exists() else None
        if dataset is None:
            dataset = load_records(name, iter_hub_records(ref), column_map)
            _write_cache(cache, dataset)
    else:
        path, detected = source_of(workspace, ref)
        how = f"{column_map}|{text_split}|{json.dumps(vars(detected), sort_keys=True) if detected else ''}"
        cache = _cache_file(workspace, str(path), _source_stamp(path), how)
        dataset = _read_cache(cache, path) if use_cache and cache.exists() else None
        if dataset is None:
            dataset = load_records(path.name, iter_file_records(path, text_split), column_map, detected=detected)
            describe_source(path, dataset, text_split)
            _write_cache(cache, dataset)
        dataset.path = path
        if path.is_relative_to(workspace.datasets_dir):
            _remember(workspace, path, format=dataset.format, rows=len(dataset), skipped=dataset.skipped)
    return dataset


# --- library entries (uploads in workspace/datasets) ---------------------------------------------------

def _info_file(workspace: Workspace, path: Path) -> Path:
    return workspace.dataset_info_dir / f"{path.name}.json"


def _remember(workspace: Workspace, path: Path, **fields: Any) -> dict[str, Any]:
    info_file = _info_file(workspace, path)
    info = read_json(info_file) or {}
    info.update(fields)
    info_file.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(info_file, info)
    return info


def dataset_settings(workspace: Workspace, ref: str) -> dict[str, Any]:
    """What was saved with a library dataset (column_map, skip_bad_rows, format, rows); {} for others."""
    try:
        path = resolve_dataset(workspace, ref)
    except (PathError, DataError):
        return {}
    if not path.is_relative_to(workspace.datasets_dir):
        return {}
    return read_json(_info_file(workspace, path)) or {}


def save_settings(workspace: Workspace, ref: str, column_map: str, skip_bad_rows: bool) -> None:
    """Save the column map and the bad-row choice with a library dataset (so choosing it again restores them)."""
    path = resolve_dataset(workspace, ref)  # FOLDER/NAME entries: with their file
    if path.is_relative_to(workspace.datasets_dir):
        _remember(workspace, path, column_map=column_map.strip(), skip_bad_rows=bool(skip_bad_rows))


def safe_name(name: str) -> str:
    """A file name made of letters, digits, dots, dashes and underscores (the suffix kept, lower case)."""
    path = Path(name)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem).strip("._") or "dataset"
    return f"{stem}{path.suffix.lower()}"


def add_upload(workspace: Workspace, temp_path: str) -> str:
    """Copy an uploaded file into the library under a safe name; returns its workspace-relative path."""
    source = Path(temp_path)
    if source.suffix.lower() not in FILE_SUFFIXES:
        raise DataError(f"{source.name}: unsupported file type; upload {', '.join(FILE_SUFFIXES)}")
    target = workspace.datasets_dir / safe_name(source.name)
    shutil.copyfile(source, target)
    _info_file(workspace, target).unlink(missing_ok=True)  # a new file: forget the old one's settings
    _remember(workspace, target, uploaded=time.time(), original_name=source.name)
    return str(target.relative_to(workspace.root))


def list_library(workspace: Workspace) -> list[LibraryEntry]:
    """Every dataset in workspace/datasets, newest first, with what is known of it (format and rows once loaded)."""
    entries = []
    for path in workspace.datasets_dir.iterdir():
        if path.name.startswith(".") or not (path.is_dir() or path.suffix.lower() in FILE_SUFFIXES):
            continue
        if path.is_dir() and (path / INFO_FILE).is_file():
            entries += _folder_entries(workspace, path)
            continue
        info = read_json(_info_file(workspace, path)) or {}
        size = path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        entries.append(LibraryEntry(str(path.relative_to(workspace.root)), info.get("format", "?"), info.get("rows"),
                                    info.get("skipped"), size, path.stat().st_mtime, info.get("column_map", "")))
    return sorted(entries, key=lambda e: e.modified, reverse=True)


def _folder_entries(workspace: Workspace, folder: Path) -> list[LibraryEntry]:
    """The local datasets a LLaMA-Factory folder's dataset_info.json names, as FOLDER/NAME entries."""
    entries = []
    for entry in list_entries(folder):
        file = folder / entry.file_name if entry.file_name else None
        if file is not None and file.is_file():
            entries.append(LibraryEntry(str((folder / entry.name).relative_to(workspace.root)),
                                        f"{entry.formatting} ({entry.kind}, dataset_info.json)", None, None,
                                        file.stat().st_size, file.stat().st_mtime))
    return entries


def _library_path(workspace: Workspace, ref: str) -> Path:
    path = workspace.confine(ref)
    if path.parent != workspace.datasets_dir or path.name.startswith("."):
        raise PathError(f"{ref} is not a dataset in the library ({workspace.datasets_dir})")
    return path


def rename_dataset(workspace: Workspace, ref: str, new_name: str) -> str:
    """Rename a library dataset (its saved settings follow); returns the new workspace-relative path."""
    path = _library_path(workspace, ref)
    name = safe_name(new_name if Path(new_name).suffix or path.is_dir() else new_name + path.suffix)
    target = path.with_name(name)
    if target.exists():
        raise DataError(f"a dataset named {name} already exists; choose another name")
    info = _info_file(workspace, path)
    path.rename(target)
    if info.exists():
        info.rename(_info_file(workspace, target))
    return str(target.relative_to(workspace.root))


def delete_dataset(workspace: Workspace, ref: str) -> None:
    """Delete a library dataset, its saved settings and its cached copies."""
    path = _library_path(workspace, ref)
    source_key = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    _info_file(workspace, path).unlink(missing_ok=True)
    for cached in workspace.dataset_cache_dir.glob(f"{source_key}-*.jsonl"):
        cached.unlink()


def fill_placeholders_file(workspace: Workspace, ref: str, values: dict[str, str]) -> tuple[str, dict[str, int], list[str]]:
    """Write a copy of dataset `ref` into the library with each `{{name}}` that `values` names replaced by its value
    (as JSON text inside .json/.jsonl files). Returns (the copy's workspace-relative path, replacements per name,
    placeholder names left unfilled)."""
    from studio.data.quality import PLACEHOLDER

    path = resolve_dataset(workspace, ref)
    if not path.is_file() or path.suffix.lower() not in (".json", ".jsonl", ".csv", ".tsv", ".txt"):
        raise DataError(f"{path.name}: placeholders can be filled in .json, .jsonl, .csv, .tsv and .txt files")
    text = path.read_bytes().decode("utf-8-sig")
    as_json = path.suffix.lower() in (".json", ".jsonl")
    counts: dict[str, int] = {name: 0 for name in values}
    left: set[str] = set()

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            left.add(name)
            return match.group(0)
        counts[name] += 1
        return json.dumps(values[name], ensure_ascii=False)[1:-1] if as_json else values[name]

    filled = PLACEHOLDER.sub(replace, text)
    target = workspace.datasets_dir / safe_name(f"{path.stem}-filled{path.suffix}")
    target.write_text(filled, encoding="utf-8")
    return str(target.relative_to(workspace.root)), counts, sorted(left)
