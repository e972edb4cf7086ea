"""Several processes for one run: the strategy's Accelerate (or DeepSpeed) config file, the `accelerate launch`
argv the studio starts, each machine's command for a multi-node run, and which process this is.

Distribution itself is Hugging Face Accelerate's (DDP, FSDP, DeepSpeed ZeRO), started through its launcher
(`python -m accelerate.commands.launch`, torch elastic underneath); the studio only writes the config file
into the run folder and says which devices and how many processes. Every process runs the same worker
(`python -m studio train --config RUN/config.yaml`); only rank 0 writes run files.

Strategies: `single` (one process, today's path), `ddp` (a full copy per device, gradients averaged),
`fsdp` (weights, gradients and optimizer state sharded over the devices), `fsdp_shard_grad_op` (gradients and
optimizer state sharded, weights whole during compute), `deepspeed_zero2` (gradients and optimizer state
sharded), `deepspeed_zero3` (everything sharded). `offload` moves the optimizer state (FSDP: the parameters
too) to CPU RAM. On a machine without GPUs, `ddp` and `fsdp` run `processes` CPU processes over gloo;
Accelerate shards with FSDP only over GPUs, so there they run as DDP (the log says so).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import sys
from pathlib import Path

import yaml

from studio.config import gpu_list
from studio.workspace import CONFIG_FILE, PROJECT_ROOT

STRATEGIES = ("single", "ddp", "fsdp", "fsdp_shard_grad_op", "deepspeed_zero2", "deepspeed_zero3")
SHARDED = ("fsdp", "fsdp_shard_grad_op", "deepspeed_zero2", "deepspeed_zero3")
ACCELERATE_CONFIG_FILE = "accelerate_config.yaml"
DEEPSPEED_CONFIG_FILE = "deepspeed_config.json"
DEFAULT_PORT = 29500
SHARED_STORAGE_NOTE = (
    "Every machine must see the workspace at the same path (shared storage such as NFS): each process reads "
    "the run's config, model and data from it, and rank 0 on the main machine writes metrics, checkpoints and "
    "the result into the run folder. Start the main machine (node rank 0) first; the others connect to its "
    "address and port, which must be reachable from them.")


def rank() -> int:
    """This process's global rank (0 when not launched as one of several processes)."""
    return int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    """How many processes train this run together (1 when not launched by a distributed launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_main_process() -> bool:
    """True in the one process that writes the run's files (rank 0, or the only process)."""
    return rank() == 0


def local_device_index() -> int:
    """The GPU index this process uses on its machine (LOCAL_RANK; 0 for a single process)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def visible_gpu_count() -> int:
    """How many CUDA GPUs this process sees (0 without any), as the hardware panel counts them."""
    from studio.hardware import cuda_gpus

    return len(cuda_gpus())


def process_count(config, gpu_count: int | None = None) -> int:
    """How many processes the run's strategy starts on one machine: 1 for `single`; with GPUs, one per chosen
    GPU (`gpus`, or every visible one); without GPUs, `processes` CPU processes."""
    t = config.train
    if t.strategy == "single":
        return 1
    gpu_count = visible_gpu_count() if gpu_count is None else gpu_count
    if gpu_count == 0:
        return max(t.processes, 1)
    return len(gpu_list(t.gpus)) or gpu_count


def is_multi_process(config) -> bool:
    """True when the run is started through the distributed launcher (any strategy but `single`)."""
    return config.train.strategy != "single"


def effective_batch(config, processes: int) -> int:
    """Rows per optimizer step: micro-batch × gradient accumulation × processes."""
    return config.train.batch_size * config.train.grad_accum * processes


def strategy_note(config, on_gpu: bool, processes: int) -> str:
    """One line for the run log and the UI saying how the run is spread and, for QLoRA, which supported path."""
    t, method = config.train, config.method.method
    note = f"strategy {t.strategy} on {processes} {'GPU' if on_gpu else 'CPU'} process{'es' if processes > 1 else ''}"
    if t.strategy.startswith("fsdp") and not on_gpu:
        note += " (Accelerate shards with FSDP only over GPUs: these CPU processes run as DDP over gloo)"
    elif not on_gpu:
        note += " over gloo"
    if method == "qlora" and t.strategy == "ddp":
        note += "; QLoRA: one 4/8-bit copy of the model per device (DDP)"
    elif method == "qlora" and t.strategy.startswith("fsdp"):
        note += "; QLoRA: FSDP over the 4-bit weights, stored in the compute dtype (bnb_4bit_quant_storage)"
    note += f"; effective batch {t.batch_size} × {t.grad_accum} × {processes} = {effective_batch(config, processes)}"
    return note


def accelerate_config(config, processes: int, on_gpu: bool, deepspeed_file: str = "") -> dict:
    """The Accelerate config (as written to accelerate_config.yaml) for the run's strategy on one machine.
    Mixed precision is left to the trainer (the run's `precision`); machines and ranks come from the launch flags.
    Without GPUs an fsdp strategy gets plain multi-process (DDP over gloo): Accelerate's FSDP plugin refuses CPUs."""
    t = config.train
    base = {"compute_environment": "LOCAL_MACHINE", "num_machines": 1, "machine_rank": 0, "num_processes": processes,
            "mixed_precision": "no", "use_cpu": False, "rdzv_backend": "static", "same_network": True,
            "main_training_function": "main", "downcast_bf16": "no"}
    if on_gpu:
        base["gpu_ids"] = t.gpus.replace(" ", "") or "all"
    if t.strategy == "ddp" or (t.strategy.startswith("fsdp") and not on_gpu):  # Accelerate's FSDP needs GPUs
        return {**base, "distributed_type": "MULTI_GPU"}
    if t.strategy.startswith("fsdp"):
        fsdp = {"fsdp_version": 1, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                "fsdp_sharding_strategy": "FULL_SHARD" if t.strategy == "fsdp" else "SHARD_GRAD_OP",
                "fsdp_offload_params": bool(t.offload), "fsdp_state_dict_type": "FULL_STATE_DICT",
                "fsdp_backward_prefetch": "BACKWARD_PRE", "fsdp_forward_prefetch": False,
                "fsdp_cpu_ram_efficient_loading": False, "fsdp_sync_module_states": True,
                "fsdp_use_orig_params": True}
        return {**base, "distributed_type": "FSDP", "fsdp_config": fsdp}
    if t.strategy.startswith("deepspeed"):
        return {**base, "distributed_type": "DEEPSPEED", "deepspeed_config": {"deepspeed_config_file": deepspeed_file}}
    raise ValueError(f"strategy {t.strategy!r} is started without the distributed launcher")


def deepspeed_config(config) -> dict:
    """The DeepSpeed JSON config for a ZeRO strategy; `auto` values are filled in by the trainer from the run's
    batch size, accumulation, learning rate and precision, so the two can never disagree."""
    stage = 3 if config.train.strategy == "deepspeed_zero3" else 2
    zero = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True, "reduce_bucket_size": "auto"}
    if config.train.offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if stage == 3:
        zero.update(stage3_gather_16bit_weights_on_model_save=True, stage3_prefetch_bucket_size="auto",
                    stage3_param_persistence_threshold="auto")
    return {"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
            "train_batch_size": "auto", "gradient_clipping": "auto", "zero_optimization": zero,
            "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"}}


def write_launch_files(run_dir: Path, config, processes: int, on_gpu: bool) -> Path:
    """Write the strategy's accelerate_config.yaml (and deepspeed_config.json for ZeRO) into `run_dir`;
    returns the Accelerate config's path."""
    import json

    deepspeed_file = ""
    if config.train.strategy.startswith("deepspeed"):
        deepspeed_file = str(run_dir / DEEPSPEED_CONFIG_FILE)
        Path(deepspeed_file).write_text(json.dumps(deepspeed_config(config), indent=2) + "\n", encoding="utf-8")
    path = run_dir / ACCELERATE_CONFIG_FILE
    path.write_text(yaml.safe_dump(accelerate_config(config, processes, on_gpu, deepspeed_file), sort_keys=False),
                    encoding="utf-8")
    return path


def launcher_root_cause(log_tail: str) -> tuple[int, str] | None:
    """(rank, what happened) of the process that failed first, read from the summary the launcher (torch elastic)
    prints when a rank dies; None when the log holds no such summary."""
    _, found, block = log_tail.rpartition("Root Cause (first observed failure):")
    if not found:
        return None
    fields = dict(re.findall(r"^\s*(rank|exitcode|traceback)\s*:\s*(.*)$", block, re.MULTILINE))
    rank = re.match(r"\d+", fields.get("rank", ""))
    if rank is None:
        return None
    what = fields.get("traceback", "").strip()
    if not what or what.startswith("To enable traceback"):
        what = f"exit code {fields.get('exitcode', '?').split()[0]}"
    return int(rank.group()), f"rank {rank.group()} failed first: {what}"


def free_port() -> int:
    """A TCP port free on this machine now, for the processes of one run to meet on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_argv(workspace_root: Path, run_dir: Path, processes: int, port: int, nodes: int = 1, node_rank: int = 0,
                main_ip: str = "127.0.0.1", python: str = sys.executable) -> list[str]:
    """The argv that starts the run's worker on one machine through `accelerate launch`: `processes` per machine,
    `nodes` machines, this one being `node_rank`, meeting at `main_ip`:`port`."""
    return [python, "-m", "accelerate.commands.launch", "--config_file", str(run_dir / ACCELERATE_CONFIG_FILE),
            "--num_processes", str(processes * nodes), "--num_machines", str(nodes), "--machine_rank", str(node_rank),
            "--main_process_ip", main_ip, "--main_process_port", str(port),
            "--module", "studio", "--workspace", str(workspace_root), "train", "--config", str(run_dir / CONFIG_FILE)]


HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def is_machine_address(text: str) -> bool:
    """True for an IPv4/IPv6 address or a DNS host name: nothing a shell would read as more than a word."""
    import ipaddress

    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return HOST_NAME.fullmatch(text) is not None


def node_commands(workspace_root: Path, run_dir: Path, processes: int, nodes: int, main_ip: str,
                  port: int = DEFAULT_PORT, python: str = "python") -> list[str]:
    """The shell command to run on each machine (index = node rank) of a multi-node run of `run_dir`."""
    if nodes < 1:
        raise ValueError(f"--nodes must be 1 or more, got {nodes}")
    if not is_machine_address(main_ip):
        raise ValueError(f"--main-ip must be the main machine's IP address or host name (letters, digits, dots and "
                         f"dashes), got {main_ip!r}")
    if not 1 <= port <= 65535:
        raise ValueError(f"--port must be between 1 and 65535, got {port}")
    prefix = f"cd {shlex.quote(str(PROJECT_ROOT))} && PYTHONPATH={shlex.quote(str(PROJECT_ROOT))} "
    return [prefix + shlex.join(launch_argv(workspace_root, run_dir, processes, port, nodes, node, main_ip, python))
            for node in range(nodes)]


def node_instructions(workspace_root: Path, run_dir: Path, config, nodes: int, node_rank: int | None, main_ip: str,
                      port: int = DEFAULT_PORT, gpus_per_node: int | None = None) -> str:
    """Text for the user: the shared-storage requirement, then the exact command for one machine (or for every
    machine when `node_rank` is None). Writes the run's launch files first, so the commands work as printed."""
    processes = gpus_per_node or process_count(config)
    if node_rank is not None and not 0 <= node_rank < nodes:
        raise ValueError(f"--node-rank must be between 0 and {nodes - 1} for {nodes} nodes, got {node_rank}")
    write_launch_files(run_dir, config, processes, on_gpu=(gpus_per_node or visible_gpu_count()) > 0)
    commands = node_commands(workspace_root, run_dir, processes, nodes, main_ip, port)
    total = nodes * processes
    lines = [f"# {nodes} machine(s) × {processes} process(es) = {total}; effective batch {effective_batch(config, total)}",
             f"# {SHARED_STORAGE_NOTE}"]
    for node, command in enumerate(commands):
        if node_rank is None or node == node_rank:
            lines += [f"# node rank {node}{' (main)' if node == 0 else ''}:", command]
    return "\n".join(lines)
