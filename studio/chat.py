"""Chat with a finished run or one of its checkpoints (base model + adapter, with the run's saved chat template),
or with a base model.

One `ChatModel` holds one loaded model; `stream()` yields the reply as it grows and stops when asked to, at a
stop string or at the end of the reply. Adapters can be switched off (the base model's answer from the same
weights) and other runs' adapters loaded beside the first, so comparing needs one copy of the base weights.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from studio import run_folder
from studio.chat_streaming import (
    EitherEvent,
    before_stop,
    piece_streamer,
    stop_when_set,
)
from studio.hardware import torch_device
from studio.hf_import import import_transformers
from studio.models.catalog import resolve_model
from studio.workspace import (
    ADAPTER_DIR,
    CHECKPOINTS_DIR,
    FULL_MODEL_DIR,
    REWARD_MODEL_DIR,
    PathError,
    Workspace,
    checkpoint_folders,
)


VIRTUAL_TOKEN_ADAPTERS = ("PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING")  # PEFT types that add learned tokens


@dataclass
class GenerationSettings:
    """Sampling settings; temperature 0 means greedy decoding (the same reply every time)."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # sample only among the k likeliest tokens; 0 = off
    repetition_penalty: float = 1.0  # > 1 makes repeating earlier tokens less likely; 1 = off
    seed: int | None = None  # a fixed seed makes sampling (temperature > 0) give the same reply again
    stop_strings: list[str] = field(default_factory=list)  # the reply ends before the first of these


def with_system(messages: list[dict[str, str]], system_prompt: str, tokenizer=None) -> list[dict[str, str]]:
    """`messages` with `system_prompt` as their first (system) message, replacing one already there; unchanged
    when the prompt is blank. Given the run's `tokenizer`, raises ValueError when its chat template refuses a
    system message or silently drops it."""
    if not (system_prompt or "").strip():
        return list(messages)
    rest = messages[1:] if messages and messages[0].get("role") == "system" else messages
    combined = [{"role": "system", "content": system_prompt}, *rest]
    if tokenizer is not None:
        probe = [{"role": "system", "content": system_prompt}, {"role": "user", "content": "hi"}]
        try:
            rendered = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
        except Exception as error:  # jinja2's TemplateError or the template's own raise_exception()
            raise ValueError(f"this model's chat template does not take a system prompt ({error}); leave the system "
                             "prompt empty, or put the instruction in your first message") from error
        if system_prompt.strip() not in rendered:
            raise ValueError("this model's chat template drops system messages, so the system prompt would be "
                             "ignored; leave it empty, or put the instruction in your first message")
    return combined


class ChatModel:
    """A loaded model and tokenizer ready to answer conversations."""

    def __init__(self, model, tokenizer, base_source: str | None = None, plain_base: bool = False):
        self.model = model
        self.tokenizer = tokenizer
        self.base_source = base_source  # the base model other runs' adapters must have been trained on
        self.plain_base = plain_base  # True when the loaded weights are the base model's (not a full fine-tune)
        self._adapter_off = False

    @property
    def adapter_names(self) -> list[str]:
        """Names of the loaded adapters (run ids, as load_run and add_adapter_from_run name them); [] for a
        base model or a full fine-tune."""
        return list(getattr(self.model, "peft_config", {}) or {})

    @contextlib.contextmanager
    def using_adapter(self, name: str | None):
        """Within the block, answer with adapter `name`, or with none (`None`: the base model's answer from the
        same loaded weights). Raises ValueError for an adapter that is not loaded. Not thread-safe: hold the
        caller's lock around the block and the generation in it."""
        if name is None:
            if not self.adapter_names:
                yield self
                return
            self._adapter_off = True
            try:
                with self.model.disable_adapter():
                    yield self
            finally:
                self._adapter_off = False
            return
        if name not in self.adapter_names:
            loaded = ", ".join(self.adapter_names) or "none (a base model or a full fine-tune)"
            raise ValueError(f"no adapter named {name!r} is loaded; loaded adapters: {loaded}")
        previous = self.model.active_adapter
        self.model.set_adapter(name)
        try:
            yield self
        finally:
            self.model.set_adapter(previous)

    def add_adapter_from_run(self, workspace: Workspace, run: str, name: str) -> None:
        """Load run `run`'s adapter beside the loaded one(s), as adapter `name`, on the same base weights.
        Raises ValueError when the loaded weights are a full fine-tune, the run saved no adapter, it was trained
        on a different base model, or `name` is taken."""
        run_dir = workspace.run_dir(run)
        config = run_folder.load_config(run_dir)
        adapter = run_dir / ADAPTER_DIR
        if not self.plain_base:
            raise ValueError("the loaded model is a full fine-tune, not a base model with adapters: load the base "
                             "model or a LoRA run first, then add other runs' adapters to it")
        if not adapter.is_dir():
            raise ValueError(f"run {run_dir.name} saved no adapter (method {config.method.method}): chat with it on its own")
        source = resolve_model(workspace, config.model.model)
        if source != self.base_source:
            raise ValueError(f"run {run_dir.name} was trained on {config.model.model} ({source}), but the loaded "
                             f"base model is {self.base_source}: its adapter does not fit these weights; chat with it on its own")
        if name in self.adapter_names:
            raise ValueError(f"an adapter named {name!r} is already loaded; choose another name")
        if self.adapter_names:
            self.model.load_adapter(str(adapter), adapter_name=name)
        else:
            import_transformers()
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, adapter, adapter_name=name)
        self.model.eval()

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        """The prompt exactly as the model reads it: `messages` rendered by the run's chat template, with the
        assistant's turn opened. Raises ValueError when the template refuses the conversation."""
        return self._render(messages, tokenize=False)

    def _render(self, messages: list[dict[str, str]], **options):
        try:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, **options)
        except Exception as error:  # jinja2's TemplateError and the template's own raise_exception()
            roles = ", ".join(dict.fromkeys(m.get("role", "?") for m in messages))
            raise ValueError(f"this model's chat template refuses the conversation (roles: {roles}): {error}") from error

    def _inputs(self, messages: list[dict[str, str]]):
        """(the model whose generate() answers, its inputs, how many prompt tokens its output starts with)."""
        inputs = self._render(messages, return_tensors="pt", return_dict=True).to(self.model.device)
        peft_type = getattr(getattr(self.model, "active_peft_config", None), "peft_type", None)
        if self._adapter_off and peft_type in VIRTUAL_TOKEN_ADAPTERS:
            return self.model.get_base_model(), inputs, inputs["input_ids"].shape[1]
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

    def _generate_kwargs(self, settings: GenerationSettings, stop_event: threading.Event | None = None) -> dict:
        kwargs = {
            "max_new_tokens": max(1, int(settings.max_new_tokens)),
            "eos_token_id": self.tokenizer.eos_token_id,
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            "repetition_penalty": float(settings.repetition_penalty),
        }
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=float(settings.temperature), top_p=float(settings.top_p),
                          top_k=max(0, int(settings.top_k)))  # 0 turns top-k off (not the model's default of 50)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        stops = [s for s in settings.stop_strings if s]
        if stops:
            kwargs.update(stop_strings=stops, tokenizer=self.tokenizer)  # generate() matches them on token pieces
        if stop_event is not None:
            kwargs["stopping_criteria"] = stop_when_set(stop_event)
        return kwargs

    def _seed(self, settings: GenerationSettings) -> None:
        if settings.seed is not None:
            import torch

            torch.manual_seed(int(settings.seed))  # seeds the CPU and every GPU generator sampling draws from

    def stream(self, messages: list[dict[str, str]], settings: GenerationSettings,
               stop_event: threading.Event | None = None) -> Iterator[str]:
        """Yield the reply to `messages` as it grows (each item is the whole reply so far). Generation ends early
        when `stop_event` is set (the reply so far stays) or when the caller stops reading; a stop string ends it
        too, and the reply is cut before it."""
        streamer = piece_streamer(self.tokenizer)
        model, inputs, _ = self._inputs(messages)
        abandoned = threading.Event()  # set when the reader stops early, so the model does not go on unread
        stops = [s for s in settings.stop_strings if s]
        errors: list[BaseException] = []

        def generate() -> None:
            try:
                self._seed(settings)
                model.generate(**inputs, streamer=streamer,
                               **self._generate_kwargs(settings, EitherEvent(stop_event, abandoned)))
            except BaseException as error:  # noqa: BLE001 -- surfaced to the caller below, after the streamer ends
                errors.append(error)
                streamer.end()

        thread = threading.Thread(target=generate, daemon=True)
        thread.start()
        reply, shown = "", ""
        try:
            for piece in streamer:
                reply += piece
                text, stopped = before_stop(reply, stops)
                if text != shown:
                    shown = text
                    yield shown
                if stopped:
                    break
        finally:
            abandoned.set()
        thread.join()
        if errors:
            raise errors[0]
        final, _ = before_stop(reply, stops, final=True)
        if final != shown:
            yield final

    def reply(self, messages: list[dict[str, str]], settings: GenerationSettings) -> str:
        """The whole reply to `messages`, generated in this thread (no streaming), cut before any stop string."""
        import torch

        model, inputs, prompt_len = self._inputs(messages)
        self._seed(settings)
        with torch.no_grad():
            output = model.generate(**inputs, **self._generate_kwargs(settings))
        new_tokens = output[0, prompt_len:]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return before_stop(text, [s for s in settings.stop_strings if s], final=True)[0].strip()

    def replies(self, conversations: list[list[dict[str, str]]], settings: GenerationSettings) -> list[str]:
        """The whole replies to several conversations, as reply() gives each, generated together in one batch
        (prompts padded on the left, so every reply starts at the same position): one pass over the weights per
        new token for all of them. Models that take learned virtual tokens answer one conversation at a time."""
        import torch

        peft_type = getattr(getattr(self.model, "active_peft_config", None), "peft_type", None)
        if len(conversations) < 2 or peft_type in VIRTUAL_TOKEN_ADAPTERS:
            return [self.reply(messages, settings) for messages in conversations]
        prompts = [self._render(messages, tokenize=False) for messages in conversations]
        tokenizer = self.tokenizer
        side, pad = tokenizer.padding_side, tokenizer.pad_token
        tokenizer.padding_side, tokenizer.pad_token = "left", pad or tokenizer.eos_token
        try:  # the template's text already holds its special tokens
            inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        finally:
            tokenizer.padding_side, tokenizer.pad_token = side, pad
        self._seed(settings)
        with torch.no_grad():
            output = self.model.generate(**inputs, **self._generate_kwargs(settings))
        stops = [s for s in settings.stop_strings if s]
        return [before_stop(tokenizer.decode(row, skip_special_tokens=True), stops, final=True)[0].strip()
                for row in output[:, inputs["input_ids"].shape[1]:]]


def checkpoint_names(run_dir: Path) -> list[str]:
    """The run's saved checkpoints that can be chatted with (checkpoint-N folders holding weights), oldest first."""
    return [path.name for path in checkpoint_folders(run_dir, holding=("adapter_config.json", "config.json"))]


def _trained_weights(run_dir: Path, checkpoint: str | None) -> Path:
    """The folder holding the weights to chat with: the checkpoint asked for, or the run's final result."""
    if checkpoint:
        available = checkpoint_names(run_dir)
        if checkpoint not in available:  # only names from the listing: nothing a user types reaches a path
            listed = ", ".join(available) if available else "none (the run saves no checkpoints when save_steps is 0)"
            raise PathError(f"run {run_dir.name} has no checkpoint {checkpoint!r}; available: {listed}")
        return run_dir / CHECKPOINTS_DIR / checkpoint
    trained = next((run_dir / d for d in (ADAPTER_DIR, FULL_MODEL_DIR) if (run_dir / d).is_dir()), None)
    if trained is None and (run_dir / REWARD_MODEL_DIR).is_dir():
        raise PathError(f"run {run_dir.name} is a reward model (stage rm): it scores answers and does not write them, "
                        f"so there is nothing to chat with. Score an answer with: python -m studio score {run_dir.name} "
                        "--prompt '…' --answer '…'")
    if trained is None:
        raise PathError(f"run {run_dir.name} has no trained weights yet (state: {run_folder.run_status(run_dir).get('state')})")
    return trained


def _tokenizer_folder(run_dir: Path, trained: Path) -> Path:
    """Where the run's tokenizer and chat template were saved: beside the weights, or (for a checkpoint saved
    without them) beside the run's final weights."""
    candidates = (trained, run_dir / ADAPTER_DIR, run_dir / FULL_MODEL_DIR)
    return next((d for d in candidates if (d / "tokenizer_config.json").is_file()), trained)


def load_run(workspace: Workspace, run: str, base: bool = False, checkpoint: str | None = None) -> ChatModel:
    """Load a run's trained model (base + adapter, or the fully fine-tuned model) with the chat template saved
    beside it; `checkpoint` (a checkpoint-N folder name, see checkpoint_names) loads that checkpoint instead of
    the final weights; with `base=True`, the run's base model with that same template. An adapter is named
    after the run id. Raises PathError naming what is missing."""
    import torch
    import_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_inference(torch)
    run_dir = workspace.run_dir(run)
    config = run_folder.load_config(run_dir)
    trained = _trained_weights(run_dir, checkpoint)
    is_adapter = (trained / "adapter_config.json").is_file() or trained.name == ADAPTER_DIR
    remote = config.model.trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(_tokenizer_folder(run_dir, trained))
    source = resolve_model(workspace, config.model.model)
    if not is_adapter and not base:
        model = AutoModelForCausalLM.from_pretrained(trained, trust_remote_code=remote)
    else:
        from studio.train.methods import model_config

        stretched = model_config(source, config)  # the run's RoPE scaling, which the adapter was trained with
        model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=remote, **({"config": stretched} if stretched else {}))
        if not base:
            import_transformers()
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, trained, adapter_name=run_dir.name)
    model.to(torch_device()).eval()
    return ChatModel(model, tokenizer, base_source=source, plain_base=base or is_adapter)


def _quiet_inference(torch) -> None:
    """Ready this process to answer beside the studio's web server: torch leaves a core free, and loading weights
    draws no progress bars into the CLI's answer or the studio's log."""
    import_transformers()
    import transformers

    from studio.hardware import leave_a_core_free

    leave_a_core_free(torch)
    transformers.utils.logging.disable_progress_bar()


def load_model(workspace: Workspace, model: str) -> ChatModel:
    """Load any model choice (tiny-demo, a catalog name, an imported model's name, a folder, a Hub id) to chat
    with as it is, with its own chat template; no run needed. Raises PathError for an unknown choice and ValueError
    when the model's tokenizer has no chat template."""
    import torch
    import_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_inference(torch)
    source = resolve_model(workspace, model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{model} has no chat template (a base model that continues text): fine-tune it with a chat "
                         "template first, or chat with an instruct model")
    loaded = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32 if torch_device() == "cpu" else "auto")
    loaded.to(torch_device()).eval()
    return ChatModel(loaded, tokenizer, base_source=source, plain_base=True)
