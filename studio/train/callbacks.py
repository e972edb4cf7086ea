"""TrainerCallbacks the worker adds to TRL's trainer: live metrics to JSONL, a graceful stop, early stopping,
and the `save` phase in status.json while a checkpoint is written.

A resumed run appends to the same files: rows for steps that an earlier attempt already logged (the steps
between the checkpoint and where it was killed) are not written again, so steps in metrics.jsonl only grow.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

from transformers import TrainerCallback

from studio.train.log import log
from studio.train.phases import Progress
from studio.train.status import update_status
from studio.workspace import METRICS_FILE, STOP_FILE, append_jsonl, last_row

# Stage metrics worth a chart: TRL's log key -> the name in metrics.jsonl. DPO, ORPO and KTO log rewards/* (how
# often and by how much the chosen answer beats the rejected one), a reward model accuracy/margin, KTO its KL.
STAGE_METRICS = {"rewards/accuracies": "reward_accuracy", "accuracy": "reward_accuracy",
                 "rewards/margins": "reward_margin", "margin": "reward_margin", "kl": "kl",
                 # GRPO: the weighted total reward of the sampled answers (mean and spread), their length, the
                 # share of tokens whose update was clipped
                 "reward": "reward", "reward_std": "reward_std", "completions/mean_length": "completion_length",
                 "clip_ratio/region_mean": "clip_ratio", "frac_reward_zero_std": "reward_flat_share"}
FLAT_REWARD_STEPS = 3  # logged GRPO steps in a row with nothing to learn from before the log says so


def stage_metrics(logs: dict) -> dict[str, float]:
    """The stage metrics in a trainer's `logs` under their metrics.jsonl names: STAGE_METRICS, and GRPO's
    per-function rewards (`rewards/NAME/mean` and `/std` become `reward/NAME` and `reward_std/NAME`)."""
    found = {name: logs[key] for key, name in STAGE_METRICS.items() if key in logs}
    for key, value in logs.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "rewards" and parts[2] in ("mean", "std"):
            found[f"{'reward' if parts[2] == 'mean' else 'reward_std'}/{parts[1]}"] = value
    return {name: round(float(value), 6) for name, value in found.items() if value is not None and math.isfinite(value)}


class MetricsCallback(TrainerCallback):
    """Appends to metrics.jsonl one JSON line per logging step: step, total_steps, epoch, loss, learning_rate,
    grad_norm, tokens_per_s, elapsed and eta (seconds), plus what the stage's trainer reports (stage_metrics);
    and one line per evaluation: step, eval_loss (GRPO: eval_reward, eval_reward/NAME), elapsed.

    On a resumed run, elapsed continues from the last row written before."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / METRICS_FILE
        previous = last_row(self.path)
        self.elapsed_before = float(previous.get("elapsed") or 0.0) if previous else 0.0
        train_row, eval_row = last_row(self.path, "loss"), last_row(self.path, "eval_loss")
        self.logged_step = int(train_row["step"]) if train_row else 0
        self.evaluated_step = int(eval_row["step"]) if eval_row else -1
        self.started = self.last_time = time.monotonic()
        self.first_step = 0
        self.last_tokens = 0.0
        self.last_loss: float | None = float(train_row["loss"]) if train_row else None
        self.last_eval_loss: float | None = None
        self.flat_steps = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.last_time = time.monotonic()
        self.first_step = state.global_step

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "eval_loss" in logs and state.global_step > self.evaluated_step:
            self.evaluated_step = state.global_step
            self.last_eval_loss = float(logs["eval_loss"])
            scores = {f"eval_{k}": v for k, v in stage_metrics({k.removeprefix("eval_"): v for k, v in logs.items()}).items()
                      if k.startswith("reward")}  # GRPO: the rewards of answers to the validation prompts
            append_jsonl(self.path, {"step": state.global_step, "eval_loss": self.last_eval_loss, **scores,
                                     "elapsed": round(self.elapsed(), 2)})
            return
        if "loss" not in logs or state.global_step == 0:
            return
        now = time.monotonic()
        tokens = float(logs.get("num_tokens", 0.0))
        window = max(now - self.last_time, 1e-6)
        tokens_per_s = (tokens - self.last_tokens) / window if tokens else None
        self.last_time, self.last_tokens = now, tokens
        if state.global_step <= self.logged_step:  # an earlier attempt of this run already logged this step
            return
        self.logged_step = state.global_step
        self.last_loss = float(logs["loss"])
        total = max(state.max_steps, state.global_step)
        done_here = max(state.global_step - self.first_step, 1)
        eta = (now - self.started) / done_here * (total - state.global_step)
        row = {
            "step": state.global_step,
            "total_steps": total,
            "epoch": round(float(state.epoch or 0.0), 4),
            "loss": self.last_loss,
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_per_s": round(tokens_per_s, 1) if tokens_per_s is not None else None,
            "elapsed": round(self.elapsed(), 2),
            "eta": round(eta, 2),
        }
        row.update(stage_metrics(logs))
        append_jsonl(self.path, row)
        self._note_flat_rewards(row.get("reward_flat_share"))

    def _note_flat_rewards(self, flat_share: float | None) -> None:
        """Say in the log, once, when a GRPO run's answers to every prompt have all scored the same for a few
        steps: with no difference between them there is nothing to learn, and the loss stays at 0."""
        self.flat_steps = self.flat_steps + 1 if flat_share == 1 else 0
        if self.flat_steps == FLAT_REWARD_STEPS:
            log(f"for {FLAT_REWARD_STEPS} steps every prompt's answers got the same reward, so GRPO had nothing to learn "
                "from: add a reward the model can partly meet (format, length), sample more answers (grpo_generations) "
                "or more varied ones (grpo_temperature), or start from a model that sometimes gets it right")


class StopCallback(TrainerCallback):
    """Ends training after the current step when a stop was requested (SIGTERM sets `event`, or a STOP
    file appears in the run folder); the trainer then returns normally and the worker saves. When the run
    writes checkpoints, one is saved at the step it stopped on, so resuming continues from exactly there."""

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
        if _on_any_rank(self.requested(), args.device) and self.stopped_at is None:
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
            self.stopped_at = state.global_step
        return control


def _on_any_rank(flag: bool, device) -> bool:
    """True when `flag` is true on any process of a multi-process run (each rank reads the STOP file at a slightly
    different moment; they must all stop at the same step, or the others would wait for it forever)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    agreed = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
    return bool(agreed.item())


class EarlyStopCallback(TrainerCallback):
    """Stops training when eval_loss has not improved for `patience` evaluations in a row; records the best
    eval loss in status.json after every evaluation. On a resumed run it recounts from the trainer's log
    history, so patience carries over. (With keep_best, the trainer loads the best checkpoint before the result is saved.)"""

    def __init__(self, run_dir: Path, patience: int):
        self.run_dir = run_dir
        self.patience = patience
        self.best: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.stopped = False

    def _see(self, step: int, loss: float) -> None:
        if self.best is None or loss < self.best:
            self.best, self.best_step, self.bad_evals = loss, step, 0
        else:
            self.bad_evals += 1

    def on_train_begin(self, args, state, control, **kwargs):
        for entry in state.log_history:  # filled in from the checkpoint when resuming
            if "eval_loss" in entry:
                self._see(int(entry.get("step", 0)), float(entry["eval_loss"]))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics or "eval_loss" not in metrics:
            return control
        self._see(state.global_step, float(metrics["eval_loss"]))
        update_status(self.run_dir, best_eval_loss=self.best, best_eval_step=self.best_step)
        if self.patience and self.bad_evals >= self.patience and not control.should_training_stop:
            self.stopped = True
            control.should_training_stop = True
        return control


class SavePhaseCallback(TrainerCallback):
    """Shows phase `save` in status.json's progress while the trainer writes a checkpoint. Add it last, so
    every other callback has already decided whether this step saves."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.progress: Progress | None = None

    def _begin(self, state, control) -> None:
        if control.should_save and self.progress is None:
            update_status(self.run_dir, phase=f"saving checkpoint-{state.global_step}")
            self.progress = Progress(self.run_dir, "save", f"Saving checkpoint-{state.global_step}",
                                     total=state.max_steps, unit="steps", done=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if not control.should_evaluate:  # otherwise evaluation runs first; on_evaluate begins the save phase
            self._begin(state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        if not control.should_evaluate:
            self._begin(state, control)

    def on_evaluate(self, args, state, control, **kwargs):
        self._begin(state, control)

    def on_save(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.finish()
            self.progress = None
            update_status(self.run_dir, phase="training")
