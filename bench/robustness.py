"""Hostile and broken inputs against the CLI: is each one refused cleanly (exit 2, a message, no traceback) or
handled, in bounded time and memory? Every input is generated in a temporary workspace; each case runs
`python -m studio …` as its own process, timed, with its peak resident memory read from the kernel (wait4).
The bound for memory is max(1 GB, 5 × the input's size); for time, the per-case timeout.

Run: python bench/robustness.py            → bench/results/robustness.json
     python bench/robustness.py --quick    (skips the inputs over 30 MB)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300
GB = 1_000_000_000


@dataclass
class Case:
    name: str
    expect: str  # "refused": exit 2 with a message; "handled": exit 0 or 1 without a traceback
    make: Callable[[Path], list[str]]  # writes the input into the workspace, returns the CLI arguments
    big: bool = False


@dataclass
class Result:
    name: str
    expect: str
    exit_code: int | None
    clean: bool  # as expected, no traceback
    seconds: float
    peak_rss_mb: float
    input_mb: float
    memory_bound_mb: float
    within_bound: bool
    message: str


# ---------------------------------------------------------------- the inputs


def _write(ws: Path, relative: str, content: bytes | str) -> Path:
    path = ws / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def billion_laughs(ws: Path) -> list[str]:
    text = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
    return ["train", str(_write(ws, "bomb.yaml", text)), "--detach"]


def train_file(name: str, content: bytes | str, ws: Path) -> list[str]:
    return ["train", str(_write(ws, name, content)), "--detach"]


def train_values(items: list[str], ws: Path) -> list[str]:
    return ["train", *items, "--detach"]


def deep_json(ws: Path) -> list[str]:
    _write(ws, "datasets/deep.json", "[" * 100_000 + "]" * 100_000)
    return ["data", "inspect", "datasets/deep.json"]


def deep_jsonl(ws: Path) -> list[str]:
    _write(ws, "datasets/deep.jsonl", '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    return ["data", "inspect", "datasets/deep.jsonl"]


def csv_cell(ws: Path) -> list[str]:
    _write(ws, "datasets/cell.csv", 'instruction,output\nhi,"' + "x" * 50_000_000 + '"\n')
    return ["data", "inspect", "datasets/cell.csv"]


def bad_main_ip(ws: Path) -> list[str]:
    return ["launch-cmd", str(_write(ws, "m.yaml", "model: {model: tiny-demo}\n")), "--nodes", "2", "--main-ip", "10.0.0.1; rm -rf ~"]


def tiny_rows(ws: Path) -> list[str]:
    path = ws / "datasets" / "tiny-1m.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f'{{"instruction": "q{i}", "output": "a{i % 7}"}}\n' for i in range(1_000_000))
    return ["data", "inspect", "datasets/tiny-1m.jsonl"]


def single_line_json(ws: Path) -> list[str]:
    path = ws / "datasets" / "one-line.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    row = json.dumps({"instruction": "What is it?", "output": "x" * 200}) + ","
    with open(path, "w", encoding="utf-8") as handle:  # 200 MB, one line, no line breaks anywhere
        handle.write("[")
        for _ in range(200 * 1_000_000 // len(row)):
            handle.write(row)
        handle.write(row[:-1] + "]")
    return ["data", "inspect", "datasets/one-line.json"]


def single_line_jsonl(ws: Path) -> list[str]:
    path = ws / "datasets" / "one-row.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:  # one row whose answer is 200 MB of words
        handle.write('{"instruction": "Write a lot.", "output": "')
        for _ in range(200):
            handle.write("many words " * 90_910)
        handle.write('"}\n')
    return ["data", "inspect", "datasets/one-row.jsonl"]


def expanding_parquet(ws: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = ws / "datasets" / "expands.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    answer = "ha" * 500_000  # 1 MB of text per row that compresses to almost nothing: 800 rows are 800 MB
    table = pa.table({"instruction": [f"laugh {i}" for i in range(800)], "output": [answer] * 800})
    pq.write_table(table, path, compression="zstd", row_group_size=16)
    return ["data", "inspect", "datasets/expands.parquet"]


def huge_answer_preview(ws: Path) -> list[str]:
    """A 30 MB answer, previewed as the Data tab does: what is measured is the size of the page sent."""
    _write(ws, "datasets/huge-answer.jsonl", json.dumps({"instruction": "say", "output": "word " * 6_000_000}) + "\n")
    code = ("import json, sys; from studio.data.preview import Preview; from pathlib import Path; "
            f"page = Preview(Path({str(ws / 'datasets/huge-answer.jsonl')!r})).page(0); "
            "size = len(json.dumps([vars(r) for r in page])); print(f'page sent: {size:,} bytes'); "
            "sys.exit(0 if size < 100_000 else 1)")
    return ["-c", code]


def pii_answer(ws: Path) -> list[str]:
    row = {"instruction": "q", "output": "a." * 47_000}  # 94 KB built to make a backtracking e-mail pattern quadratic
    _write(ws, "datasets/pii.jsonl", json.dumps(row) + "\n")
    return ["data", "inspect", "datasets/pii.jsonl"]


def link_out(ws: Path) -> list[str]:
    folder = ws / "datasets" / "notes"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text("a note\n")
    secret = ws.parent / "outside-secret.txt"
    secret.write_text("not yours\n")
    (folder / "b.txt").symlink_to(secret)
    return ["data", "inspect", "datasets/notes"]


def pickled_model(ws: Path) -> list[str]:
    _write(ws, "models/pickled/config.json", "{}")
    _write(ws, "models/pickled/pytorch_model.bin", b"\x80\x04pretend")
    return ["train", "model=models/pickled", "--detach"]


def damaged_runs(ws: Path) -> list[str]:
    config = "model: {model: tiny-demo}\n"
    for name, status in (("cut", b'{"state": "compl'), ("list", b"[1]"), ("textpid", b'{"state": "running", "pid": "abc"}')):
        _write(ws, f"runs/20260101-000000-{name}/config.yaml", config)
        _write(ws, f"runs/20260101-000000-{name}/status.json", status)
    _write(ws, "runs/20260101-000000-badyaml/config.yaml", "train: [\n")
    return ["runs"]


CASES = [
    Case("yaml: billion laughs (500 bytes)", "refused", billion_laughs),
    Case("yaml: nested 100,000 deep", "refused", partial(train_file, "deep.yaml", "[" * 100_000)),
    Case("yaml: !!python tag", "refused", partial(train_file, "tag.yaml", "!!python/object/apply:os.system ['touch /tmp/owned']\n")),
    Case("yaml: a list, not a mapping", "refused", partial(train_file, "list.yaml", "- model\n- train\n")),
    Case("yaml: syntax error", "refused", partial(train_file, "syntax.yaml", "train: {batch_size: 4\n")),
    Case("yaml: Latin-1 bytes", "refused", partial(train_file, "latin.yaml", "run_name: caf\xe9\n".encode("latin-1"))),
    Case("value: batch_size=10**24", "refused", partial(train_values, [f"batch_size={10**24}"])),
    Case("value: seed=10**23", "refused", partial(train_values, [f"seed={10**23}"])),
    Case("launch-cmd --main-ip with shell text", "refused", bad_main_ip),
    Case("model folder with pickled weights", "refused", pickled_model),
    Case("dataset folder with a link outside the workspace", "refused", link_out),
    Case("json nested 100,000 deep", "refused", deep_json),
    Case("jsonl line nested 100,000 deep", "refused", deep_jsonl),
    Case("csv cell of 50 MB", "refused", csv_cell, big=True),
    Case("e-mail check on a 94 KB answer", "handled", pii_answer),
    Case("runs list with damaged run folders", "handled", damaged_runs),
    Case("preview of a 30 MB answer", "handled", huge_answer_preview, big=True),
    Case("1,000,000 tiny rows", "handled", tiny_rows, big=True),
    Case("200 MB single-line JSON", "refused", single_line_json, big=True),
    Case("200 MB single-line JSONL row", "refused", single_line_jsonl, big=True),
    Case("parquet expanding to 800 MB", "refused", expanding_parquet, big=True),
]


# ---------------------------------------------------------------- running one case


def input_bytes(ws: Path) -> int:
    return sum(p.stat().st_size for p in ws.rglob("*") if p.is_file() and not p.is_symlink() and ".cache" not in p.parts)


def run_case(case: Case, scratch: Path) -> Result:
    ws = scratch / case.name.replace(" ", "-").replace("/", "-").replace("*", "")
    ws.mkdir(parents=True)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as maker:
        args = maker.submit(case.make, ws).result()  # apart: a child forked from a bloated bench would count its pages
    size = input_bytes(ws)
    argv = [sys.executable, *args] if args[0] == "-c" else [sys.executable, "-m", "studio", "--workspace", str(ws), *args]
    out, err = ws.parent / f"{ws.name}.out", ws.parent / f"{ws.name}.err"
    started = time.perf_counter()
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
        timer = threading.Timer(TIMEOUT_S, process.kill)
        timer.start()
        _pid, status, usage = os.wait4(process.pid, 0)
        timer.cancel()
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    text = err.read_text(errors="replace") + out.read_text(errors="replace")
    expected = code == 2 if case.expect == "refused" else code in (0, 1)
    bound = max(GB, 5 * size)
    peak = usage.ru_maxrss * 1024
    lines = err.read_text(errors="replace").splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("error:")), None)
    message = " ".join(lines[first:first + 2]) if first is not None else (text.strip().splitlines() or [""])[-1]
    return Result(case.name, case.expect, code, expected and "Traceback" not in text, round(seconds, 2),
                  round(peak / 1e6, 1), round(size / 1e6, 2), round(bound / 1e6), peak <= bound, message[:300])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the inputs over 30 MB")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="robustness-") as scratch:
        for case in CASES:
            if (args.quick and case.big) or args.only not in case.name:
                continue
            result = run_case(case, Path(scratch))
            results.append(result)
            print(f"{'ok ' if result.clean and result.within_bound else 'BAD'} {result.name:48} exit {result.exit_code} "
                  f"{result.seconds:7.2f} s {result.peak_rss_mb:8.1f} MB  {result.message[:90]}", flush=True)
    summary = {
        "cases_tried": len(results),
        "handled_as_expected": sum(r.clean for r in results),
        "refused_cleanly": sum(r.clean and r.expect == "refused" for r in results),
        "within_memory_bound": sum(r.within_bound for r in results),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "command": "python bench/robustness.py" + (" --quick" if args.quick else ""),
        "timeout_s": TIMEOUT_S,
        "cases": [asdict(r) for r in results],
    }
    if not args.only:
        target = ROOT / "bench" / "results" / "robustness.json"
        target.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
