"""`python -m studio <verb>`: train, runs, chat, export, model import. Thin over jobs, chat, export and config.

    python -m studio train [CONFIG.yaml] [key=value ...] [--detach]   start a run, follow its log (or return
                                                           at once with --detach), exit non-zero on failure
    python -m studio train --config RUN_DIR/config.yaml    the worker itself (what the studio launches)
    python -m studio runs [--json]                         list runs
    python -m studio runs stop RUN [--kill]                stop a run after its current step (or kill it now)
    python -m studio runs resume RUN [--detach]            continue a stopped or failed run from its checkpoint
    python -m studio chat --model MODEL --prompt TEXT       any model as it is (tiny-demo, catalog, imported, folder)
    python -m studio chat RUN --prompt TEXT [--base] [--checkpoint checkpoint-N] [--system TEXT] [--temperature T]
        [--top-p P] [--top-k K] [--repetition-penalty R] [--seed S] [--max-new-tokens N]   print the reply
    python -m studio compare RUN [--with RUN_B] --prompt TEXT [--system TEXT] [--max-new-tokens N] [--json]
                                                           the run's and its base model's (or run B's) answers
    python -m studio eval RUN [--data PATH|training] [--max-rows N] [--max-new-tokens N] [--json]   base vs tuned
                                                           answers over the validation split (or a file), scored
    python -m studio serve RUN [--port N] [--host H] [--api-key KEY] [--base]   an OpenAI-compatible API for the run
    python -m studio export RUN --to DIR [--merge] [--dtype bf16] [--ollama] [--zip] [--push USER/NAME]   adapter or
                                                           merged model, Modelfile, vLLM/SGLang commands, model card
    python -m studio export RUN --to DIR --gguf f16|bf16|q8_0   the merged model as one GGUF file with a Modelfile
    python -m studio model import FILE.gguf [--name NAME] [--dtype auto|bf16|f16|f32]   a GGUF file as the model
                                                           folder workspace/models/NAME (de-quantized safetensors)
    python -m studio estimate --model M --method METHOD [--seq N] [--batch N] [--gpus N] [--gpu-mem GB] [--json]
                                                           predicted peak GPU memory, verdict, fixes (1: won't fit)
    python -m studio launch-cmd RUN_OR_CONFIG --nodes N [--node-rank R] --main-ip IP [--port P]   each machine's command
    python -m studio data inspect PATH [--model M] [--cutoff N] [--json]   a dataset's format and why, rows read and
                                                           skipped, first errors, quality checks, token report
Every verb takes --workspace DIR (default: ./workspace, or $STUDIO_WORKSPACE). Exit codes: 0 ok, 1 the run
failed, 2 bad input (a bad key or value, an unknown run, a run that cannot be stopped or resumed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from studio import config as cfg
from studio.cli_gguf import add_model_parser, cmd_model, export_gguf
from studio.cli_runs import add_run_parsers, cmd_launch_cmd, cmd_runs, cmd_train
from studio.layering import layered_from_cli
from studio.workspace import PROJECT_ROOT, PathError, Workspace

DEFAULT_WORKSPACE = os.environ.get("STUDIO_WORKSPACE", str(PROJECT_ROOT / "workspace"))


def _system_or_trained(typed: str | None, workspace: Workspace, run: str) -> str:
    """The --system the user typed (even ""), else the system prompt every training row of the run carried."""
    if typed is not None:
        return typed
    from studio.system_prompt import training_system_prompt

    trained = training_system_prompt(workspace.run_dir(run))
    if trained:
        print(f"(system prompt from the training data: {trained[:80]!r}; --system '' to leave it out)", file=sys.stderr)
    return trained


def cmd_chat(args, workspace: Workspace) -> int:
    from studio.chat import GenerationSettings, load_model, load_run, with_system

    if bool(args.run) == bool(args.model):
        print("error: name a run, or a model with --model (e.g. --model tiny-demo or an imported model's name)", file=sys.stderr)
        return 2
    if args.model:
        chat_model = load_model(workspace, args.model)
    else:
        chat_model = load_run(workspace, args.run, base=args.base, checkpoint=args.checkpoint)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                                  top_k=args.top_k, repetition_penalty=args.repetition_penalty, seed=args.seed)
    system = _system_or_trained(args.system, workspace, args.run) if args.run else args.system or ""
    messages = with_system([{"role": "user", "content": args.prompt}], system, chat_model.tokenizer)
    print(chat_model.reply(messages, settings))
    return 0


def cmd_compare(args, workspace: Workspace) -> int:
    """`compare`: both answers to one prompt, greedy (the run against its base model, or against run B)."""
    from studio.chat import GenerationSettings
    from studio.compare import compare, load_pair

    pair = load_pair(workspace, "runs" if args.with_run else "base", args.run, args.with_run or "")
    system = _system_or_trained(args.system, workspace, args.run)
    result = compare(pair, args.prompt, system, GenerationSettings(max_new_tokens=args.max_new_tokens))
    if args.json:
        print(json.dumps([{"name": n, "answer": a} for n, a in zip(result.names, result.answers)], ensure_ascii=False))
    else:
        print("\n\n".join(f"{letter} · {n}\n{a}" for letter, n, a in zip("AB", result.names, result.answers)))
    return 0


def cmd_eval(args, workspace: Workspace) -> int:
    """`eval`: answer the validation split (or --data) with the base and the tuned model and print the scores
    and the results folder (exit 1: cancelled with Ctrl-C; 2: bad input)."""
    from studio.eval.job import EvalSettings, evaluate, format_scores

    typed = Path(args.data).expanduser()
    if args.data not in ("", "training") and typed.exists():  # a file typed in the operator's shell may lie outside
        workspace = Workspace(workspace.root, allowed=(*workspace.allowed, typed.resolve().parent))
        args.data = str(typed.resolve())
    try:
        folder, scores = evaluate(workspace, args.run, EvalSettings(args.data, args.max_rows, args.max_new_tokens))
    except KeyboardInterrupt:
        print("\nevaluation cancelled", file=sys.stderr)
        return 1
    print(json.dumps({"results": str(folder), **(scores or {})}, ensure_ascii=False, indent=2) if args.json
          else f"{format_scores(scores)}\nresults: {folder}")
    return 0


def cmd_serve(args, workspace: Workspace) -> int:
    """`serve`: the run behind an OpenAI-compatible API until Ctrl-C (exit 2: a public bind without a key)."""
    from studio.serve import API_KEY_ENV, serve

    serve(workspace, args.run, host=args.host, port=args.port, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
          base=args.base)
    return 0


def cmd_export(args, workspace: Workspace) -> int:
    """`export`: write the run's adapter or merged model with its serving files; optionally push it (exit 1: the
    push failed, the export is complete; 2: bad input)."""
    from studio.export import export_run
    from studio.model_card import PushError, push_to_hub

    target = Path(args.to).expanduser().resolve()
    if target.parent.is_dir():  # a folder the operator typed in their own shell may lie outside the workspace
        workspace = Workspace(workspace.root, allowed=(*workspace.allowed, target.parent))
    if args.gguf:
        return export_gguf(args, workspace, str(target))
    result = export_run(workspace, args.run, str(target), merge=args.merge, dtype=args.dtype,
                        max_shard_size=args.max_shard_size, ollama=args.ollama, make_zip=args.zip)
    print(f"exported the {result.kind} to {result.out_dir}" + (f" and {result.zip_path}" if result.zip_path else ""))
    if result.modelfile:
        print(f"Ollama: ollama create NAME -f {result.modelfile}")
    for note in result.notes:
        print(f"note: {note}")
    print(result.serving)
    if args.push:
        try:
            print(f"pushed to {push_to_hub(result.out_dir, args.push)}")
        except PushError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return 0


def cmd_score(args, workspace: Workspace) -> int:
    from studio.scoring import load_reward_model

    reward_model = load_reward_model(workspace, args.run)
    score = reward_model.score([{"role": "user", "content": args.prompt}, {"role": "assistant", "content": args.answer}])
    print(f"{score:.4f}")
    return 0


def cmd_data_fill(args, workspace: Workspace) -> int:
    """`data fill DATASET NAME=VALUE…`: a copy of the dataset with its {{NAME}} placeholders filled in (exit 2: bad input)."""
    from studio.data.library import fill_placeholders_file

    values = dict(item.partition("=")[::2] for item in args.values)
    if not values or any(not name for name in values) or not all("=" in item for item in args.values):
        print("error: give the values as NAME=VALUE, e.g. name=Lantern author='Amberlee Labs'", file=sys.stderr)
        return 2
    target, counts, left = fill_placeholders_file(workspace, args.path, values)
    print(f"wrote {target}: " + ", ".join(f"{{{{{name}}}}} × {n}" for name, n in counts.items())
          + (f"; still unfilled: {', '.join(left)}" if left else "; no placeholder left"))
    return 0


def cmd_data(args, workspace: Workspace) -> int:
    """`data inspect`: exit 0 when every row is usable, 1 when some rows are bad, 2 when the data cannot be read."""
    from studio.data.inspect import format_text, inspect_dataset

    if args.action == "fill":
        return cmd_data_fill(args, workspace)

    ref = args.path
    typed = Path(ref).expanduser()
    if not typed.exists() and (typed.parent / "dataset_info.json").is_file():  # FOLDER/NAME of a LLaMA-Factory folder
        folder = typed.parent.resolve()
        workspace = Workspace(workspace.root, allowed=(*workspace.allowed, folder))
        ref = str(folder / typed.name)
    elif typed.exists():  # a path the operator typed in their own shell may lie outside the workspace
        typed = typed.resolve()
        workspace = Workspace(workspace.root, allowed=(*workspace.allowed, typed if typed.is_dir() else typed.parent))
        ref = str(typed)
    result = inspect_dataset(workspace, ref, args.model, args.cutoff, args.column_map, args.train_on_prompt, args.mask_history,
                             text_split=args.text_split)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else format_text(result))
    return 1 if result["skipped"] else 0


def cmd_estimate(args, workspace: Workspace) -> int:
    """`estimate`: the peak-memory breakdown, verdict and fixes for a config given as `train` takes it (exit 0
    fits or tight, 1 won't fit, 2 bad input). On a machine without a GPU it judges for a CPU run unless
    --gpu-mem names the GPU to judge for."""
    from studio import fit, hardware

    config = layered_from_cli(args.config_file, args.overrides, workspace)
    machine = hardware.detect(workspace.root)
    if args.gpu_mem is not None:  # the GPUs the config names (gpus=0,1,2,3), or one
        machine = machine.with_gpus(args.gpu_mem, cfg.gpu_list(config.train.gpus) if config.train.strategy != "single" else None)
    result = fit.assess_config(config, machine, workspace)
    if not machine.gpus:
        print("no GPU here: this is the estimate for a CPU run on this machine's RAM; pass --gpu-mem GB to judge "
              "for a GPU", file=sys.stderr)
    print(json.dumps(result.to_json(), indent=2, ensure_ascii=False) if args.json else fit.format_text(result))
    return 1 if result.verdict == fit.WONT_FIT else 0


def make_parser() -> argparse.ArgumentParser:
    """The argument parser for every verb."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", default=argparse.SUPPRESS, help="workspace folder (default: ./workspace, or $STUDIO_WORKSPACE)")
    parser = argparse.ArgumentParser(prog="python -m studio", description="Fine-tuning Studio command line", parents=[common])
    verbs = parser.add_subparsers(dest="verb", required=True)

    add_run_parsers(verbs, common)

    chat = verbs.add_parser("chat", parents=[common], help="print a run's (or any model's) reply to one prompt")
    chat.add_argument("run", nargs="?", default="", help="run name, id or folder")
    chat.add_argument("--model", default="", help="chat with this model instead of a run: tiny-demo, a catalog name, "
                                                  "an imported model's name, a folder or a Hugging Face id")
    chat.add_argument("--prompt", required=True)
    chat.add_argument("--base", action="store_true", help="answer with the run's base model (no adapter)")
    chat.add_argument("--max-new-tokens", type=int, default=128)
    chat.add_argument("--temperature", type=float, default=0.0, help="0 = greedy, reproducible")
    chat.add_argument("--top-p", type=float, default=1.0)
    chat.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens; 0 = off")
    chat.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats; 1 = off")
    chat.add_argument("--seed", type=int, default=None, help="fixes sampled replies (temperature > 0)")
    chat.add_argument("--system", default=None, help="a system prompt put before the conversation (default: the one every training row had, if any)")
    chat.add_argument("--checkpoint", default=None, help="chat with this checkpoint-N folder of the run, not its final weights")

    comp = verbs.add_parser("compare", parents=[common], help="print a run's and its base model's (or another run's) answers")
    comp.add_argument("run", help="run name, id or folder")
    comp.add_argument("--with", dest="with_run", default="", help="compare with this run (same base model) instead of the base")
    comp.add_argument("--prompt", required=True)
    comp.add_argument("--system", default=None, help="a system prompt put before the prompt (default: the one every training row of RUN had, if any)")
    comp.add_argument("--max-new-tokens", type=int, default=128)
    comp.add_argument("--json", action="store_true", help="a JSON list of {name, answer}")

    score = verbs.add_parser("score", parents=[common], help="print a reward model's score (stage rm) for a prompt and an answer")
    score.add_argument("run", help="run name, id or folder of a reward-model run")
    score.add_argument("--prompt", required=True)
    score.add_argument("--answer", required=True, help="the assistant answer to score; higher scores are better answers")

    add_data_parser(verbs, common)
    add_estimate_parser(verbs, common)
    add_serve_parser(verbs, common)
    ev = verbs.add_parser("eval", parents=[common], help="score a run's and its base model's answers against references")
    ev.add_argument("run", help="run name, id or folder")
    ev.add_argument("--data", default="", help="a dataset file or sample name; 'training' = the run's training data "
                                                "(default: the run's validation split)")
    ev.add_argument("--max-rows", type=int, default=200, help="evaluate at most this many rows (default 200)")
    ev.add_argument("--max-new-tokens", type=int, default=128, help="longest answer in tokens, greedy (default 128)")
    ev.add_argument("--json", action="store_true", help="print one JSON object (scores and the results folder)")
    add_export_parser(verbs, common)
    add_model_parser(verbs, common)
    return parser


def add_data_parser(verbs, common) -> None:
    """The `data` verb: inspect a dataset, or fill in its placeholders."""
    data = verbs.add_parser("data", parents=[common], help="inspect a dataset before training on it")
    data_actions = data.add_subparsers(dest="action", required=True)
    inspect = data_actions.add_parser("inspect", parents=[common], help="format and why, bad rows by line, quality, token report")
    inspect.add_argument("path", help="a file or folder, FOLDER/NAME for dataset NAME of a LLaMA-Factory folder's "
                                      "dataset_info.json, a bundled sample name, or hf:ID[:CONFIG][@SPLIT]")
    inspect.add_argument("--model", default=None, help="measure tokens with this model's tokenizer and chat template (e.g. tiny-demo)")
    inspect.add_argument("--cutoff", type=int, default=None,
                         help="cutoff_len to count truncated rows against (default: the one a run of --model would use)")
    inspect.add_argument("--column-map", default="", help="role=column pairs when detection is wrong, e.g. prompt=question,response=answer")
    inspect.add_argument("--train-on-prompt", action="store_true", help="count prompt tokens as trained")
    inspect.add_argument("--mask-history", action="store_true", help="train only the last assistant turn")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument("--text-split", choices=("auto", "line", "blank"), default="auto",
                         help="a .txt file's documents: one per line, per blank-line block, or auto (the default)")
    fill = data_actions.add_parser("fill", parents=[common], help="a copy of a dataset with its {{name}} placeholders filled in")
    fill.add_argument("path", help="a dataset file in the workspace or a bundled sample name")
    fill.add_argument("values", nargs="+", help="NAME=VALUE for each placeholder, e.g. name=Lantern")


def add_estimate_parser(verbs, common) -> None:
    """The `estimate` verb's arguments."""
    est = verbs.add_parser("estimate", parents=[common], help="predict peak GPU memory: breakdown, verdict and fixes")
    est.add_argument("config_file", nargs="?", default=None, metavar="CONFIG.yaml", help="a config YAML, as train takes it")
    est.add_argument("overrides", nargs="*", metavar="key=value",
                     help="the config keys train takes (model=…, method=…, cutoff_len=…, batch_size=…, strategy=…, …)")
    est.add_argument("--gpu-mem", type=float, default=None, metavar="GB",
                     help="judge for one GPU with this much free memory (default: this machine's GPU, or its RAM without one)")
    est.add_argument("--json", action="store_true", help="print one JSON object")


def add_serve_parser(verbs, common) -> None:
    """The `serve` verb's arguments."""
    serve = verbs.add_parser("serve", parents=[common], help="serve a run as an OpenAI-compatible API (/v1/chat/completions)")
    serve.add_argument("run", help="run name, id or folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs an API key)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key", default=None, metavar="KEY",
                       help="clients must send 'Authorization: Bearer KEY' (default: $STUDIO_API_KEY, safer than the command line)")
    serve.add_argument("--base", action="store_true", help="serve the run's base model (no adapter) with the run's template")


def add_export_parser(verbs, common) -> None:
    """The `export` verb's arguments."""
    export = verbs.add_parser("export", parents=[common], help="export a run: adapter or merged model, Ollama Modelfile, serve commands")
    export.add_argument("run", help="run name, id or folder")
    export.add_argument("--to", required=True, metavar="DIR", help="a new (or empty) folder to write the export into")
    export.add_argument("--merge", action="store_true", help="merge the adapter into the base model (loads with plain transformers)")
    export.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"), help="dtype of the merged weights")
    export.add_argument("--max-shard-size", default="2GB", help="largest safetensors shard of the merged model (e.g. 2GB, 500MB)")
    export.add_argument("--ollama", action="store_true", help="also write an Ollama Modelfile (TEMPLATE, stop tokens, SYSTEM)")
    export.add_argument("--zip", action="store_true", help="also write DIR.zip")
    export.add_argument("--gguf", default=None, choices=("f16", "bf16", "q8_0"),
                        help="write the merged model as one GGUF file (llama.cpp, Ollama) in this type, with a Modelfile")
    export.add_argument("--push", default=None, metavar="USER/NAME",
                        help="push the export to this Hugging Face Hub repo (token from HF_TOKEN or `hf auth login`)")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = make_parser().parse_args(argv)
    if args.verb in ("train", "estimate") and args.config_file and "=" in args.config_file:
        args.overrides.insert(0, args.config_file)  # `train key=value` with no config file
        args.config_file = None
    workspace = Workspace(Path(getattr(args, "workspace", DEFAULT_WORKSPACE)))
    handlers = {"train": cmd_train, "runs": cmd_runs, "chat": cmd_chat, "compare": cmd_compare, "score": cmd_score, "data": cmd_data, "estimate": cmd_estimate, "serve": cmd_serve,
                "export": cmd_export, "launch-cmd": cmd_launch_cmd, "eval": cmd_eval, "model": cmd_model}
    try:
        return handlers[args.verb](args, workspace)
    except (cfg.ConfigError, PathError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:  # DataError, TemplateError: bad input the user can fix
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, or a file the user named that cannot be read or written
        message = file_error_message(error, workspace.root)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2


def file_error_message(error: OSError, folder: Path) -> str | None:
    """What to tell the user about `error`: a full disk (with the free space in `folder`), or a named file that is
    missing, unreadable or unwritable; None for anything else (a bug to show whole)."""
    import errno

    from studio.workspace import disk_full_message

    user_errors = (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS, errno.ENAMETOOLONG)
    if error.filename and error.errno in user_errors:
        return f"{error.filename}: {error.strerror}"
    return disk_full_message(error, Path(error.filename).parent if error.filename else folder)
