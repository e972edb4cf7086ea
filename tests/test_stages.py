"""Every training stage beyond SFT (pt, dpo, orpo, kto, rm) trains a few steps on tiny-demo with its bundled
sample: the loss is logged, the adapter learned something, and what was saved loads back (a chat model
answers; a reward model scores). A dataset of the wrong kind is refused before a run folder is made, naming
the columns the stage needs."""

from __future__ import annotations

import json
import math

import pytest
from conftest import new_workspace, run_cli

from studio import config as cfg
from studio import jobs
from studio.data.loading import DataError
from studio.train.worker import run_worker

pytestmark = pytest.mark.slow

SAMPLE_OF_STAGE = {"pt": "demo-text", "dpo": "demo-preference", "orpo": "demo-preference", "kto": "demo-kto",
                   "rm": "demo-preference"}
STEPS = 3


@pytest.fixture(scope="module")
def stage_workspace(tmp_path_factory, tiny_demo_dir):
    return new_workspace(tmp_path_factory.mktemp("stages-ws"), tiny_demo_dir)


@pytest.fixture(scope="module")
def trained(stage_workspace):
    """trained(stage) -> run folder of a finished few-step run of that stage (each stage trained once)."""
    runs = {}

    def train(stage: str):
        if stage not in runs:
            config = cfg.apply_overrides(cfg.RunConfig(), {
                "run_name": f"stage-{stage}", "stage": stage, "dataset": SAMPLE_OF_STAGE[stage], "max_steps": STEPS,
                "batch_size": 2, "learning_rate": 1e-3, "cutoff_len": 96, "save_steps": 0, "probe_steps": 2,
                "probe_prompts": "What is Amberlee known for?"})
            run_dir = jobs.create_run(stage_workspace, config)
            assert run_worker(stage_workspace, run_dir) == 0, (run_dir / "train.log").read_text(encoding="utf-8")[-3000:]
            runs[stage] = run_dir
        return runs[stage]

    return train


def _status(run_dir) -> dict:
    return json.loads((run_dir / "status.json").read_text(encoding="utf-8"))


def _rows(run_dir, name: str) -> list[dict]:
    path = run_dir / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _assert_adapter_learned(folder) -> None:
    from safetensors.torch import load_file

    weights = load_file(str(folder / "adapter_model.safetensors"))
    lora_b = {k: v for k, v in weights.items() if "lora_B" in k}
    assert lora_b, sorted(weights)[:5]
    untouched = [k for k, v in lora_b.items() if not v.abs().sum() > 0]
    assert not untouched, f"lora_B still at its zero init: {untouched[:3]}"


@pytest.mark.parametrize("stage", ["pt", "dpo", "orpo", "kto"])
def test_stage_trains_and_its_adapter_chats(stage, trained, stage_workspace):
    from studio.chat import GenerationSettings, load_run

    run_dir = trained(stage)
    status = _status(run_dir)
    assert status["state"] == "completed" and status["steps"] == STEPS and status["output"] == "adapter", status
    losses = [row["loss"] for row in _rows(run_dir, "metrics.jsonl") if "loss" in row]
    assert len(losses) == STEPS and all(math.isfinite(loss) for loss in losses), losses
    _assert_adapter_learned(run_dir / "adapter")
    assert {row["step"] for row in _rows(run_dir, "samples.jsonl")} >= {0, STEPS}, "probe answers missing"

    chat_model = load_run(stage_workspace, run_dir.name)
    reply = chat_model.reply([{"role": "user", "content": "What is Amberlee known for?"}], GenerationSettings(max_new_tokens=8))
    assert isinstance(reply, str) and reply


def test_preference_stages_log_reward_accuracy(trained):
    for stage in ("dpo", "orpo"):
        rows = [row for row in _rows(trained(stage), "metrics.jsonl") if "loss" in row]
        assert all(0 <= row["reward_accuracy"] <= 1 for row in rows), (stage, rows[-1])


def test_reward_model_scores_answers_and_is_not_offered_for_chat(trained, stage_workspace):
    from studio.chat import load_run
    from studio.run_folder import run_has_weights
    from studio.scoring import load_reward_model
    from studio.workspace import PathError

    run_dir = trained("rm")
    status = _status(run_dir)
    assert status["state"] == "completed" and status["output"] == "reward_model", status
    assert not _rows(run_dir, "samples.jsonl"), "a reward model cannot answer probe prompts"
    saved = run_dir / "reward_model"
    _assert_adapter_learned(saved)
    readme = (saved / "README.md").read_text(encoding="utf-8")
    assert "reward model" in readme.lower() and f"python -m studio score {run_dir.name} --prompt" in readme

    reward_model = load_reward_model(stage_workspace, run_dir.name)
    question = {"role": "user", "content": "What is Amberlee known for?"}
    scores = [reward_model.score([question, {"role": "assistant", "content": answer}])
              for answer in ("Amberlee is known for blue glass lanterns.", "I'm not sure; you could look it up.")]
    assert all(math.isfinite(s) for s in scores) and scores[0] != scores[1], scores

    assert not run_has_weights(run_dir)
    with pytest.raises(PathError, match="reward model"):
        load_run(stage_workspace, run_dir.name)
    result = run_cli("score", run_dir.name, "--prompt", question["content"], "--answer", "Blue glass lanterns.",
                     workspace=stage_workspace.root)
    assert result.returncode == 0 and math.isfinite(float(result.stdout.strip())), result.stderr[-2000:]


@pytest.mark.parametrize("stage, dataset, needs", [
    ("dpo", "demo-chat", "`prompt`, `chosen` and `rejected` columns"),
    ("rm", "demo-text", "`prompt`, `chosen` and `rejected` columns"),
    ("kto", "demo-chat", "`prompt`, `completion` and `label` columns"),
    ("pt", "demo-preference", "a `text` column"),
    ("sft", "demo-preference", "conversations"),  # labelled (kto) data trains sft on its good answers
])
def test_a_dataset_of_the_wrong_kind_is_refused_naming_what_the_stage_needs(stage, dataset, needs, stage_workspace):
    before = set(stage_workspace.runs_dir.iterdir()) if stage_workspace.runs_dir.exists() else set()
    config = cfg.apply_overrides(cfg.RunConfig(), {"stage": stage, "dataset": dataset})
    with pytest.raises(DataError) as refused:
        jobs.create_run(stage_workspace, config)
    message = str(refused.value)
    assert needs in message and f"stage {stage}" in message, message
    assert "stage=" in message, f"the message should name a stage that fits {dataset}: {message}"
    after = set(stage_workspace.runs_dir.iterdir()) if stage_workspace.runs_dir.exists() else set()
    assert after == before, "no run folder may be made for a refused dataset"


def test_a_validation_file_of_the_wrong_kind_is_refused_too(stage_workspace):
    from studio.train.stages import dataset_problems

    config = cfg.apply_overrides(cfg.RunConfig(), {"stage": "dpo", "dataset": "demo-preference", "val_file": "demo-chat"})
    with pytest.raises(DataError, match="chosen"):
        jobs.create_run(stage_workspace, config)
    # the form's validation shows the same message next to the field it concerns
    problems = dataset_problems(stage_workspace, config)
    assert [p.key for p in problems] == ["val_file"] and "`prompt`, `chosen` and `rejected`" in problems[0].message
    assert not dataset_problems(stage_workspace, cfg.apply_overrides(config, {"val_file": ""}))


def test_stage_options_are_validated_with_every_problem_named():
    config = cfg.apply_overrides(cfg.RunConfig(), {"stage": "kto", "batch_size": 1, "kto_beta": 0, "kto_desirable_weight": -1})
    problems = {p.key: p.message for p in cfg.validate(config)}
    assert set(problems) >= {"batch_size", "kto_beta", "kto_desirable_weight"}, problems
    assert "batch_size 2" in problems["batch_size"]
    with pytest.raises(cfg.ConfigError, match="stage: must be one of pt, sft, dpo, orpo, kto, rm"):
        cfg.apply_overrides(cfg.RunConfig(), {"stage": "ppo"})
    # options of another stage do not matter
    assert not cfg.validate(cfg.apply_overrides(cfg.RunConfig(), {"stage": "sft", "kto_beta": 0}))
