"""Probe generations: watch the model learn by asking it the same few prompts as training goes on.

samples.jsonl gets one line per prompt per probe: {"step", "prompt_index", "prompt", "answer", "seconds"}, where
"seconds" is how long that probe's answers took (they are generated together, in one batch); a GRPO run's lines
also hold "rewards": each reward function's score of the answer.
Step 0 is the base model (the LoRA adapter disabled; for full fine-tuning, the model before its first
step); then every `probe_steps` steps and once at the end. Decoding is greedy with at most 48 new tokens,
through the run's tokenizer and chat template, as the Chat tab would answer.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from transformers import TrainerCallback

from studio.config import probe_prompt_list
from studio.workspace import SAMPLES_FILE, append_jsonl, last_row

MAX_NEW_TOKENS = 48
DEFAULT_PROBES = 3


def choose_probes(probe_prompts: str, train_rows: list[list[dict]], val_rows: list[list[dict]]) -> list[list[dict]]:
    """The conversations to probe with: the configured prompts (one user message each), or else the prompts
    of up to 3 validation rows, or of the first 3 training rows. A row's prompt is the conversation up to
    its last assistant reply (system message included)."""
    given = probe_prompt_list(probe_prompts)
    if given:
        return [[{"role": "user", "content": text}] for text in given]
    probes = []
    for row in (val_rows or train_rows)[:DEFAULT_PROBES]:
        last = max((i for i, m in enumerate(row) if m["role"] == "assistant"), default=len(row))
        if any(m["role"] == "user" for m in row[:last]):
            probes.append(row[:last])
    return probes


def prompt_text(messages: list[dict]) -> str:
    """What samples.jsonl shows as the prompt: the last user message."""
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def generate_answers(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """The model's greedy replies to `conversations`, produced together in one batch (see ChatModel.replies):
    each is the reply the Chat tab gives."""
    from studio.chat import ChatModel, GenerationSettings

    return ChatModel(model, tokenizer).replies(conversations, GenerationSettings(max_new_tokens=max_new_tokens))


class ProbeCallback(TrainerCallback):
    """Answers the probe prompts at step 0 (base model), every `every` steps, and at the end of training.

    On a resumed run, steps an earlier attempt already probed are not probed again."""

    def __init__(self, run_dir: Path, tokenizer, probes: list[list[dict]], every: int, max_new_tokens: int = MAX_NEW_TOKENS,
                 score=None):
        """`score(index, answer)`, when given, returns the reward scores of probe `index`'s answer (GRPO), written
        with it as "rewards"."""
        self.path = run_dir / SAMPLES_FILE
        self.tokenizer = tokenizer
        self.probes = probes
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.score = score
        previous = last_row(self.path, "step")
        self.probed_step = int(previous["step"]) if previous else -1

    def probe(self, model, step: int, base: bool = False) -> None:
        """Append one answer per probe prompt for `step`; `base` disables the LoRA adapter while answering."""
        if not self.probes or step <= self.probed_step:
            return
        self.probed_step = step
        was_training = model.training
        model.eval()
        use_base = model.disable_adapter() if base and hasattr(model, "disable_adapter") else contextlib.nullcontext()
        try:
            with use_base:
                started = time.monotonic()
                answers = generate_answers(model, self.tokenizer, self.probes, self.max_new_tokens)
                seconds = round(time.monotonic() - started, 3)
            for index, (messages, answer) in enumerate(zip(self.probes, answers)):
                line = {"step": step, "prompt_index": index, "prompt": prompt_text(messages), "answer": answer, "seconds": seconds}
                append_jsonl(self.path, {**line, **({"rewards": self.score(index, answer)} if self.score else {})})
        finally:
            if was_training:
                model.train()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0 and model is not None:
            self.probe(model, 0, base=True)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0 and model is not None:
            self.probe(model, state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self.probe(model, state.global_step)
