"""The training worker: `python -m studio train --config RUN_DIR/config.yaml` runs one run, start to end.

It waits its turn for the training lock (status `queued`), then: tokenises the dataset with the studio's
own assistant-only masks, loads the model, wraps it with LoRA (PEFT) unless the method is `full`, and
trains with TRL's SFTTrainer. Metrics, status and the log go to files in the run folder only. SIGTERM or
a STOP file ends training after the current step; what was trained is saved either way.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import psutil

from studio import config as cfg
from studio.data.loading import load_dataset_file, resolve_dataset
from studio.data.masking import tokenize_conversation
from studio.models.catalog import resolve_model
from studio.train.status import COMPLETED, FAILED, QUEUED, RUNNING, STOPPED, update_status
from studio.workspace import ADAPTER_DIR, CONFIG_FILE, FULL_MODEL_DIR, STOP_FILE, Workspace


def log(message: str) -> None:
    """One timestamped line to the worker's output (train.log when launched by the studio)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _install_stop_signal(event: threading.Event) -> None:
    def handle(signum, _frame):
        log(f"received {signal.Signals(signum).name}: stopping after the current step")
        event.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@contextmanager
def _training_turn(workspace: Workspace, run_dir: Path, stop: threading.Event):
    """Hold the workspace's training lock for the body; waits (status queued) while another run holds it.

    Yields False if a stop was requested while waiting. The OS drops the lock when this process ends,
    however it ends, so a crashed worker never blocks the queue."""
    with open(workspace.training_lock, "a+") as handle:
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    log("another run is training: this run is queued and starts when it finishes")
                    update_status(run_dir, state=QUEUED, phase="waiting for the running training to finish")
                    announced = True
                if stop.is_set() or (run_dir / STOP_FILE).exists():
                    yield False
                    return
                time.sleep(0.5)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_dataset(workspace: Workspace, config: cfg.RunConfig, tokenizer):
    from datasets import Dataset

    path = resolve_dataset(workspace, config.data.dataset)
    loaded = load_dataset_file(path)
    log(f"dataset {path.name}: {len(loaded)} conversations (format {loaded.format})")
    encoded = [tokenize_conversation(tokenizer, conversation) for conversation in loaded.conversations]
    lengths = sorted(len(e.input_ids) for e in encoded)
    truncated = sum(1 for n in lengths if n > config.train.cutoff_len)
    log(f"tokens per row: median {lengths[len(lengths) // 2]}, max {lengths[-1]}; {truncated} rows longer than cutoff_len {config.train.cutoff_len} are truncated")
    return Dataset.from_dict({"input_ids": [e.input_ids for e in encoded], "labels": [e.labels for e in encoded]})


def _load_model(source: str, config: cfg.RunConfig):
    import torch
    from transformers import AutoModelForCausalLM

    use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=dtype, trust_remote_code=config.model.trust_remote_code
    )
    return model, use_bf16


def _peft_config(config: cfg.RunConfig):
    if config.method.method != "lora":
        return None
    from peft import LoraConfig

    targets = config.method.lora_targets.strip()
    return LoraConfig(
        r=config.method.lora_rank,
        lora_alpha=config.method.lora_alpha,
        lora_dropout=config.method.lora_dropout,
        target_modules="all-linear" if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        task_type="CAUSAL_LM",
    )


def train(workspace: Workspace, run_dir: Path, config: cfg.RunConfig, stop: threading.Event) -> dict:
    """Run the training described by `config` in `run_dir`; returns the final status fields to record."""
    import datasets
    import torch
    import transformers
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from studio.train.callbacks import MetricsCallback, StopCallback

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    torch.manual_seed(config.train.seed)

    update_status(run_dir, phase="loading tokenizer and data")
    source = resolve_model(workspace, config.model.model)
    log(f"model {config.model.model} from {source}")
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=config.model.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_dataset = _build_dataset(workspace, config, tokenizer)

    update_status(run_dir, phase="loading the model")
    model, use_bf16 = _load_model(source, config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    log(f"loaded {sum(p.numel() for p in model.parameters()):,} parameters on {device}")
    if stop.is_set():
        return {"state": STOPPED, "phase": "stopped before training started", "stopped_at_step": 0}

    t = config.train
    args = SFTConfig(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps > 0 else -1,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        max_length=t.cutoff_len,
        seed=t.seed,
        logging_steps=t.logging_steps,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        bf16=use_bf16,
        dataloader_num_workers=0,
        # Recomputing activations saves GPU memory at ~30% more compute; on a CPU memory is not the limit.
        gradient_checkpointing=device == "cuda",
    )
    metrics = MetricsCallback(run_dir)
    stopper = StopCallback(run_dir, stop)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=_peft_config(config),
        callbacks=[metrics, stopper],
    )
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    log(f"training {trainable:,} parameters ({config.method.method}) for {trainer.args.max_steps if t.max_steps else t.epochs} {'steps' if t.max_steps else 'epochs'}")
    update_status(run_dir, phase="training")
    result = trainer.train()

    out_dir = run_dir / (ADAPTER_DIR if config.method.method == "lora" else FULL_MODEL_DIR)
    update_status(run_dir, phase="saving")
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    shutil.copyfile(run_dir / CONFIG_FILE, out_dir / "studio_config.yaml")
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    log(f"saved {config.method.method} weights, tokenizer and chat template to {out_dir}")
    state = STOPPED if stopper.stopped_at is not None else COMPLETED
    return {
        "state": state,
        "phase": "stopped and saved" if state == STOPPED else "finished",
        "final_loss": metrics.last_loss,
        "mean_loss": round(float(result.training_loss), 6),
        "steps": trainer.state.global_step,
        "output": out_dir.name,
        **({"stopped_at_step": stopper.stopped_at} if state == STOPPED else {}),
    }


def run_worker(workspace: Workspace, run_dir: Path) -> int:
    """Run the run in `run_dir` in this process; returns the exit code (0 completed or stopped, 1 failed)."""
    stop = threading.Event()
    _install_stop_signal(stop)
    process = psutil.Process()
    update_status(run_dir, pid=process.pid, pid_started=process.create_time())
    try:
        config = cfg.check(cfg.from_yaml((run_dir / CONFIG_FILE).read_text(encoding="utf-8")))
        with _training_turn(workspace, run_dir, stop) as my_turn:
            if not my_turn:
                update_status(run_dir, state=STOPPED, phase="stopped while queued", ended=time.time())
                return 0
            update_status(run_dir, state=RUNNING, phase="starting", started=time.time())
            final = train(workspace, run_dir, config, stop)
    except Exception as error:  # the worker's boundary: record why it failed, then exit non-zero
        log("training failed:\n" + traceback.format_exc())
        cause = f"{type(error).__name__}: {error}"
        if "out of memory" in str(error).lower():
            cause += " — lower batch_size or cutoff_len, or use LoRA instead of full fine-tuning"
        update_status(run_dir, state=FAILED, phase="failed", error=cause, ended=time.time())
        return 1
    update_status(run_dir, **final, ended=time.time())
    log(f"run {final['state']}")
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
