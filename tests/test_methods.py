"""Every method trains a few steps on tiny-demo (CPU) through the worker: it trains exactly the parameters the
method should (counted here from the model's shape, independently of PEFT), those weights moved between the
first checkpoint and the end while the base weights did not, and the saved artifact loads back for chat."""

from __future__ import annotations

import json
import threading

import pytest

from studio import config as cfg
from studio.workspace import PRESETS_DIR

pytestmark = pytest.mark.slow

ROWS = 8  # a few rows of the demo data: enough for 3 steps of 4
STEPS = 3


@pytest.fixture(scope="module")
def shape(tiny_demo_dir) -> dict:
    """tiny-demo's numbers, read from its config.json (what the expected counts are computed from)."""
    c = json.loads((tiny_demo_dir / "config.json").read_text(encoding="utf-8"))
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    return {"d": c["hidden_size"], "ffn": c["intermediate_size"], "layers": c["num_hidden_layers"],
            "kv": head_dim * c["num_key_value_heads"]}


def _train(workspace, capsys, **overrides) -> tuple:
    """Train tiny-demo for STEPS steps with `overrides` through the worker's train(); (run_dir, status, log)."""
    from studio import jobs
    from studio.train import worker

    data = workspace.root / "tiny.jsonl"
    lines = (PRESETS_DIR / "datasets" / "demo-chat.jsonl").read_text(encoding="utf-8").splitlines()[:ROWS]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = cfg.apply_overrides(cfg.RunConfig(), {
        "dataset": "tiny.jsonl", "max_steps": STEPS, "batch_size": 4, "learning_rate": 1e-2, "cutoff_len": 128,
        "save_steps": 1, "save_total_limit": STEPS, "probe_steps": 0, **overrides})
    run_dir = jobs.create_run(workspace, config)
    status = worker.train(workspace, run_dir, config, threading.Event())
    return run_dir, status, capsys.readouterr().out


def _trained_count(log: str) -> int:
    line = next(line for line in log.splitlines() if "] training " in line)
    return int(line.split("training ")[1].split(" parameters")[0].replace(",", ""))


def _tensors(folder) -> dict:
    from safetensors.torch import load_file

    name = "adapter_model.safetensors" if (folder / "adapter_model.safetensors").is_file() else "model.safetensors"
    return load_file(str(folder / name))


def _moved(run_dir) -> set[str]:
    """Names of the saved tensors that differ between checkpoint-1 and the end of training."""
    import torch

    first, last = _tensors(run_dir / "checkpoints" / "checkpoint-1"), _tensors(run_dir / f"checkpoints/checkpoint-{STEPS}")
    assert set(first) == set(last)
    return {k for k in first if not torch.equal(first[k], last[k])}


QUESTION = [{"role": "user", "content": "What is Amberlee known for?"}]


def _chat_reply(workspace, run_dir) -> str:
    """The Chat tab's reply (greedy) to QUESTION with the run's artifact, checked token for token against a plain
    greedy decode that runs the whole sequence through the loaded model at every step (no generate(), no cache)."""
    import torch

    from studio.chat import GenerationSettings, load_run

    chat_model = load_run(workspace, run_dir.name)
    reply = chat_model.reply(QUESTION, GenerationSettings(max_new_tokens=6))
    tokenizer = chat_model.tokenizer
    ids = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    prompt_len = ids.shape[1]
    with torch.no_grad():
        for _ in range(6):
            token = chat_model.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].argmax()
            ids = torch.cat([ids, token.view(1, 1)], dim=1)
            if token.item() == tokenizer.eos_token_id:
                break
    assert reply == tokenizer.decode(ids[0, prompt_len:], skip_special_tokens=True).strip()
    return reply


def _base_unchanged_in(workspace, run_dir, built_weights: dict) -> None:
    """The model folder still holds tiny-demo's weights as built, and the adapter loaded on it leaves every base
    weight as it was."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    base_dir = workspace.models_dir / "tiny-demo"
    on_disk = load_file(str(base_dir / "model.safetensors"))
    assert on_disk.keys() == built_weights.keys()
    for key, value in built_weights.items():
        assert torch.equal(on_disk[key], value), f"base weight {key} changed on disk"
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), run_dir / "adapter")
    inner = {k.replace(".base_layer", ""): v for k, v in peft_model.get_base_model().state_dict().items()}
    for key, value in built_weights.items():
        assert torch.equal(inner[key], value), f"base weight {key} changed"


LORA_CASES = {
    # name: (overrides, expected trainable count from the shape, what the adapter config must say)
    "lora on q_proj": ({"method": "lora", "lora_rank": 4, "lora_targets": "q_proj"},
                       lambda s: s["layers"] * 4 * 2 * s["d"], {"r": 4, "use_dora": False}),
    "dora + rslora on q,v": ({"method": "lora", "lora_rank": 2, "lora_targets": "q_proj,v_proj", "use_dora": True,
                              "use_rslora": True},
                             lambda s: s["layers"] * (2 * (2 * s["d"]) + 2 * (s["d"] + s["kv"]) + s["d"] + s["kv"]),
                             {"use_dora": True, "use_rslora": True}),
    "qlora 4-bit nf4, LoRA+": ({"method": "qlora", "lora_rank": 4, "lora_targets": "q_proj", "loraplus_ratio": 16},
                               lambda s: s["layers"] * 4 * 2 * s["d"], {"r": 4}),
}


@pytest.mark.parametrize("case", list(LORA_CASES))
def test_lora_family_trains_the_adapter_only_and_chats(case, workspace, shape, capsys, tiny_demo_weights):
    overrides, expected, adapter_says = LORA_CASES[case]
    run_dir, status, log = _train(workspace, capsys, **overrides)
    assert status["state"] == "completed" and status["output"] == "adapter", status
    assert _trained_count(log) == expected(shape)
    moved = _moved(run_dir)
    assert any("lora_B" in k for k in moved) and any("lora_A" in k for k in moved), moved
    saved = json.loads((run_dir / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    assert {k: saved[k] for k in adapter_says} == adapter_says
    if overrides["method"] == "qlora":
        assert "quantising the frozen weights to 4 bits" in log and "LoRA+: the B matrices learn at 16" in log
    else:
        _base_unchanged_in(workspace, run_dir, tiny_demo_weights)
    assert isinstance(_chat_reply(workspace, run_dir), str)


def test_loraplus_gives_the_b_matrices_ratio_times_the_learning_rate(tiny_demo_dir):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, TrainingArguments

    from studio.train import methods

    config = cfg.apply_overrides(cfg.RunConfig(), {"lora_targets": "q_proj", "loraplus_ratio": 16, "learning_rate": 1e-3})
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_demo_dir), methods.peft_config(config))
    args = TrainingArguments(output_dir="unused", learning_rate=1e-3, use_cpu=True, report_to="none")
    optimizer = methods.loraplus_optimizer(model, args, config)
    ids = {id(p): name for name, p in model.named_parameters()}
    rates = {ids[id(p)]: group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert rates and all(rate == pytest.approx(16e-3 if "lora_B" in name else 1e-3) for name, rate in rates.items())
    assert any("lora_B" in name for name in rates) and any("lora_A" in name for name in rates)


def test_pissa_adapter_is_converted_to_plain_lora_on_the_original_weights(workspace, shape, capsys, tiny_demo_weights):
    run_dir, status, log = _train(workspace, capsys, method="lora", lora_rank=2, lora_targets="q_proj", pissa_init=True)
    assert status["state"] == "completed", status
    assert _trained_count(log) == shape["layers"] * 2 * 2 * shape["d"]
    assert "PiSSA" in log
    saved = json.loads((run_dir / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    assert saved["r"] == 4 and saved["init_lora_weights"] is True  # rank doubles in the conversion
    _base_unchanged_in(workspace, run_dir, tiny_demo_weights)
    assert isinstance(_chat_reply(workspace, run_dir), str)


VIRTUAL_TOKENS = 8
ADAPTER_CASES = {
    # IA³ scales k and v outputs and the down projection's input in every layer
    "ia3": ({"method": "ia3"}, lambda s: s["layers"] * (2 * s["kv"] + s["ffn"])),
    "prompt_tuning": ({"method": "prompt_tuning", "num_virtual_tokens": VIRTUAL_TOKENS},
                      lambda s: VIRTUAL_TOKENS * s["d"]),
    # a key and a value vector per virtual token and layer (grouped-query models: kv heads × head dim wide)
    "prefix_tuning": ({"method": "prefix_tuning", "num_virtual_tokens": VIRTUAL_TOKENS},
                      lambda s: VIRTUAL_TOKENS * s["layers"] * 2 * s["kv"]),
    # the virtual-token embeddings plus the MLP prompt encoder (three d×d layers with biases)
    "p_tuning": ({"method": "p_tuning", "num_virtual_tokens": VIRTUAL_TOKENS},
                 lambda s: VIRTUAL_TOKENS * s["d"] + 3 * (s["d"] * s["d"] + s["d"])),
}


@pytest.mark.parametrize("case", list(ADAPTER_CASES))
def test_other_adapters_train_their_parameters_only_and_chat(case, workspace, shape, capsys, tiny_demo_weights):
    overrides, expected = ADAPTER_CASES[case]
    run_dir, status, log = _train(workspace, capsys, **overrides)
    assert status["state"] == "completed" and status["output"] == "adapter", status
    assert _trained_count(log) == expected(shape)
    assert _moved(run_dir), "no adapter weight changed during training"
    saved = json.loads((run_dir / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    assert saved["peft_type"] == {"ia3": "IA3", "prompt_tuning": "PROMPT_TUNING", "prefix_tuning": "PREFIX_TUNING",
                                  "p_tuning": "P_TUNING"}[case]
    _base_unchanged_in(workspace, run_dir, tiny_demo_weights)
    assert isinstance(_chat_reply(workspace, run_dir), str)


def test_freeze_trains_only_the_chosen_modules_of_the_last_layers(workspace, shape, capsys):
    import torch
    from safetensors.torch import load_file

    run_dir, status, log = _train(workspace, capsys, method="freeze", freeze_trainable_layers=1,
                                  freeze_trainable_modules="mlp", optim="adamw_8bit")
    assert status["state"] == "completed" and status["output"] == "model", status
    assert _trained_count(log) == 3 * shape["d"] * shape["ffn"]  # gate, up, down of the last layer
    last = shape["layers"] - 1
    base = load_file(str(workspace.models_dir / "tiny-demo" / "model.safetensors"))
    tuned = _tensors(run_dir / "model")
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert changed == {f"model.layers.{last}.mlp.{p}.weight" for p in ("gate_proj", "up_proj", "down_proj")}
    assert isinstance(_chat_reply(workspace, run_dir), str)


def test_full_fine_tuning_with_galore_trains_every_weight(workspace, capsys):
    from safetensors.torch import load_file

    run_dir, status, log = _train(workspace, capsys, method="full", optim="galore_adamw", learning_rate=1e-3)
    assert status["state"] == "completed" and status["output"] == "model", status
    base = load_file(str(workspace.models_dir / "tiny-demo" / "model.safetensors"))
    assert _trained_count(log) == sum(v.numel() for v in base.values())
    moved = _moved(run_dir)
    assert any(".mlp." in k for k in moved) and any(".self_attn." in k for k in moved)
    assert isinstance(_chat_reply(workspace, run_dir), str)


def test_rope_scaling_stretches_the_context_in_training_and_in_chat(workspace, capsys):
    run_dir, status, log = _train(workspace, capsys, lora_targets="q_proj", rope_scaling="linear", rope_factor=2,
                                  neftune_alpha=5, cutoff_len=1024)
    assert status["state"] == "completed", status
    assert "RoPE scaling linear × 2: context 1024 tokens" in log
    from studio.chat import load_run

    chat_config = load_run(workspace, run_dir.name).model.get_base_model().config
    assert chat_config.rope_parameters["rope_type"] == "linear" and chat_config.rope_parameters["factor"] == 2
    assert chat_config.max_position_embeddings == 1024
    assert isinstance(_chat_reply(workspace, run_dir), str)


def test_packing_puts_several_rows_in_a_sequence_without_mixing_them(workspace, tiny_demo_dir):
    """Padding-free packing: a batch is one long sequence whose position ids restart at each row, and every row's
    logits are exactly what the row gives on its own (no row attends to another)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from studio.train import methods

    config = cfg.apply_overrides(cfg.RunConfig(), {"packing": True, "cutoff_len": 64})
    tokenizer = AutoTokenizer.from_pretrained(tiny_demo_dir)
    rows = [[5 + i + j for j in range(n)] for i, n in enumerate((9, 14, 20, 11, 7, 16))]
    dataset = Dataset.from_dict({"input_ids": rows, "labels": rows})
    model = AutoModelForCausalLM.from_pretrained(tiny_demo_dir).eval()
    args = SFTConfig(output_dir=str(workspace.root / "out"), max_length=64, per_device_train_batch_size=2, use_cpu=True,
                     report_to="none", **methods.sft_arguments(config))
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    positions = batch["position_ids"][0]
    starts = (positions == 0).nonzero().flatten().tolist()
    assert len(starts) >= 3, "expected several rows packed into the sequence"
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        for start, end in zip(starts, starts[1:] + [len(positions)]):
            alone = model(input_ids=batch["input_ids"][:, start:end]).logits[0]
            torch.testing.assert_close(packed[start:end], alone, atol=1e-4, rtol=1e-4)


def test_efficiency_options_reach_the_trainer_arguments(capsys):
    from studio.train import methods

    config = cfg.apply_overrides(cfg.RunConfig(), {"optim": "paged_adamw_8bit", "neftune_alpha": 5, "use_liger": False})
    cpu = methods.trainer_arguments(config, "cpu", methods.choose_precision(config, "cpu"))
    assert cpu["optim"] == "paged_adamw_8bit" and cpu["neftune_noise_alpha"] == 5
    assert cpu[methods.checkpointing_key()] is False and not cpu["bf16"] and not cpu["fp16"]
    assert "gradient checkpointing is off on a CPU" in capsys.readouterr().out
    assert methods.trainer_arguments(cfg.apply_overrides(config, {"optim": "adamw_8bit"}), "cpu",
                                     methods.choose_precision(config, "cpu"))["optim"] == "adamw_bnb_8bit"
    assert methods.choose_precision(config, "cpu").label == "fp32"


def test_validation_names_what_cannot_work_and_how_to_fix_it():
    def problems(**overrides) -> dict[str, str]:
        return {p.key: p.message for p in cfg.validate(cfg.apply_overrides(cfg.RunConfig(), overrides))}

    assert problems(method="qlora", pissa_init=True)["pissa_init"].startswith("PiSSA needs the unquantised weights")
    assert "method=full or freeze" in problems(optim="galore_adamw")["optim"]
    assert "needs a CUDA GPU" in problems(precision="pure_bf16")["precision"]  # this machine has none
    assert "pip install flash-attn" in problems(attn_impl="flash_attention_2")["attn_impl"]
    assert "pip install liger-kernel" in problems(use_liger=True)["use_liger"]
    assert "sft and pt stages" in problems(packing=True, stage="dpo")["packing"]
    assert "virtual tokens" in problems(packing=True, method="prefix_tuning")["packing"]
    assert "use method=full" in problems(method="freeze", freeze_trainable_layers=0)["freeze_trainable_layers"]
    assert problems(method="freeze", freeze_trainable_modules="mlp;attn")["freeze_trainable_modules"]
    assert problems(rope_scaling="yarn", rope_factor=1)["rope_factor"].startswith("must be above 1")
    assert problems(method="lora", loraplus_ratio=0.5)["loraplus_ratio"]
    for key, value, named in (("quant_bits", 3, "must be one of 4, 8, got 3"),
                              ("method", "adapter", "must be one of lora, qlora, full, freeze")):
        with pytest.raises(cfg.ConfigError, match=f"{key}: {named}"):  # refused wherever it is set
            problems(**{key: value})
    everything = problems(method="qlora", pissa_init=True, optim="galore_adamw", use_liger=True, rope_scaling="yarn",
                          rope_factor=0.5)
    assert {"pissa_init", "optim", "use_liger", "rope_factor"} <= set(everything), "all problems at once"
    # options of a method that is not chosen are not checked
    assert problems(method="full", lora_rank=0, num_virtual_tokens=0) == {}


def test_freeze_tuning_refuses_more_layers_than_the_model_has(workspace, capsys):
    with pytest.raises(ValueError, match="has only 4 layers"):
        _train(workspace, capsys, method="freeze", freeze_trainable_layers=9)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_qlora_with_flash_attention_and_liger_on_a_gpu(workspace, capsys):
    run_dir, status, log = _train(workspace, capsys, method="qlora", lora_targets="all-linear",
                                  attn_impl="flash_attention_2", use_liger=True, packing=True, precision="bf16")
    assert status["state"] == "completed", status
    assert "bf16 mixed precision" in log and "flash_attention_2" in log
    assert isinstance(_chat_reply(workspace, run_dir), str)
