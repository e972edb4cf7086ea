"""Export a finished run so people can use it outside the studio.

`export_run` writes one folder: the adapter (or the fully trained model) with the tokenizer and chat template
saved beside it at training time, or with `merge` the base model with the adapter merged in (sharded
safetensors, in the chosen dtype) that plain transformers loads; then a SERVING.md with the exact vLLM and
SGLang commands, optionally an Ollama Modelfile whose TEMPLATE follows the run's chat template, a model card
(README.md, studio/model_card.py) and a zip of the folder. Pushing to the Hub is `model_card.push_to_hub`.
studio/export_jobs.py runs the same export (and push) in a background thread for the UI, one at a time per run.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from studio import config as cfg
from studio import run_folder
from studio.hf_import import import_transformers
from studio.models.catalog import resolve_model
from studio.system_prompt import shared_system_prompt
from studio.workspace import ADAPTER_DIR, FULL_MODEL_DIR, REWARD_MODEL_DIR, Workspace

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
MODELFILE = "Modelfile"
SERVING_FILE = "SERVING.md"
EXPORTS_DIR = "exports"  # the default parent of export folders, inside the workspace


class ExportError(ValueError):
    """A run that cannot be exported the way asked, with what to do instead."""


@dataclass(frozen=True)
class TemplateFamily:
    """One chat-template family as Ollama needs it: how a turn is written, role names the model uses, the text
    that opens the assistant's answer and the tokens that end a turn."""

    name: str
    marker: str  # a string only this family's chat templates contain
    turn: str  # with {role} and {content}
    generation: str
    stops: tuple[str, ...]
    roles: tuple[tuple[str, str], ...] = ()  # (role in messages, role the model was trained with)

    def role(self, role: str) -> str:
        return dict(self.roles).get(role, role)

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt this family writes for `messages`, ready for the assistant's answer."""
        turns = (self.turn.replace("{role}", self.role(m["role"])).replace("{content}", m["content"]) for m in messages)
        return "".join(turns) + self.generation

    def ollama_template(self) -> str:
        """The same prompt as an Ollama (Go text/template) TEMPLATE over .Messages."""
        role = "{{ .Role }}"
        if self.roles:
            branches = "{{ else if ".join(f'eq .Role "{src}" }}}}{dst}' for src, dst in self.roles)
            role = "{{ if " + branches + "{{ else }}{{ .Role }}{{ end }}"
        turn = self.turn.replace("{role}", role).replace("{content}", "{{ .Content }}")
        return "{{- range .Messages }}" + turn + "{{ end }}" + self.generation


FAMILIES = (
    TemplateFamily("ChatML", "<|im_start|>", "<|im_start|>{role}\n{content}<|im_end|>\n", "<|im_start|>assistant\n",
                   ("<|im_end|>", "<|im_start|>")),
    TemplateFamily("Llama-3", "<|start_header_id|>", "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>",
                   "<|start_header_id|>assistant<|end_header_id|>\n\n", ("<|eot_id|>", "<|start_header_id|>")),
    TemplateFamily("Gemma", "<start_of_turn>", "<start_of_turn>{role}\n{content}<end_of_turn>\n", "<start_of_turn>model\n",
                   ("<end_of_turn>",), roles=(("assistant", "model"), ("system", "user"))),
    TemplateFamily("Phi-3", "<|end|>", "<|{role}|>\n{content}<|end|>\n", "<|assistant|>\n", ("<|end|>", "<|endoftext|>")),
)


def template_family(chat_template: str | None) -> TemplateFamily | None:
    """The family a saved chat template belongs to, judged by its turn markers; None when none matches."""
    return next((f for f in FAMILIES if chat_template and f.marker in chat_template), None)


@dataclass
class ExportResult:
    """What an export wrote, and what a user should read about it."""

    out_dir: Path
    kind: str  # "adapter", "model" (a full fine-tune's weights) or "merged"
    modelfile: Path | None = None
    zip_path: Path | None = None
    serving: str = ""
    notes: list[str] = field(default_factory=list)


def trained_dir(run_dir: Path) -> Path:
    """The run's saved weights folder (adapter/ or model/); ExportError for a reward model or no weights."""
    for name in (ADAPTER_DIR, FULL_MODEL_DIR):
        if (run_dir / name).is_dir():
            return run_dir / name
    if (run_dir / REWARD_MODEL_DIR).is_dir():
        raise ExportError(f"run {run_dir.name} is a reward model (stage rm): it scores answers and does not write them, "
                          "so it cannot be exported for chat, Ollama or vLLM; its weights are in "
                          f"{run_dir / REWARD_MODEL_DIR}")
    raise ExportError(f"run {run_dir.name} has no trained weights to export yet "
                      f"(state: {run_folder.run_status(run_dir).get('state')}); wait until it finishes or is stopped")


def check_out_dir(workspace: Workspace, to: str) -> Path:
    """The resolved export folder `to`; PathError outside the workspace, ExportError when it holds files."""
    out_dir = workspace.confine(to, must_exist=False)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"{to} already exists and is not an empty folder; choose a new folder to export into")
    return out_dir


def _prepare_out_dir(workspace: Workspace, to: str) -> Path:
    out_dir = check_out_dir(workspace, to)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def check_shard_size(text: str) -> str:
    """`text` when it is a shard size transformers reads (a whole number and a unit: 2GB, 500MB, 1GiB);
    ExportError otherwise."""
    if not re.fullmatch(r"\d+(GB|MB|KB|GIB|MIB|KIB)", text.strip().upper()):
        raise ExportError(f"max shard size {text!r} is not a size like 2GB, 500MB or 1GiB (a whole number and a unit)")
    return text.strip()


def next_export_dir(workspace: Workspace, run_id: str) -> Path:
    """A free export folder for the run: exports/RUN, or exports/RUN-2, -3, … when earlier exports took it."""
    parent = workspace.root / EXPORTS_DIR
    for number in range(1, 1000):
        candidate = parent / (run_id if number == 1 else f"{run_id}-{number}")
        if not candidate.exists() and not candidate.with_suffix(".zip").exists():
            return candidate
    raise ExportError(f"{parent} holds 999 exports of {run_id}; delete some old ones")


def merge_into(workspace: Workspace, run_dir: Path, out_dir: Path, dtype: str = "bf16", max_shard_size: str = "2GB") -> None:
    """Write the run's base model with its adapter merged in (or its fully trained model) to `out_dir` as sharded
    safetensors in `dtype`, with the run's tokenizer and chat template; plain transformers loads it."""
    import torch
    import_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.train.methods import model_config

    if dtype not in DTYPES:
        raise ExportError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    config = run_folder.load_config(run_dir)
    trained = trained_dir(run_dir)
    remote = config.model.trust_remote_code
    torch_dtype = getattr(torch, DTYPES[dtype])
    if trained.name == FULL_MODEL_DIR:
        model = AutoModelForCausalLM.from_pretrained(trained, dtype=torch_dtype, trust_remote_code=remote)
    else:
        if config.method.method not in ("lora", "qlora", "ia3"):
            raise ExportError(f"a {config.method.method} adapter adds learned virtual tokens and cannot be merged into "
                              "the weights; export the adapter without --merge")
        import_transformers()
        from peft import PeftModel

        source = resolve_model(workspace, config.model.model)
        stretched = model_config(source, config)
        base = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, trust_remote_code=remote,
                                                    **({"config": stretched} if stretched else {}))
        model = PeftModel.from_pretrained(base, trained).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(trained)
    # Plain generate() should stop where the studio's chat stops: at the chat template's end-of-turn token.
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.save_pretrained(out_dir, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(out_dir)


def data_system_prompt(workspace: Workspace, config: cfg.RunConfig) -> tuple[str, int, int]:
    """(the most common system prompt in the run's dataset or "", rows that carry it, rows read)."""
    from studio.data.prepare import load_for_config

    found = shared_system_prompt(load_for_config(workspace, config).conversations)
    return found["text"], found["rows"], found["of"]


def _ollama_quote(text: str) -> str:
    if '"""' in text:
        raise ExportError('the text contains """, which an Ollama Modelfile cannot quote')
    return f'"""{text}"""'


def write_modelfile(workspace: Workspace, run_dir: Path, out_dir: Path, kind: str) -> tuple[Path, list[str]]:
    """Write DIR/Modelfile: FROM the exported folder (merged or full model) or the base + ADAPTER, the TEMPLATE of
    the run's chat-template family, its stop tokens and the training data's system prompt. Returns (path, notes)."""
    import_transformers()
    from transformers import AutoTokenizer

    config = run_folder.load_config(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    family = template_family(getattr(tokenizer, "chat_template", None))
    if family is None:
        raise ExportError("the run's chat template is none of " + ", ".join(f.name for f in FAMILIES) +
                          ", so no Ollama TEMPLATE can be written that matches it; serve it with vLLM or SGLang "
                          f"(see {SERVING_FILE}), which read the saved chat template")
    notes = []
    sample = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
              {"role": "user", "content": "Q2"}]
    from jinja2 import TemplateError

    try:
        rendered = tokenizer.apply_chat_template(sample, tokenize=False, add_generation_prompt=True)
    except (TemplateError, ValueError) as error:  # a template may refuse a system turn; the check is advisory
        rendered = f"(not rendered: {error})"
    if rendered != family.render(sample):
        notes.append(f"the run's chat template is {family.name}-like but not written exactly like it (e.g. a default "
                     "system prompt or a BOS token): check Ollama's answers against `python -m studio chat`")
    lines = [f"# Ollama Modelfile for run {run_dir.name}, made by Fine-tuning Studio", f"# chat template: {family.name}"]
    if kind == "adapter":
        if config.method.method not in ("lora", "qlora"):
            raise ExportError(f"Ollama loads LoRA adapters only, not {config.method.method}; export with --merge")
        base = resolve_model(workspace, config.model.model)
        if not Path(base).is_dir():
            lines.append(f"# FROM needs the base model's safetensors folder: download {base} and put its path here")
        lines += [f"FROM {base}", "ADAPTER ."]
    else:
        lines.append("FROM .")
    lines.append(f"TEMPLATE {_ollama_quote(family.ollama_template())}")
    stops = [*family.stops, *([tokenizer.eos_token] if tokenizer.eos_token and tokenizer.eos_token not in family.stops else [])]
    lines += [f'PARAMETER stop "{token}"' for token in stops]
    try:
        system, carried, rows = data_system_prompt(workspace, config)
    except (OSError, ValueError) as error:
        system, carried, rows = "", 0, 0
        notes.append(f"no SYSTEM line: the training data could not be read now ({error})")
    if system:
        lines += [f"# the system prompt of {carried} of {rows} training rows", f"SYSTEM {_ollama_quote(system)}"]
    path = out_dir / MODELFILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, notes


def served_name(run_dir: Path) -> str:
    """The model name an export is served under (vLLM, SGLang, Ollama): the run's name as a lowercase slug."""
    name = run_folder.load_config(run_dir).run_name or run_dir.name
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "tuned"


def engine_commands(workspace: Workspace, run_dir: Path, out_dir: Path, kind: str) -> tuple[str, str, str]:
    """(the vLLM command, the SGLang command, which model name to ask for) that serve the export as an
    OpenAI-compatible API; ExportError for an adapter those engines cannot load (not LoRA)."""
    config, name = run_folder.load_config(run_dir), served_name(run_dir)
    template = next((out_dir / f for f in ("chat_template.jinja",) if (out_dir / f).is_file()), None)
    if kind != "adapter":
        return (f"vllm serve {out_dir} --served-model-name {name}",
                f"python -m sglang.launch_server --model-path {out_dir} --served-model-name {name}", f"ask for model `{name}`")
    if config.method.method not in ("lora", "qlora"):
        raise ExportError(f"vLLM and SGLang serve LoRA adapters only; this run trained a {config.method.method} adapter. "
                          "Export it with --merge and serve the merged folder.")
    base = resolve_model(workspace, config.model.model)
    rank = config.method.lora_rank
    chat = f" --chat-template {template}" if template else ""
    vllm = f"vllm serve {base} --enable-lora --lora-modules {name}={out_dir} --max-lora-rank {max(rank, 16)}{chat}"
    sglang = (f"python -m sglang.launch_server --model-path {base} --enable-lora --lora-paths {name}={out_dir} "
              f"--max-lora-rank {rank}{chat}")
    return vllm, sglang, f"ask for model `{name}` (the adapter); the base model answers as `{base}`"


def serving_commands(workspace: Workspace, run_dir: Path, out_dir: Path, kind: str) -> str:
    """Markdown with the exact vLLM and SGLang commands that serve the export as an OpenAI-compatible API."""
    name = served_name(run_dir)
    try:
        vllm, sglang, ask = engine_commands(workspace, run_dir, out_dir, kind)
    except ExportError as error:
        return f"# Serving {name}\n\n{error}\n"
    return (f"# Serving {name}\n\nOpenAI-compatible API with vLLM (port 8000):\n\n```\n{vllm}\n```\n\n"
            f"With SGLang (port 30000):\n\n```\n{sglang}\n```\n\nThen {ask} at http://localhost:PORT/v1/chat/completions; "
            "the chat template saved with the run is the one used.\n")


def export_run(workspace: Workspace, run: str, to: str, merge: bool = False, dtype: str = "bf16",
               max_shard_size: str = "2GB", ollama: bool = False, make_zip: bool = False,
               progress: Callable[[str], None] = lambda step: None) -> ExportResult:
    """Export run `run` into the new folder `to` (inside the workspace): the adapter/model folder as saved, or the
    merged model; SERVING.md, README.md (model card), and optionally a Modelfile and DIR.zip. `progress` hears each
    step's name ("copy", "merge", "modelfile", "card", "zip") as it begins. Returns what it wrote."""
    from studio.model_card import write_model_card

    run_dir = workspace.run_dir(run)
    trained = trained_dir(run_dir)
    max_shard_size = check_shard_size(max_shard_size) if merge else max_shard_size
    out_dir = _prepare_out_dir(workspace, to)
    try:
        if merge:
            progress("merge")
            merge_into(workspace, run_dir, out_dir, dtype, max_shard_size)
            kind = "merged" if trained.name == ADAPTER_DIR else "model"
        else:
            progress("copy")
            shutil.copytree(trained, out_dir, dirs_exist_ok=True)
            kind = "adapter" if trained.name == ADAPTER_DIR else "model"
        result = ExportResult(out_dir, kind)
        if ollama:
            progress("modelfile")
            result.modelfile, result.notes = write_modelfile(workspace, run_dir, out_dir, kind)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)  # no half-written export left behind
        raise
    progress("card")
    result.serving = serving_commands(workspace, run_dir, out_dir, kind)
    (out_dir / SERVING_FILE).write_text(result.serving, encoding="utf-8")
    write_model_card(workspace, run_dir, out_dir, kind)
    if make_zip:
        progress("zip")
        result.zip_path = Path(shutil.make_archive(str(out_dir), "zip", root_dir=out_dir))
    return result


def push_export(out_dir: Path, repo: str, private: bool = False) -> str:
    """Push an export folder to the Hub repo `repo` (user/name) with `model_card.push_to_hub`; with `private` a
    repo that does not exist yet is created private first. Returns the repo URL; PushError says what went wrong."""
    from huggingface_hub import get_token

    from studio.model_card import PushError, push_to_hub

    if private and get_token() and repo.count("/") == 1 and all(repo.split("/")):
        from huggingface_hub import HfApi

        try:  # the token comes from HF_TOKEN or the saved login, never from us
            HfApi().create_repo(repo, repo_type="model", private=True, exist_ok=True)
        except Exception as error:  # network and Hub errors come from several HTTP libraries: reported
            raise PushError(f"could not create the private repo {repo}: {error}. Check the network and the token's "
                            f"write access; the export is complete in {out_dir}") from error
    return push_to_hub(out_dir, repo)
