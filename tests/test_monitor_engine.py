"""The live monitor's engine half: validation rows and eval_loss rows, early stopping, system samples, probe
answers (base model at step 0, the trained answer by the end), progress of the long phases in status.json,
and Hub downloads reported through a tqdm class (never for local models)."""

from __future__ import annotations

import json

import pytest

from studio import config as cfg
from studio import jobs
from studio import run_folder
from studio.train.status import read_status
from studio.workspace import PRESETS_DIR

DEMO_DATA = PRESETS_DIR / "datasets" / "demo-chat.jsonl"
DEMO_ROWS = [json.loads(line)["messages"] for line in DEMO_DATA.read_text(encoding="utf-8").splitlines()]


def jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def small_config(**overrides) -> cfg.RunConfig:
    base = {"model": "tiny-demo", "dataset": "demo-chat", "batch_size": 4, "cutoff_len": 128, "learning_rate": 2e-3}
    return cfg.check(cfg.apply_overrides(cfg.RunConfig(), {**base, **overrides}))


# ---------------------------------------------------------------- config and pieces (no training)


def test_new_config_keys_have_defaults_help_and_validation():
    config = cfg.RunConfig()
    assert (config.data.val_size, config.train.eval_steps, config.train.early_stop_patience) == (0.0, 0, 0)
    assert (config.train.save_steps, config.train.save_total_limit, config.train.probe_steps) == (100, 2, 50)
    assert config.train.probe_prompts == ""
    for key in ("val_size", "eval_steps", "early_stop_patience", "save_steps", "save_total_limit", "probe_steps", "probe_prompts"):
        info = cfg.field_info(key)
        assert info.metadata["help"] and info.metadata["help_zh"], key

    bad = cfg.apply_overrides(cfg.RunConfig(), {
        "val_size": 2.5, "eval_steps": -1, "save_steps": -5, "save_total_limit": 0, "probe_steps": -2,
        "probe_prompts": "\n".join(f"prompt {i}" for i in range(11)),
    })
    keys = {p.key for p in cfg.validate(bad)}
    assert {"val_size", "eval_steps", "save_steps", "save_total_limit", "probe_steps", "probe_prompts"} <= keys

    needs_val = cfg.validate(cfg.apply_overrides(cfg.RunConfig(), {"eval_steps": 5, "early_stop_patience": 2}))
    messages = {p.key: p.message for p in needs_val}
    assert "val_size" in messages["eval_steps"] and "val_size" in messages["early_stop_patience"]
    assert cfg.validate(cfg.apply_overrides(cfg.RunConfig(), {"val_size": 20, "eval_steps": 5, "early_stop_patience": 2})) == []

    with pytest.raises(cfg.ConfigError, match="probe_step"):
        cfg.from_yaml("train:\n  probe_step: 5\n")


def test_validation_split_is_seeded_and_leaves_rows_to_train_on():
    from studio.data.prepare import split_indices

    train, val = split_indices(210, 0.1, seed=42)
    assert len(val) == 21 and len(train) == 189 and not set(train) & set(val)
    assert split_indices(210, 0.1, seed=42) == (train, val)
    assert split_indices(210, 0.1, seed=7)[1] != val
    assert len(split_indices(210, 5, seed=1)[1]) == 5
    assert split_indices(10, 0.0, seed=1) == (list(range(10)), [])
    with pytest.raises(ValueError, match="val_size"):
        split_indices(10, 10, seed=1)


def test_a_system_sample_has_every_field_and_one_row_per_gpu():
    from studio.hardware import detect_gpus
    from studio.train.system import sample

    row = sample()
    assert set(row) == {"time", "elapsed", "cpu_percent", "ram_used_gb", "ram_total_gb", "gpus"}
    assert len(row["gpus"]) == len(detect_gpus())
    assert 0 < row["ram_used_gb"] < row["ram_total_gb"]
    assert row["elapsed"] >= 0 and 0 <= row["cpu_percent"] <= 100
    json.dumps(row)


def test_the_hub_download_tqdm_class_writes_bytes_and_files_into_status(tmp_path):
    from studio.train.phases import Progress, hub_download_tqdm

    run_dir = tmp_path
    progress = Progress(run_dir, "download", "Downloading org/model", total=None, unit="B")
    tqdm_class = hub_download_tqdm(progress, "org/model")
    # the bars snapshot_download makes from it: files fetched, then bytes (received, and written to disk)
    files = tqdm_class(desc="Fetching 2 files", total=2)
    received = tqdm_class(desc="Downloading bytes", total=0, initial=0, unit="B", unit_scale=True)
    written = tqdm_class(desc="Reconstructing (incomplete total...)", total=0, initial=0, unit="B", unit_scale=True)
    for size in (3000, 1000):  # each file announces its size, then arrives in chunks
        written.total += size
        written.refresh()
        for _ in range(4):
            received.update(size // 4)
            written.update(size // 4)
        files.update(1)
    status = read_status(run_dir)["progress"]
    assert status["phase"] == "download" and status["unit"] == "B"
    assert status["done"] == 4000 and status["total"] == 4000
    assert "org/model" in status["label"] and "2/2 files" in status["label"]
    assert status["rate"] is None or status["rate"] > 0
    for bar in (files, received, written):
        bar.close()
    progress.finish()
    late = tqdm_class(desc="Reconstructing", total=10, unit="B")  # a bar touched after the phase ended changes nothing
    late.update(10)
    late.close()
    after = read_status(run_dir)
    assert after["progress"] is None and after["last_progress"]["download"]["done"] == 4000


def test_local_models_never_call_the_hub_and_hub_models_report_their_download(workspace, monkeypatch):
    import huggingface_hub

    from studio.train.worker import fetch_model

    calls = []

    def fake_snapshot_download(repo_id, tqdm_class=None, **kwargs):
        calls.append(repo_id)
        bar = tqdm_class(desc="Reconstructing (incomplete total...)", total=0, initial=0, unit="B")
        bar.total = 2048
        bar.update(2048)
        bar.close()
        return "/nowhere"

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    run_dir = workspace.runs_dir / "20250101-000000-probe-0000"
    run_dir.mkdir()
    assert fetch_model(workspace, run_dir, "tiny-demo") == str(workspace.models_dir / "tiny-demo")
    assert calls == [], "tiny-demo must never reach for the Hub"
    assert "download" not in (read_status(run_dir).get("last_progress") or {})

    assert fetch_model(workspace, run_dir, "Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert calls == ["Qwen/Qwen2.5-0.5B-Instruct"]
    status = read_status(run_dir)
    assert status["progress"] is None
    assert status["last_progress"]["download"]["done"] == 2048 and status["last_progress"]["download"]["total"] == 2048


# ---------------------------------------------------------------- one monitored run


@pytest.fixture(scope="module")
def monitored_run(tmp_path_factory, tiny_demo_dir):
    """A 12-step run with 10% validation rows, evaluation every 4 steps, probes every 5 and checkpoints every 5."""
    import shutil

    from studio.workspace import Workspace

    workspace = Workspace(tmp_path_factory.mktemp("monitor") / "ws")
    shutil.copytree(tiny_demo_dir, workspace.models_dir / tiny_demo_dir.name)
    run_dir = jobs.launch(workspace, small_config(max_steps=12, val_size=0.1, eval_steps=4, probe_steps=5, save_steps=5, keep_best=False))
    status = run_folder.wait(run_dir)
    assert status["state"] == "completed", (run_dir / "train.log").read_text(encoding="utf-8")[-3000:]
    return workspace, run_dir


@pytest.mark.slow
def test_validation_rows_get_eval_loss_rows_in_metrics(monitored_run):
    _, run_dir = monitored_run
    rows = jsonl(run_dir / "metrics.jsonl")
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [4, 8, 12]
    for row in evals:
        assert set(row) == {"step", "eval_loss", "elapsed"} and row["eval_loss"] > 0
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == list(range(1, 13))
    status = read_status(run_dir)
    assert status["best_eval_loss"] == min(r["eval_loss"] for r in evals)
    assert "holding out 21 rows for validation" in (run_dir / "train.log").read_text(encoding="utf-8")


@pytest.mark.slow
def test_system_samples_were_written_while_it_trained(monitored_run):
    from studio.hardware import detect_gpus

    _, run_dir = monitored_run
    rows = jsonl(run_dir / "system.jsonl")
    assert len(rows) >= 2
    for row in rows:
        assert set(row) == {"time", "elapsed", "cpu_percent", "ram_used_gb", "ram_total_gb", "gpus"}
        assert len(row["gpus"]) == len(detect_gpus()) and row["ram_total_gb"] > 0
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)


class FakeNVML:
    """Two GPUs as nvidia-ml-py reports them; the second board cannot read its power draw."""

    class NVMLError(Exception):
        pass

    NVML_TEMPERATURE_GPU = 0

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return ["NVIDIA H100 80GB HBM3", b"NVIDIA L4"][handle]  # older releases return bytes

    def nvmlDeviceGetMemoryInfo(self, handle):
        from types import SimpleNamespace

        return SimpleNamespace(used=(40 + handle) * 2**30, total=80 * 2**30, free=(40 - handle) * 2**30)

    def nvmlDeviceGetUtilizationRates(self, handle):
        from types import SimpleNamespace

        return SimpleNamespace(gpu=97 - 10 * handle, memory=50)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 65 + handle

    def nvmlDeviceGetPowerUsage(self, handle):  # milliwatts
        if handle == 1:
            raise self.NVMLError("Not Supported")
        return 350_500


def test_worker_samples_every_gpu_through_nvml(monkeypatch):
    """What the worker's sampler writes for each GPU, read through the nvidia-ml-py calls it makes (the fake
    offers only functions the real nvidia-ml-py has); a reading a board lacks is null."""
    import sys

    import pynvml

    from studio import hardware
    from studio.train import system

    fake = FakeNVML()
    used = [name for name in dir(fake) if name.startswith(("nvml", "NVML"))]
    assert all(hasattr(pynvml, name) for name in used), [name for name in used if not hasattr(pynvml, name)]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setitem(hardware._nvml, "ready", None)
    sample = system.sample(started=0.0)
    assert sample["gpus"] == [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_used_mb": 40960.0, "memory_total_mb": 81920.0,
         "utilization_percent": 97.0, "temperature_c": 65.0, "power_w": 350.5},
        {"index": 1, "name": "NVIDIA L4", "memory_used_mb": 41984.0, "memory_total_mb": 81920.0,
         "utilization_percent": 87.0, "temperature_c": 66.0, "power_w": None},
    ]


@pytest.mark.slow
def test_probes_answer_at_step_0_every_probe_steps_and_at_the_end(monitored_run):
    from studio.data.prepare import split_indices

    _, run_dir = monitored_run
    rows = jsonl(run_dir / "samples.jsonl")
    for row in rows:
        assert set(row) == {"step", "prompt_index", "prompt", "answer", "seconds"}
        assert isinstance(row["answer"], str) and row["seconds"] >= 0
    assert sorted({r["step"] for r in rows}) == [0, 5, 10, 12]
    for step in (0, 5, 10, 12):
        assert sorted(r["prompt_index"] for r in rows if r["step"] == step) == [0, 1, 2]
    # no probe_prompts given: the prompts of the first three held-out validation rows
    _, val = split_indices(len(DEMO_ROWS), 0.1, seed=42)
    expected = [[m for m in DEMO_ROWS[i] if m["role"] == "user"][-1]["content"] for i in val[:3]]
    assert [r["prompt"] for r in rows if r["step"] == 0] == expected


@pytest.mark.slow
def test_status_recorded_each_phase_progress_and_keeps_checkpoints(monitored_run):
    _, run_dir = monitored_run
    status = read_status(run_dir)
    assert status["progress"] is None
    tokenize = status["last_progress"]["tokenize"]
    assert tokenize["phase"] == "tokenize" and tokenize["unit"] == "rows"
    assert tokenize["done"] == tokenize["total"] == len(DEMO_ROWS)
    assert status["last_progress"]["load"]["total"] is None
    assert status["last_progress"]["save"]["phase"] == "save"
    assert "download" not in status["last_progress"]
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-10", "checkpoint-12"], "save_total_limit=2 keeps the newest two"
    assert run_folder.latest_checkpoint(run_dir).name == "checkpoint-12"


def test_probe_answers_show_the_demo_run_learning_its_data(demo_run):
    """The session demo run probes the first three training rows: the base model does not know the answers,
    the trained one gives them word for word."""
    _, run_dir = demo_run
    rows = jsonl(run_dir / "samples.jsonl")
    steps = sorted({r["step"] for r in rows})
    assert steps[0] == 0 and steps[-1] == read_status(run_dir)["steps"] and len(steps) >= 3
    for index in range(3):
        answer = DEMO_ROWS[index][-1]["content"]
        mine = [r for r in rows if r["prompt_index"] == index]
        assert mine[0]["step"] == 0 and mine[0]["prompt"] == DEMO_ROWS[index][-2]["content"]
        assert mine[0]["answer"] != answer
        assert mine[-1]["answer"] == answer, mine[-1]


@pytest.mark.slow
def test_early_stopping_ends_a_run_whose_eval_loss_rises(workspace):
    run_dir = jobs.launch(workspace, small_config(
        max_steps=200, val_size=8, eval_steps=2, early_stop_patience=1, learning_rate=0.5, probe_steps=0, save_steps=0,
    ))
    status = run_folder.wait(run_dir)
    assert status["state"] == "completed" and status["early_stopped"] is True, status
    assert status["steps"] < 200 and "stopped early" in status["phase"]
    evals = [r["eval_loss"] for r in jsonl(run_dir / "metrics.jsonl") if "eval_loss" in r]
    assert not evals[-1] < min(evals[:-1]), "it stopped after an evaluation that did not improve"
    assert status["best_eval_loss"] == min(evals)
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_keep_best_saves_the_checkpoint_with_the_lowest_validation_loss(workspace):
    from safetensors.torch import load_file

    run_dir = jobs.launch(workspace, small_config(max_steps=12, val_size=8, eval_steps=2, learning_rate=0.5, probe_steps=0, save_steps=2))
    status = run_folder.wait(run_dir)
    assert status["state"] == "completed", (run_dir / "train.log").read_text(encoding="utf-8")[-3000:]
    evals = {r["step"]: r["eval_loss"] for r in jsonl(run_dir / "metrics.jsonl") if "eval_loss" in r}
    best_step = min(evals, key=evals.get)
    assert status["kept_best_step"] == best_step and status["best_eval_loss"] == evals[best_step]
    saved = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    best = load_file(run_dir / "checkpoints" / f"checkpoint-{best_step}" / "adapter_model.safetensors")
    assert saved.keys() == best.keys() and all(saved[k].equal(best[k]) for k in saved), "the result is the best checkpoint's weights"
    assert f"kept the best checkpoint: step {best_step}" in (run_dir / "train.log").read_text(encoding="utf-8")
