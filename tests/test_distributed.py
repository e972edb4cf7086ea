"""Several processes for one run, for real: two CPU processes over gloo started by `accelerate launch`, as
`strategy=ddp processes=2` (or fsdp) does on a machine without GPUs. Both ranks train, each step's loss is
logged once, the result is what the config asked, stop reaches both processes and resume continues. The
launch files, the multi-node commands and the validation messages are checked exactly."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys

import psutil
import pytest
import yaml
from conftest import run_cli, wait_for

from studio import config as cfg
from studio import jobs
from studio import run_folder
from studio.train import distributed
from studio.train.status import FINAL_STATES
from studio.workspace import PROJECT_ROOT


def config(name: str, **overrides) -> cfg.RunConfig:
    base = {"run_name": name, "model": "tiny-demo", "dataset": "demo-chat", "batch_size": 2, "cutoff_len": 96,
            "learning_rate": 1e-3, "probe_steps": 0, "processes": 2}
    return cfg.check(cfg.apply_overrides(cfg.RunConfig(), {**base, **overrides}))


def gpu_config(**overrides) -> cfg.RunConfig:
    """A config meant for a GPU machine (not validated here, where there are no GPUs)."""
    return cfg.apply_overrides(cfg.RunConfig(), overrides)


def train_steps(run_dir) -> list[int]:
    return [row["step"] for row in run_folder.read_metrics(run_dir)[0] if "loss" in row]


def finish(run_dir, timeout: float = 240) -> dict:
    return wait_for(lambda: (s := run_folder.run_status(run_dir)).get("state") in FINAL_STATES and s, timeout, f"{run_dir.name} to end")


def log_text(run_dir) -> str:
    return (run_dir / "train.log").read_text(encoding="utf-8")


def workers_of(run_dir) -> list[psutil.Process]:
    """Live processes whose command line names this run's config (the launcher and its ranks)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(run_dir / "config.yaml") in (process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.mark.slow
def test_two_ddp_processes_train_together_and_log_each_step_once(workspace):
    run_dir = jobs.launch(workspace, config("ddp", strategy="ddp", max_steps=4, grad_accum=2, lora_rank=4,
                                            save_steps=0, probe_steps=2))
    status = finish(run_dir)
    log = log_text(run_dir)
    assert status["state"] == "completed", log[-3000:]
    # both ranks trained: each names itself, and the strategy line tells the user how the run is spread
    assert "rank 1] training as rank 1 of 2" in log
    assert "rank 0] strategy ddp on 2 CPU processes over gloo; effective batch 2 × 2 × 2 = 8" in log
    assert status["processes"] == 2 and status["effective_batch"] == 8 and status["steps"] == 4
    assert train_steps(run_dir) == [1, 2, 3, 4], "each step's loss is written once, by rank 0 only"
    probe_steps = [row["step"] for row in run_folder.read_samples(run_dir)[0]]
    prompts = probe_steps.count(0)
    assert prompts >= 1 and probe_steps == [0] * prompts + [2] * prompts + [4] * prompts, "probes answered once, by rank 0"
    adapter = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    launch = yaml.safe_load((run_dir / distributed.ACCELERATE_CONFIG_FILE).read_text())
    assert launch["distributed_type"] == "MULTI_GPU" and launch["num_processes"] == 2
    wait_for(lambda: not workers_of(run_dir), 60, "the launcher and both ranks to exit")


@pytest.mark.slow
def test_fsdp_processes_stop_together_and_resume_from_the_checkpoint(workspace):
    run_dir = jobs.launch(workspace, config("fsdp", strategy="fsdp", max_steps=16, save_steps=2))
    launch = yaml.safe_load((run_dir / distributed.ACCELERATE_CONFIG_FILE).read_text())
    assert launch["distributed_type"] == "MULTI_GPU", "Accelerate's FSDP plugin refuses CPU processes"

    def reached_step_3():
        state = run_folder.run_status(run_dir).get("state")
        assert state not in FINAL_STATES, log_text(run_dir)[-3000:]
        return (train_steps(run_dir) or [0])[-1] >= 3
    wait_for(reached_step_3, 240, "the run to reach step 3")
    assert jobs.request_stop(run_dir)
    stopped = finish(run_dir)
    assert stopped["state"] == "stopped", log_text(run_dir)[-3000:]
    wait_for(lambda: not workers_of(run_dir), 30, "both ranks and the launcher to exit")
    assert "(Accelerate shards with FSDP only over GPUs: these CPU processes run as DDP over gloo)" in log_text(run_dir)
    checkpoint = run_folder.latest_checkpoint(run_dir)
    assert checkpoint.name == f"checkpoint-{stopped['stopped_at_step']}"
    before = train_steps(run_dir)

    jobs.resume_run(workspace, run_dir)
    final = finish(run_dir)
    assert final["state"] == "completed" and final["steps"] == 16, log_text(run_dir)[-3000:]
    after = train_steps(run_dir)
    assert after[: len(before)] == before and after == sorted(set(after)) and after[-1] == 16
    assert log_text(run_dir).count("resuming from checkpoint-") == 2, "both ranks resumed from the checkpoint"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_a_rank_that_dies_fails_the_run_and_is_named(workspace):
    run_dir = jobs.launch(workspace, config("dies", strategy="ddp", max_steps=200, save_steps=0))
    wait_for(lambda: train_steps(run_dir), 240, "the first logged step")
    rank_1 = [p for p in workers_of(run_dir) if p.environ().get("RANK") == "1"]
    assert len(rank_1) == 1
    rank_1[0].kill()  # dies without a word: only the launcher can say which rank went first
    wait_for(lambda: not workers_of(run_dir), 60, "the launcher to end the other rank and exit")
    status = wait_for(lambda: (s := run_folder.run_status(run_dir)).get("error", "").startswith("rank 1 ") and s, 30,
                      "the error to name rank 1")
    assert status["state"] == "failed"
    assert status["error"].startswith(f"rank 1 failed first: Signal 9 (SIGKILL) received by PID {rank_1[0].pid}")


def test_launch_files_follow_the_strategy(tmp_path):
    zero3 = gpu_config(strategy="deepspeed_zero3", offload=True)
    path = distributed.write_launch_files(tmp_path, zero3, processes=4, on_gpu=True)
    written = yaml.safe_load(path.read_text())
    assert written["distributed_type"] == "DEEPSPEED" and written["gpu_ids"] == "all" and written["num_processes"] == 4
    deepspeed = json.loads((tmp_path / distributed.DEEPSPEED_CONFIG_FILE).read_text())
    assert written["deepspeed_config"]["deepspeed_config_file"] == str(tmp_path / distributed.DEEPSPEED_CONFIG_FILE)
    zero = deepspeed["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
    assert deepspeed["train_micro_batch_size_per_gpu"] == "auto", "the trainer fills in the run's own batch size"

    full = distributed.accelerate_config(gpu_config(strategy="fsdp"), 2, on_gpu=True)
    assert full["distributed_type"] == "FSDP" and full["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"
    grad_op = gpu_config(strategy="fsdp_shard_grad_op", gpus="0, 2", offload=True)
    fsdp = distributed.accelerate_config(grad_op, 2, on_gpu=True)
    assert fsdp["gpu_ids"] == "0,2" and fsdp["fsdp_config"]["fsdp_sharding_strategy"] == "SHARD_GRAD_OP"
    assert fsdp["fsdp_config"]["fsdp_offload_params"] is True
    assert distributed.process_count(grad_op, gpu_count=8) == 2
    assert distributed.process_count(config("all", strategy="ddp"), gpu_count=8) == 8
    assert distributed.process_count(config("cpu", strategy="ddp", processes=3), gpu_count=0) == 3
    assert distributed.process_count(config("one", strategy="single"), gpu_count=8) == 1


def test_multi_node_commands_are_exact(tmp_path):
    run_dir = tmp_path / "runs" / "20260101-000000-run-abcd"
    commands = distributed.node_commands(tmp_path, run_dir, processes=4, nodes=2, main_ip="10.0.0.7", port=29501)
    root = shlex.quote(str(PROJECT_ROOT))
    for node, command in enumerate(commands):
        assert command == (
            f"cd {root} && PYTHONPATH={root} python -m accelerate.commands.launch "
            f"--config_file {run_dir}/accelerate_config.yaml --num_processes 8 --num_machines 2 --machine_rank {node} "
            f"--main_process_ip 10.0.0.7 --main_process_port 29501 --module studio --workspace {tmp_path} "
            f"train --config {run_dir}/config.yaml")
    with pytest.raises(ValueError, match="--main-ip"):
        distributed.node_commands(tmp_path, run_dir, 4, 2, "10.0.0.7; rm -rf /")


@pytest.mark.slow
def test_launch_cmd_prints_one_machines_command_with_the_shared_storage_note(workspace, tmp_path):
    run_dir = jobs.create_run(workspace, config("nodes", strategy="ddp", max_steps=2))
    result = run_cli("launch-cmd", run_dir.name, "--nodes", "3", "--node-rank", "2", "--main-ip", "192.168.1.4",
                     "--per-node", "8", workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "# 3 machine(s) × 8 process(es) = 24; effective batch 48"
    assert lines[1] == f"# {distributed.SHARED_STORAGE_NOTE}"
    assert lines[2] == "# node rank 2:"
    assert lines[3] == distributed.node_commands(workspace.root, run_dir, 8, 3, "192.168.1.4", python="python")[2]
    assert len(lines) == 4, "only the asked machine's command"
    assert yaml.safe_load((run_dir / "accelerate_config.yaml").read_text())["distributed_type"] == "MULTI_GPU"
    bad = run_cli("launch-cmd", run_dir.name, "--nodes", "2", "--node-rank", "5", "--main-ip", "10.0.0.1", workspace=workspace.root)
    assert bad.returncode == 2 and "--node-rank must be between 0 and 1 for 2 nodes, got 5" in bad.stderr


def test_validation_names_the_value_and_how_to_fix_it():
    def problems(**overrides) -> dict[str, str]:
        return {p.key: p.message for p in cfg.validate(cfg.apply_overrides(cfg.RunConfig(), overrides))}

    with pytest.raises(cfg.ConfigError, match="strategy: must be one of single, ddp.*got 'zero9'"):
        problems(strategy="zero9")
    assert "is not a GPU index" in problems(strategy="ddp", gpus="0,x")["gpus"]
    assert "must be between 1 and 64, got 0" in problems(strategy="ddp", processes=0)["processes"]
    assert "strategy=single" in problems(strategy="ddp", dry_run=True)["dry_run"]
    zero2 = [str(p) for p in cfg.validate(gpu_config(strategy="deepspeed_zero2"))]
    assert any("pip install deepspeed" in p for p in zero2) == (not cfg.package_installed("deepspeed")), zero2
    no_gpu = "strategy: deepspeed_zero2 needs CUDA GPUs and none was found: use ddp or fsdp for CPU processes"
    assert (no_gpu in zero2) == (cfg.gpu_summary()["count"] == 0), zero2
    assert not problems(strategy="ddp", processes=2)


def test_the_cli_takes_strategy_and_processes_as_keys():
    parsed = cfg.apply_overrides(cfg.RunConfig(), cfg.parse_cli_overrides(["strategy=fsdp", "processes=2", "gpus=0,1"]))
    assert (parsed.train.strategy, parsed.train.processes, parsed.train.gpus) == ("fsdp", 2, "0,1")
    argv = distributed.launch_argv(PROJECT_ROOT, PROJECT_ROOT / "r", 2, 1234)
    assert argv[:3] == [sys.executable, "-m", "accelerate.commands.launch"] and "--module" in argv


def test_the_vram_check_spreads_memory_as_the_strategy_does():
    from studio import hardware, memory
    from studio.fit import assess_config

    gpu = hardware.GPU(0, "Test GPU", 24 * memory.GiB, 24 * memory.GiB, (8, 0), False)
    machine = hardware.Hardware(cpu_cores=8, ram_total=64 * memory.GiB, ram_available=64 * memory.GiB, gpus=[gpu, dataclasses.replace(gpu, index=1), dataclasses.replace(gpu, index=2),
                                                   dataclasses.replace(gpu, index=3)])

    def per_gpu(**overrides) -> dict[str, float]:
        config = gpu_config(model="qwen2.5-1.5b-instruct", method="full", cutoff_len=512, batch_size=1, **overrides)
        return assess_config(config, machine, allow_download=False).estimate.components

    single, ddp = per_gpu(strategy="single"), per_gpu(strategy="ddp", gpus="0,1")
    assert ddp["weights"] + ddp["trainable"] == single["weights"] + single["trainable"], "DDP: a full copy per GPU"
    assert ddp["optimizer"] == single["optimizer"]
    zero2 = per_gpu(strategy="deepspeed_zero2", gpus="0,1")
    assert zero2["optimizer"] == pytest.approx(single["optimizer"] / 2) and zero2["trainable"] == single["trainable"]
    fsdp = per_gpu(strategy="fsdp")  # every GPU of the machine: 4
    assert fsdp["trainable"] == pytest.approx(single["trainable"] / 4) and fsdp["optimizer"] == pytest.approx(single["optimizer"] / 4)
    assert per_gpu(strategy="fsdp", offload=True)["optimizer"] == 0, "CPU offload keeps the optimizer state off the GPU"


@pytest.mark.browser
def test_the_train_tab_offers_the_strategy_and_the_model_tab_shows_the_effective_batch(workspace):
    from conftest import chromium_page, running_studio

    with running_studio(workspace.root) as url, chromium_page(url) as page:
        page.get_by_role("tab", name="3 · Train").click()
        page.wait_for_selector("#train-method")
        group = "#train-group-section-train"
        for _ in range(3):  # unfold the group until its strategy choice is drawn
            if page.locator("#train-strategy").is_visible():
                break
            page.locator(group).locator("button").first.click()
            page.wait_for_timeout(1000)
        assert not page.locator("#train-processes").is_visible(), "processes applies only to a multi-process strategy"
        page.locator("#train-strategy").get_by_label("ddp", exact=True).check()
        page.locator("#train-processes").wait_for(state="visible", timeout=30_000)
        page.locator("#train-gpus").wait_for(state="visible", timeout=30_000)
        assert "hardware panel" in page.inner_text("#train-gpus")  # the field's info text says where indices come from
        for key, value in (("batch_size", "3"), ("grad_accum", "2")):
            box = page.locator(f"#train-{key} input").first
            box.fill(value)
            box.blur()
        page.locator("#train-nodes").locator("button").first.click()  # the "Several machines" panel
        page.locator("#nodes-main-ip input, #nodes-main-ip textarea").first.fill("10.1.2.3")
        page.click("#nodes-make")
        page.locator("#nodes-commands").filter(has_text="--machine_rank 1").wait_for(timeout=60_000)
        shown = page.inner_text("#nodes-commands")
        assert "shared storage" in shown and "--main_process_ip 10.1.2.3" in shown and "--num_processes 16" in shown
        (run_id,) = workspace.run_ids()
        status = run_folder.run_status(workspace.runs_dir / run_id)
        assert status["state"] == "queued" and status["phase"] == jobs.AWAITING_MACHINES_PHASE, "waits for its machines"
        assert run_folder.load_config(workspace.runs_dir / run_id).train.batch_size == 3
        page.get_by_role("tab", name="2 · Model").click()
        expected = "Effective batch: 3 × 2 × 2 CPU processes = 12 rows per step (ddp)"
        page.locator("#estimate-verdict").filter(has_text=expected).wait_for(timeout=60_000)


def _cuda_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_gpus() == 0, reason="needs a CUDA GPU")
@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed_zero2"])
def test_a_sharded_strategy_trains_on_a_gpu(workspace, strategy):
    if strategy.startswith("deepspeed") and not cfg.package_installed("deepspeed"):
        pytest.skip("deepspeed is not installed: pip install deepspeed")
    run_dir = jobs.launch(workspace, config(strategy, strategy=strategy, gpus="0", max_steps=4, save_steps=2))
    status = finish(run_dir, timeout=600)
    assert status["state"] == "completed", log_text(run_dir)[-3000:]
    assert train_steps(run_dir) == [1, 2, 3, 4]
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
