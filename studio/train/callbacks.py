"""TrainerCallbacks the worker adds to TRL's trainer: live metrics to JSONL and a graceful stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from transformers import TrainerCallback

from studio.workspace import METRICS_FILE, STOP_FILE, append_jsonl


class MetricsCallback(TrainerCallback):
    """Appends one JSON line per logging step to metrics.jsonl: step, total_steps, epoch, loss,
    learning_rate, grad_norm, tokens_per_s, elapsed and eta (seconds)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / METRICS_FILE
        self.started = time.monotonic()
        self.last_time = self.started
        self.last_tokens = 0.0
        self.last_loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.last_time = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs or state.global_step == 0:
            return
        now = time.monotonic()
        elapsed = now - self.started
        tokens = float(logs.get("num_tokens", 0.0))
        window = max(now - self.last_time, 1e-6)
        tokens_per_s = (tokens - self.last_tokens) / window if tokens else None
        self.last_time, self.last_tokens = now, tokens
        self.last_loss = float(logs["loss"])
        total = max(state.max_steps, state.global_step)
        eta = elapsed / state.global_step * (total - state.global_step)
        row = {
            "step": state.global_step,
            "total_steps": total,
            "epoch": round(float(state.epoch or 0.0), 4),
            "loss": self.last_loss,
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_per_s": round(tokens_per_s, 1) if tokens_per_s is not None else None,
            "elapsed": round(elapsed, 2),
            "eta": round(eta, 2),
        }
        append_jsonl(self.path, row)


class StopCallback(TrainerCallback):
    """Ends training after the current step when a stop was requested (SIGTERM sets `event`, or a STOP
    file appears in the run folder); the trainer then returns normally and the worker saves."""

    def __init__(self, run_dir: Path, event: threading.Event):
        self.stop_file = run_dir / STOP_FILE
        self.event = event
        self.stopped_at: int | None = None

    def requested(self) -> bool:
        """True once a stop has been asked for, by signal or by the STOP file."""
        if self.stop_file.exists():
            self.event.set()
        return self.event.is_set()

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested():
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control
