"""Stage grpo: reinforcement learning from rewards on TRL's GRPOTrainer.

For each prompt the model samples `grpo_generations` answers, the reward functions (studio/train/rewards.py, built
in or the user's own reward_file) score them, and the answers better than their group's mean are made likelier.
Here: the rows GRPOTrainer reads (a prompt and its reference columns), the checks of the reward settings that
need the workspace (made by reading the reward file, never running it), the reward functions for the worker,
the probes whose answers are scored, and the trainer itself.
"""

from __future__ import annotations

from typing import Any

from studio import config as cfg
from studio.train.stage_parts import chat_messages, stage_args, stage_of
from studio.workspace import Workspace

GRPO_PROBES = 3  # rows whose prompts are probed when no probe_prompts are given
# What TRL passes reward functions besides the dataset's columns: a column of one of these names is renamed.
TRL_REWARD_ARGUMENTS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments")


def grpo_row(row: dict[str, Any]) -> dict[str, Any]:
    """A normalised prompt or chat row as GRPOTrainer reads it: the prompt's messages, then the reference columns
    the reward functions get (a chat row's last answer as `answer`, the turns before it as the prompt)."""
    if "messages" in row:
        messages = row["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        return {"prompt": chat_messages(messages[:last]), "answer": messages[last]["content"]}
    columns = {(f"column_{key}" if key in TRL_REWARD_ARGUMENTS or key == "prompt" else key): value
               for key, value in row["columns"].items()}
    return {"prompt": chat_messages(row["prompt"]), **columns}


def grpo_note(tokenizer, rows: list[dict[str, Any]], config: cfg.RunConfig) -> str:
    """The prompts' lengths (GRPO keeps them whole), the answer budget and the columns the rewards read."""
    from studio.data.tokens import rendered_lengths

    lengths = rendered_lengths(tokenizer, [grpo_row(row)["prompt"] for row in rows]) if rows else [0]
    columns = sorted({key for row in rows[:1] for key in grpo_row(row) if key != "prompt"})
    renamed = [key for key in columns if key.startswith("column_")]
    note = (f"{len(rows)} prompts, the longest {max(lengths)} tokens (kept whole); {config.stage.grpo_generations} answers "
            f"of up to {config.stage.grpo_max_completion_len} tokens each; the rewards read columns "
            f"{', '.join(columns) or 'none'}")
    return note + (f" ({', '.join(renamed)} renamed: TRL passes arguments of those names)" if renamed else "")


def reward_problems(workspace: Workspace, config: cfg.RunConfig) -> list[cfg.Problem]:
    """For a grpo run, problems with its reward functions, reward_file and reward_json_schema, found without
    running the file (its functions are read from its syntax tree); empty for the other stages."""
    import ast
    import json

    from studio.train.rewards import BUILTIN_REWARDS
    from studio.workspace import PathError

    if stage_of(config) != "grpo":
        return []
    s, problems = config.stage, []
    own = [name for name in cfg.reward_names(s.reward_funcs) if name not in BUILTIN_REWARDS]
    if s.reward_file.strip():
        try:
            path = workspace.confine(s.reward_file)
            if path.suffix != ".py" or not path.is_file():
                raise PathError(f"{s.reward_file} is not a Python file (.py)")
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=s.reward_file)
        except (PathError, OSError, UnicodeDecodeError) as error:
            return [cfg.Problem("reward_file", str(error))]
        except SyntaxError as error:
            return [cfg.Problem("reward_file", f"{s.reward_file} line {error.lineno}: {error.msg}")]
        defined = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        missing = [name for name in own if name not in defined]
        if missing:
            problems.append(cfg.Problem("reward_funcs", f"{', '.join(missing)}: neither built in nor defined in {s.reward_file} "
                                                        f"(it defines {', '.join(defined) or 'no function'})"))
    elif own:
        problems.append(cfg.Problem("reward_funcs", f"{', '.join(own)}: not a built-in reward ({', '.join(BUILTIN_REWARDS)}); "
                                                    "write your own in a reward_file"))
    if s.reward_json_schema.strip():
        try:
            json.loads(workspace.confine(s.reward_json_schema).read_text(encoding="utf-8"))
        except (PathError, OSError, UnicodeDecodeError, ValueError) as error:
            problems.append(cfg.Problem("reward_json_schema", f"{s.reward_json_schema}: {error}"))
    return problems


def reward_functions(workspace: Workspace, config: cfg.RunConfig) -> list:
    """The run's reward functions, in reward_funcs order, ready for GRPOTrainer (a reward_file is imported here:
    its code runs in this process). Raises RewardError, or ConfigError with reward_problems' problems."""
    import json

    from studio.train.rewards import RewardSettings, build_reward_functions

    problems = reward_problems(workspace, config)
    if problems:
        raise cfg.ConfigError(problems)
    s = config.stage
    schema = json.loads(workspace.confine(s.reward_json_schema).read_text(encoding="utf-8")) if s.reward_json_schema.strip() else None
    settings = RewardSettings(answer_column=s.reward_answer_column, format_regex=s.reward_format,
                              length_target=s.reward_length_target, json_schema=schema)
    user_file = workspace.confine(s.reward_file) if s.reward_file.strip() else None
    return build_reward_functions(cfg.reward_names(s.reward_funcs), settings, user_file)


def reward_weights(stage: cfg.StageSection) -> list[float] | None:
    """The weights of the reward functions (None: 1 each)."""
    return [float(w) for w in stage.reward_weights.split(",")] if stage.reward_weights.strip() else None


def grpo_probes(probe_prompts: str, train_dataset, eval_dataset, functions: list):
    """(probe conversations, a scorer for ProbeCallback) of a grpo run: the configured prompts, or the prompts of
    up to 3 rows of the validation (else training) dataset as GRPOTrainer reads it, whose answers get each
    reward's score (None where a reward needs a column a typed prompt does not have)."""
    from studio.train.rewards import RewardError, score_completion

    given = cfg.probe_prompt_list(probe_prompts)
    rows = ([{"prompt": [{"role": "user", "content": text}]} for text in given] if given
            else [dict(row) for row in (eval_dataset or train_dataset).select(range(min(GRPO_PROBES, len(eval_dataset or train_dataset))))])

    def score(index: int, answer: str) -> dict:
        row = rows[index]
        scores = {}
        for function in functions:
            try:
                scores.update(score_completion([function], row["prompt"], answer, {k: v for k, v in row.items() if k != "prompt"}))
            except RewardError:
                scores[function.__name__] = None
        return scores

    return [row["prompt"] for row in rows], score


def grpo_trainer(base_args, stage: cfg.StageSection, reward_funcs: list, **trainer_kwargs):
    """GRPO: `grpo_generations` sampled answers per prompt, each scored by the weighted reward functions; the
    answers better than their group's mean are made likelier. No reference model unless grpo_beta > 0."""
    from trl import GRPOConfig, GRPOTrainer

    args = stage_args(GRPOConfig, base_args, num_generations=stage.grpo_generations,
                       max_completion_length=stage.grpo_max_completion_len, temperature=stage.grpo_temperature,
                       beta=stage.grpo_beta, loss_type=stage.grpo_loss, reward_weights=reward_weights(stage),
                       use_vllm=stage.grpo_vllm, vllm_mode="colocate", log_completions=False,
                       remove_unused_columns=False)  # the reference columns are the rewards' arguments
    return GRPOTrainer(args=args, reward_funcs=reward_funcs, **trainer_kwargs)
