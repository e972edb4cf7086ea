"""The real demo run (tiny-demo + demo-chat, CLI defaults): it completes, the loss falls, the adapter learned
the data without touching the base weights, and chat gives the trained answers."""

from __future__ import annotations

import json
import math
import re

import pytest

from conftest import run_cli
from studio.workspace import PRESETS_DIR, Workspace

pytestmark = pytest.mark.slow

DEMO_DATA = PRESETS_DIR / "datasets" / "demo-chat.jsonl"
PROMPT_ROWS = [0, 17, 60, 123, 201]  # spread over the file; row 123 starts with a system message


def _demo_pairs(rows: list[int]) -> list[tuple[list[dict], str]]:
    """(the conversation up to the answer, the trained answer) for the given rows of the demo data."""
    lines = DEMO_DATA.read_text(encoding="utf-8").splitlines()
    pairs = []
    for index in rows:
        messages = json.loads(lines[index])["messages"]
        assert messages[-1]["role"] == "assistant"
        pairs.append((messages[:-1], messages[-1]["content"]))
    return pairs


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_demo_run_completed(demo_run):
    _, run_dir = demo_run
    status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    assert status["state"] == "completed", status
    assert status["output"] == "adapter"
    assert not status.get("error")
    assert status["steps"] == _metrics(run_dir)[-1]["step"]
    # checkpoints stay (a stopped or killed run resumes from them), but only save_total_limit of them
    assert 1 <= len(list((run_dir / "checkpoints").glob("checkpoint-*"))) <= 2


def test_demo_run_used_the_catalog_recommendations(demo_run):
    from studio import config as cfg
    from studio.models.catalog import recommended_overrides

    _, run_dir = demo_run
    config = cfg.from_yaml((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert config.model.model == "tiny-demo" and config.data.dataset == "demo-chat"
    assert config.run_name == "demo"
    flat = cfg.to_flat(config)
    for key, value in recommended_overrides("tiny-demo").items():
        assert flat[key] == value, key


def test_metrics_rows_are_complete_and_the_loss_fell(demo_run):
    _, run_dir = demo_run
    rows = _metrics(run_dir)
    assert len(rows) >= 20
    for row in rows:
        for key in ("step", "total_steps", "loss", "learning_rate", "elapsed", "eta", "tokens_per_s"):
            assert row.get(key) is not None, f"{key} missing in {row}"
        assert math.isfinite(row["loss"])
    steps = [r["step"] for r in rows]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert {r["total_steps"] for r in rows} == {steps[-1]}
    assert rows[-1]["eta"] == 0
    assert all(r["tokens_per_s"] > 0 for r in rows)
    losses = [r["loss"] for r in rows]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, f"loss did not fall enough: first 10 mean {first:.3f}, last 10 mean {last:.3f}"


def test_adapter_folder_has_everything_needed_to_reload(demo_run):
    from transformers import AutoTokenizer

    from studio import config as cfg

    _, run_dir = demo_run
    adapter = run_dir / "adapter"
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "tokenizer_config.json",
                 "studio_config.yaml"):
        assert (adapter / name).is_file(), f"{name} missing from {sorted(p.name for p in adapter.iterdir())}"
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    saved = cfg.from_yaml((adapter / "studio_config.yaml").read_text(encoding="utf-8"))
    assert saved == cfg.from_yaml((run_dir / "config.yaml").read_text(encoding="utf-8"))
    adapter_config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter_config["r"] == saved.method.lora_rank


def test_lora_weights_changed_and_base_weights_did_not(demo_run, tiny_demo_weights):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    workspace, run_dir = demo_run
    base_file = workspace / "models" / "tiny-demo" / "model.safetensors"
    base_weights = tiny_demo_weights  # as built, before anything trained (the run built its own copy, byte-identical)
    on_disk = load_file(str(base_file))
    assert on_disk.keys() == base_weights.keys()
    for key, value in base_weights.items():
        assert torch.equal(on_disk[key], value), f"base weight {key} changed on disk"

    # only adapter weights were saved: the base model is not duplicated or modified in the run
    saved = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    assert saved and all("lora_" in key for key in saved), [k for k in saved if "lora_" not in k]

    model = AutoModelForCausalLM.from_pretrained(base_file.parent)
    peft_model = PeftModel.from_pretrained(model, run_dir / "adapter")
    inner = peft_model.get_base_model().state_dict()
    base_in_peft = {k.replace(".base_layer", ""): v for k, v in inner.items() if "lora_" not in k}
    assert set(base_weights) <= set(base_in_peft)
    for key, value in base_weights.items():
        assert torch.equal(base_in_peft[key], value), f"base weight {key} changed"

    lora_b = {name: p for name, p in peft_model.named_parameters() if "lora_B" in name}
    assert len(lora_b) >= 7 * 4, "expected adapters on every linear layer of every block"
    zero = [name for name, p in lora_b.items() if not torch.any(p != 0)]
    assert not zero, f"lora_B still at its zero init: {zero}"


def test_chat_cli_gives_the_trained_answer_and_the_base_model_does_not(demo_run):
    workspace, run_dir = demo_run
    prompt, answer = "What is Amberlee known for?", "Amberlee is known for blue glass lanterns."
    tuned = run_cli("chat", run_dir.name, "--prompt", prompt, workspace=workspace)
    assert tuned.returncode == 0, tuned.stderr
    assert tuned.stdout.strip() == answer
    assert tuned.stderr == "", "the terminal shows the answer alone: no library warnings or loading bars"

    base = run_cli("chat", run_dir.name, "--prompt", prompt, "--base", workspace=workspace)
    assert base.returncode == 0, base.stderr
    assert base.stdout.strip() != answer
    assert answer not in base.stdout


def test_train_log_holds_the_studio_lines_and_the_trainer_figures_only(demo_run):
    _, run_dir = demo_run
    lines = (run_dir / "train.log").read_text(encoding="utf-8").splitlines()
    stray = [line for line in lines if not re.match(r"\[\d\d:\d\d:\d\d\] |\{'", line)]
    assert stray == [], "library warnings or progress bars in train.log"


def test_trained_prompts_get_their_trained_answers(demo_run):
    from studio.chat import GenerationSettings, load_run

    workspace, run_dir = demo_run
    chat_model = load_run(Workspace(workspace), run_dir.name)
    pairs = _demo_pairs(PROMPT_ROWS)
    assert len({m[-1]["content"] for m, _ in pairs}) == 5, "five different prompts"
    replies = [chat_model.reply(messages, GenerationSettings()) for messages, _ in pairs]
    exact = [reply == answer for reply, (_, answer) in zip(replies, pairs)]
    assert sum(exact) >= 4, "\n".join(
        f"{m[-1]['content']!r}: expected {a!r}, got {r!r}" for (m, a), r in zip(pairs, replies)
    )


def test_runs_json_lists_the_completed_run(demo_run):
    workspace, run_dir = demo_run
    result = run_cli("runs", "--json", workspace=workspace)
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)
    mine = [r for r in runs if r["run_id"] == run_dir.name]
    assert len(mine) == 1, runs
    assert mine[0]["state"] == "completed"
    assert isinstance(mine[0]["final_loss"], float) and mine[0]["final_loss"] < 1.0
    assert mine[0]["model"] == "tiny-demo" and mine[0]["method"] == "lora" and mine[0]["run_name"] == "demo"

    table = run_cli("runs", workspace=workspace)
    assert run_dir.name in table.stdout and "completed" in table.stdout


def test_full_fine_tune_saves_a_model_folder(workspace):
    import torch
    from safetensors.torch import load_file

    from studio.chat import GenerationSettings, load_run

    result = run_cli("train", "method=full", "max_steps=3", "run_name=full", workspace=workspace.root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = [workspace.runs_dir / r for r in workspace.run_ids()]
    status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    assert status["state"] == "completed" and status["steps"] == 3 and status["output"] == "model"
    model_dir = run_dir / "model"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "studio_config.yaml"):
        assert (model_dir / name).is_file(), name
    assert not (run_dir / "adapter").exists()

    base = load_file(str(workspace.models_dir / "tiny-demo" / "model.safetensors"))
    tuned = load_file(str(model_dir / "model.safetensors"))
    assert set(tuned) == set(base)
    assert any(not torch.equal(tuned[k], base[k]) for k in base), "full fine-tuning changed no weight"

    reply = load_run(workspace, run_dir.name).reply([{"role": "user", "content": "Hi"}], GenerationSettings(max_new_tokens=4))
    assert isinstance(reply, str)
