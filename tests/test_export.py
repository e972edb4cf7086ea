"""Export: the adapter folder/zip, the merged model that plain transformers loads and that answers like the run,
the Ollama Modelfile, the vLLM/SGLang commands, the model card and the Hub push (offline), and the refusals."""

from __future__ import annotations

import re
import shutil
import zipfile

import pytest

from tests.conftest import run_cli

PROMPT = "What is Amberlee known for?"


def render_ollama_chatml(template: str, messages: list[dict[str, str]]) -> str:
    """What Ollama writes for `messages` with a TEMPLATE of the form `{{- range .Messages }}TURN{{ end }}TAIL`
    (the ChatML one has no conditions), following Go's text/template semantics for these actions."""
    match = re.fullmatch(r"\{\{- range \.Messages \}\}(.*)\{\{ end \}\}(.*)", template, re.DOTALL)
    assert match, f"unexpected TEMPLATE shape: {template!r}"
    turn, tail = match.groups()
    assert "{{" not in turn.replace("{{ .Role }}", "").replace("{{ .Content }}", ""), "the ChatML TEMPLATE has no conditions"
    return "".join(turn.replace("{{ .Role }}", m["role"]).replace("{{ .Content }}", m["content"]) for m in messages) + tail


def test_adapter_export_cli_writes_adapter_zip_modelfile_and_serve_commands(demo_run):
    workspace, run_dir = demo_run
    out = workspace / "exports" / "adapter"
    result = run_cli("export", run_dir.name, "--to", str(out), "--ollama", "--zip", workspace=workspace)
    assert result.returncode == 0, result.stderr
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert (out / "tokenizer.json").is_file()
    with zipfile.ZipFile(workspace / "exports" / "adapter.zip") as archive:
        assert {"adapter_model.safetensors", "Modelfile", "README.md"} <= set(archive.namelist())

    modelfile = (out / "Modelfile").read_text(encoding="utf-8")
    assert f"FROM {workspace / 'models' / 'tiny-demo'}" in modelfile and "\nADAPTER .\n" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert 'SYSTEM """You are the Lantern Coast guide. Answer in one sentence."""' in modelfile  # 30 demo rows carry it
    template = re.search(r'TEMPLATE """(.*?)"""', modelfile, re.DOTALL).group(1)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT},
                    {"role": "assistant", "content": "Blue glass lanterns."}, {"role": "user", "content": "And its river?"}]
    assert render_ollama_chatml(template, conversation) == tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=True)

    command = f"--enable-lora --lora-modules demo={out}"
    assert command in result.stdout and command in (out / "SERVING.md").read_text(encoding="utf-8")
    assert "python -m sglang.launch_server" in result.stdout


def test_merged_export_loads_with_plain_transformers_and_answers_like_the_run(demo_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.chat import GenerationSettings, load_run
    from studio.export import export_run
    from studio.workspace import Workspace

    workspace_path, run_dir = demo_run
    workspace = Workspace(workspace_path)
    result = export_run(workspace, run_dir.name, str(workspace_path / "exports" / "merged"), merge=True, dtype="fp32",
                        max_shard_size="3MB", ollama=True)
    out = result.out_dir
    assert result.kind == "merged" and len(list(out.glob("model-*.safetensors"))) > 1  # sharded
    assert (out / "model.safetensors.index.json").is_file() and not (out / "adapter_config.json").exists()
    assert "\nFROM .\n" in (out / "Modelfile").read_text(encoding="utf-8")
    assert f"vllm serve {out} --served-model-name demo" in (out / "SERVING.md").read_text(encoding="utf-8")

    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    run = load_run(workspace, run_dir.name)
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gap = (merged(**inputs).logits - run.model(**inputs).logits).abs().max().item()
        output = merged.generate(**inputs, max_new_tokens=40, do_sample=False)
    assert gap < 1e-4, f"merged logits differ from base + adapter by {gap}"  # fp32 merge: float rounding only
    plain_answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    studio_answer = run.reply([{"role": "user", "content": PROMPT}], GenerationSettings(max_new_tokens=40))
    assert plain_answer == studio_answer and "lantern" in plain_answer.lower()


def test_model_card_and_push_without_network_or_token(demo_run, monkeypatch, tmp_path):
    from huggingface_hub import constants

    from studio import run_folder
    from studio.export import export_run
    from studio.model_card import PushError, push_to_hub
    from studio.workspace import Workspace

    workspace_path, run_dir = demo_run
    out = export_run(Workspace(workspace_path), run_dir.name, str(workspace_path / "exports" / "card")).out_dir
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nbase_model: tiny-demo\nlibrary_name: peft\n")
    assert "- dataset: `demo-chat`" in card and "210 rows" in card and "rows with a system prompt: 30" in card
    config = run_folder.load_config(run_dir)
    assert f"| learning_rate | {config.train.learning_rate} |" in card and f"| lora_rank | {config.method.lora_rank} |" in card
    assert "| step | training loss |" in card and re.search(r"\| \d+ \| \d+\.\d{4} \|", card)
    assert "![training loss](loss.png)" in card
    from PIL import Image

    with Image.open(out / "loss.png") as image:  # a real picture of the curve, not an empty file
        assert image.format == "PNG" and image.size == (640, 360)
        assert len(set(image.convert("L").getdata())) > 10  # axes, labels and the line, not a blank canvas

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(PushError, match="no Hugging Face token found: run `hf auth login` or set HF_TOKEN"):
        push_to_hub(out, "someone/demo")

    secret = "hf_studioTestSecret0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    with pytest.raises(PushError, match="HF_HUB_OFFLINE is set"):
        push_to_hub(out, "someone/demo")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    import httpx

    def no_network(folder, repo):
        raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("studio.model_card._upload_folder", no_network)
    with pytest.raises(PushError, match="could not push to someone/demo: .*name resolution. Check the network"):
        push_to_hub(out, "someone/demo")

    uploaded = {}

    def capture(folder, repo):
        uploaded.update({p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()})
        return f"https://huggingface.co/{repo}"

    monkeypatch.setattr("studio.model_card._upload_folder", capture)
    assert push_to_hub(out, "someone/demo") == "https://huggingface.co/someone/demo"
    assert {"README.md", "adapter_model.safetensors", "SERVING.md"} <= set(uploaded)
    assert not [name for name, data in uploaded.items() if secret.encode() in data]


def test_export_refusals(demo_run, tmp_path):
    from studio.export import ExportError, export_run
    from studio.workspace import PathError, Workspace

    workspace_path, run_dir = demo_run
    workspace = Workspace(workspace_path)
    with pytest.raises(PathError, match="outside the workspace"):
        export_run(workspace, run_dir.name, str(tmp_path / "elsewhere"))
    taken = workspace_path / "exports" / "taken"
    taken.mkdir(parents=True)
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists and is not an empty folder"):
        export_run(workspace, run_dir.name, str(taken))

    unfinished = workspace_path / "runs" / "20260101-000000-unfinished-0001"
    unfinished.mkdir()
    shutil.copyfile(run_dir / "config.yaml", unfinished / "config.yaml")
    result = run_cli("export", unfinished.name, "--to", str(workspace_path / "exports" / "none"), workspace=workspace_path)
    assert result.returncode == 2 and "has no trained weights to export yet" in result.stderr
    assert not (workspace_path / "exports" / "none").exists()

    (unfinished / "reward_model").mkdir()
    with pytest.raises(ExportError, match="is a reward model .* cannot be exported for chat, Ollama or vLLM"):
        export_run(workspace, unfinished.name, str(workspace_path / "exports" / "rm"), ollama=True)


def test_background_export_reports_steps_refuses_a_second_one_and_keeps_the_export_when_the_push_fails(
        demo_run, monkeypatch, tmp_path):
    import threading

    from huggingface_hub import constants

    from studio import export, export_jobs
    from studio.workspace import Workspace
    from tests.conftest import copy_demo_run, wait_for

    workspace_path, run_id = copy_demo_run(demo_run, tmp_path / "ws")  # no export of the run exists there yet
    run_dir = workspace_path / "runs" / run_id
    workspace = Workspace(workspace_path)
    first = export.next_export_dir(workspace, run_dir.name)
    assert first == workspace_path / "exports" / run_dir.name
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))

    release = threading.Event()
    write_modelfile = export.write_modelfile

    def held_modelfile(*args):
        release.wait(timeout=60)
        return write_modelfile(*args)

    monkeypatch.setattr(export, "write_modelfile", held_modelfile)
    job = export_jobs.start_export(workspace, run_dir.name, str(first), push_repo="someone/demo", private=True,
                              ollama=True, make_zip=True)
    wait_for(lambda: job.step == "modelfile", timeout=30, what="the export to reach the Modelfile step")
    assert job.state == "running" and export_jobs.export_job(run_dir.name) is job
    with pytest.raises(export_jobs.ExportBusyError, match="already being exported"):
        export_jobs.start_export(workspace, run_dir.name, str(workspace_path / "exports" / "other"))
    release.set()
    wait_for(lambda: job.state != "running", timeout=60, what="the export to end")
    assert job.state == "done", job.error
    assert job.result.zip_path == first.with_suffix(".zip") and job.result.modelfile == first / "Modelfile"
    assert "no Hugging Face token found" in job.push_error and not job.pushed_url
    assert export.next_export_dir(workspace, run_dir.name).name == f"{run_dir.name}-2"

    with pytest.raises(export.ExportError, match="already exists and is not an empty folder"):  # checked before the thread
        export_jobs.start_export(workspace, run_dir.name, str(first))
    with pytest.raises(export.ExportError, match="max shard size 'huge' is not a size like 2GB"):
        export_jobs.start_export(workspace, run_dir.name, str(workspace_path / "exports" / "bad-shard"), merge=True,
                            max_shard_size="huge")
    assert not (workspace_path / "exports" / "bad-shard").exists()
