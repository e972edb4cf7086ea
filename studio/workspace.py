"""The workspace: the one place that knows folder and file names, and that confines user paths.

Layout:
    <root>/datasets/           uploaded datasets (.cache/: normalised copies; .info/: format, rows, column map)
    <root>/models/             built models (tiny-demo)
    <root>/runs/<run_id>/      config.yaml status.json metrics.jsonl train.log STOP adapter/ model/
    <root>/locks/              the training lock (one training at a time)
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PRESETS_DIR = PROJECT_ROOT / "presets"
SAMPLES_DIR = PRESETS_DIR / "datasets"  # the sample datasets the studio ships

CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
STOP_FILE = "STOP"
ADAPTER_DIR = "adapter"
FULL_MODEL_DIR = "model"
REWARD_MODEL_DIR = "reward_model"  # stage rm: a model that scores answers (a one-output head), not a chat model
SYSTEM_FILE = "system.jsonl"  # one line per 2 s sample of CPU, RAM and GPUs while the run loads and trains
SAMPLES_FILE = "samples.jsonl"  # probe generations: step, prompt_index, prompt, answer, seconds
CHECKPOINTS_DIR = "checkpoints"  # the Trainer's checkpoint-N folders
KILLED_FILE = "KILLED"  # marker: the user killed the worker (so its death is not reported as a failure)
META_FILE = "meta.json"  # the run's tags and notes, written only by the studio (never by the worker)
ESTIMATE_FILE = "estimate.json"  # the memory estimate, verdict and fixes when the run was created (studio/fit.py)
DRY_RUN_FILE = "dry_run.json"  # a dry run's measured peak memory and tokens/s next to the estimate
TRAINING_SYSTEM_FILE = "system_prompt.json"  # the system prompt every training row carried (studio/system_prompt.py)

MAX_JSONL_READ = 16 * 1024 * 1024  # bytes of a run's JSONL file read per poll
MAX_FOLDER_ENTRIES = 100_000  # entries of a user-chosen folder checked for links that leave the workspace
RUN_ID_PATTERN = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z0-9-]{1,40}$")


class PathError(ValueError):
    """A path the user gave that does not exist or lies outside the folders the studio may read."""


@dataclass
class Workspace:
    """A workspace folder plus the extra folders the operator allowed at launch."""

    root: Path
    allowed: tuple[Path, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser().resolve()
        self.allowed = tuple(Path(p).expanduser().resolve() for p in self.allowed)
        for folder in (self.root, self.datasets_dir, self.models_dir, self.runs_dir, self.locks_dir):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def dataset_cache_dir(self) -> Path:
        """Normalised copies of datasets (one JSONL per source version), so a second run does not re-parse."""
        return self.datasets_dir / ".cache"

    @property
    def dataset_info_dir(self) -> Path:
        """One JSON per library dataset: its format, rows, saved column map and bad-row choice."""
        return self.datasets_dir / ".info"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def training_lock(self) -> Path:
        return self.locks_dir / "training.lock"

    def confine(self, user_path: str | os.PathLike, must_exist: bool = True) -> Path:
        """Resolve a user-given path (relative ones against the workspace) and return it if it lies inside
        the workspace, an operator-allowed folder or the bundled presets, and (for a folder) no symlink inside it
        points elsewhere; raise PathError otherwise."""
        text = str(user_path).strip()
        if not text or "\x00" in text:
            raise PathError(f"{text!r} is not a usable path")
        candidate = Path(text).expanduser()
        if not candidate.is_absolute():
            candidate = self.root / candidate
        resolved = candidate.resolve()
        roots = (self.root, *self.allowed, PRESETS_DIR)
        if not any(os.path.commonpath([resolved, r]) == str(r) for r in roots):
            raise PathError(
                f"{text} is outside the workspace ({self.root}); copy it into the workspace or start the "
                "studio with --allow-dir for its folder"
            )
        if must_exist and not resolved.exists():
            raise PathError(f"{text} does not exist (looked at {resolved})")
        if resolved.is_dir():
            self._confine_folder(resolved, roots)
        return resolved

    def _confine_folder(self, folder: Path, roots: tuple[Path, ...]) -> None:
        """PathError when a symlink anywhere inside `folder` points outside `roots` (a dataset or model folder is
        read file by file, so one link would let a file outside the workspace in), or when the folder holds more
        than MAX_FOLDER_ENTRIES entries to check."""
        seen = 0
        for parent, dirs, files in os.walk(folder):  # does not descend into linked folders; they are checked here
            seen += len(dirs) + len(files)
            if seen > MAX_FOLDER_ENTRIES:
                raise PathError(f"{folder} holds more than {MAX_FOLDER_ENTRIES:,} files and folders; choose a smaller folder")
            for name in (*dirs, *files):
                entry = Path(parent) / name
                if not entry.is_symlink():
                    continue
                try:
                    target = entry.resolve()
                except (OSError, RuntimeError) as error:  # a loop of links
                    raise PathError(f"{entry} is a link that cannot be followed ({error}); remove it") from None
                if not any(os.path.commonpath([target, r]) == str(r) for r in roots):
                    raise PathError(
                        f"{entry} is a link to {target}, outside the workspace ({self.root}); copy the file into the "
                        "folder instead of linking it, or start the studio with --allow-dir for its folder"
                    )

    def new_run_dir(self, run_name: str = "") -> Path:
        """Create and return a fresh, uniquely named run folder."""
        slug = run_slug(run_name)
        for _ in range(100):
            run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{secrets.token_hex(2)}"
            path = self.runs_dir / run_id
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
        raise RuntimeError("could not create a unique run folder")

    def run_dir(self, run: str | os.PathLike) -> Path:
        """The folder of run `run`, given as a run id, the name it was started with (run_name) or a path to an
        existing run folder in this workspace. A name that several runs share is refused with their ids."""
        text = str(run).strip().rstrip("/")
        named = self._runs_named(text)
        if len(named) > 1:
            raise PathError(f"{len(named)} runs are named {text!r}: {', '.join(named)}; give one of these ids")
        if RUN_ID_PATTERN.match(text):
            path = self.runs_dir / text
        elif named:
            path = self.runs_dir / named[0]
        elif "/" not in text and not (self.root / text).exists():
            raise PathError(f"no run with the id or name {text!r} in {self.runs_dir}: list runs with `python -m studio runs`")
        else:
            path = self.confine(text)
            if path.parent != self.runs_dir:
                raise PathError(f"{text} is not a run folder of this workspace ({self.runs_dir})")
        if not (path / CONFIG_FILE).is_file():
            raise PathError(f"no run {text!r} in {self.runs_dir}: list runs with `python -m studio runs`")
        return path

    def _runs_named(self, text: str) -> list[str]:
        """Ids of the runs whose name (the part of the id between the time and the random suffix) is `text`."""
        if RUN_ID_PATTERN.match(text) or not self.runs_dir.is_dir():
            return []
        slug = run_slug(text)
        return [run_id for run_id in self.run_ids() if run_id[16:-5] == slug]

    def run_ids(self) -> list[str]:
        """Ids of every run folder, newest first."""
        ids = [p.name for p in self.runs_dir.iterdir() if RUN_ID_PATTERN.match(p.name) and (p / CONFIG_FILE).is_file()]
        return sorted(ids, reverse=True)


def this_process_started() -> float:
    """When this process started (epoch seconds), as `process_alive` checks it."""
    import psutil

    return psutil.Process().create_time()


def process_alive(pid: Any, started: Any) -> bool:
    """Whether process `pid` runs and is the one that started at epoch `started` (a pid the system reused for
    another process is not), and has not ended as a zombie."""
    import psutil

    try:
        process = psutil.Process(int(pid))
        return abs(process.create_time() - float(started or 0)) < 1.0 and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, TypeError, ValueError):
        return False


def process_started(pid: int | None = None) -> float:
    """When process `pid` (default: this one) started, as epoch seconds: what process_alive compares."""
    import psutil

    return psutil.Process(pid).create_time()


def checkpoint_folders(run_dir: Path, holding: tuple[str, ...] = ()) -> list[Path]:
    """The run's checkpoints/checkpoint-N folders, oldest first; with `holding`, only those holding at least one
    of these files."""
    folder = run_dir / CHECKPOINTS_DIR
    found = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else ():
        step = path.name.removeprefix("checkpoint-")
        if step.isdigit() and (not holding or any((path / name).is_file() for name in holding)):
            found.append((int(step), path))
    return [path for _, path in sorted(found)]


def run_slug(run_name: str) -> str:
    """The part of a run id that comes from its name: lower-case letters and digits joined by '-', at most 30."""
    return re.sub(r"[^a-z0-9]+", "-", run_name.lower()).strip("-")[:30] or "run"


def disk_full_message(error: BaseException, folder: Path) -> str | None:
    """"No space left on device in <folder>: free N MB …" when `error` (or what caused it) is a full disk, else
    None. Serializers (safetensors, torch.save) wrap the OS error in their own, so their text is read too."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            break
        if any(sign in str(cause) for sign in ("No space left on device", "StorageFull", "os error 28")):
            break
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    place = Path(folder)
    while not place.exists() and place != place.parent:
        place = place.parent
    free_mb = shutil.disk_usage(place).free // 1_000_000
    return (f"No space left on device in {folder}: free {free_mb:,} MB. Free some space (old runs' checkpoints/ "
            "folders are the largest files) and try again")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None if it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one whole JSON line and flush it, so a reader sees either all of it or nothing."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()


def read_jsonl_from(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Rows appended to `path` since byte `offset`, and the offset to continue from.

    A partial last line (a writer mid-append) is left for the next call. At most MAX_JSONL_READ bytes are read
    per call; a single line longer than that is no row any writer of ours makes, and is passed over."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read(MAX_JSONL_READ)
            if len(chunk) == MAX_JSONL_READ and b"\n" not in chunk:
                return [], _past_next_newline(handle, offset + len(chunk))
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    rows = []
    for line in chunk[:end].splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows, offset + end


def _past_next_newline(handle, position: int) -> int:
    """The offset just past the next line break at or after `position` (or `position` at the end of the file)."""
    handle.seek(position)
    while block := handle.read(1 << 20):
        cut = block.find(b"\n")
        if cut >= 0:
            return position + cut + 1
        position += len(block)
    return position


def read_head_bytes(path: Path, max_bytes: int) -> bytes | None:
    """The first `max_bytes` bytes of a file (all of it when smaller), or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read(max_bytes)
    except FileNotFoundError:
        return None


def read_tail_bytes(path: Path, max_bytes: int) -> bytes | None:
    """The last `max_bytes` bytes of a file (all of it when smaller), or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - max_bytes))
            return handle.read()
    except FileNotFoundError:
        return None


def tail_text(path: Path, max_lines: int = 40, max_bytes: int = 64_000) -> str:
    """The last lines of a text file (empty string when it does not exist)."""
    data = read_tail_bytes(path, max_bytes)
    if data is None:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-max_lines:])


def last_row(path: Path, key: str | None = None, max_bytes: int = 256_000) -> dict[str, Any] | None:
    """The last whole JSON line of a JSONL file (the last one having `key`, if given), or None."""
    data = read_tail_bytes(path, max_bytes)
    for line in reversed((data or b"").splitlines()):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and (key is None or key in row):
            return row
    return None
