"""The VRAM estimate: each component against hand computation on a small config, monotonicity, the
activation formula against what autograd really keeps (CPU, bf16), verdicts, fixes, the CLI."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from studio import fit
from studio.memory import (
    EstimateInputs,
    GiB,
    activation_bytes,
    estimate,
    logits_bytes,
    optimizer_bytes,
    trainable_params,
    weight_bytes,
    with_changes,
)
from studio.models.architecture import Architecture

# hidden 64, 2 layers, 4 heads of 16 (2 KV heads), MLP 128, vocab 100, untied.
SMALL = Architecture(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, intermediate_size=128, vocab_size=100)
LINEAR_PER_LAYER = 64 * 64 + 64 * 32 + 64 * 32 + 64 * 64 + 3 * 64 * 128  # q k v o + gate up down = 36864
TOTAL = 2 * 100 * 64 + 2 * (LINEAR_PER_LAYER + 2 * 64) + 64  # embeddings + layers (with norms) + final norm


def small(**changes) -> EstimateInputs:
    return EstimateInputs(**{"arch": SMALL, "lora_rank": 4, "batch_size": 1, "seq_len": 8, "gradient_checkpointing": False, **changes})


def test_parameter_counts_by_hand():
    assert SMALL.total_params() == TOTAL == 86848
    lora_per_layer = 4 * ((64 + 64) + (64 + 32) * 2 + (64 + 64) + (64 + 128) * 3)
    assert trainable_params(small()) == 2 * lora_per_layer == 8192
    assert trainable_params(small(lora_targets="q_proj,v_proj")) == 2 * 4 * ((64 + 64) + (64 + 32))
    assert trainable_params(small(use_dora=True)) == 8192 + 2 * (64 + 32 + 32 + 64 + 128 + 128 + 64)
    assert trainable_params(small(method="full")) == TOTAL
    assert trainable_params(small(method="freeze", freeze_trainable_layers=1)) == LINEAR_PER_LAYER + 128
    assert trainable_params(small(method="prompt_tuning", num_virtual_tokens=10)) == 640


def test_weights_by_dtype_and_quantisation():
    assert weight_bytes(small()) == (TOTAL * 2, 8192 * 4)  # bf16 base, fp32 adapter
    linear = 2 * LINEAR_PER_LAYER
    nf4_double = linear * (0.5 + 1 / 64 + 4 / (64 * 256)) + (TOTAL - linear) * 2
    nf4_single = linear * (0.5 + 4 / 64) + (TOTAL - linear) * 2
    assert weight_bytes(small(method="qlora"))[0] == pytest.approx(nf4_double)
    assert weight_bytes(small(method="qlora", double_quant=False))[0] == pytest.approx(nf4_single)
    rows = 2 * (64 + 32 + 32 + 64 + 128 + 128 + 64)
    assert weight_bytes(small(method="qlora", quant_bits=8))[0] == linear + rows * 4 + (TOTAL - linear) * 2
    assert weight_bytes(small(method="full")) == (TOTAL * 2, TOTAL * 4)  # bf16 working copy + fp32 master
    assert weight_bytes(small(method="full", precision="pure_bf16")) == (0, TOTAL * 2)


def test_optimizer_states_by_hand():
    assert optimizer_bytes(small()) == 8192 * 8
    assert optimizer_bytes(small(optim="adamw_8bit")) == 8192 * 2
    assert optimizer_bytes(small(optim="paged_adamw_32bit")) == 8192 * 8
    assert optimizer_bytes(small(optim="sgd")) == 0
    factored = sum(2 * (i + 4 + 4 + o) for i, o in SMALL.linear_shapes().values())  # A: (in, r), B: (r, out), 2 layers
    assert optimizer_bytes(small(optim="adafactor")) == 4 * factored
    assert optimizer_bytes(small(method="full", precision="pure_bf16")) == TOTAL * 4


def test_activations_by_hand():
    # Per token per layer, bf16: two norms keeping their fp32 input (4·64 each); attention keeps rotated q,
    # k, v, output (2·2·64 + 2·2·32) and the log-sum-exp (4·4); the MLP gate, SiLU and up outputs (3·2·128);
    # each LoRA module a bf16 copy of its input plus its rank-4 output (q k v o gate up: 64 wide, down: 128).
    per_layer = 2 * 256 + (256 + 128 + 16) + 768 + 6 * (2 * 64 + 2 * 4) + (2 * 128 + 2 * 4)
    assert per_layer == 2760
    assert activation_bytes(small()) == 2 * 8 * per_layer
    assert activation_bytes(small(gradient_checkpointing=True)) == 8 * (2 * 2 * 64 + per_layer)
    assert activation_bytes(small(attn_impl="eager")) == 2 * 8 * (per_layer + 7 * 4 * 8)
    assert activation_bytes(small(stage="dpo")) == 2 * activation_bytes(small())
    assert logits_bytes(small()) == 8 * 100 * 12
    assert logits_bytes(small(use_liger=True)) == 8 * 8 * 64
    assert logits_bytes(small(stage="rm")) == 0


def test_components_add_up_and_the_reference_model_costs_only_without_an_adapter():
    e = estimate(small(method="full", stage="dpo"))
    assert e.total == pytest.approx(sum(e.components.values()))
    assert e.components["reference_model"] == TOTAL * 2
    assert estimate(small(stage="dpo")).components["reference_model"] == 0  # LoRA: the base is its own reference
    assert e.components["cuda_context"] == 0.5 * GiB
    assert estimate(small(device="cpu")).components["cuda_context"] == 0


def test_zero_splits_state_over_gpus():
    one = estimate(small(method="full", optim="adamw_torch"))
    zero2 = estimate(small(method="full", num_gpus=4, zero_stage=2))
    zero3 = estimate(small(method="full", num_gpus=4, zero_stage=3))
    assert zero2.components["optimizer"] == pytest.approx(one.components["optimizer"] / 4)
    assert zero2.components["trainable"] == one.components["trainable"]
    assert zero3.components["trainable"] == pytest.approx(one.components["trainable"] / 4)
    assert zero3.total < zero2.total < one.total


@pytest.mark.parametrize("method", ["lora", "qlora", "full", "freeze", "ia3", "prefix_tuning"])
@pytest.mark.parametrize("checkpointing", [True, False])
def test_longer_bigger_and_higher_rank_never_cost_less(method, checkpointing):
    arch = Architecture(hidden_size=3584, num_layers=28, num_heads=28, num_kv_heads=4, head_dim=128, intermediate_size=18944, vocab_size=152064)
    base = EstimateInputs(arch=arch, method=method, gradient_checkpointing=checkpointing, batch_size=1, seq_len=256)
    for key, values in (("seq_len", (256, 512, 4096, 131072)), ("batch_size", (1, 2, 8, 512))):
        estimates = [estimate(with_changes(base, **{key: v})) for v in values]
        totals = [e.total for e in estimates]
        assert totals == sorted(totals)
        # strictly more once activations set the peak (full fine-tuning peaks at the optimizer step until then)
        assert totals[0] < totals[-1] and estimates[-1].phase == "forward/backward"
    totals = [estimate(with_changes(base, lora_rank=r)).total for r in (4, 16, 64)]
    assert totals == sorted(totals)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_activation_formula_matches_what_autograd_keeps(method):
    """A tiny Llama in bf16 under autocast (as the Trainer runs it): the bytes autograd saves for backward,
    counted tensor by tensor, against the formula. Embedding, final norm and logits are counted apart."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    hidden, layers, batch, seq = 256, 4, 2, 128
    config = LlamaConfig(hidden_size=hidden, intermediate_size=704, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=1000, attn_implementation="sdpa")
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def keep(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    def measure(n_layers: int) -> int:
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
            ids = torch.randint(0, 1000, (batch, seq))
            inner = model.get_base_model() if method == "lora" else model
            all_layers = inner.model.layers
            inner.model.layers = all_layers[:n_layers]
            try:
                model(input_ids=ids, labels=ids)
            finally:
                inner.model.layers = all_layers
        return sum(saved.values())

    per_layer_measured = (measure(layers) - measure(1)) / (layers - 1)
    arch = Architecture(hidden_size=hidden, num_layers=1, num_heads=4, num_kv_heads=2, head_dim=64, intermediate_size=704, vocab_size=1000)
    predicted = activation_bytes(EstimateInputs(arch=arch, method=method, batch_size=batch, seq_len=seq, gradient_checkpointing=False))
    assert predicted == pytest.approx(per_layer_measured, rel=0.05)


def test_verdicts_and_fixes():
    arch = Architecture(hidden_size=3584, num_layers=28, num_heads=28, num_kv_heads=4, head_dim=128, intermediate_size=18944, vocab_size=152064)
    inputs = EstimateInputs(arch=arch, method="lora", batch_size=4, seq_len=2048, gradient_checkpointing=False, grad_accum=2)
    total = estimate(inputs).total
    assert fit.verdict(total, total / 0.5) == fit.FITS
    assert fit.verdict(total, total / 0.95) == fit.TIGHT
    assert fit.verdict(total, total * 0.9) == fit.WONT_FIT
    available = 60 * GiB
    result = fit.assess(inputs, available, "a 60 GB GPU")
    assert result.verdict == fit.WONT_FIT and result.fixes
    for f in result.fixes:  # every fix lowers the estimate, and "fits" is true to its new total
        assert f.total_gb * GiB < total
        assert f.fits == (f.total_gb * GiB <= available + 0.001 * GiB)
    assert result.fixes[0].fits
    titles = " ".join(f.title for f in result.fixes)
    assert "gradient checkpointing" in titles and "QLoRA" in titles
    batch_fix = next(f for f in result.fixes if "batch_size" in f.change)
    assert batch_fix.change["batch_size"] * batch_fix.change["grad_accum"] == 4 * 2  # same effective batch
    assert 1 <= result.max_batch < 4
    assert estimate(with_changes(inputs, batch_size=result.max_batch)).total <= available
    assert estimate(with_changes(inputs, batch_size=result.max_batch + 1)).total > available
    assert estimate(with_changes(inputs, seq_len=result.max_seq)).total <= available
    assert estimate(with_changes(inputs, seq_len=result.max_seq + 16)).total > available
    assert any(f.change.get("cutoff_len") == 704 for f in fit.fixes(inputs, available, p95_tokens=700))


def test_combined_fix_when_no_single_change_is_enough():
    arch = Architecture(hidden_size=8192, num_layers=80, num_heads=64, num_kv_heads=8, head_dim=128, intermediate_size=28672, vocab_size=128256)
    inputs = EstimateInputs(arch=arch, method="lora", batch_size=8, seq_len=4096, gradient_checkpointing=False)
    fixes = fit.fixes(inputs, 80 * GiB)
    assert fixes[0].fits and fixes[0].title.startswith("Together") and fixes[0].change["method"] == "qlora"


def test_cli_estimate_json(tmp_path):
    result = run_cli("estimate", "model=qwen2.5-7b-instruct", "method=lora", "cutoff_len=2048", "batch_size=4",
                     "gradient_checkpointing=false", "--gpu-mem", "24", "--json", workspace=tmp_path)
    assert result.returncode == 1, result.stderr  # won't fit: exit 1
    data = json.loads(result.stdout)
    assert data["verdict"] == "won't fit"
    assert data["total_gb"] == pytest.approx(sum(data["components"].values()), abs=0.01)
    assert {"weights", "activations", "logits", "optimizer", "gradients"} <= set(data["components"])
    assert data["fixes"] and all("change" in f and "total_gb" in f for f in data["fixes"])
    text = run_cli("estimate", "model=qwen2.5-0.5b-instruct", "method=qlora", "--gpu-mem", "80", workspace=tmp_path)
    assert text.returncode == 0 and "verdict: fits" in text.stdout
    bad = run_cli("estimate", "model=no-such-model", workspace=tmp_path)
    assert bad.returncode == 2 and "not a catalog model" in bad.stderr
    typo = run_cli("estimate", "model=tiny-demo", "lora_rnak=8", workspace=tmp_path)
    assert typo.returncode == 2 and "lora_rnak: unknown key" in typo.stderr


def test_cli_estimate_reads_a_config_file_as_train_does(tmp_path):
    (tmp_path / "big.yaml").write_text("model:\n  model: qwen2.5-7b-instruct\ntrain:\n  cutoff_len: 4096\n", encoding="utf-8")
    from_file = run_cli("estimate", "big.yaml", "--gpu-mem", "80", "--json", workspace=tmp_path)
    typed = run_cli("estimate", "model=qwen2.5-7b-instruct", "cutoff_len=4096", "--gpu-mem", "80", "--json", workspace=tmp_path)
    assert from_file.returncode == typed.returncode == 0, from_file.stderr + typed.stderr
    assert json.loads(from_file.stdout)["total_gb"] == json.loads(typed.stdout)["total_gb"]
    shorter = run_cli("estimate", "big.yaml", "cutoff_len=512", "--gpu-mem", "80", "--json", workspace=tmp_path)
    assert json.loads(shorter.stdout)["total_gb"] < json.loads(from_file.stdout)["total_gb"]  # key=value over the file


def test_calibration_results_are_well_formed_and_every_measured_row_is_within_ten_percent():
    """bench/results/vram_calibration.json: ≥ 12 rows, each predicted, and each either measured on a GPU
    (then the current estimator must be within 10% of torch.cuda.max_memory_reserved) or marked unmeasured."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "bench"))
    import vram_calibration

    data = json.loads((root / "bench" / "results" / "vram_calibration.json").read_text(encoding="utf-8"))
    assert data["command"].startswith("python bench/vram_calibration.py")
    rows = data["rows"]
    assert len(rows) >= 12 and len(rows) == len(vram_calibration.MATRIX)
    assert {r["model"] for r in rows} >= {"qwen2.5-0.5b-instruct", "qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct", "llama-3.1-8b-instruct"}
    assert {r["method"] for r in rows} >= {"lora", "qlora", "full"} and {r["cutoff_len"] for r in rows} == {512, 2048}
    assert {r["gradient_checkpointing"] for r in rows} == {True, False}
    assert data["measured_rows"] + data["unmeasured_rows"] == len(rows)
    for row in rows:
        assert row["predicted_reserved_gb"] < row["predicted_total_gb"]
        if row["measured"] is None:
            assert row["status"].startswith(("unmeasured", "failed"))
            continue
        now = vram_calibration.predict(row["model"], row["method"], row["cutoff_len"], row["batch_size"], row["gradient_checkpointing"])
        measured = row["measured"]["max_memory_reserved_gb"]
        assert abs(now["predicted_reserved_gb"] - measured) <= 0.10 * measured, f"row {row['row']}: {now} vs measured {measured} GB"


def test_fused_adamw_has_no_step_temporary_and_dora_costs_more_than_lora():
    from studio.memory import _catalog_arch

    arch = _catalog_arch("qwen2.5-0.5b-instruct")
    full = dict(arch=arch, method="full", batch_size=1, seq_len=128, device="cuda")
    fused, stepwise = estimate(EstimateInputs(**full, optim="adamw_torch_fused")), estimate(EstimateInputs(**full, optim="adamw_torch"))
    assert fused.components["optimizer"] == stepwise.components["optimizer"]  # the same two moments
    assert stepwise.phase == "optimizer step" and stepwise.total > fused.total  # only the step-by-step one adds a temporary
    lora = dict(arch=arch, method="lora", batch_size=4, seq_len=1024, device="cuda")
    plain, dora = estimate(EstimateInputs(**lora)), estimate(EstimateInputs(**lora, use_dora=True))
    assert dora.components["activations"] > plain.components["activations"]
    assert dora.components["workspace"] > plain.components["workspace"]
