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
import random
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
from studio.models.catalog import is_hub_model, resolve_model
from studio.train import queue
from studio.train.phases import Progress
from studio.train.status import COMPLETED, FAILED, QUEUED, RUNNING, STOPPED, read_status, update_status
from studio.workspace import ADAPTER_DIR, CHECKPOINTS_DIR, CONFIG_FILE, FULL_MODEL_DIR, STOP_FILE, Workspace

# Files a fine-tune never needs: other frameworks' weights, quantised copies, the original checkpoints.
HUB_IGNORE = ["*.onnx", "*.onnx_data", "onnx/*", "*.msgpack", "*.h5", "*.ot", "*.tflite", "*.gguf", "*.pth",
              "original/*", "openvino/*", "coreml/*"]


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


def split_indices(n_rows: int, val_size: float, seed: int) -> tuple[list[int], list[int]]:
    """(training row indices, validation row indices): `val_size` rows (a fraction below 1, or a count)
    picked at random with `seed`; both lists in file order. ValueError when no training row would be left."""
    if val_size <= 0:
        return list(range(n_rows)), []
    n_val = int(val_size) if val_size >= 1 else max(1, round(n_rows * val_size))
    if n_val >= n_rows:
        raise ValueError(f"val_size={val_size:g} holds out {n_val} of the {n_rows} rows, leaving none to train on; lower val_size")
    held_out = set(random.Random(seed).sample(range(n_rows), n_val))
    return [i for i in range(n_rows) if i not in held_out], sorted(held_out)


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


def _tokenize(run_dir: Path, tokenizer, conversations: list, label: str) -> list:
    """Tokenise every conversation, with rows done/total in status.json's progress (phase tokenize)."""
    encoded = []
    with Progress(run_dir, "tokenize", label, total=len(conversations), unit="rows") as progress:
        for conversation in conversations:
            encoded.append(tokenize_conversation(tokenizer, conversation))
            progress.update(len(encoded), force=len(encoded) == len(conversations))
    return encoded


def _build_datasets(workspace: Workspace, run_dir: Path, config: cfg.RunConfig, tokenizer):
    """(train dataset, validation dataset or None, train conversations, validation conversations)."""
    from datasets import Dataset

    path = resolve_dataset(workspace, config.data.dataset)
    loaded = load_dataset_file(path)
    log(f"dataset {path.name}: {len(loaded)} conversations (format {loaded.format})")
    train_idx, val_idx = split_indices(len(loaded), config.data.val_size, config.train.seed)
    encoded = _tokenize(run_dir, tokenizer, loaded.conversations, f"Tokenising {path.name}")
    lengths = sorted(len(e.input_ids) for e in encoded)
    truncated = sum(1 for n in lengths if n > config.train.cutoff_len)
    log(f"tokens per row: median {lengths[len(lengths) // 2]}, max {lengths[-1]}; {truncated} rows longer than cutoff_len {config.train.cutoff_len} are truncated")

    def dataset(indices):
        return Dataset.from_dict({"input_ids": [encoded[i].input_ids for i in indices], "labels": [encoded[i].labels for i in indices]})

    if val_idx:
        log(f"holding out {len(val_idx)} rows for validation, training on {len(train_idx)}")
    return (dataset(train_idx), dataset(val_idx) if val_idx else None,
            [loaded.conversations[i] for i in train_idx], [loaded.conversations[i] for i in val_idx])


def _load_model(run_dir: Path, source: str, config: cfg.RunConfig):
    import torch
    from transformers import AutoModelForCausalLM

    use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if use_bf16 else torch.float32
    update_status(run_dir, phase="loading the model")
    with Progress(run_dir, "load", f"Loading {config.model.model}", total=None, unit="B"):
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, trust_remote_code=config.model.trust_remote_code)
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


def _resume_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint this worker continues from, when the run was resumed (status names it)."""
    name = read_status(run_dir).get("resumed_from")
    if not name:
        return None
    path = run_dir / CHECKPOINTS_DIR / name
    if not (path / "trainer_state.json").is_file():
        raise FileNotFoundError(f"checkpoint {name} to resume from is missing or incomplete in {run_dir / CHECKPOINTS_DIR}")
    return path


def train(workspace: Workspace, run_dir: Path, config: cfg.RunConfig, stop: threading.Event) -> dict:
    """Run the training described by `config` in `run_dir`; returns the final status fields to record."""
    import datasets
    import torch
    import transformers
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from studio.train.callbacks import EarlyStopCallback, MetricsCallback, SavePhaseCallback, StopCallback
    from studio.train.probes import ProbeCallback, choose_probes

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    torch.manual_seed(config.train.seed)
    resume_from = _resume_checkpoint(run_dir)

    source = fetch_model(workspace, run_dir, config.model.model)
    update_status(run_dir, phase="loading tokenizer and data")
    log(f"model {config.model.model} from {source}")
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=config.model.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_dataset, eval_dataset, train_rows, val_rows = _build_datasets(workspace, run_dir, config, tokenizer)

    model, use_bf16 = _load_model(run_dir, source, config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    log(f"loaded {sum(p.numel() for p in model.parameters()):,} parameters on {device}")
    if stop.is_set():
        return {"state": STOPPED, "phase": "stopped before training started", "stopped_at_step": 0}

    t = config.train
    evaluate = eval_dataset is not None
    args = SFTConfig(
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
        save_strategy="steps" if t.save_steps > 0 else "no",
        save_steps=t.save_steps if t.save_steps > 0 else 500,
        save_total_limit=t.save_total_limit,
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
    early = EarlyStopCallback(run_dir, t.early_stop_patience)
    callbacks = [metrics, stopper, early] if evaluate else [metrics, stopper]
    if t.probe_steps > 0:
        callbacks.append(ProbeCallback(run_dir, tokenizer, choose_probes(t.probe_prompts, train_rows, val_rows), t.probe_steps))
    callbacks.append(SavePhaseCallback(run_dir))
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=_peft_config(config),
        callbacks=callbacks,
    )
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    log(f"training {trainable:,} parameters ({config.method.method}) for {trainer.args.max_steps if t.max_steps else t.epochs} {'steps' if t.max_steps else 'epochs'}")
    if resume_from is not None:
        log(f"resuming from {resume_from.name}")
    update_status(run_dir, phase="training")
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    out_dir = run_dir / (ADAPTER_DIR if config.method.method == "lora" else FULL_MODEL_DIR)
    update_status(run_dir, phase="saving")
    with Progress(run_dir, "save", f"Saving the {'adapter' if out_dir.name == ADAPTER_DIR else 'model'}",
                  total=trainer.state.max_steps, unit="steps", done=trainer.state.global_step):
        trainer.save_model(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
        shutil.copyfile(run_dir / CONFIG_FILE, out_dir / "studio_config.yaml")
    log(f"saved {config.method.method} weights, tokenizer and chat template to {out_dir}")
    state = STOPPED if stopper.stopped_at is not None else COMPLETED
    phase = "stopped and saved" if state == STOPPED else "finished"
    if early.stopped:
        phase = f"stopped early: the validation loss did not improve for {t.early_stop_patience} evaluation{'s' if t.early_stop_patience > 1 else ''}"
        log(phase)
    return {
        "state": state,
        "phase": phase,
        "final_loss": metrics.last_loss,
        "mean_loss": round(float(result.training_loss), 6),
        "steps": trainer.state.global_step,
        "output": out_dir.name,
        **({"stopped_at_step": stopper.stopped_at} if state == STOPPED else {}),
        **({"early_stopped": True} if early.stopped else {}),
        **({"best_eval_loss": early.best, "eval_loss": metrics.last_eval_loss} if evaluate else {}),
    }


def run_worker(workspace: Workspace, run_dir: Path) -> int:
    """Run the run in `run_dir` in this process; returns the exit code (0 completed or stopped, 1 failed)."""
    from studio.train.system import SystemSampler

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
            with SystemSampler(run_dir):
                final = train(workspace, run_dir, config, stop)
            update_status(run_dir, **final, ended=time.time(), progress=None)  # recorded before the next run starts
    except Exception as error:  # the worker's boundary: record why it failed, then exit non-zero
        log("training failed:\n" + traceback.format_exc())
        cause = f"{type(error).__name__}: {error}"
        if "out of memory" in str(error).lower():
            cause += " — lower batch_size or cutoff_len, or use LoRA instead of full fine-tuning"
        update_status(run_dir, state=FAILED, phase="failed", error=cause, ended=time.time(), progress=None)
        return 1
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
