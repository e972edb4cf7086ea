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
from studio.workspace import ADAPTER_DIR, FULL_MODEL_DIR, PathError, Workspace


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
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.model.device)

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
        inputs = self._inputs(messages)
        errors: list[BaseException] = []

        def generate() -> None:
            try:
                self.model.generate(**inputs, streamer=streamer, **self._generate_kwargs(settings))
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

        inputs = self._inputs(messages)
        with torch.no_grad():
            output = self.model.generate(**inputs, **self._generate_kwargs(settings))
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
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
    if trained is None:
        raise PathError(f"run {run_dir.name} has no trained weights yet (state: {jobs.run_status(run_dir).get('state')})")
    remote = config.model.trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(trained)
    if trained.name == FULL_MODEL_DIR and not base:
        model = AutoModelForCausalLM.from_pretrained(trained, trust_remote_code=remote)
    else:
        model = AutoModelForCausalLM.from_pretrained(resolve_model(workspace, config.model.model), trust_remote_code=remote)
        if not base and trained.name == ADAPTER_DIR:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, trained)
    model.to(_device()).eval()
    return ChatModel(model, tokenizer)


def run_has_weights(run_dir: Path) -> bool:
    """True when the run saved trained weights that can be chatted with."""
    return any((run_dir / d).is_dir() for d in (ADAPTER_DIR, FULL_MODEL_DIR))
