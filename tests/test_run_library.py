"""Runs you never lose, and what the monitor draws from a run folder.

The run folders here are written by hand in the worker's file contract (metrics.jsonl with training and
evaluation rows, system.jsonl, samples.jsonl, status.json with `progress`), so these tests need no
training. `write_run` is also used by the browser tests of the monitor.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from studio import config as cfg
from studio import run_library as library
from studio.workspace import PathError, Workspace

GPU = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81559, "utilization_percent": 97, "temperature_c": 65, "power_w": 350}


def write_run(
    workspace: Workspace, name: str, *, state: str = "completed", steps: int = 30, eval_every: int = 10,
    gpus: int = 0, pid: int | None = None, progress: dict | None = None, log: str = "", probes: tuple[str, ...] = (),
    overrides: dict | None = None,
) -> Path:
    """A run folder as the worker leaves it: config, status, metrics, system readings, probe answers, log."""
    run_dir = workspace.new_run_dir(name)
    config = cfg.apply_overrides(cfg.RunConfig(), {"run_name": name, "max_steps": steps, **(overrides or {})})
    (run_dir / "config.yaml").write_text(cfg.to_yaml(config), encoding="utf-8")
    now = time.time()
    status = {"state": state, "phase": "training" if state == "running" else "finished", "created": now - 125, "started": now - 120, "progress": progress}
    if state not in ("running", "queued"):
        status.update(ended=now, final_loss=0.4, steps=steps, output="adapter", best_eval_loss=0.55)
    if pid:
        status.update(pid=pid, pid_started=psutil.Process(pid).create_time())
    (run_dir / "status.json").write_text(json.dumps(status), encoding="utf-8")
    with open(run_dir / "metrics.jsonl", "w", encoding="utf-8") as handle:
        for step in range(1, steps + 1):
            loss = 2.5 * math.exp(-step / 10) + 0.4 + 0.1 * math.sin(step)
            total = steps * 2 if state == "running" else steps
            handle.write(json.dumps({
                "step": step, "total_steps": total, "epoch": step / 10, "loss": loss, "learning_rate": 1e-3 * (1 - step / total),
                "grad_norm": 1.0 + 0.1 * step, "tokens_per_s": 800.0 + step, "elapsed": step * 2.0, "eta": (total - step) * 2.0,
            }) + "\n")
            if eval_every and step % eval_every == 0:
                handle.write(json.dumps({"step": step, "eval_loss": loss + 0.15, "elapsed": step * 2.0}) + "\n")
    with open(run_dir / "system.jsonl", "w", encoding="utf-8") as handle:
        for i in range(10):
            readings = [{**GPU, "index": k, "memory_used_mb": 30000 + 1000 * i} for k in range(gpus)]
            handle.write(json.dumps({"time": now - 120 + 2 * i, "elapsed": 2 * i, "cpu_percent": 40 + i, "ram_used_gb": 12.5, "ram_total_gb": 62.0, "gpus": readings}) + "\n")
    with open(run_dir / "samples.jsonl", "w", encoding="utf-8") as handle:
        for step in range(0, steps + 1, 10):
            for index, prompt in enumerate(probes):
                answer = "I do not know." if step == 0 else f"Answer after step {step}."
                handle.write(json.dumps({"step": step, "prompt_index": index, "prompt": prompt, "answer": answer, "seconds": 0.3}) + "\n")
    (run_dir / "train.log").write_text("[10:00:00] model tiny-demo\n" + log, encoding="utf-8")
    return run_dir


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def live_pid():
    """A live process standing in for a worker, so a hand-written run reads as running."""
    sleeper = subprocess.Popen(["sleep", "600"])
    yield sleeper.pid
    sleeper.kill()
    sleeper.wait()


# ---------------------------------------------------------------- the series a chart is drawn from


def test_series_reads_only_new_lines_and_leaves_a_partial_line_for_later(ws):
    run_dir = write_run(ws, "grow", steps=20, eval_every=10)
    series = library.load_series(run_dir)
    assert series.steps == list(range(1, 21)) and len(series.loss) == 20
    assert series.eval_steps == [10, 20] and all(e > 0 for e in series.eval_loss)  # eval rows never become training loss
    assert series.last["step"] == 20
    read = series.offsets["metrics.jsonl"]
    assert read == (run_dir / "metrics.jsonl").stat().st_size

    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"step": 21, "total_steps": 40, "loss": 0.3}) + "\n" + '{"step": 22, "lo')
    assert series.read_new(run_dir) == {"metrics"}
    assert series.steps[-1] == 21 and series.offsets["metrics.jsonl"] > read  # the half-written row waits
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write('ss": 0.29, "total_steps": 40}\n')
    assert series.read_new(run_dir) == {"metrics"} and series.steps[-2:] == [21, 22]
    assert series.read_new(run_dir) == set()  # nothing new: nothing re-read, nothing to redraw


def test_a_resumed_run_that_logs_steps_again_replaces_them(ws):
    run_dir = write_run(ws, "resumed", steps=10, eval_every=5)
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
        for step in range(6, 13):
            handle.write(json.dumps({"step": step, "total_steps": 12, "loss": 0.1}) + "\n")
    series = library.load_series(run_dir)
    assert series.steps == list(range(1, 13))
    assert series.loss[-1] == 0.1 and series.loss[5] == 0.1  # step 6 is the resumed value


def test_system_readings_per_gpu_and_without_gpu(ws):
    with_gpus = library.load_series(write_run(ws, "gpus", gpus=2))
    assert sorted(with_gpus.gpus) == [0, 1]
    gpu = with_gpus.gpus[0]
    assert gpu.name.startswith("NVIDIA") and gpu.memory_total_gb == pytest.approx(79.65, abs=0.01)
    assert gpu.memory_used_gb[0] == pytest.approx(29.3, abs=0.01) and gpu.utilization[-1] == 97
    assert with_gpus.sys_minutes[-1] == pytest.approx(18 / 60, abs=1e-3)

    cpu_only = library.load_series(write_run(ws, "cpu"))
    assert cpu_only.gpus == {} and cpu_only.system_seen
    assert cpu_only.cpu_percent[-1] == 49 and cpu_only.ram_total_gb == 62.0


def test_probe_answers_are_grouped_by_prompt_with_the_base_answer_at_step_0(ws):
    series = library.load_series(write_run(ws, "probes", steps=20, probes=("Who?", "Where?")))
    assert sorted(series.probes) == [0, 1]
    first = series.probes[0]
    assert first["prompt"] == "Who?"
    assert first["answers"][0][0] == "I do not know." and first["answers"][20][0] == "Answer after step 20."


# ---------------------------------------------------------------- tags, notes, the runs list


def test_tags_and_notes_round_trip_and_limits_are_named(ws):
    run_dir = write_run(ws, "meta")
    assert library.read_meta(run_dir) == {"tags": [], "notes": ""}
    library.write_meta(run_dir, " lr sweep, baseline ,lr sweep,, ", "  tried 1e-3  ")
    assert library.read_meta(run_dir) == {"tags": ["lr sweep", "baseline"], "notes": "tried 1e-3"}
    with pytest.raises(library.MetaError, match="at most 20"):
        library.write_meta(run_dir, ",".join(f"t{i}" for i in range(21)), "")
    with pytest.raises(library.MetaError, match="at most 40"):
        library.write_meta(run_dir, "x" * 41, "")
    (run_dir / "meta.json").write_text("{not json", encoding="utf-8")
    assert library.read_meta(run_dir) == {"tags": [], "notes": ""}  # a broken file never breaks the list


def test_runs_list_has_duration_losses_tags_and_resumability(ws):
    done = write_run(ws, "done")
    library.write_meta(done, "keep", "the good one")
    stopped = write_run(ws, "stopped", state="stopped")
    (stopped / "checkpoints" / "checkpoint-20").mkdir(parents=True)
    (stopped / "checkpoints" / "checkpoint-20" / "trainer_state.json").write_text("{}", encoding="utf-8")
    records = {r.run_name: r for r in library.list_records(ws)}
    assert records["done"].state == "completed" and records["done"].duration == pytest.approx(120, abs=1)
    assert records["done"].final_loss == 0.4 and records["done"].best_eval_loss == 0.55
    assert records["done"].tags == ["keep"] and records["done"].notes == "the good one"
    assert not records["done"].resumable and records["stopped"].resumable


# ---------------------------------------------------------------- delete, clone, diff


def test_delete_removes_a_finished_run_and_refuses_an_active_one(ws, live_pid):
    finished = write_run(ws, "finished")
    running = write_run(ws, "running", state="running", pid=live_pid)
    queued = write_run(ws, "queued", state="queued", pid=live_pid)
    for active in (running, queued):
        with pytest.raises(library.RunBusyError, match="stop it"):
            library.delete_run(ws, active.name)
        assert active.is_dir()
    library.delete_run(ws, finished.name)
    assert not finished.exists()
    with pytest.raises(PathError):
        library.delete_run(ws, "../../etc")


def test_clone_suffixes_the_name_and_keeps_every_setting(ws):
    source = write_run(ws, "lr sweep", overrides={"learning_rate": 3e-3, "lora_rank": 4})
    clone = library.clone_config(ws, source.name)
    assert clone.run_name == "lr sweep-copy"
    assert clone.train.learning_rate == 3e-3 and clone.method.lora_rank == 4 and clone.train.max_steps == 30
    assert library.clone_name("lr sweep-copy") == "lr sweep-copy2" and library.clone_name("a-copy2") == "a-copy3"
    assert library.clone_name("") == "run-copy" and len(library.clone_name("x" * 80)) == 80
    assert not cfg.validate(clone)


def test_config_diff_lists_only_keys_that_differ(ws):
    a = cfg.apply_overrides(cfg.RunConfig(), {"run_name": "a", "learning_rate": 1e-3})
    b = cfg.apply_overrides(cfg.RunConfig(), {"run_name": "b", "learning_rate": 2e-3, "seed": 7})
    c = cfg.apply_overrides(cfg.RunConfig(), {"run_name": "c", "learning_rate": 1e-3})
    assert library.config_diff([("a", a), ("b", b), ("c", c)]) == [["learning_rate", 1e-3, 2e-3, 1e-3], ["seed", 42, 7, 42]]
    assert library.config_diff([("a", a), ("c", c)]) == []


# ---------------------------------------------------------------- what the monitor draws


def test_loss_chart_has_raw_smoothed_and_validation_points(ws):
    from studio.ui import charts

    series = library.load_series(write_run(ws, "chart", steps=30, eval_every=10))
    chart = charts.loss_chart(series)
    names = [line.name for line in chart.lines]
    assert names == ["training loss", "smoothed", "validation loss"]
    raw, smooth, val = chart.lines
    assert len(raw.xs) == 30 and list(val.xs) == [10, 20, 30]
    assert max(smooth.ys) - min(smooth.ys) < max(raw.ys) - min(raw.ys)  # smoothing flattens the zigzag
    drawn = chart.html()
    assert drawn.count('class="chart-line"') == 3 and 'data-name="validation loss" data-points="3"' in drawn
    assert drawn.count("<circle") == 30 + 3  # a marker per point of a short run, and per validation point
    assert charts.ema([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])  # debiased: no ramp from 0
    assert len(charts.thin(list(range(10_000)), limit=1500)[0]) <= 1501


def test_system_chart_shows_each_gpu_or_only_cpu_and_ram(ws):
    from studio.ui import charts
    from studio.ui.run_views import system_html

    gpu_series = library.load_series(write_run(ws, "gpu", gpus=1))
    gpu_chart = charts.system_chart(gpu_series)
    titles = [panel.title for panel in gpu_chart.panels]
    assert titles[:4] == ["GPU memory (GB)", "GPU utilisation %", "GPU temperature °C", "GPU power (W)"]
    assert any(line.name == "GPU 0 total" and line.ys[0] == pytest.approx(79.65, abs=0.01) for line in gpu_chart.lines)
    assert "memory 38.1/79.6 GB · 97% busy · 65 °C · 350 W" in system_html(gpu_series, "en")

    cpu_series = library.load_series(write_run(ws, "cpu"))
    titles = [panel.title for panel in charts.system_chart(cpu_series).panels]
    assert titles == ["CPU %", "RAM (GB)"]
    assert "No GPU" in system_html(cpu_series, "en") and "没有 GPU" in system_html(cpu_series, "zh")


def test_log_tail_marks_error_lines_red_and_escapes_html():
    from studio.ui.run_views import log_html

    text = "\n".join([
        "[10:00:00] step 1", "Traceback (most recent call last):", '  File "w.py", line 3, in train',
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "[10:00:02] <script>alert(1)</script>",
        "[10:00:03] training failed", "[10:00:04] all good",
    ])
    rendered = log_html(text)
    assert "<script>" not in rendered and "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    lines = rendered.split("<div class='log-line")[1:]
    red = [i for i, line in enumerate(lines) if line.startswith(" log-error")]
    assert red == [1, 2, 3, 5]  # the traceback through its exception line, and "failed"


def test_progress_shows_the_phase_bar_and_the_cost():
    from studio.ui.run_views import cost_text, phase_text, progress_html

    download = {"phase": "download", "label": "model.safetensors", "done": 3.2e9, "total": 15e9, "unit": "B", "rate": 45e6}
    assert phase_text(download, "en") == "downloading model.safetensors 3.2/15.0 GB · 45 MB/s"
    assert phase_text({"phase": "tokenize", "label": "", "done": 1200, "total": 5000, "unit": "rows", "rate": None}, "en") == "tokenizing… 1200/5000 rows"
    assert phase_text({"phase": "load", "label": None, "done": None, "total": None, "unit": None, "rate": None}, "en") == "loading the model…"
    assert phase_text({"phase": "load", "label": "", "done": None, "total": None}, "zh") == "正在加载模型……"
    # the worker's labels may carry the verb themselves: it is said once, in the page's language
    assert phase_text({"phase": "tokenize", "label": "Tokenising demo-chat.jsonl", "done": 120, "total": 210, "unit": "rows"}, "en") == "tokenizing demo-chat.jsonl 120/210 rows"
    assert phase_text({"phase": "load", "label": "Loading tiny-demo", "done": 0, "total": None, "unit": "B"}, "zh") == "正在加载 tiny-demo……"

    now = time.time()
    status = {"state": "running", "phase": "downloading", "started": now - 1800, "progress": download}
    page = progress_html("run-1", status, {"step": 10, "total_steps": 40, "eta": 5400, "loss": 1.5}, "en", price=2.0)
    assert "downloading model.safetensors 3.2/15.0 GB" in page and "id='phase-bar'" in page
    assert "cost so far 1.00 · about 4.00 by the end" in page
    assert cost_text(status, None, None, "en") == "" and cost_text(status, None, 0, "en") == ""
    finished = {**status, "state": "completed", "ended": now - 1800 + 3600}
    assert cost_text(finished, None, 2.0, "en") == "cost 2.00"
    assert "phase-bar" not in progress_html("run-1", finished, None, "en")  # no phase bar once it has ended


def test_probe_panel_shows_base_and_later_answers_escaped(ws):
    from studio.ui.run_views import probes_html

    series = library.load_series(write_run(ws, "probe", steps=20, probes=("Is <b> bold?",)))
    panel = probes_html(series, "en")
    assert "Is &lt;b&gt; bold?" in panel and "<b> bold" not in panel
    assert "base model (step 0)" in panel and "I do not know." in panel and "Answer after step 20." in panel
    assert panel.index("I do not know.") < panel.index("Answer after step 10.") < panel.index("Answer after step 20.")


def test_a_run_out_of_gpu_memory_shows_its_estimate_and_the_fixes(tmp_path):
    import json

    from studio.ui.run_views import memory_advice_html
    from studio.workspace import ESTIMATE_FILE

    estimate = {"total_gb": 30.2, "available_gb": 22.0, "device": "GPU 0 (NVIDIA L4)", "verdict": "won't fit",
                "components": {"weights": 14.1, "activations": 9.5, "optimizer": 0.2, "logits": 4.0},
                "fixes": [{"title": "Switch to QLoRA", "change": {"method": "qlora"}, "total_gb": 12.4, "fits": True}]}
    (tmp_path / ESTIMATE_FILE).write_text(json.dumps(estimate))
    failed = {"state": "failed", "cause": "out of memory", "fixes": estimate["fixes"]}
    page = memory_advice_html(tmp_path, failed, "en")
    assert "30.2 GB of 22.0 GB on GPU 0 (NVIDIA L4)" in page and "weights 14.1 GB, activations 9.5 GB" in page
    assert "Switch to QLoRA" in page and "method=qlora" in page and "12.4 GB" in page and "2 · Model" in page
    assert "显存" in memory_advice_html(tmp_path, failed, "zh")
    assert memory_advice_html(tmp_path, {"state": "failed", "error": "boom"}, "en") == ""  # other failures: nothing added


def test_a_follower_with_no_run_leaves_the_pages_live_follower_going(ws, live_pid):
    """A page load's follower queued behind Start (its watched run still empty) must not end Start's follower."""
    import asyncio
    from types import SimpleNamespace

    from studio.ui import build_app

    run_dir = write_run(ws, "live", state="running", steps=5, pid=live_pid)
    follow = next(fn.fn for fn in build_app(ws).fns.values() if fn.fn is not None and fn.fn.__name__ == "follow_run")
    request = SimpleNamespace(session_hash="one-page")

    async def start_then_a_late_page_load():
        started = follow(run_dir.name, None, "English", request)
        first = await anext(started)
        async for _update in follow("", None, "English", request):
            pass
        with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": 6, "total_steps": 10, "loss": 0.5, "elapsed": 12.0}) + "\n")
        later = await asyncio.wait_for(anext(started), timeout=10)
        await started.aclose()
        return first, later

    first, later = asyncio.run(start_then_a_late_page_load())
    assert "data-step='5'" in first[0] and "data-step='6'" in later[0]  # the first follower still draws new steps
