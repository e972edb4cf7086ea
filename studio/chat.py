"""Chat with a finished run (base model + adapter, with the run's saved chat template) or with a base model.

One `ChatModel` holds one loaded model; `stream()` yields the reply as it grows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from studio import jobs
from studio.models.catalog import resolve_model
from studio.workspace import (
    ADAPTER_DIR,
    FULL_MODEL_DIR,
    REWARD_MODEL_DIR,
    PathError,
    Workspace,
)


@dataclass
class GenerationSettings:
    """Sampling settings; temperature 0 means greedy decoding (the same reply every time)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0


class ChatModel:
    """A loaded model and tokenizer ready to answer conversations."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer

    def _inputs(self, messages: list[dict[str, str]]):
        """(the model whose generate() answers, its inputs, how many prompt tokens its output starts with)."""
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.model.device)
        peft_type = getattr(getattr(self.model, "active_peft_config", None), "peft_type", None)
        # Virtual-token adapters: PEFT's generate() hooks miss transformers 5's renamed cache (the prompt is put in
        # again at every step, the prefix dropped), so the learned tokens are put in front here and the base
        # model generates from them.
        if peft_type == "PREFIX_TUNING":
            import torch

            prefix = self.model.get_prompt(batch_size=1)  # a cache pre-filled with the learned keys and values
            mask = torch.ones((1, prefix.get_seq_length() + inputs["input_ids"].shape[1]), dtype=torch.long,
                              device=inputs["input_ids"].device)
            return (self.model.get_base_model(), {"input_ids": inputs["input_ids"], "attention_mask": mask,
                                                  "past_key_values": prefix}, inputs["input_ids"].shape[1])
        if peft_type in ("PROMPT_TUNING", "P_TUNING"):
            import torch

            embeds = self.model.word_embeddings(inputs["input_ids"])
            embeds = torch.cat([self.model.get_prompt(batch_size=1).to(embeds.dtype), embeds], dim=1)
            mask = torch.ones(embeds.shape[:2], dtype=inputs["attention_mask"].dtype, device=embeds.device)
            return self.model.get_base_model(), {"inputs_embeds": embeds, "attention_mask": mask}, 0
        return self.model, inputs, inputs["input_ids"].shape[1]

    def _generate_kwargs(self, settings: GenerationSettings) -> dict:
        kwargs = {
            "max_new_tokens": max(1, int(settings.max_new_tokens)),
            "eos_token_id": self.tokenizer.eos_token_id,
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        }
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=float(settings.temperature), top_p=float(settings.top_p))
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def stream(self, messages: list[dict[str, str]], settings: GenerationSettings) -> Iterator[str]:
        """Yield the reply to `messages` as it grows (each item is the whole reply so far)."""
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        model, inputs, _ = self._inputs(messages)
        errors: list[BaseException] = []

        def generate() -> None:
            try:
                model.generate(**inputs, streamer=streamer, **self._generate_kwargs(settings))
            except BaseException as error:  # surfaced to the caller below, after the streamer ends
                errors.append(error)
                streamer.end()

        thread = threading.Thread(target=generate, daemon=True)
        thread.start()
        reply = ""
        for piece in streamer:
            reply += piece
            yield reply
        thread.join()
        if errors:
            raise errors[0]

    def reply(self, messages: list[dict[str, str]], settings: GenerationSettings) -> str:
        """The whole reply to `messages`, generated in this thread (no streaming)."""
        import torch

        model, inputs, prompt_len = self._inputs(messages)
        with torch.no_grad():
            output = model.generate(**inputs, **self._generate_kwargs(settings))
        new_tokens = output[0, prompt_len:]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def _device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_run(workspace: Workspace, run: str, base: bool = False) -> ChatModel:
    """Load a run's trained model (base + adapter, or the fully fine-tuned model) with the chat template saved
    beside it; with `base=True`, the run's base model with that same template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = workspace.run_dir(run)
    config = jobs.load_config(run_dir)
    trained = next((run_dir / d for d in (ADAPTER_DIR, FULL_MODEL_DIR) if (run_dir / d).is_dir()), None)
    if trained is None and (run_dir / REWARD_MODEL_DIR).is_dir():
        raise PathError(f"run {run_dir.name} is a reward model (stage rm): it scores answers and does not write them, "
                        f"so there is nothing to chat with. Score an answer with: python -m studio score {run_dir.name} "
                        "--prompt '…' --answer '…'")
    if trained is None:
        raise PathError(f"run {run_dir.name} has no trained weights yet (state: {jobs.run_status(run_dir).get('state')})")
    remote = config.model.trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(trained)
    if trained.name == FULL_MODEL_DIR and not base:
        model = AutoModelForCausalLM.from_pretrained(trained, trust_remote_code=remote)
    else:
        from studio.train.methods import model_config

        source = resolve_model(workspace, config.model.model)
        stretched = model_config(source, config)  # the run's RoPE scaling, which the adapter was trained with
        model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=remote, **({"config": stretched} if stretched else {}))
        if not base and trained.name == ADAPTER_DIR:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, trained)
    model.to(_device()).eval()
    return ChatModel(model, tokenizer)


def run_has_weights(run_dir: Path) -> bool:
    """True when the run saved trained weights that can be chatted with (a reward model cannot)."""
    return any((run_dir / d).is_dir() for d in (ADAPTER_DIR, FULL_MODEL_DIR))
