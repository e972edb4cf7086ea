"""How much the studio's page costs the browser: Chromium main-thread busy time, idle and per tab switch.

Run: python bench/page_weight.py [--idle-s 20] [--pages 5] [--llamaboard PATH/TO/llamafactory-cli]   → bench/results/page_weight.json

For each tab: the busy seconds of switching to it (2 s after the click) and the busy fraction of the main
thread while the tab sits idle for --idle-s seconds, from Chrome's own `Performance.getMetrics` (TaskDuration:
script, style, layout and paint together). A page shows its first tab as it opens, so the other tabs are visited
first (each one's first visit by the user) and the first tab last (a return to it); each switch is the median of
--pages fresh pages. Each page starts the round at the next tab (page 2 at the third tab, and so on): the
browser's garbage collections come at points of the page's life, not of a tab, and in one fixed order one of
them fell on the same tab on every page (a 30 ms scavenge of what the page made as it opened). The idle
fractions come from the first page, in the plain order: a tab's is the median of four equal windows of its
--idle-s, so that a collection V8 makes once, some 20-30 s after the page opened, to give memory back (0.5% of
the 20 s of whichever tab is idle then, in both UIs) does not count as that tab's lasting cost; the fraction
over the whole --idle-s is recorded beside it. Opening the page is measured too: the busy
seconds from the navigation until the page has settled (for the studio, until it has made every tab's components,
which it does once idle, and 3 s more), the median of the same pages. Measured twice: with no run watched, and
while the page watches a live demo run (`python -m studio train --detach`). Targets: idle ≤ 3% of a core (≤ 10% while watching a run),
every switch ≤ 0.3 s. With no run watched, the Train form's controls are measured too (typing a value,
switching the method both ways, Preview): the busy seconds of the 2 s after each, target ≤ 0.3 s. Headless
Debian Chromium at /usr/bin/chromium, driven by playwright.

With --llamaboard, LLaMA-Factory's web UI (`llamafactory-cli webui`, installed in its own virtual environment:
`python -m venv lf && lf/bin/pip install torch==2.13.0 llamafactory`) is measured the same way in the same run,
with no run watched (it trains only hub or local models it can load, so it has no offline live run to watch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CHROMIUM, CHROMIUM_FLAGS, free_port, start_studio, stop_studio  # noqa: E402

TABS = ["1 · Data", "2 · Model", "3 · Train", "4 · Chat", "Compare", "Evaluate", "Runs", "Export & Serve"]
TARGET_IDLE, TARGET_IDLE_WATCHING, TARGET_SWITCH_S = 0.03, 0.10, 0.3
IDLE_WINDOWS = 4  # a tab's idle fraction is the median of this many equal windows


def busy_seconds(cdp) -> float:
    """The page's main-thread busy seconds so far (Chrome's TaskDuration)."""
    return next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"] if m["name"] == "TaskDuration")


def measure_tabs(page, cdp, idle_s: float, tabs: list[str]) -> list[dict]:
    """Switch to each tab in turn: its switch cost and, unless `idle_s` is 0, its idle busy fraction."""
    rows = []
    for tab in tabs:
        before = busy_seconds(cdp)
        page.get_by_role("tab", name=tab).click()
        time.sleep(2.0)
        row = {"tab": tab, "switch_busy_s": round(busy_seconds(cdp) - before, 3)}
        if idle_s:
            windows, first_busy, first_time = [], busy_seconds(cdp), time.monotonic()
            for _window in range(IDLE_WINDOWS):
                before, started = busy_seconds(cdp), time.monotonic()
                time.sleep(idle_s / IDLE_WINDOWS)
                windows.append((busy_seconds(cdp) - before) / (time.monotonic() - started))
            row["idle_busy_fraction"] = round(statistics.median(windows), 4)
            row["idle_busy_fraction_windows"] = [round(fraction, 4) for fraction in windows]
            row["idle_busy_fraction_whole"] = round((busy_seconds(cdp) - first_busy) / (time.monotonic() - first_time), 4)
        rows.append(row)
    return rows


def round_from(tabs: list[str], page: int) -> list[str]:
    """The order page number `page` visits `tabs` in: the others from the page-th on, wrapping round, the first last."""
    others = tabs[1:]
    start = page % len(others)
    return [*others[start:], *others[:start], tabs[0]]


# Train-form controls, each measured like a switch: main-thread busy seconds in the 2 s after the action
CONTROLS = [
    ("type a value (Max steps)", lambda page: page.fill("#train-max_steps input", "50")),
    ("method -> qlora (its settings show)", lambda page: page.locator("#train-method").get_by_label("qlora", exact=True).click()),
    ("method -> lora (they hide)", lambda page: page.locator("#train-method").get_by_label("lora", exact=True).click()),
    ("Preview", lambda page: page.click("#train-preview")),
]


def measure_controls(page, cdp) -> list[dict]:
    """On the Train tab, each of CONTROLS in turn: the busy seconds of the 2 s after it."""
    page.get_by_role("tab", name="3 · Train").click()
    time.sleep(2.0)
    rows = []
    for what, act in CONTROLS:
        before = busy_seconds(cdp)
        act(page)
        time.sleep(2.0)
        busy = busy_seconds(cdp) - before
        rows.append({"control": what, "busy_s": round(busy, 3)})
        print(f"  {what:36s} {busy:6.2f} s", flush=True)
    return rows


def measure(url: str, idle_s: float, pages: int, ready: str = "#data-preview", tabs: list[str] | None = None,
            controls: bool = False, settled: str | None = "body[data-every-tab-made]") -> tuple:
    """Open the page `pages` times in a fresh headless Chromium tab (once `ready` shows) and switch to each of
    `tabs` (all the page's top-level tabs when None) in the order `round_from` gives it: each switch's median busy
    seconds, and the idle fractions of the first page; and the median busy seconds of opening the page (until `settled`, when
    given, is in the page, and 3 s more). With `controls`, then the Train form's CONTROLS: (rows, load, controls)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            runs, loads, measured_controls = [], [], None
            for number in range(pages):
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                page.goto(url)
                page.wait_for_selector(ready)
                if settled:
                    page.wait_for_selector(settled, state="attached", timeout=30_000)
                time.sleep(3.0)  # the page's own load events settle
                loads.append(busy_seconds(cdp))
                if tabs is None:
                    tabs = [name.strip() for name in page.get_by_role("tab").all_inner_texts() if name.strip()]
                runs.append({row["tab"]: row for row in measure_tabs(page, cdp, idle_s if number == 0 else 0, round_from(tabs, number))})
                if controls and number == 0:
                    measured_controls = measure_controls(page, cdp)
                page.close()
        finally:
            browser.close()
    rows = []
    for tab, first in runs[0].items():
        switches = [run[tab]["switch_busy_s"] for run in runs]
        rows.append({**first, "switch_busy_s": round(statistics.median(switches), 3), "switch_busy_s_each": switches})
        print(f"  {tab:20s} switch {rows[-1]['switch_busy_s']:6.3f} s (median of {len(switches)})   "
              f"idle {first['idle_busy_fraction']:6.1%} (over the whole {idle_s:g} s: {first['idle_busy_fraction_whole']:.1%})", flush=True)
    load = {"load_busy_s": round(statistics.median(loads), 3), "load_busy_s_each": [round(x, 3) for x in loads]}
    print(f"  opening the page: {load['load_busy_s']:.3f} s busy (median of {len(loads)})", flush=True)
    return (rows, load, measured_controls) if controls else (rows, load)


def summarise(rows: list[dict], load: dict, idle_target: float) -> dict:
    return {**load, "tabs": rows, "max_idle_busy_fraction": max(r["idle_busy_fraction"] for r in rows),
            "max_idle_busy_fraction_whole": max(r["idle_busy_fraction_whole"] for r in rows),
            "max_switch_busy_s": max(r["switch_busy_s"] for r in rows),
            "idle_target": idle_target, "switch_target_s": TARGET_SWITCH_S}


def measure_llamaboard(cli: str, idle_s: float, pages: int) -> dict:
    """LLaMA-Factory's web UI started from `cli` on a free port, measured like the studio with no run watched."""
    import urllib.request

    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "0"}
    stand_in = torchaudio_stand_in(Path(cli).parent / "python")
    if stand_in:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [stand_in, env.get("PYTHONPATH")]))
    log = open(tempfile.mkstemp(prefix="llamaboard-", suffix=".log")[1], "wb")
    home = tempfile.mkdtemp(prefix="llamaboard-")  # it writes its cache folder where it starts: never here
    server = subprocess.Popen([cli, "webui"], env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"LlamaBoard did not start; its log: {log.name}")
                time.sleep(0.5)
        version = subprocess.run([cli, "version"], cwd=home, capture_output=True, text=True, timeout=120).stdout
        found = [line for line in version.splitlines() if "LLaMA Factory" in line or "Version" in line]
        rows, load = measure(url, idle_s, pages, ready="button[role=tab]", settled=None)
    finally:
        stop_studio(server)
        log.close()
    return {"version": " ".join(part.strip("|- ") for part in found)[:80], **summarise(rows, load, TARGET_IDLE),
            **({"torchaudio": "an empty stand-in module (PyPI's builds do not load beside this torch)"} if stand_in else {})}


def torchaudio_stand_in(python: Path) -> str | None:
    """A folder holding an empty `torchaudio` module when LlamaBoard's `python` cannot import the real one, else
    None. LLaMA-Factory imports torchaudio at start for audio datasets only; PyPI has no build of it for the CPU
    torch this machine installs, and the page's weight does not depend on it."""
    loads = subprocess.run([str(python), "-c", "import torchaudio"], capture_output=True, timeout=120).returncode == 0
    if loads:
        return None
    folder = Path(tempfile.mkdtemp(prefix="torchaudio-stand-in-"))
    (folder / "torchaudio.py").write_text('"""Stand-in for bench/page_weight.py: no audio features."""\n', encoding="utf-8")
    return str(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle-s", type=float, default=20.0, help="seconds each tab sits idle (default 20)")
    parser.add_argument("--pages", type=int, default=5, help="fresh pages whose switches give each median (default 5)")
    parser.add_argument("--llamaboard", help="path to llamafactory-cli, to measure LLaMA-Factory's web UI in the same run")
    args = parser.parse_args()
    result = {"command": "python bench/page_weight.py" + (f" --llamaboard {args.llamaboard}" if args.llamaboard else ""),
              "pages": args.pages, "machine": f"{platform.machine()}, {platform.python_version()}",
              "measured": "Chromium Performance.getMetrics TaskDuration (main thread), headless"}
    if args.llamaboard:  # first: a venv that cannot start it fails the run at once, not after the studio's minutes
        print("LlamaBoard, no run watched:", flush=True)
        llamaboard = measure_llamaboard(args.llamaboard, args.idle_s, args.pages)
    workspace = Path(tempfile.mkdtemp(prefix="page-weight-"))
    server, url = start_studio(workspace)
    try:
        print("no run watched:", flush=True)
        rows, load, controls = measure(url, args.idle_s, args.pages, tabs=TABS, controls=True)
        result["no_run"] = summarise(rows, load, TARGET_IDLE)
        result["train_controls"] = {"controls": controls, "max_busy_s": max(r["busy_s"] for r in controls), "target_s": TARGET_SWITCH_S}
        run = subprocess.run([sys.executable, "-m", "studio", "--workspace", str(workspace), "train", "--detach",
                              "run_name=weight", "max_steps=100000", "probe_steps=50"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            raise SystemExit(f"could not start the demo run:\n{run.stdout}\n{run.stderr}")
        time.sleep(20.0)  # the worker loads and starts training; the page attaches to the running run on load
        print("watching a live demo run:", flush=True)
        result["live_run"] = summarise(*measure(url, args.idle_s, args.pages, tabs=TABS), TARGET_IDLE_WATCHING)
        subprocess.run([sys.executable, "-m", "studio", "--workspace", str(workspace), "runs", "stop", "weight", "--kill"],
                       cwd=ROOT, capture_output=True, timeout=120)
    finally:
        stop_studio(server)
    if args.llamaboard:
        result["llamaboard_no_run"] = llamaboard
    out = ROOT / "bench" / "results" / "page_weight.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
