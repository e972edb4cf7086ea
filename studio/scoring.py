"""Score answers with a reward model trained by stage `rm`: one number per conversation, higher is better.

A reward model is a sequence-classification model with one output; it does not generate text, so the Chat
tab refuses it and this module (and `python -m studio score`) reads it instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio import run_folder
from studio.hardware import torch_device
from studio.hf_import import import_transformers
from studio.models.catalog import resolve_model
from studio.workspace import REWARD_MODEL_DIR, PathError, Workspace


@dataclass
class RewardModel:
    """A loaded reward model and the tokenizer (with the chat template) saved beside it."""

    model: object
    tokenizer: object

    def score(self, messages: list[dict[str, str]]) -> float:
        """The reward for a conversation (usually a user prompt and the assistant answer being judged)."""
        import torch

        text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        inputs = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        with torch.no_grad():
            return float(self.model(**inputs).logits[0, 0])


def is_reward_run(run_dir) -> bool:
    """True when the run saved a reward model (stage rm)."""
    return (run_dir / REWARD_MODEL_DIR).is_dir()


def load_reward_model(workspace: Workspace, run: str) -> RewardModel:
    """Load run `run`'s reward model (base model + adapter with its score head, or the whole saved model).
    PathError when the run has no reward model."""
    import_transformers()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run_dir = workspace.run_dir(run)
    saved = run_dir / REWARD_MODEL_DIR
    if not saved.is_dir():
        raise PathError(f"run {run_dir.name} has no reward model (train one with stage=rm; state: "
                        f"{run_folder.run_status(run_dir).get('state')})")
    config = run_folder.load_config(run_dir)
    remote = config.model.trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(saved)
    if (saved / "adapter_config.json").is_file():
        import_transformers()
        from peft import PeftModel
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the base has an LM head and no score head yet: expected, the adapter brings it
        try:
            base = AutoModelForSequenceClassification.from_pretrained(
                resolve_model(workspace, config.model.model), num_labels=1, trust_remote_code=remote)
        finally:
            hf_logging.set_verbosity(verbosity)
        model = PeftModel.from_pretrained(base, saved)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(saved, trust_remote_code=remote)
    model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the score at the last non-pad token
    model.to(torch_device()).eval()
    return RewardModel(model, tokenizer)
