"""Each peer file shape trains with the stage it is meant for: a few steps on tiny-demo, in this process, from
small fixtures written here (LLaMA-Factory ranking and v1 files, OpenAI/Azure preference JSONL, TRL implicit-prompt
pairs, a labelled conversation file for KTO, a line-per-document .txt for pt)."""

from __future__ import annotations

import json
import math

import pytest
from conftest import new_workspace
from test_peer_formats import PREFERENCE_SHAPES

from studio import config as cfg
from studio import jobs
from studio.train.worker import run_worker

pytestmark = pytest.mark.slow

KTO_ROWS = [{"messages": [{"role": "user", "content": f"Where is lantern {i}?"},
                          {"role": "assistant", "content": f"On shelf {i}." if i % 2 else "Nowhere at all."}],
             "label": bool(i % 2)} for i in range(6)]
V1_SFT = [{"messages": [{"role": "user", "content": [{"type": "text", "value": f"Count to {i}."}], "loss_weight": 0.0},
                        {"role": "assistant", "content": [{"type": "text", "value": " ".join(map(str, range(i + 1)))}],
                         "loss_weight": 1.0}]} for i in range(6)]
WIKI = "\n".join(f"Article {i}: " + "Amberlee lanterns glow blue over the Silver Run. " * 40 for i in range(4)) + "\n"


def _write_fixture(workspace, shape: str) -> str:
    if shape == "wiki.txt":
        (workspace.datasets_dir / shape).write_text(WIKI, encoding="utf-8")
        return f"datasets/{shape}"
    rows = KTO_ROWS if shape == "kto" else V1_SFT if shape == "v1 sft" else [PREFERENCE_SHAPES[shape][0]] * 6
    name = shape.replace(" ", "_").replace("/", "_") + ".jsonl"
    (workspace.datasets_dir / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return f"datasets/{name}"


@pytest.mark.parametrize("shape, stage", [
    ("llama-factory ranking", "dpo"), ("openai/azure preference", "orpo"), ("llama-factory v1", "rm"),
    ("trl implicit prompt", "dpo"), ("kto", "kto"), ("v1 sft", "sft"), ("wiki.txt", "pt")])
def test_the_shape_trains_with_its_stage(tmp_path, tiny_demo_dir, shape, stage, capsys):
    workspace = new_workspace(tmp_path / "ws", tiny_demo_dir)  # not the `workspace` fixture: its teardown stops
    # the run's worker, which here is this very process
    config = cfg.apply_overrides(cfg.RunConfig(), {
        "run_name": f"shape-{stage}", "stage": stage, "dataset": _write_fixture(workspace, shape), "max_steps": 2,
        "batch_size": 2, "learning_rate": 1e-3, "cutoff_len": 64, "save_steps": 0, "probe_steps": 0})
    run_dir = jobs.create_run(workspace, config)
    assert run_worker(workspace, run_dir) == 0, capsys.readouterr().out[-3000:]
    status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    assert status["state"] == "completed" and math.isfinite(status["final_loss"])
    log = capsys.readouterr().out
    if stage == "pt":  # 4 one-line documents, each longer than a 64-token block: split, not cut
        assert "continued pre-training: 4 documents" in log and "0 tokens cut" in log
    elif stage != "sft":
        assert "rows are longer than cutoff_len 64" in log or "fit in cutoff_len 64" in log
