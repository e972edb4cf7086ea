"""A run is asked as it learned: the system prompt every training row carried is recorded with the run and is
what chat, compare and serve start from (the user can still type another or none)."""

from __future__ import annotations

import json
import threading

import pytest

from studio import config as cfg
from studio.cli import _system_or_trained
from studio.serve import Server
from studio.system_prompt import record_training_system_prompt, shared_system_prompt, training_system_prompt

GUIDE = "You are the Lantern Coast guide."


def _rows(systems: list[str | None]) -> list[list[dict]]:
    rows = []
    for system in systems:
        turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        rows.append(([{"role": "system", "content": system}] if system else []) + turns)
    return rows


def test_a_prompt_every_row_carries_is_shared_and_one_most_rows_carry_is_not(tmp_path):
    assert shared_system_prompt(_rows([GUIDE, GUIDE])) == {"text": GUIDE, "rows": 2, "of": 2, "shared": True}
    assert shared_system_prompt(_rows([GUIDE, GUIDE, None])) == {"text": GUIDE, "rows": 2, "of": 3, "shared": False}
    assert shared_system_prompt(_rows([None])) == {"text": "", "rows": 0, "of": 1, "shared": False}

    record_training_system_prompt(tmp_path, _rows([GUIDE, GUIDE, "other"]))
    assert training_system_prompt(tmp_path) == ""
    record_training_system_prompt(tmp_path, _rows([GUIDE]))
    assert training_system_prompt(tmp_path) == GUIDE
    assert training_system_prompt(tmp_path / "a run trained before it was recorded") == ""


def test_the_api_puts_the_training_prompt_before_a_conversation_without_one():
    server = Server(chat_model=None, model_id="run", default_system=GUIDE)
    asked = [{"role": "user", "content": "hi"}]
    assert server.with_default_system(asked) == [{"role": "system", "content": GUIDE}, *asked]
    own = [{"role": "system", "content": "Be brief."}, *asked]
    assert server.with_default_system(own) == own
    assert Server(chat_model=None, model_id="run").with_default_system(asked) == asked


@pytest.mark.slow
def test_a_run_trained_with_one_system_prompt_is_chatted_with_it(workspace, capsys):
    from studio import jobs
    from studio.train import worker

    data = workspace.root / "guide.jsonl"
    rows = [{"messages": row} for row in _rows([GUIDE] * 4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = cfg.apply_overrides(cfg.RunConfig(), {"dataset": "guide.jsonl", "max_steps": 1, "batch_size": 2,
                                                   "cutoff_len": 64, "probe_steps": 0, "run_name": "guide"})
    run_dir = jobs.create_run(workspace, config)
    status = worker.train(workspace, run_dir, config, threading.Event())
    assert status["state"] == "completed", status
    assert "every training row has the same system prompt" in capsys.readouterr().out

    assert _system_or_trained(None, workspace, "guide") == GUIDE  # found by the run's name, too
    assert _system_or_trained("", workspace, "guide") == ""  # the user chose none
    assert _system_or_trained("Be brief.", workspace, run_dir.name) == "Be brief."
