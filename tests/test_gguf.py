"""GGUF both ways: import a GGUF file as a model folder, and write a model (a run) as GGUF that transformers'
GGUF reader loads back with the same answers.

Tolerances (logits of the read-back model against the original, float32 compute): f16 0.02 absolute (half
precision rounding of weights whose logits reach about ±6), q8_0 0.3 (8-bit blocks), bf16 0.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

TOLERANCE = {"f16": 0.02, "bf16": 0.1, "q8_0": 0.3}
QUESTION = [{"role": "user", "content": "What is LoRA?"}]


def _logits_and_answer(model, tokenizer, messages, max_new_tokens=24):
    import torch

    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        logits = model(**inputs).logits
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return inputs["input_ids"], logits, tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def _read_back(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


@pytest.mark.parametrize("out_type", ["f16", "bf16", "q8_0"])
def test_tiny_demo_written_as_gguf_reads_back_with_its_tokenizer_template_and_logits(tiny_demo_dir, tmp_path, out_type):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.models.gguf_writer import write_gguf

    path = write_gguf(tiny_demo_dir, tmp_path / "demo.gguf", out_type, "demo")
    original = AutoModelForCausalLM.from_pretrained(tiny_demo_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_dir)
    model, read_tokenizer = _read_back(path)
    ids, logits, _ = _logits_and_answer(original, tokenizer, QUESTION)
    read_ids, read_logits, _ = _logits_and_answer(model, read_tokenizer, QUESTION)
    assert torch.equal(ids, read_ids)  # same tokens, same chat template
    assert read_tokenizer.chat_template == tokenizer.chat_template
    assert read_tokenizer.eos_token == "<|im_end|>" and read_tokenizer.pad_token == "<|endoftext|>"
    gap = (logits - read_logits).abs().max().item()
    assert gap < TOLERANCE[out_type], f"{out_type}: logits differ by {gap}"
    from transformers.integrations.gguf.reader import read_gguf_metadata

    metadata, _ = read_gguf_metadata(str(path))  # what llama.cpp reads beside the weights
    assert metadata["tokenizer.ggml.model"] == "gpt2" and metadata["tokenizer.ggml.pre"] == "default"
    assert metadata["tokenizer.ggml.add_bos_token"] is False and metadata["tokenizer.ggml.eos_token_id"] == 2
    sizes = {"f16": 4.0e6, "bf16": 4.0e6, "q8_0": 2.1e6}  # 2M parameters: 2 bytes each, or about 1 in q8_0
    assert abs(path.stat().st_size - sizes[out_type]) < 0.3e6


def test_gguf_import_makes_a_model_folder_that_chats_like_the_original(workspace, tiny_demo_dir, tmp_path):
    from studio.chat import GenerationSettings, load_model
    from studio.models.gguf_import import IMPORT_NOTE, import_gguf
    from studio.models.gguf_writer import write_gguf

    path = write_gguf(tiny_demo_dir, tmp_path / "demo-f16.gguf", "f16")
    steps = []
    folder = import_gguf(workspace, path, progress=lambda fraction, step: steps.append((fraction, step)))
    assert folder == workspace.models_dir / "demo-f16"
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", IMPORT_NOTE} <= {p.name for p in folder.iterdir()}
    note = json.loads((folder / IMPORT_NOTE).read_text())
    assert note["architecture"] == "llama" and note["tensor_types"]["F16"] > 0 and note["saved_dtype"] == "float16"
    assert [s for _, s in steps][0] == "reading metadata" and steps[-1] == (1.0, "done")

    settings = GenerationSettings(max_new_tokens=12)
    imported = load_model(workspace, "demo-f16").reply(QUESTION, settings)  # chosen by its name
    original = load_model(workspace, "tiny-demo").reply(QUESTION, settings)
    assert imported == original


def test_gguf_import_refusals_name_the_problem(workspace, tmp_path):
    import gguf
    import numpy as np

    from studio.models.catalog import resolve_model
    from studio.models.gguf_import import GGUFImportError, import_gguf
    from studio.workspace import PathError

    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(GGUFImportError, match="not a GGUF file"):
        import_gguf(workspace, not_gguf)
    odd = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(odd, "rwkv6")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    with pytest.raises(GGUFImportError, match=r"rwkv6 model; the studio imports these GGUF architectures: .*llama.*qwen2"):
        import_gguf(workspace, odd)
    with pytest.raises(PathError, match="already exists"):
        import_gguf(workspace, odd, name="tiny-demo")
    with pytest.raises(PathError, match="must be 1-64 letters"):
        import_gguf(workspace, odd, name="../escape")
    assert not list(workspace.models_dir.glob(".*importing"))  # nothing half-written left
    inside = workspace.root / "odd.gguf"
    inside.write_bytes(odd.read_bytes())
    with pytest.raises(PathError, match="is a GGUF file; import it as a model folder first: python -m studio model import"):
        resolve_model(workspace, "odd.gguf")


def test_gguf_export_refuses_an_architecture_without_a_mapping():
    from studio.models.gguf_writer import GGUFExportError, check_exportable

    with pytest.raises(GGUFExportError, match="GPT2LMHeadModel has no GGUF mapping.*LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM"):
        check_exportable({"architectures": ["GPT2LMHeadModel"]})
    with pytest.raises(GGUFExportError, match="RoPE scaling 'yarn'"):
        check_exportable({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": "yarn", "factor": 4}})


def test_qwen2_model_written_as_gguf_reads_back(tiny_demo_dir, tmp_path):
    """The second supported family: Qwen2 (biases on q/k/v, no rotary reordering)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from studio.models.gguf_writer import write_gguf

    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_dir)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                         tie_word_embeddings=True)).eval()
    folder = tmp_path / "qwen2"
    model.save_pretrained(folder), tokenizer.save_pretrained(folder)
    read, read_tokenizer = _read_back(write_gguf(folder, tmp_path / "qwen2.gguf", "f16"))
    _, logits, _ = _logits_and_answer(model, tokenizer, QUESTION)
    _, read_logits, _ = _logits_and_answer(read, read_tokenizer, QUESTION)
    assert (logits - read_logits).abs().max().item() < TOLERANCE["f16"]


@pytest.mark.slow
@pytest.mark.parametrize("out_type", ["f16", "q8_0"])
def test_run_exported_as_gguf_gives_the_runs_answer(demo_run, tmp_path, out_type):
    from studio.chat import GenerationSettings, load_run
    from studio.workspace import Workspace

    workspace_path, run_dir = demo_run
    target = workspace_path / "exports" / f"gguf-{out_type}"
    result = run_cli("export", run_dir.name, "--to", str(target), "--gguf", out_type, workspace=workspace_path)
    assert result.returncode == 0, result.stderr
    gguf_file = target / "demo.gguf"
    assert sorted(p.name for p in target.iterdir()) == ["Modelfile", "SERVING.md", "demo.gguf"]
    modelfile = (target / "Modelfile").read_text()
    assert "\nFROM ./demo.gguf\n" in modelfile and "TEMPLATE" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "llama-server -m demo.gguf" in (target / "SERVING.md").read_text()

    run = load_run(Workspace(workspace_path), run_dir.name)
    prompt = [{"role": "user", "content": "What is Amberlee known for?"}]
    model, tokenizer = _read_back(gguf_file)
    _, read_logits, read_answer = _logits_and_answer(model, tokenizer, prompt, 40)
    _, run_logits, _ = _logits_and_answer(run.model, run.tokenizer, prompt, 1)
    gap = (read_logits - run_logits).abs().max().item()
    assert gap < TOLERANCE[out_type] * 3, f"{out_type}: logits differ from the run's by {gap}"  # trained logits are larger
    run_answer = run.reply(prompt, GenerationSettings(max_new_tokens=40))
    assert read_answer.strip() == run_answer and "lantern" in run_answer.lower()


def test_cli_model_import_and_chat_without_a_run(workspace, tiny_demo_dir, tmp_path):
    from studio.models.gguf_writer import write_gguf

    path = write_gguf(tiny_demo_dir, tmp_path / "mine.gguf", "q8_0")
    result = run_cli("model", "import", str(path), "--name", "mine", workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout and "use it as model `mine`" in result.stdout
    assert (workspace.models_dir / "mine" / "model.safetensors").is_file()
    again = run_cli("model", "import", str(path), "--name", "mine", workspace=workspace.root)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    chat = run_cli("chat", "--model", "mine", "--prompt", "Hello", "--max-new-tokens", "5", workspace=workspace.root)
    assert chat.returncode == 0 and chat.stdout.strip(), chat.stderr
    neither = run_cli("chat", "--prompt", "Hello", workspace=workspace.root)
    assert neither.returncode == 2 and "--model" in neither.stderr
