"""Evaluate: scores of known strings, an evaluation of the demo run, its files, the CLI, and bad input named."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil

import pytest
from conftest import copy_demo_run, run_cli, wait_for

from studio import run_folder
from studio.data.loading import DataError
from studio.data.prepare import load_for_config, split_indices
from studio.eval import job
from studio.eval.metrics import (
    CJKTokenizer,
    bleu,
    corpus_bleu,
    exact_match,
    rouge_l,
    summarise,
)
from studio.eval.rows import EvalError
from studio.model_card import model_card
from studio.workspace import ADAPTER_DIR, REWARD_MODEL_DIR, PathError, Workspace, this_process_started

HELD_OUT = 4  # validation rows the copied demo run is set to hold out


# --- metrics on strings a person can check -------------------------------------------------------------

def test_exact_match_ignores_only_white_space():
    assert exact_match("  The Low Wend\nruns through Cobbleford. ", "The Low Wend runs through Cobbleford.")
    assert not exact_match("the low wend runs through cobbleford.", "The Low Wend runs through Cobbleford.")


def test_rouge_l_of_a_hand_checked_pair():
    # longest common subsequence "the cat sat" = 3 tokens: precision 3/3, recall 3/6, F = 2·1·0.5/1.5 = 2/3
    assert rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(200 / 3)
    assert rouge_l("dogs bark", "the cat sat") == 0.0


def test_bleu_is_100_for_identical_text_and_0_for_disjoint():
    assert bleu("Amberlee is known for blue glass lanterns.", "Amberlee is known for blue glass lanterns.") == pytest.approx(100)
    assert corpus_bleu(["yes", "The mill is old."], ["yes", "The mill is old."]) == pytest.approx(100)  # short answers too
    assert bleu("dogs bark loudly", "the cat sat on the mat") == 0.0


def test_chinese_pair_scores_between_nothing_and_everything():
    answer, reference = "猫坐在垫子上了", "猫坐在垫子上"
    assert CJKTokenizer().tokenize("猫坐在 mat上") == ["猫", "坐", "在", "mat", "上"]
    # 6 characters in common: precision 6/7, recall 6/6
    assert rouge_l(answer, reference) == pytest.approx(100 * 2 * (6 / 7) / (6 / 7 + 1))
    assert 0 < bleu(answer, reference) < 100
    assert rouge_l("狗叫了", reference) == 0.0  # no character in common


def test_loss_is_averaged_over_answer_tokens():
    scores = summarise(["a", "b", "c"], ["a", "x", "c"], [(1.0, 1), (3.0, 3), None])
    assert scores.loss == pytest.approx(2.5)  # (1·1 + 3·3) / 4 tokens; the row with no token left is not counted
    assert scores.perplexity == pytest.approx(math.exp(2.5))
    assert scores.exact_match == pytest.approx(200 / 3)
    assert scores.loss_tokens == 4


# --- an evaluation of the demo run ---------------------------------------------------------------------

def _copy_run(demo_run, root, val_size: float | None = None) -> tuple[Workspace, str]:
    """The demo run copied into a fresh workspace (so evaluations never touch the shared one), optionally with
    its config saying it held out `val_size` validation rows."""
    _, run_id = copy_demo_run(demo_run, root)
    workspace = Workspace(root)
    copy = workspace.runs_dir / run_id
    if val_size is not None:
        text = (copy / "config.yaml").read_text(encoding="utf-8")
        (copy / "config.yaml").write_text(text.replace("val_size: 0.0", f"val_size: {val_size}"), encoding="utf-8")
        assert run_folder.load_config(copy).data.val_size == val_size
    return workspace, run_id


@pytest.fixture(scope="module")
def evaluated(demo_run, tmp_path_factory):
    """(workspace, run id, results folder, scores) of one evaluation of 3 of the run's 4 validation rows."""
    workspace, run = _copy_run(demo_run, tmp_path_factory.mktemp("eval-ws"), val_size=HELD_OUT)
    folder, scores = job.evaluate(workspace, run, job.EvalSettings(max_rows=3, max_new_tokens=16))
    return workspace, run, folder, scores


def test_validation_split_is_the_one_training_used(evaluated):
    workspace, run, folder, scores = evaluated
    config = run_folder.load_config(workspace.run_dir(run))
    dataset = load_for_config(workspace, config)
    _, held_out = split_indices(len(dataset), config.data.val_size, config.train.seed)
    expected = [dataset.conversations[i][-1]["content"] for i in held_out][:3]
    rows = job.read_results(folder)
    assert [r["reference"] for r in rows] == expected
    assert scores["rows"] == 3 and scores["rows_available"] == HELD_OUT
    assert "validation split" in scores["source"]


def test_rows_have_both_answers_and_the_tuned_model_has_lower_loss(evaluated):
    _, _, folder, scores = evaluated
    rows = job.read_results(folder)
    assert all(r["base"].strip() and r["tuned"].strip() for r in rows)
    assert any(r["base"] != r["tuned"] for r in rows)
    assert scores["tuned"]["loss"] < scores["base"]["loss"]  # the demo training learned its data
    assert scores["tuned"]["perplexity"] < scores["base"]["perplexity"]
    assert scores["tuned"]["rouge_l"] > scores["base"]["rouge_l"]
    progress = job.read_progress(folder)
    assert progress["state"] == "completed" and progress["done"] == progress["total"] == 6


def test_csv_and_jsonl_hold_the_same_rows(evaluated):
    _, _, folder, _ = evaluated
    rows = job.read_results(folder)
    with open(folder / job.CSV_FILE, encoding="utf-8-sig", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows) == 3
    for line, row in zip(table, rows):
        assert [line[k] for k in ("prompt", "reference", "base", "tuned")] == [row[k] for k in ("prompt", "reference", "base", "tuned")]
        assert float(line["tuned_rouge_l"]) == row["tuned_rouge_l"]


def test_model_card_shows_the_latest_evaluation(evaluated, tmp_path):
    workspace, run, _, scores = evaluated
    card = model_card(workspace, workspace.run_dir(run), tmp_path, "adapter")
    assert "Answers scored against references (3 rows" in card
    assert f"| ROUGE-L F | {scores['base']['rouge_l']:.1f} | {scores['tuned']['rouge_l']:.1f} |" in card
    assert f"| loss on the reference answers | {scores['base']['loss']:.4f} | {scores['tuned']['loss']:.4f} |" in card


def test_cli_evaluates_a_file_and_prints_json(demo_run, tmp_path):
    workspace, run = _copy_run(demo_run, tmp_path / "ws")
    rows = [{"messages": [{"role": "user", "content": "Which river runs through Cobbleford?"},
                          {"role": "assistant", "content": "The Low Wend runs through Cobbleford."}]},
            {"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."},
                          {"role": "user", "content": "What is Amberlee known for?"},
                          {"role": "assistant", "content": "Amberlee is known for blue glass lanterns."}]}]
    (workspace.datasets_dir / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = run_cli("eval", run, "--data", "datasets/mine.jsonl", "--max-new-tokens", "12", "--json", workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["rows"] == 2 and printed["state"] == "completed" and "mine.jsonl" in printed["source"]
    assert set(printed["base"]) >= {"loss", "perplexity", "exact_match", "rouge_l", "bleu"}
    results = job.read_results(workspace.root / printed["results"])
    assert results[1]["prompt"] == "user: Hello\nassistant: Hi.\nuser: What is Amberlee known for?"
    assert results[1]["reference"] == "Amberlee is known for blue glass lanterns."

    missing = run_cli("eval", run, "--data", "datasets/nothing-here.jsonl", workspace=workspace.root)
    assert missing.returncode == 2 and "nothing-here.jsonl does not exist" in missing.stderr


# --- bad input gets a message that says what is wrong ---------------------------------------------------

def test_bad_data_and_runs_are_named(demo_run, tmp_path):
    workspace, run = _copy_run(demo_run, tmp_path / "ws")
    settings = job.EvalSettings
    with pytest.raises(EvalError, match="held out no validation rows.*val_size"):
        job.prepare(workspace, run, settings())
    with pytest.raises(PathError, match="missing.jsonl does not exist"):
        job.prepare(workspace, run, settings(data="datasets/missing.jsonl"))
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"prompt": "a", "completion": "b"}\n', encoding="utf-8")
    with pytest.raises(PathError, match="outside the workspace"):
        job.prepare(workspace, run, settings(data=str(outside)))
    (workspace.datasets_dir / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty.jsonl: the file has no rows"):
        job.prepare(workspace, run, settings(data="datasets/empty.jsonl"))
    (workspace.datasets_dir / "plain.txt").write_text("just some text\nmore text\n", encoding="utf-8")
    with pytest.raises(EvalError, match="plain.txt has no row with a prompt and an assistant answer"):
        job.prepare(workspace, run, settings(data="datasets/plain.txt"))
    with pytest.raises(EvalError, match="max rows"):
        job.prepare(workspace, run, settings(data="training", max_rows=0))

    run_dir = workspace.run_dir(run)
    shutil.move(run_dir / ADAPTER_DIR, tmp_path / "adapter")
    with pytest.raises(PathError, match="has no trained weights"):
        job.prepare(workspace, run, settings(data="training"))
    (run_dir / REWARD_MODEL_DIR).mkdir()
    with pytest.raises(EvalError, match="reward model"):
        job.prepare(workspace, run, settings(data="training"))
    assert job.eval_dirs(run_dir) == []  # nothing was started


def test_one_evaluation_per_run_and_cancel(demo_run, tmp_path):
    workspace, run = _copy_run(demo_run, tmp_path / "ws")
    run_dir = workspace.run_dir(run)
    folder = job.start_in_background(workspace, run, job.EvalSettings(data="training", max_rows=50, max_new_tokens=16))
    with pytest.raises(EvalError, match="already being evaluated"):
        job.prepare(workspace, run, job.EvalSettings(data="training"))
    assert job.active_eval(run_dir) == folder
    wait_for(lambda: job.read_progress(folder).get("done", 0) >= 1, 120, "the first answer")
    assert job.request_cancel(folder)
    progress = wait_for(lambda: (p := job.read_progress(folder)).get("state") in job.FINISHED and p, 120, "the cancel")
    assert progress["state"] == "cancelled" and progress["done"] < progress["total"]
    assert job.active_eval(run_dir) is None
    assert (folder / job.CSV_FILE).is_file()
    assert not job.request_cancel(folder)  # nothing left to cancel


def test_an_evaluation_left_unfinished_by_a_stopped_studio_reads_as_failed(tmp_path):
    folder = tmp_path / "runs" / "20260101-000000-demo-abcd" / job.EVAL_DIR / "20260101-000100"
    folder.mkdir(parents=True)
    (folder / job.PROGRESS_FILE).write_text(json.dumps({"state": "running", "done": 3, "total": 10}), encoding="utf-8")
    progress = job.read_progress(folder)
    assert progress["state"] == "failed" and "stopped before it finished" in progress["error"]
    assert not job.request_cancel(folder)


def test_an_evaluation_is_over_once_it_says_so_though_its_process_still_holds_the_lock(tmp_path):
    run_dir = tmp_path / "runs" / "20260101-000000-demo-abcd"
    folder = run_dir / job.EVAL_DIR / "20260101-000100"
    folder.mkdir(parents=True)
    lock = {"pid": os.getpid(), "pid_started": this_process_started(), "eval_dir": folder.name}  # this live process holds it
    (run_dir / job.EVAL_DIR / job.LOCK_FILE).write_text(json.dumps(lock), encoding="utf-8")
    (folder / job.PROGRESS_FILE).write_text(json.dumps({"state": "running", "done": 3, "total": 10}), encoding="utf-8")
    assert job.active_eval(run_dir) == folder
    # the last moment of a cancel: the final state is written, the lock is released just after
    (folder / job.PROGRESS_FILE).write_text(json.dumps({"state": "cancelled", "done": 3, "total": 10}), encoding="utf-8")
    assert job.active_eval(run_dir) is None and job.read_progress(folder)["state"] == "cancelled"


def test_an_evaluation_that_ends_while_its_progress_is_read_reads_as_it_ended(tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "20260101-000000-demo-abcd"
    folder = run_dir / job.EVAL_DIR / "20260101-000100"
    folder.mkdir(parents=True)
    lock_file = run_dir / job.EVAL_DIR / job.LOCK_FILE
    lock_file.write_text(json.dumps({"pid": os.getpid(), "pid_started": this_process_started(), "eval_dir": folder.name}),
                         encoding="utf-8")
    (folder / job.PROGRESS_FILE).write_text(json.dumps({"state": "running", "done": 3, "total": 10}), encoding="utf-8")
    still_running = job.active_eval

    def ending_meanwhile(path):  # the evaluation writes its final state, then releases its lock, between the reads
        (folder / job.PROGRESS_FILE).write_text(json.dumps({"state": "cancelled", "done": 3, "total": 10}), encoding="utf-8")
        lock_file.unlink()
        return still_running(path)

    monkeypatch.setattr(job, "active_eval", ending_meanwhile)
    assert job.read_progress(folder)["state"] == "cancelled"  # not "failed: the studio stopped"


def test_a_lock_left_by_an_ended_process_whose_pid_came_back_is_not_an_evaluation_going_on(tmp_path):
    run_dir = tmp_path / "runs" / "20260101-000000-demo-abcd"
    folder = run_dir / job.EVAL_DIR / "20260101-000100"
    folder.mkdir(parents=True)
    # this process's pid, but a process that started an hour earlier: the system gave its pid to this one
    lock = {"pid": os.getpid(), "pid_started": this_process_started() - 3600, "eval_dir": folder.name}
    (run_dir / job.EVAL_DIR / job.LOCK_FILE).write_text(json.dumps(lock), encoding="utf-8")
    (folder / job.PROGRESS_FILE).write_text(json.dumps({"state": "running", "done": 3, "total": 10}), encoding="utf-8")
    assert job.active_eval(run_dir) is None


def test_a_full_fine_tune_is_answered_by_its_own_weights_and_by_its_base_model(demo_run, tmp_path):
    # The demo adapter merged into its base and saved as model/: the run now looks like a full fine-tune, so the
    # base answers need the base model loaded on its own, and the tuned ones come from model/.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    workspace, run = _copy_run(demo_run, tmp_path / "ws", val_size=2)
    run_dir = workspace.run_dir(run)
    base = AutoModelForCausalLM.from_pretrained(workspace.models_dir / "tiny-demo")
    PeftModel.from_pretrained(base, run_dir / ADAPTER_DIR).merge_and_unload().save_pretrained(run_dir / "model")
    AutoTokenizer.from_pretrained(run_dir / ADAPTER_DIR).save_pretrained(run_dir / "model")
    shutil.rmtree(run_dir / ADAPTER_DIR)
    folder, scores = job.evaluate(workspace, run, job.EvalSettings(max_rows=2, max_new_tokens=16))
    rows = job.read_results(folder)
    assert len(rows) == 2 and all(r["tuned_exact"] and not r["base_exact"] for r in rows)  # the demo learned its rows
    assert scores["tuned"]["loss"] < scores["base"]["loss"]
