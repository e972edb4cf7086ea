"""The training stages beyond SFT, each a short recipe on a TRL trainer (SFT itself is the worker's own path).

    pt    continued pre-training on raw text       SFTTrainer on a `text` column (every token is trained)
    dpo   direct preference optimisation            DPOTrainer on prompt/chosen/rejected conversations
    orpo  odds-ratio preference optimisation        ORPOTrainer (trl.experimental): no reference model at all
    kto   answers labelled good or bad              KTOTrainer on prompt/completion/label (pairs are unpaired)
    rm    reward model                              RewardTrainer: a sequence-classification head, one score
    grpo  reinforcement learning from rewards       GRPOTrainer (studio/train/grpo.py): sampled answers, scored by the
                                                    reward functions of studio/train/rewards.py, learn from each other

Each stage accepts only the dataset kinds that fit it (`dataset_problem` says which columns it needs).
Rows come normalised from studio/data (kinds chat, preference, kto, prompt, text) and are rendered through the
model's own chat template by the TRL trainer. DPO and KTO compare the policy with a frozen reference: with a
PEFT adapter the reference is the same model with the adapter switched off, so no second copy is loaded;
for full or freeze tuning TRL loads a frozen copy of the starting model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from studio import config as cfg
from studio import hardware
from studio.data.loading import DataError, LoadedDataset
from studio.train import grpo
from studio.train.stage_parts import chat_messages, stage_args, stage_of
from studio.workspace import REWARD_MODEL_DIR, Workspace

STAGE_NAMES = {"pt": "continued pre-training", "sft": "supervised fine-tuning", "dpo": "DPO", "orpo": "ORPO",
               "kto": "KTO", "rm": "reward modelling", "grpo": "GRPO, reinforcement learning from rewards"}
# Dataset kinds (studio/data/formats.py) each stage can learn from.
STAGE_KINDS = {"pt": ("text",), "sft": ("chat", "kto"), "dpo": ("preference",), "orpo": ("preference",),
               "kto": ("kto", "preference"), "rm": ("preference",), "grpo": ("prompt", "chat")}
KIND_NEEDS = {
    "text": "a `text` column of raw text (the bundled sample demo-text)",
    "chat": "conversations: a `messages` or `conversations` column, or `instruction`+`output`, or "
            "`prompt`+`completion` (the bundled sample demo-chat)",
    "preference": "`prompt`, `chosen` and `rejected` columns: a prompt with a better and a worse answer "
                  "(the bundled sample demo-preference)",
    "kto": "`prompt`, `completion` and `label` columns: one answer per row marked good (true) or bad (false) "
           "(the bundled sample demo-kto)",
    "prompt": "prompts to answer: a `prompt` or `question` column (other columns, e.g. `answer`, are what the "
              "rewards compare with), or conversations whose last answer becomes the `answer` column (the bundled "
              "sample demo-math)",
}
REWARD_README = """# Reward model

Trained by stage `rm` of Fine-tuning Studio: a sequence-classification model with one output (`num_labels=1`).
It gives a conversation (a prompt and an answer, rendered with the chat template saved here) a single score;
a higher score means a better answer. It is scored, not chatted with: it does not generate text.

- {what}
- `studio_config.yaml`: the run's full config (base model `{model}`, dataset `{dataset}`).

Score a prompt and an answer:

    python -m studio score {run} --prompt "What is Amberlee known for?" --answer "Blue glass lanterns."

In Python: `studio.scoring.load_reward_model(workspace, "{run}").score(messages)`.
"""


def dataset_problem(stage: str, dataset: LoadedDataset) -> str | None:
    """Why `dataset` cannot train `stage`, naming the columns the stage needs and the stages that fit this
    data; None when it fits."""
    if dataset.kind in STAGE_KINDS[stage]:
        return None
    fitting = [s for s, kinds in STAGE_KINDS.items() if dataset.kind in kinds]
    mapping = (" To train the answers in one of its columns, map them: column_map=prompt=question,response=answer."
               if dataset.kind == "prompt" else "")
    return (f"{dataset.name} holds {dataset.kind} rows (format {dataset.format}), but stage {stage} "
            f"({STAGE_NAMES[stage]}) needs {KIND_NEEDS[STAGE_KINDS[stage][0]]}. "
            f"Choose such a dataset, or train this one with stage={' or stage='.join(fitting)}.{mapping}")


def check_dataset(stage: str, dataset: LoadedDataset) -> None:
    """Raise DataError (with `dataset_problem`'s message) when `dataset` does not fit `stage`."""
    problem = dataset_problem(stage, dataset)
    if problem:
        raise DataError(problem)


def dataset_problems(workspace: Workspace, config: cfg.RunConfig) -> list[cfg.Problem]:
    """For form validation: a Problem on `dataset` (and `val_file`) when it cannot be read or does not fit the
    config's stage; empty when both fit. Reads the files, so call it when stage or dataset changes."""
    from studio.data.prepare import load_for_config
    from studio.workspace import PathError

    problems = []
    for key, validation in (("dataset", False), ("val_file", True)):
        try:
            loaded = load_for_config(workspace, config, validation=validation)
        except (DataError, PathError, OSError) as error:
            problems.append(cfg.Problem(key, str(error)))
            continue
        problem = dataset_problem(stage_of(config), loaded) if loaded is not None else None
        if problem:
            problems.append(cfg.Problem(key, problem))
    return problems


def trl_rows(stage: str, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalised rows as the columns the stage's TRL trainer reads (KTO turns each preference pair into a
    good and a bad answer)."""
    if stage == "pt":
        return [{"text": row["text"]} for row in examples]
    if stage == "grpo":
        return [grpo.grpo_row(row) for row in examples]
    if stage == "kto":
        rows = []
        for row in examples:
            if "chosen" in row:
                rows.append({"prompt": chat_messages(row["prompt"]), "completion": chat_messages(row["chosen"]), "label": True})
                rows.append({"prompt": chat_messages(row["prompt"]), "completion": chat_messages(row["rejected"]), "label": False})
            else:
                rows.append({"prompt": chat_messages(row["prompt"]), "completion": chat_messages(row["completion"]), "label": row["label"]})
        return rows
    return [{"prompt": chat_messages(row["prompt"]), "chosen": chat_messages(row["chosen"]), "rejected": chat_messages(row["rejected"])}
            for row in examples]


def build_datasets(workspace: Workspace, config: cfg.RunConfig, log, tokenizer=None) -> tuple[Any, Any, list, list]:
    """(train dataset, validation dataset or None, train conversations, validation conversations) for a
    non-SFT stage: the validation rows come from `val_file` when set, else `val_size` rows are held out.
    The conversations (prompt + chosen or given answer) are what probes are chosen from. With the `tokenizer`,
    pt documents are packed into cutoff_len blocks (nothing cut) and the other stages log how many rows the
    trainer will truncate at cutoff_len."""
    from datasets import Dataset

    from studio.data.prepare import load_for_config, split_indices

    stage = stage_of(config)
    loaded = load_for_config(workspace, config)
    check_dataset(stage, loaded)
    log(f"dataset {loaded.name}: {len(loaded)} {loaded.kind} rows (format {loaded.format}) for stage {stage}")
    if loaded.skipped:
        log(f"skipped {loaded.skipped} bad rows (first: {loaded.problems[0]})")
    held_out = load_for_config(workspace, config, validation=True)
    if held_out is not None:
        check_dataset(stage, held_out)
        train_rows, val_rows = loaded.examples, held_out.examples
    else:
        train_idx, val_idx = split_indices(len(loaded), config.data.val_size, config.train.seed)
        train_rows, val_rows = [loaded.examples[i] for i in train_idx], [loaded.examples[i] for i in val_idx]
    if val_rows:
        log(f"validating on {len(val_rows)} rows, training on {len(train_rows)}")
    if tokenizer is not None and stage == "pt":
        train, evaluation = _pretrain_datasets(tokenizer, train_rows, val_rows, config.train.cutoff_len, log)
        return train, evaluation, _conversations(train_rows), _conversations(val_rows)
    if tokenizer is not None and stage == "grpo":
        log(grpo.grpo_note(tokenizer, train_rows, config))
    elif tokenizer is not None:
        log(_truncation_note(tokenizer, train_rows, config.train.cutoff_len))
    train = Dataset.from_list(trl_rows(stage, train_rows))
    evaluation = Dataset.from_list(trl_rows(stage, val_rows)) if val_rows else None
    return train, evaluation, _conversations(train_rows), _conversations(val_rows)


def _pretrain_datasets(tokenizer, train_rows: list[dict], val_rows: list[dict], cutoff: int, log) -> tuple[Any, Any]:
    """Token-block datasets (input_ids) for continued pre-training: every token trained once per epoch."""
    from datasets import Dataset

    from studio.data.pretrain import pretrain_blocks

    train = pretrain_blocks(tokenizer, [row["text"] for row in train_rows], cutoff)
    log(train.note(cutoff))
    evaluation = pretrain_blocks(tokenizer, [row["text"] for row in val_rows], cutoff) if val_rows else None
    return (Dataset.from_dict({"input_ids": train.blocks}),
            Dataset.from_dict({"input_ids": evaluation.blocks}) if evaluation else None)


def _truncation_note(tokenizer, rows: list[dict[str, Any]], cutoff: int) -> str:
    """How many rows (prompt with its longest answer, rendered by the chat template) exceed `cutoff` tokens."""
    from studio.data.tokens import rendered_lengths

    answers = ("chosen", "rejected") if rows and "chosen" in rows[0] else ("completion",)
    longest = [0] * len(rows)
    for key in answers:
        conversations = [[*chat_messages(row["prompt"]), *chat_messages(row[key])] for row in rows]
        longest = [max(a, b) for a, b in zip(longest, rendered_lengths(tokenizer, conversations))]
    over = [n - cutoff for n in longest if n > cutoff]
    return (f"{len(over)} of {len(rows)} rows are longer than cutoff_len {cutoff} and are truncated by the trainer "
            f"({sum(over):,} tokens cut; raise cutoff_len to keep them)" if over else
            f"all {len(rows)} rows fit in cutoff_len {cutoff}: nothing truncated")


def _conversations(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    from studio.data.formats import conversation_of

    return [conversation_of(row) for row in rows]


def can_probe(stage: str, tokenizer) -> bool:
    """Whether probe answers make sense: a reward model does not generate, and chat probes need a chat template."""
    return stage != "rm" and bool(getattr(tokenizer, "chat_template", None))


def load_reward_model(run_dir: Path, source: str, config: cfg.RunConfig):
    """(the model with a new one-score head, its Precision), loaded as the method and efficiency options say
    (studio/train/methods.py). The head starts random, from the run's seed, and always trains."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from studio.train import methods
    from studio.train.phases import Progress
    from studio.train.status import update_status
    from studio.train.log import log

    device = hardware.torch_device()
    update_status(run_dir, phase="loading the model")
    with Progress(run_dir, "load", f"Loading {config.model.model} with a reward head", total=None, unit="B"):
        torch.manual_seed(config.train.seed)
        model, precision = methods.load_model(source, config, device, log,
                                              auto_class=AutoModelForSequenceClassification, num_labels=1)
    methods.apply_freeze(model, config, log)
    if config.method.method == "freeze":
        for name, weight in model.named_parameters():
            if name.split(".")[0] in ("score", "classifier"):  # the new head learns whatever else is frozen
                weight.requires_grad_(True)
    return model, precision


def pretrain_trainer(base_args, **trainer_kwargs):
    """Continued pre-training: SFTTrainer on raw text, loss on every token, EOS after each document."""
    from trl import SFTConfig, SFTTrainer

    sft_only = {f.name: getattr(base_args, f.name) for f in dataclasses.fields(SFTConfig)
                if f.init and f.name in ("max_length", "packing", "padding_free", "packing_strategy")}
    args = stage_args(SFTConfig, base_args, **sft_only, dataset_text_field="text", completion_only_loss=False)
    return SFTTrainer(args=args, **trainer_kwargs)


def dpo_trainer(base_args, stage: cfg.StageSection, **trainer_kwargs):
    """DPO with the chosen loss; an SFT term on the chosen answers when dpo_sft_weight > 0 (RPO)."""
    from trl import DPOConfig, DPOTrainer

    losses, weights = [stage.dpo_loss], None
    if stage.dpo_sft_weight > 0:
        losses, weights = [stage.dpo_loss, "sft"], [1.0, stage.dpo_sft_weight]
    args = stage_args(DPOConfig, base_args, max_length=base_args.max_length, beta=stage.dpo_beta,
                       loss_type=losses, loss_weights=weights)
    return DPOTrainer(args=args, **trainer_kwargs)


def orpo_trainer(base_args, stage: cfg.StageSection, **trainer_kwargs):
    """ORPO: SFT on the chosen answers plus an odds-ratio term against the rejected ones; no reference model."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # ORPO lives in trl.experimental in TRL 1.x
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    args = stage_args(ORPOConfig, base_args, max_length=base_args.max_length, beta=stage.orpo_beta)
    return ORPOTrainer(args=args, **trainer_kwargs)


def kto_trainer(base_args, stage: cfg.StageSection, **trainer_kwargs):
    """KTO on answers labelled good or bad, each side weighted."""
    from trl import KTOConfig, KTOTrainer

    args = stage_args(KTOConfig, base_args, max_length=base_args.max_length, beta=stage.kto_beta,
                       desirable_weight=stage.kto_desirable_weight, undesirable_weight=stage.kto_undesirable_weight,
                       # the KL estimate pairs each answer with its neighbours in a fixed-order batch
                       train_sampling_strategy="sequential")
    return KTOTrainer(args=args, **trainer_kwargs)


def reward_trainer(base_args, **trainer_kwargs):
    """A reward model: the chosen answer should score above the rejected one (Bradley-Terry loss)."""
    from trl import RewardConfig, RewardTrainer

    peft_config = trainer_kwargs.get("peft_config")
    if peft_config is not None:
        peft_config.task_type = "SEQ_CLS"  # PEFT then also trains and saves the new score head
    args = stage_args(RewardConfig, base_args, max_length=base_args.max_length)
    return RewardTrainer(args=args, **trainer_kwargs)


def build_trainer(config: cfg.RunConfig, base_args, **trainer_kwargs):
    """The TRL trainer for the run's (non-SFT) stage. `base_args` is the worker's SFTConfig (shared training
    settings); `trainer_kwargs` are model, train_dataset, eval_dataset, processing_class, peft_config, callbacks (and
    reward_funcs for grpo)."""
    stage = stage_of(config)
    if stage == "pt":
        return pretrain_trainer(base_args, **trainer_kwargs)
    if not getattr(trainer_kwargs["processing_class"], "chat_template", None):
        raise ValueError(f"{config.model.model} has no chat template, which stage {stage} renders its prompts and answers "
                         "with; choose an instruct/chat model (or stage pt to train on raw text)")
    if stage == "rm":
        return reward_trainer(base_args, **trainer_kwargs)
    if stage == "grpo":
        return grpo.grpo_trainer(base_args, config.stage, **trainer_kwargs)
    recipe = {"dpo": dpo_trainer, "orpo": orpo_trainer, "kto": kto_trainer}[stage]
    return recipe(base_args, config.stage, **trainer_kwargs)


def stage_note(stage: str, peft: bool) -> str:
    """One log line naming the stage and, for DPO and KTO, what the policy is compared against."""
    note = f"stage {stage} ({STAGE_NAMES[stage]})"
    if stage in ("dpo", "kto"):
        note += ("; reference model: the base model with the adapter switched off (no second copy in memory)" if peft
                 else "; reference model: a frozen copy of the starting model (full/freeze tuning keeps two copies in memory)")
    return note


def output_dir_name(stage: str) -> str | None:
    """The run folder's output folder for stages that save something other than a chat model (rm), else None."""
    return REWARD_MODEL_DIR if stage == "rm" else None


def describe_reward_model(out_dir: Path, config: cfg.RunConfig, run_id: str) -> None:
    """Write README.md into a saved reward model's folder: what it is, what the files are, how to score."""
    peft = (out_dir / "adapter_config.json").is_file()
    what = ("`adapter_config.json`, `adapter_model.safetensors`: a PEFT adapter and the trained score head, on top of "
            "the base model" if peft else "`config.json`, `model.safetensors`: the whole model with its score head")
    text = REWARD_README.format(what=what, model=config.model.model, dataset=config.data.dataset, run=run_id)
    (out_dir / "README.md").write_text(text, encoding="utf-8")

