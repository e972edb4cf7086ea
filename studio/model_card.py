"""The model card (README.md) of an exported run, and pushing an export to the Hugging Face Hub.

The card says what a reader needs to trust and reuse the model: the base model, the data it was trained on,
the hyperparameters, the loss curve (an image and a short table) and the evaluation
results. The Hub token comes only from the environment or `hf auth login`; it is never written anywhere.
"""

from __future__ import annotations

from pathlib import Path

from studio import config as cfg
from studio import run_folder
from studio.train.status import read_status
from studio.workspace import (
    METRICS_FILE,
    Workspace,
    read_jsonl_from,
)

CARD_FILE = "README.md"
LOSS_IMAGE = "loss.png"
LOSS_TABLE_ROWS = 12
HYPERPARAMETERS = ("method", "stage", "lora_rank", "lora_alpha", "lora_dropout", "lora_targets", "learning_rate", "epochs",
                   "max_steps", "batch_size", "grad_accum", "cutoff_len", "lr_scheduler", "warmup_ratio", "seed")


class PushError(ValueError):
    """The export could not be pushed to the Hub, with what to do."""


def _data_summary(workspace: Workspace, config: cfg.RunConfig) -> list[str]:
    from studio.data.prepare import load_for_config

    lines = [f"- dataset: `{config.data.dataset}`"]
    try:
        dataset = load_for_config(workspace, config)
    except (OSError, ValueError) as error:
        return [*lines, f"- (not readable when this card was made: {error})"]
    systems = sum(1 for c in dataset.conversations if c and c[0]["role"] == "system")
    lines += [f"- format: {dataset.format} ({dataset.kind}), {len(dataset.examples)} rows",
              f"- rows with a system prompt: {systems}"]
    if config.data.val_file:
        lines.append(f"- validation file: `{config.data.val_file}`")
    elif config.data.val_size:
        lines.append(f"- validation: {config.data.val_size:g} of the rows held out")
    return lines


def _loss_section(run_dir: Path, out_dir: Path) -> list[str]:
    """The training-loss curve as loss.png in `out_dir` (linked from the card), then a short table of it."""
    rows, _ = read_jsonl_from(run_dir / METRICS_FILE)
    losses = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
    if not losses:
        return ["No training loss was logged."]
    _draw_loss(losses, out_dir / LOSS_IMAGE)
    every = max(1, len(losses) // LOSS_TABLE_ROWS)
    shown = losses[::every] + ([losses[-1]] if (len(losses) - 1) % every else [])
    return [f"![training loss]({LOSS_IMAGE})", "",
            "| step | training loss |", "|---:|---:|", *(f"| {s} | {v:.4f} |" for s, v in shown)]


def _draw_loss(losses: list[tuple[int, float]], path: Path) -> None:
    """Write the loss curve as a PNG with matplotlib's Agg backend (no display or browser needed, unlike plotly's
    image export)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.6), dpi=100)
    axes = figure.subplots()
    axes.plot([s for s, _ in losses], [v for _, v in losses], linewidth=1.2)
    axes.set(xlabel="step", ylabel="training loss")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")


def _eval_section(run_dir: Path) -> list[str]:
    rows, _ = read_jsonl_from(run_dir / METRICS_FILE)
    evals = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    status = read_status(run_dir)  # a damaged status.json gives only its usable keys
    if not evals:
        lines = ["No validation set was used during training, so there is no validation loss curve."]
    else:
        lines = ["| step | validation loss |", "|---:|---:|", *(f"| {s} | {v:.4f} |" for s, v in evals)]
    if status.get("best_eval_loss") is not None:
        lines.append(f"\nBest validation loss: {status['best_eval_loss']:.4f}")
    return lines + _answer_scores(run_dir)


def _answer_scores(run_dir: Path) -> list[str]:
    """The latest completed evaluation (python -m studio eval, or the Evaluate tab): base vs tuned scores."""
    from studio.eval.job import latest_eval, read_scores

    folder = latest_eval(run_dir, finished_only=True)
    scores = read_scores(folder) if folder else None
    if not scores:
        return []

    def cell(side: str, key: str, digits: int) -> str:
        value = scores[side].get(key)
        return "-" if value is None else f"{value:.{digits}f}"

    names = (("loss", "loss on the reference answers", 4), ("perplexity", "perplexity", 2),
             ("exact_match", "exact match %", 1), ("rouge_l", "ROUGE-L F", 1), ("bleu", "BLEU", 1))
    settings = scores.get("settings", {})
    return ["", f"### Answers scored against references ({scores['rows']} rows of {scores['source']})", "",
            f"Greedy answers of up to {settings.get('max_new_tokens', '?')} new tokens; evaluation `{folder.name}`.", "",
            "| metric | base model | this model |", "|---|---:|---:|",
            *(f"| {label} | {cell('base', key, d)} | {cell('tuned', key, d)} |" for key, label, d in names)]


def model_card(workspace: Workspace, run_dir: Path, out_dir: Path, kind: str) -> str:
    """The README.md text for an export of `kind` ("adapter", "merged" or "model") of the run in `run_dir`."""
    config = run_folder.load_config(run_dir)
    flat = cfg.to_flat(config)
    status = read_status(run_dir)  # a damaged status.json gives only its usable keys
    base = config.model.model
    tags = ["fine-tuning-studio", config.stage.stage, config.method.method]
    front = ["---", f"base_model: {base}", f"library_name: {'peft' if kind == 'adapter' else 'transformers'}",
             "pipeline_tag: text-generation", "tags:", *(f"- {t}" for t in tags), "---"]
    what = {"adapter": f"a {config.method.method} adapter for", "merged": "a merged fine-tune of",
            "model": f"a {config.method.method} fine-tune of"}[kind]
    final = f"{status['final_loss']:.4f}" if status.get("final_loss") is not None else "-"
    body = [f"# {config.run_name or run_dir.name}", "",
            (f"This is {what} **{base}**, trained with Fine-tuning Studio (run `{run_dir.name}`, "
             f"{status.get('steps', '?')} steps, final training loss {final})."), "",
            "## Data", "", *_data_summary(workspace, config), "",
            "## Hyperparameters", "", "| setting | value |", "|---|---|",
            *(f"| {k} | {flat[k]} |" for k in HYPERPARAMETERS if k in flat), "",
            "## Training loss", "", *_loss_section(run_dir, out_dir), "",
            "## Evaluation", "", *_eval_section(run_dir), "",
            "## Use", "", ("The tokenizer and chat template this model was trained with are saved beside the weights; "
                           "SERVING.md has the vLLM and SGLang commands."), ""]
    return "\n".join(front + [""] + body)


def write_model_card(workspace: Workspace, run_dir: Path, out_dir: Path, kind: str) -> Path:
    """Write the model card to `out_dir`/README.md (and the loss image when plotly can draw it); returns its path."""
    path = out_dir / CARD_FILE
    path.write_text(model_card(workspace, run_dir, out_dir, kind), encoding="utf-8")
    return path


def _upload_folder(folder: Path, repo: str) -> str:
    """Create the Hub model repo (if needed) and upload `folder` to it; returns the repo URL."""
    from huggingface_hub import HfApi

    api = HfApi()  # the token comes from HF_TOKEN or the saved login, never from us
    api.create_repo(repo, repo_type="model", exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                      commit_message="Upload from Fine-tuning Studio")
    return f"https://huggingface.co/{repo}"


def push_to_hub(out_dir: Path, repo: str) -> str:
    """Push an export folder (with its model card) to the Hub repo `repo` ("user/name"); returns its URL.
    PushError when there is no token, no network or the Hub refuses."""
    import os

    from huggingface_hub import get_token

    if repo.count("/") != 1 or not all(repo.split("/")):
        raise PushError(f"{repo!r} is not a Hub repo id; write it as user/name")
    if not get_token():
        raise PushError("no Hugging Face token found: run `hf auth login` or set HF_TOKEN in the environment, then push "
                        "again (the token is never saved by the studio)")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise PushError("HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it on a machine with internet access")
    try:
        return _upload_folder(out_dir, repo)
    except Exception as error:  # network and Hub errors come from several HTTP libraries: reported, not swallowed
        raise PushError(f"could not push to {repo}: {error}. Check the network, the token's write access and the repo "
                        f"name; the export is complete in {out_dir}") from error
