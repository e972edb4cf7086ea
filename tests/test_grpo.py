"""GRPO (stage grpo): prompt-only data is recognised, the reward settings are checked before a run exists, and
on tiny-demo the model learns from reward alone, its rewards charted per function and its probe answers scored;
a reward file that fails names the function and the row."""

from __future__ import annotations

import json

import pytest
from conftest import new_workspace, run_cli

from studio import config as cfg
from studio.data.loading import load_dataset_file
from studio.train import grpo, stages
from studio.train.callbacks import stage_metrics
from studio.workspace import Workspace


def write_rows(path, rows: list[dict]):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _grpo(**overrides) -> cfg.RunConfig:
    return cfg.apply_overrides(cfg.RunConfig(), {"stage": "grpo", "dataset": "demo-math", **overrides})


# --- data ---------------------------------------------------------------------------------------------

def test_prompt_only_rows_keep_every_other_column_for_the_rewards(tmp_path):
    path = write_rows(tmp_path / "math.jsonl", [{"prompt": "2+2?", "answer": "#### 4", "level": 1}])
    loaded = load_dataset_file(path)
    assert (loaded.format, loaded.kind) == ("prompt_only", "prompt")
    assert "`answer`" in loaded.reason and "`level`" in loaded.reason  # said, not dropped
    assert stages.trl_rows("grpo", loaded.examples) == [{"prompt": [{"role": "user", "content": "2+2?"}],
                                                         "answer": "#### 4", "level": "1"}]


def test_a_conversation_ending_with_the_user_is_a_prompt_and_a_chat_rows_answer_is_its_reference(tmp_path):
    path = write_rows(tmp_path / "open.jsonl", [{"messages": [{"role": "system", "content": "Be brief."},
                                                             {"role": "user", "content": "Name a colour."}]}])
    loaded = load_dataset_file(path)
    assert loaded.kind == "prompt" and loaded.examples[0]["prompt"][0]["role"] == "system"
    chat = {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]}
    assert grpo.grpo_row(chat) == {"prompt": [{"role": "user", "content": "1+1?"}], "answer": "2"}


def test_a_question_column_is_mapped_by_the_user_and_sft_refuses_prompts_naming_the_map(tmp_path):
    path = write_rows(tmp_path / "gsm.jsonl", [{"question": "2+2?", "answer": "#### 4"}])
    loaded = load_dataset_file(path, column_map="prompt=question")
    assert loaded.kind == "prompt" and stages.trl_rows("grpo", loaded.examples)[0]["answer"] == "#### 4"
    problem = stages.dataset_problem("sft", loaded)
    assert "stage=grpo" in problem and "column_map=prompt=question,response=answer" in problem


def test_a_column_named_like_a_trl_argument_is_renamed_not_lost():
    row = {"prompt": [{"role": "user", "content": "q"}], "columns": {"completions": "x", "answer": "y"}}
    assert grpo.grpo_row(row) == {"prompt": [{"role": "user", "content": "q"}], "column_completions": "x", "answer": "y"}


# --- settings -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,key,words", [
    ({"reward_weights": "1"}, "reward_weights", "1 weights for 2 reward functions"),
    ({"reward_weights": "1,heavy"}, "reward_weights", "numbers separated by commas"),
    ({"reward_funcs": ""}, "reward_funcs", "at least one"),
    ({"reward_funcs": "length,length"}, "reward_funcs", "twice"),
    ({"reward_file": "mine.py"}, "allow_reward_code", "read it, then tick allow_reward_code"),
    ({"grpo_generations": 3}, "batch_size", "multiple of grpo_generations (3)"),
    ({"grpo_generations": 1, "batch_size": 1}, "grpo_generations", "2 or more"),
    ({"grpo_temperature": 0}, "grpo_temperature", "above 0"),
])
def test_grpo_settings_are_checked_naming_the_key(overrides, key, words):
    problems = {p.key: p.message for p in cfg.validate(_grpo(**overrides))}
    assert key in problems and words in problems[key]


def test_a_reward_file_is_read_not_run_when_checked_and_must_be_inside_the_workspace(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    marker = tmp_path / "ran"
    (workspace.root / "mine.py").write_text(f"open({str(marker)!r}, 'w').close()\n\ndef brevity(completions, **kw):\n"
                                            "    return [1.0 for _ in completions]\n", encoding="utf-8")
    allowed = {"reward_file": "mine.py", "allow_reward_code": True}
    assert grpo.reward_problems(workspace, _grpo(reward_funcs="brevity,length", **allowed)) == []
    assert not marker.exists()  # checking the form ran none of the file
    missing = grpo.reward_problems(workspace, _grpo(reward_funcs="kindness", **allowed))
    assert "kindness" in missing[0].message and "it defines brevity" in missing[0].message
    (tmp_path / "outside.py").write_text("def brevity(completions, **kw):\n    return []\n", encoding="utf-8")
    outside = grpo.reward_problems(workspace, _grpo(reward_funcs="brevity", reward_file=str(tmp_path / "outside.py"),
                                                      allow_reward_code=True))
    assert outside[0].key == "reward_file" and "outside the workspace" in outside[0].message
    unknown = grpo.reward_problems(workspace, _grpo(reward_funcs="kindness"))
    assert "not a built-in reward" in unknown[0].message and "number_match" in unknown[0].message


def test_trl_reward_logs_become_per_function_metrics():
    logs = {"loss": 0.0, "reward": 0.5, "reward_std": 0.2, "rewards/length/mean": 0.7, "rewards/length/std": 0.1,
            "rewards/number_match/mean": float("nan"), "completions/mean_length": 12.0, "rewards/margins": 0.3}
    assert stage_metrics(logs) == {"reward": 0.5, "reward_std": 0.2, "reward/length": 0.7, "reward_std/length": 0.1,
                                   "completion_length": 12.0, "reward_margin": 0.3}


# --- training -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grpo_workspace(tmp_path_factory, tiny_demo_dir):
    return new_workspace(tmp_path_factory.mktemp("grpo-ws"), tiny_demo_dir).root


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_tiny_demo_learns_from_reward_alone_and_every_reward_is_charted(grpo_workspace):
    """A length reward (24 characters) that a random model meets only by chance: the mean reward of the last
    10% of steps is well above the first 10%, through the CLI a user would type."""
    result = run_cli("train", "stage=grpo", "dataset=demo-math", "reward_funcs=length,number_match", "reward_weights=1,1",
                     "reward_length_target=24", "max_steps=30", "batch_size=8", "grpo_generations=4",
                     "grpo_max_completion_len=16", "learning_rate=1e-3", "probe_steps=15", "save_steps=0",
                     workspace=grpo_workspace, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = next((grpo_workspace / "runs").iterdir())
    rows = [row for row in _jsonl(run_dir / "metrics.jsonl") if "reward" in row]
    assert len(rows) == 30 and {"reward/length", "reward/number_match", "reward_std", "completion_length"} <= set(rows[0])
    first, last = (sum(r["reward"] for r in part) / len(part) for part in (rows[:3], rows[-3:]))
    assert last > first + 0.2, [round(r["reward"], 2) for r in rows]
    samples = _jsonl(run_dir / "samples.jsonl")
    assert {s["step"] for s in samples} == {0, 15, 30}
    assert all(set(s["rewards"]) == {"length", "number_match"} for s in samples)  # each probe answer scored
    saved = cfg.read_config(run_dir / "config.yaml")
    assert (saved.stage.stage, saved.stage.reward_funcs, saved.stage.reward_weights) == ("grpo", "length,number_match", "1,1")
    assert (run_dir / "adapter" / "adapter_config.json").is_file()


@pytest.mark.slow
def test_a_reward_that_raises_fails_the_run_naming_the_function_and_the_row(grpo_workspace):
    (grpo_workspace / "flaky.py").write_text(
        "def picky(prompts, completions, answer, **kw):\n"
        "    return [1.0 / (0 if '####' in a else 1) for a in answer]\n", encoding="utf-8")
    refused = run_cli("train", "stage=grpo", "dataset=demo-math", "reward_funcs=picky", "reward_file=flaky.py",
                      "max_steps=1", workspace=grpo_workspace)
    assert refused.returncode == 2 and "allow_reward_code" in refused.stderr + refused.stdout
    result = run_cli("train", "stage=grpo", "dataset=demo-math", "reward_funcs=picky", "reward_file=flaky.py",
                     "allow_reward_code=true", "max_steps=2", "batch_size=4", "grpo_generations=4",
                     "grpo_max_completion_len=8", "probe_steps=0", "val_size=0", "seed=1", "save_steps=0",
                     workspace=grpo_workspace, timeout=600)
    status = json.loads(next(p for p in sorted((grpo_workspace / "runs").iterdir()) if "picky" in
                             (p / "config.yaml").read_text(encoding="utf-8")).joinpath("status.json").read_text(encoding="utf-8"))
    assert result.returncode != 0 and status["state"] == "failed"
    assert "picky" in status["error"] and "row" in status["error"] and "ZeroDivisionError" in status["error"]


def test_the_estimate_counts_sampling_and_the_kl_reference():
    from studio.memory import estimate, from_run_config, generation_bytes

    def inputs(**overrides):
        config = _grpo(model="deepseek-r1-distill-qwen-7b", batch_size=8, grad_accum=2, cutoff_len=512,
                       grpo_max_completion_len=1024, **overrides)
        return from_run_config(config, gpu=object())

    sampling = generation_bytes(inputs())
    # the KV cache of 16 answers of 512 + 1024 tokens over 28 layers, 4 KV heads of 128, in bf16, and the new
    # token's fp32 logits and softmax
    assert sampling == pytest.approx(16 * 1536 * 28 * 2 * 4 * 128 * 2 + 16 * 152_064 * 8, rel=0.01)
    assert generation_bytes(inputs(grpo_vllm=True)) == 0 and "vLLM" in " ".join(estimate(inputs(grpo_vllm=True)).notes)
    assert estimate(inputs(method="full", grpo_beta=0.04)).components["reference_model"] > 14 * 2**30
    assert estimate(inputs(method="full")).components["reference_model"] == 0  # beta 0: no reference loaded
    assert estimate(inputs(method="lora", grpo_beta=0.04)).components["reference_model"] == 0  # the adapter switched off
    sft = from_run_config(cfg.apply_overrides(cfg.RunConfig(), {"model": "deepseek-r1-distill-qwen-7b"}), gpu=object())
    assert generation_bytes(sft) == 0


def test_the_live_view_charts_each_reward_and_shows_probe_answers_with_their_scores(tmp_path):
    from studio.run_library import load_series
    from studio.ui import charts
    from studio.ui.run_views import probes_html

    rows = [{"step": s, "loss": 0.0, "learning_rate": 1e-3, "reward": 0.1 * s, "reward_std": 0.05, "reward/length": 0.1 * s,
             "reward/number_match": 0.0, "completion_length": 16 - s} for s in range(1, 6)]
    write_rows(tmp_path / "metrics.jsonl", rows)
    write_rows(tmp_path / "samples.jsonl", [{"step": 5, "prompt_index": 0, "prompt": "Year?", "answer": "<answer>1412</answer>",
                                             "seconds": 0.1, "rewards": {"length": 0.25, "number_match": 1.0}}])
    series = load_series(tmp_path)
    chart = charts.training_chart(series)
    titles = [panel.title for panel in chart.panels]
    assert titles[:2] == ["reward", "answer length (tokens)"] and "learning rate" in titles
    names = {line.name for line in chart.lines}
    assert {"total (weighted)", "length", "number_match"} <= names
    total = next(line for line in chart.lines if line.name == "total (weighted)")
    assert list(total.ys) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert 'class="chart-band"' in chart.html()  # the total's spread across the sampled answers
    assert "length 0.25, number_match 1.00" in probes_html(series, "en")


def test_steps_whose_answers_all_scored_the_same_are_said_once_in_the_log(tmp_path, capsys):
    from types import SimpleNamespace

    from studio.train.callbacks import FLAT_REWARD_STEPS, MetricsCallback

    callback = MetricsCallback(tmp_path)
    for step in range(1, FLAT_REWARD_STEPS + 3):
        state = SimpleNamespace(global_step=step, max_steps=10, epoch=0.1)
        callback.on_log(None, state, None, logs={"loss": 0.0, "reward": 0.0, "frac_reward_zero_std": 1.0})
    said = capsys.readouterr().out
    assert said.count("nothing to learn") == 1 and "grpo_generations" in said
    assert json.loads((tmp_path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[0])["reward_flat_share"] == 1.0
