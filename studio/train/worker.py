"""The training worker: `python -m studio train --config RUN_DIR/config.yaml` runs one run, start to end.

It waits its turn in the training queue (status `queued`; runs start in the order they were queued), then:
downloads a Hub model (progress in status.json), tokenises the dataset with the studio's own assistant-only
masks, holds out validation rows if asked, loads the model, wraps it with LoRA (PEFT) unless the method is
`full`, and trains with TRL's SFTTrainer. Metrics, probe answers, system samples, checkpoints, status and
the log go to files in the run folder only. SIGTERM or a STOP file ends training after the current step;
what was trained is saved either way. A run whose status names `resumed_from` continues from that
checkpoint (weights, optimizer, scheduler and RNG state) in the same folder.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import psutil

from studio import config as cfg
from studio import hardware
from studio.data.prepare import prepare_sft
from studio.models.catalog import is_hub_model, resolve_model
from studio.system_prompt import record_training_system_prompt
from studio.train import distributed, dry_run, queue, run_outputs
from studio.train.log import log
from studio.train.phases import Progress
from studio.train.status import (
    COMPLETED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    STOPPED,
    read_status,
    record_failure,
    update_status,
)
from studio.workspace import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    STOP_FILE,
    Workspace,
    disk_full_message,
)

# Files a fine-tune never needs: other frameworks' weights, quantised copies, the original checkpoints.
HUB_IGNORE = ["*.onnx", "*.onnx_data", "onnx/*", "*.msgpack", "*.h5", "*.ot", "*.tflite", "*.gguf", "*.pth",
              "original/*", "openvino/*", "coreml/*"]


def _install_stop_signal(event: threading.Event) -> None:
    def handle(signum, _frame):
        log(f"received {signal.Signals(signum).name}: stopping after the current step")
        event.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@contextmanager
def _training_turn(workspace: Workspace, run_dir: Path, stop: threading.Event):
    """Hold the workspace's training lock for the body; waits (status queued) until this run is the oldest
    live run in the queue and the lock is free. Yields False if a stop was requested while waiting.

    The OS drops the lock when this process ends, however it ends, so a crashed worker never blocks the
    queue; a dead worker's ticket is skipped by the others."""
    me = psutil.Process()
    ticket = queue.find_ticket(workspace, run_dir) or queue.take_ticket(workspace, run_dir)
    queue.claim_ticket(ticket, me.pid, me.create_time())
    handle = open(workspace.training_lock, "a+")
    announced = got_turn = False
    try:
        while not got_turn:
            if not ticket.exists():  # removed as dead by someone who could not see us: queue again
                ticket = queue.take_ticket(workspace, run_dir, me.pid, me.create_time())
            if queue.first_in_line(workspace, ticket):
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got_turn = True
                    break
                except BlockingIOError:
                    pass
            if not announced:
                log("another run is training: this run is queued and starts when the runs before it finish")
                update_status(run_dir, state=QUEUED, phase="waiting for the running training to finish")
                announced = True
            if stop.is_set() or (run_dir / STOP_FILE).exists():
                break
            time.sleep(0.5)
        queue.drop_ticket(ticket)
        yield got_turn
    finally:
        queue.drop_ticket(ticket)
        if got_turn:
            fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def fetch_model(workspace: Workspace, run_dir: Path, model: str) -> str:
    """What to load the model from; a Hub model is downloaded first, its progress (bytes) in status.json.
    Local models and tiny-demo never touch the Hub."""
    source = resolve_model(workspace, model)
    if not is_hub_model(workspace, model):
        return source
    from huggingface_hub import snapshot_download

    from studio.train.phases import hub_download_tqdm

    update_status(run_dir, phase="downloading the model")
    with Progress(run_dir, "download", f"Downloading {source}", total=None, unit="B") as progress:
        snapshot_download(source, ignore_patterns=HUB_IGNORE, tqdm_class=hub_download_tqdm(progress, source))
    return source


def _build_datasets(workspace: Workspace, run_dir: Path, config: cfg.RunConfig, tokenizer):
    """(train dataset, validation dataset or None, train conversations, validation conversations), prepared by
    studio/data/prepare.py (split, masks, cutoff) with rows done/total in status.json's progress."""
    with Progress(run_dir, "tokenize", f"Tokenising {config.data.dataset}", total=None, unit="rows") as progress:
        prepared = prepare_sft(workspace, config, tokenizer, lambda done, total: progress.update(done, total, force=done == total))
    for note in prepared.notes:
        log(note)
    return prepared.train, prepared.eval, prepared.train_rows, prepared.val_rows


def _load_model(run_dir: Path, source: str, config: cfg.RunConfig):
    """(the model loaded as the method and efficiency options say, its Precision); freeze tuning applied."""
    from studio.train import methods

    device = hardware.torch_device()
    update_status(run_dir, phase="loading the model")
    with Progress(run_dir, "load", f"Loading {config.model.model}", total=None, unit="B"):
        model, precision = methods.load_model(source, config, device, log)
    methods.apply_freeze(model, config, log)
    return model, precision


def _limit_cpu_threads(torch) -> None:
    """On a CPU, leave a core for the studio and the browser (see hardware.leave_a_core_free), unless the user
    (or the distributed launcher) set OMP_NUM_THREADS."""
    threads = hardware.leave_a_core_free(torch, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    if threads is not None:
        log(f"CPU threads: {threads}, leaving a core for the studio (set OMP_NUM_THREADS to choose)")


def _tokenizer_and_data(workspace: Workspace, run_dir: Path, config: cfg.RunConfig, source: str, stage: str):
    """The model's tokenizer and the stage's datasets: (tokenizer, train_dataset, eval_dataset, train_rows, val_rows).
    Records the training rows' shared system prompt, when they share one."""
    from transformers import AutoTokenizer

    from studio.train import stages

    update_status(run_dir, phase="loading tokenizer and data")
    log(f"model {config.model.model} from {source}")
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=config.model.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if stage == "sft":
        train_dataset, eval_dataset, train_rows, val_rows = _build_datasets(workspace, run_dir, config, tokenizer)
    else:  # the TRL trainer of the stage tokenises the normalised rows through the chat template itself
        train_dataset, eval_dataset, train_rows, val_rows = stages.build_datasets(workspace, config, log, tokenizer)
    trained_system = record_training_system_prompt(run_dir, train_rows)
    if trained_system["shared"]:
        log("every training row has the same system prompt: chat, compare, serve and export start from it")
    return tokenizer, train_dataset, eval_dataset, train_rows, val_rows


def _training_arguments(run_dir: Path, config: cfg.RunConfig, device: str, precision, evaluate: bool):
    """The trainer's arguments (TRL's SFTConfig, which every stage's config extends) for this run."""
    from trl import SFTConfig

    from studio.train import methods

    t = config.train
    tracking = run_outputs.tracker_environment(run_dir, t.report_to)
    if tracking and distributed.is_main_process():
        log(tracking)
    return SFTConfig(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        max_length=t.cutoff_len,
        seed=t.seed,
        logging_steps=t.logging_steps,
        eval_strategy=("steps" if t.eval_steps > 0 else "epoch") if evaluate else "no",
        eval_steps=t.eval_steps if evaluate and t.eval_steps > 0 else None,
        **run_outputs.checkpoint_arguments(t, evaluate),
        report_to=t.report_to,
        run_name=config.run_name or run_dir.name,
        disable_tqdm=True,
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        **methods.trainer_arguments(config, device, precision, log),
        **methods.sft_arguments(config),
    )


def _probe_callback(config: cfg.RunConfig, run_dir: Path, stage: str, tokenizer, data: tuple, rewards, sharded: bool):
    """The callback that answers the probe prompts every probe_steps steps (with each reward's score under GRPO),
    or None when probes are off or cannot run (sharded weights; a stage whose model does not write answers)."""
    from studio.train import grpo, stages
    from studio.train.probes import ProbeCallback, choose_probes

    t = config.train
    train_dataset, eval_dataset, train_rows, val_rows = data
    if t.probe_steps <= 0 or not distributed.is_main_process():
        return None
    if sharded:
        log(f"probe generations are off with {t.strategy}: the weights are sharded over the processes")
        return None
    if stage == "grpo":
        probes, score = grpo.grpo_probes(t.probe_prompts, train_dataset, eval_dataset, rewards)
        return ProbeCallback(run_dir, tokenizer, probes, t.probe_steps, config.stage.grpo_max_completion_len, score)
    if stages.can_probe(stage, tokenizer):
        return ProbeCallback(run_dir, tokenizer, choose_probes(t.probe_prompts, train_rows, val_rows), t.probe_steps)
    return None


def train(workspace: Workspace, run_dir: Path, config: cfg.RunConfig, stop: threading.Event) -> dict:
    """Run the training described by `config` in `run_dir`; returns the final status fields to record."""
    import datasets
    import torch
    import transformers
    from trl import SFTTrainer

    from studio.train import grpo, methods, stages
    from studio.train.callbacks import EarlyStopCallback, MetricsCallback, SavePhaseCallback, StopCallback

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    _limit_cpu_threads(torch)
    torch.manual_seed(config.train.seed)
    resume_from = run_outputs.resume_checkpoint(run_dir)

    source = fetch_model(workspace, run_dir, config.model.model)
    stage = stages.stage_of(config)
    tokenizer, *data = _tokenizer_and_data(workspace, run_dir, config, source, stage)
    train_dataset, eval_dataset, _train_rows, _val_rows = data
    model, _ = (stages.load_reward_model if stage == "rm" else _load_model)(run_dir, source, config)
    device = hardware.torch_device()
    precision = methods.choose_precision(config, device)
    log(f"loaded {sum(p.numel() for p in model.parameters()):,} parameters on {device}")
    if stop.is_set() and distributed.world_size() == 1:  # several ranks stop together, at a step (StopCallback)
        return {"state": STOPPED, "phase": "stopped before training started", "stopped_at_step": 0}
    processes = distributed.world_size()
    if processes > 1:
        log(distributed.strategy_note(config, device == "cuda", processes))
    update_status(run_dir, processes=processes, strategy=config.train.strategy,
                  effective_batch=distributed.effective_batch(config, processes))

    t = config.train
    evaluate = eval_dataset is not None
    args = _training_arguments(run_dir, config, device, precision, evaluate)
    main = distributed.is_main_process()  # only rank 0 writes metrics, probe answers and the save phase
    metrics, stopper, early = MetricsCallback(run_dir), StopCallback(run_dir, stop), EarlyStopCallback(run_dir, t.early_stop_patience)
    callbacks = ([metrics] if main else []) + ([stopper, early] if evaluate else [stopper])
    sharded = processes > 1 and t.strategy in ("fsdp", "deepspeed_zero3") and device == "cuda"
    rewards = grpo.reward_functions(workspace, config) if stage == "grpo" else None
    probe = _probe_callback(config, run_dir, stage, tokenizer, tuple(data), rewards, sharded)
    callbacks += ([probe] if probe else []) + ([SavePhaseCallback(run_dir)] if main else [])
    trainer_kwargs = {"model": model, "train_dataset": train_dataset, "eval_dataset": eval_dataset,
                      "processing_class": tokenizer, "peft_config": methods.peft_config(config, model.config.model_type),
                      "callbacks": callbacks}
    if rewards is not None:
        trainer_kwargs["reward_funcs"] = rewards
        log(f"rewards: {', '.join(f'{f.__name__} × {w:g}' for f, w in zip(rewards, grpo.reward_weights(config.stage) or [1.0] * len(rewards)))}")
    if stage == "sft":
        trainer = SFTTrainer(args=args, **trainer_kwargs)
    else:
        trainer = stages.build_trainer(config, args, **trainer_kwargs)
        log(stages.stage_note(stage, trainer_kwargs["peft_config"] is not None))
    methods.finish_setup(trainer, config, run_dir, log)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    log(f"training {trainable:,} parameters ({config.method.method}) for {trainer.args.max_steps if t.max_steps else t.epochs} {'steps' if t.max_steps else 'epochs'}")
    if resume_from is not None:
        log(f"resuming from {resume_from.name}")
    update_status(run_dir, phase="training")
    if t.dry_run:
        dry_run.start(trainer)
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if t.dry_run:  # measured, nothing to save
        return dry_run.finish(run_dir, trainer)
    return run_outputs.save_result(trainer, result, run_dir, config, stage, tokenizer, (metrics, stopper, early), evaluate)


def run_worker(workspace: Workspace, run_dir: Path) -> int:
    """Run the run in `run_dir` in this process; returns the exit code (0 completed or stopped, 1 failed)."""
    from studio.train.system import SystemSampler

    stop = threading.Event()
    _install_stop_signal(stop)
    process = psutil.Process()
    if not _under_tracked_launcher(run_dir, process):
        update_status(run_dir, pid=process.pid, pid_started=process.create_time())
    try:
        config = cfg.check(cfg.read_config(run_dir / CONFIG_FILE))
        if not distributed.is_main_process():
            return _run_other_rank(workspace, run_dir, config, stop)
        with _training_turn(workspace, run_dir, stop) as my_turn:
            if not my_turn:
                update_status(run_dir, state=STOPPED, phase="stopped while queued", ended=time.time())
                return 0
            update_status(run_dir, drop=("error", "ended", "awaiting_machines"), state=RUNNING, phase="starting", started=time.time())
            with SystemSampler(run_dir):
                final = train(workspace, run_dir, dry_run.prepare(config) if config.train.dry_run else config, stop)
            update_status(run_dir, **final, ended=time.time(), progress=None)  # recorded before the next run starts
    except Exception as error:  # the worker's boundary: record why it failed, then exit non-zero
        log("training failed:\n" + traceback.format_exc())
        out_of_memory = dry_run.failure_fields(run_dir, error)  # "won't fit" with the estimate's fixes
        if out_of_memory is not None and distributed.world_size() == 1:
            update_status(run_dir, **out_of_memory, ended=time.time(), progress=None)
            return 0 if out_of_memory["state"] == COMPLETED else 1
        rank = f"rank {distributed.rank()} of {distributed.world_size()}: " if distributed.world_size() > 1 else ""
        record_failure(run_dir, rank + (disk_full_message(error, run_dir) or f"{type(error).__name__}: {error}"))
        return 1
    log(f"run {final['state']}")
    return 0


def _under_tracked_launcher(run_dir: Path, process: psutil.Process) -> bool:
    """True when the pid in status.json is one of this process's parents: the studio started `accelerate launch`,
    which it tracks (stop, kill, liveness), so rank 0 must not put its own pid there."""
    pid = read_status(run_dir).get("pid")
    return bool(pid) and any(parent.pid == int(pid) for parent in process.parents())


def _run_other_rank(workspace: Workspace, run_dir: Path, config: cfg.RunConfig, stop: threading.Event) -> int:
    """A rank other than 0: wait until rank 0 has its turn in the training queue (status running), then train
    beside it. It writes no run files; a stop while queued ends it too. Returns the exit code."""
    began = time.time()
    while (status := read_status(run_dir)).get("state") != RUNNING:
        ended_since = status.get("state") in FINAL_STATES and float(status.get("updated") or 0) > began
        if ended_since or stop.is_set() or (run_dir / STOP_FILE).exists():  # (an older final state is not for us)
            return 0
        time.sleep(0.5)
    log(f"training as rank {distributed.rank()} of {distributed.world_size()}")
    train(workspace, run_dir, config, stop)
    return 0


def main(workspace: Workspace, config_path: str) -> int:
    """Entry point of `python -m studio train --config PATH`: the run folder is the config file's folder."""
    path = workspace.confine(config_path)
    run_dir = path.parent
    if path.name != CONFIG_FILE or run_dir.parent != workspace.runs_dir:
        print(f"error: {config_path} is not a run's {CONFIG_FILE} in {workspace.runs_dir}", file=sys.stderr)
        return 2
    os.chdir(run_dir)
    return run_worker(workspace, run_dir)
