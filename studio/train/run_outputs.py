"""What a run leaves besides its metrics: when checkpoints are saved, which one a resumed run continues from and
which one is the result (the last step's or, with `keep_best`, the lowest validation loss), the saved result with its
final status, and the experiment tracker it also reports to."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from studio import config as cfg
from studio.train import distributed
from studio.train.log import log
from studio.train.phases import Progress
from studio.train.status import COMPLETED, STOPPED, read_status, update_status
from studio.workspace import ADAPTER_DIR, CHECKPOINTS_DIR, CONFIG_FILE


def checkpoint_arguments(t: cfg.TrainSection, evaluate: bool) -> dict:
    """When to save checkpoints, and whether the result is the best one: with `keep_best` and validation, a
    checkpoint is saved at every evaluation and the trainer loads the lowest-eval-loss one at the end."""
    if t.save_steps <= 0:
        if evaluate and t.keep_best:
            log("keep_best needs checkpoints and save_steps is 0: the result is the last step's weights")
        return {"save_strategy": "no"}
    arguments = {"save_strategy": "steps", "save_steps": t.save_steps, "save_total_limit": t.save_total_limit}
    if evaluate and t.keep_best:
        arguments.update(save_strategy="steps" if t.eval_steps > 0 else "epoch", save_steps=t.eval_steps or t.save_steps,
                         load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False)
    return arguments


TRACKER_PROJECT = "fine-tuning-studio"


def tracker_environment(run_dir: Path, reporter: str) -> str | None:
    """Point the experiment tracker `report_to` names at this run (TensorBoard's event files go into the run
    folder; the others get a project name unless the user set one) and return a line for the log."""
    if reporter == "tensorboard":
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")
        return f"reporting to TensorBoard too: {run_dir / 'tensorboard'} (tensorboard --logdir {run_dir.parent})"
    for variable in {"wandb": ("WANDB_PROJECT",), "trackio": ("TRACKIO_PROJECT",), "swanlab": ("SWANLAB_PROJ_NAME",),
                     "mlflow": ("MLFLOW_EXPERIMENT_NAME",)}.get(reporter, ()):
        os.environ.setdefault(variable, TRACKER_PROJECT)
        return f"reporting to {reporter} too (project {os.environ[variable]})"
    return None


def best_checkpoint_note(trainer) -> dict:
    """Status fields naming the checkpoint whose weights are the saved result, when the best one was kept."""
    best = trainer.state.best_model_checkpoint
    if not (trainer.args.load_best_model_at_end and best):
        return {}
    step = int(Path(best).name.rsplit("-", 1)[-1])
    log(f"kept the best checkpoint: step {step} (validation loss {trainer.state.best_metric:.4f}), not the last step")
    return {"kept_best_step": step}


def resume_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint this worker continues from, when the run was resumed (status names it)."""
    name = read_status(run_dir).get("resumed_from")
    if not name:
        return None
    path = run_dir / CHECKPOINTS_DIR / name
    if not (path / "trainer_state.json").is_file():
        raise FileNotFoundError(f"checkpoint {name} to resume from is missing or incomplete in {run_dir / CHECKPOINTS_DIR}")
    return path


def save_result(trainer, result, run_dir: Path, config: cfg.RunConfig, stage: str, tokenizer, watchers: tuple,
                evaluate: bool) -> dict:
    """Save what `trainer` trained (weights, `tokenizer`, the run's config) in the run folder and return the status
    fields to record; `watchers` are the run's (MetricsCallback, StopCallback, EarlyStopCallback)."""
    from studio.train import methods, stages

    metrics, stopper, early = watchers
    main = distributed.is_main_process()
    out_dir = run_dir / (stages.output_dir_name(stage) or methods.output_dir_name(config))
    update_status(run_dir, phase="saving")
    with Progress(run_dir, "save", f"Saving the {'adapter' if out_dir.name == ADAPTER_DIR else 'model'}",
                  total=trainer.state.max_steps, unit="steps", done=trainer.state.global_step):
        if main or trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:  # sharded weights are gathered by every rank
            methods.save_trained(trainer, out_dir, config, run_dir)
        if not main:
            return {"state": STOPPED if stopper.stopped_at is not None else COMPLETED}
        tokenizer.save_pretrained(str(out_dir))
        shutil.copyfile(run_dir / CONFIG_FILE, out_dir / "studio_config.yaml")
        if stage == "rm":
            stages.describe_reward_model(out_dir, config, run_dir.name)
    log(f"saved {config.method.method} weights, tokenizer and chat template to {out_dir}")
    t = config.train
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
        **best_checkpoint_note(trainer),
    }
