"""RunConfig: everything that defines a training run, as typed dataclasses with YAML round trip.

Each field carries its help text (English and Chinese) in its metadata: that is the single source the
CLI, the validation messages and the UI's info text are built from. `validate()` returns every
problem at once; `ConfigError` carries them all.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from studio.safe_yaml import YamlError, load_yaml, read_yaml_text


def _field(default: Any, help_en: str, help_zh: str, **extra: Any) -> Any:
    """A dataclass field whose metadata holds its help text in both UI languages."""
    return field(default=default, metadata={"help": help_en, "help_zh": help_zh, **extra})


METHODS = ("lora", "qlora", "full", "freeze", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning")
PEFT_METHODS = ("lora", "qlora", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning")  # these save an adapter
_LORA = {"method": ("lora", "qlora")}  # show_when of the LoRA options
# experiment trackers a run can also report to (transformers' own integrations), with the module each needs
REPORTERS = {"none": None, "tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "swanlab": "swanlab", "mlflow": "mlflow"}
OPTIMIZERS = ("adamw_torch_fused", "adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "adafactor", "sgd", "galore_adamw")
MAX_PROBE_PROMPTS = 10
MAX_WHOLE = 2**31 - 1  # the largest whole number any setting may have (C ints in the trainer and tokenizers)
MAX_REAL = 1e12
MAX_TEXT_CHARS = 20_000  # any text setting (probe prompts, templates, paths)


@dataclass
class ModelSection:
    model: str = _field(
        "tiny-demo",
        "Model to fine-tune: `tiny-demo` (built-in, offline), a preset name, a Hugging Face id, "
        "or a local folder inside the workspace.",
        "要微调的模型：`tiny-demo`（内置离线演示模型）、预设名称、Hugging Face 模型 ID，或工作区内的本地文件夹。",
    )
    trust_remote_code: bool = _field(
        False,
        "Run Python code shipped with the model. Only tick this for a model you trust.",
        "运行模型自带的 Python 代码。仅对你信任的模型勾选。",
    )


@dataclass
class DataSection:
    dataset: str = _field(
        "demo-chat",
        "A bundled sample name (e.g. `demo-chat`); a .jsonl/.json/.csv/.tsv/.parquet/.txt file or a "
        "`save_to_disk` folder inside the workspace; or `hf:ID[:CONFIG][@SPLIT]` for a Hugging Face dataset (online).",
        "内置示例数据集名称（如 `demo-chat`）；工作区内的 .jsonl/.json/.csv/.tsv/.parquet/.txt 文件或 `save_to_disk` 文件夹；"
        "或 `hf:ID[:配置][@划分]` 表示 Hugging Face 数据集（需联网）。",
    )
    dataset_dir: str = _field(
        "",
        "A LLaMA-Factory data folder (with dataset_info.json) inside the workspace; `dataset` then names its entries "
        "(formatting, columns, tags, ranking and kto_tag honoured). Empty = `dataset` is a file or sample.",
        "LLaMA-Factory 数据文件夹（含 dataset_info.json，需在工作区内）；此时 `dataset` 填其中的数据集名称"
        "（遵循 formatting、columns、tags、ranking 和 kto_tag）。留空表示 `dataset` 是文件或示例。",
    )
    mix_strategy: str = _field(
        "concat",
        "With several datasets (`dataset=a,b`): `concat` trains on all rows of each, one after the other (then shuffled "
        "by the trainer); `interleave` draws rows from them at random with `interleave_probs` until one runs out.",
        "多个数据集（`dataset=a,b`）时：`concat` 依次拼接全部样本（训练时再打乱）；`interleave` 按 `interleave_probs` "
        "随机交替抽取，直到其中一个用完。",
        choices=("concat", "interleave"),
    )
    interleave_probs: str = _field(
        "",
        "With mix_strategy=interleave: the chance of drawing from each dataset, comma-separated (e.g. `0.7,0.3`); "
        "empty = equal chances.",
        "mix_strategy=interleave 时从各数据集抽取的概率，用逗号分隔（如 `0.7,0.3`）；留空表示均等。",
    )
    text_split: str = _field(
        "auto",
        "How a .txt file is split into documents: `auto` (blank-line blocks when the file has blank lines, else one "
        "document per line), `line` (one per line) or `blank` (one per blank-line block).",
        "如何把 .txt 文件切分为文档：`auto`（有空行时按空行分块，否则每行一篇）、`line`（每行一篇）或 `blank`（按空行分块）。",
        choices=("auto", "line", "blank"),
    )
    val_size: float = _field(
        0.0,
        "Rows held out for validation: a fraction below 1 (0.1 = 10%) or a row count of 1 or more, "
        "picked with the run's seed; 0 = no validation.",
        "留作验证集的样本：小于 1 的比例（0.1 即 10%）或不小于 1 的条数，按运行的随机种子抽取；0 表示不验证。",
    )
    val_file: str = _field(
        "",
        "A separate validation dataset (same kinds of reference as `dataset`); when set, val_size is ignored. Empty = none.",
        "单独的验证数据集（写法与 `dataset` 相同）；设置后忽略 val_size。留空表示不用。",
    )
    column_map: str = _field(
        "",
        "Which columns hold which part, when automatic detection is wrong: e.g. `prompt=question,response=answer` "
        "(roles: system, prompt, query, response, history, messages, chosen, rejected, label, text). Empty = automatic.",
        "自动识别有误时指定列的用途，如 `prompt=question,response=answer`"
        "（可用角色：system、prompt、query、response、history、messages、chosen、rejected、label、text）。留空表示自动识别。",
    )
    skip_bad_rows: bool = _field(
        False,
        "Train on the good rows and skip the rows that cannot be used (they are listed); off = refuse a file with bad rows.",
        "跳过无法使用的行（会列出这些行），只用正确的行训练；关闭时含错误行的文件会被拒绝。",
    )
    train_on_prompt: bool = _field(
        False,
        "Also train on the prompt (system/user/tool) tokens, not only the assistant's answers.",
        "同时在提示（system/user/tool）token 上训练，而不只训练助手的回答。",
    )
    mask_history: bool = _field(
        False,
        "Train only on the last assistant turn of each conversation; earlier answers are context only.",
        "只在每段对话的最后一轮助手回答上训练；之前的回答只作为上下文。",
    )


@dataclass
class MethodSection:
    method: str = _field(
        "lora",
        "How the weights are trained. `lora`: a small adapter on frozen weights (the usual choice); `qlora`: LoRA on a "
        "4/8-bit quantised model, for the least memory; `full`: every weight; `freeze`: only the last layers; "
        "`ia3`: tiny learned scalings; `prompt_tuning`, `prefix_tuning`, `p_tuning`: learned virtual tokens.",
        "权重的训练方式。`lora`：在冻结的权重上训练小适配器（常用）；`qlora`：在 4/8 位量化模型上做 LoRA，最省显存；"
        "`full`：训练全部权重；`freeze`：只训练最后几层；`ia3`：学习很少的缩放向量；"
        "`prompt_tuning`、`prefix_tuning`、`p_tuning`：学习虚拟 token。",
        choices=METHODS,
    )
    lora_rank: int = _field(
        8, "LoRA rank: higher learns more, uses more memory.", "LoRA 秩：越大学得越多，占用显存越多。",
        show_when=_LORA,
    )
    lora_alpha: int = _field(
        16, "LoRA scaling (alpha); commonly twice the rank.", "LoRA 缩放系数 alpha，通常取秩的两倍。", show_when=_LORA
    )
    lora_dropout: float = _field(
        0.0, "Dropout on the LoRA path (0 to <1).", "LoRA 分支的 dropout（0 到 1 之间）。", show_when=_LORA
    )
    lora_targets: str = _field(
        "all-linear",
        "Modules that get adapters: `all-linear`, or comma-separated names such as `q_proj,v_proj`.",
        "添加适配器的模块：`all-linear`，或用逗号分隔的模块名，如 `q_proj,v_proj`。",
        show_when=_LORA,
    )
    use_rslora: bool = _field(
        False,
        "rsLoRA: scale the adapter by alpha/√rank instead of alpha/rank, so high ranks keep learning.",
        "rsLoRA：用 alpha/√秩 代替 alpha/秩 缩放适配器，使大秩仍能有效学习。",
        show_when=_LORA,
    )
    use_dora: bool = _field(
        False,
        "DoRA: learn each weight's magnitude and direction apart; often closer to full fine-tuning, ~20% slower.",
        "DoRA：分别学习权重的幅度和方向；效果常更接近全量微调，速度约慢 20%。",
        show_when=_LORA,
    )
    pissa_init: bool = _field(
        False,
        "PiSSA: start the adapter from the weights' principal components instead of zero, which converges faster; "
        "the saved adapter is converted to plain LoRA (rank × 2). Not with qlora.",
        "PiSSA：用权重的主成分而不是零来初始化适配器，收敛更快；保存时转换为普通 LoRA（秩 × 2）。不能与 qlora 同用。",
        show_when={"method": ("lora",)},
    )
    loraplus_ratio: float = _field(
        0.0,
        "LoRA+: the B matrices learn this many times faster than the A matrices (16 is typical); 0 = off.",
        "LoRA+：B 矩阵的学习率是 A 矩阵的多少倍（常用 16）；0 表示关闭。",
        show_when=_LORA,
    )
    quant_bits: int = _field(
        4,
        "QLoRA: load the frozen model in 4 bits (least memory) or 8 bits (closer to the original).",
        "QLoRA：以 4 位（最省显存）或 8 位（更接近原模型）加载冻结的模型。",
        choices=(4, 8),
        show_when={"method": ("qlora",)},
    )
    quant_type: str = _field(
        "nf4",
        "4-bit data type: `nf4` (suits normally distributed weights; usual) or `fp4`.",
        "4 位数据类型：`nf4`（适合正态分布的权重，常用）或 `fp4`。",
        choices=("nf4", "fp4"),
        show_when={"method": ("qlora",), "quant_bits": (4,)},
    )
    double_quant: bool = _field(
        True,
        "Also quantise the quantisation constants: saves about 0.4 bit per weight at no quality cost.",
        "对量化常数再做一次量化：每个权重约省 0.4 位，几乎不影响效果。",
        show_when={"method": ("qlora",), "quant_bits": (4,)},
    )
    compute_dtype: str = _field(
        "auto",
        "Type the 4-bit weights are unpacked to for the matrix products: `auto` = bf16 where the GPU supports it, "
        "else fp16 (fp32 on a CPU).",
        "4 位权重在矩阵乘法时解包成的类型：`auto` 表示 GPU 支持时用 bf16，否则用 fp16（CPU 上用 fp32）。",
        choices=("auto", "bf16", "fp16", "fp32"),
        show_when={"method": ("qlora",), "quant_bits": (4,)},
    )
    freeze_trainable_layers: int = _field(
        2,
        "Freeze tuning: train the last N transformer layers, the rest stays frozen; 0 = no layer limit "
        "(then freeze_trainable_modules picks what trains in every layer).",
        "冻结微调：只训练最后 N 个 Transformer 层，其余层冻结；0 表示不按层限制（由 freeze_trainable_modules 决定每层训练哪些模块）。",
        show_when={"method": ("freeze",)},
    )
    freeze_trainable_modules: str = _field(
        "all",
        "Freeze tuning: which parts of those layers train: `all`, or comma-separated name parts such as `mlp` or "
        "`self_attn,mlp`.",
        "冻结微调：这些层中哪些部分参与训练：`all`，或用逗号分隔的名称片段，如 `mlp` 或 `self_attn,mlp`。",
        show_when={"method": ("freeze",)},
    )
    num_virtual_tokens: int = _field(
        20,
        "Prompt/prefix/P-tuning: how many virtual tokens are learned; more can learn more, and each costs context.",
        "Prompt/Prefix/P-tuning：学习的虚拟 token 数；越多能学得越多，但每个都会占用上下文。",
        show_when={"method": ("prompt_tuning", "prefix_tuning", "p_tuning")},
    )


STAGES = ("pt", "sft", "dpo", "orpo", "kto", "rm")
DPO_LOSSES = ("sigmoid", "ipo", "hinge", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
              "apo_zero", "apo_down", "discopop", "sigmoid_norm")


@dataclass
class StageSection:
    stage: str = _field(
        "sft",
        "What the run learns from: `pt` continued pre-training on raw text; `sft` supervised fine-tuning on "
        "conversations; `dpo`, `orpo` preference pairs (prompt, chosen, rejected); `kto` answers labelled good or bad; "
        "`rm` a reward model that scores answers (learned from preference pairs).",
        "训练阶段：`pt` 在纯文本上继续预训练；`sft` 在对话上监督微调；`dpo`、`orpo` 使用偏好对（prompt、chosen、rejected）；"
        "`kto` 使用标注好坏的回答；`rm` 从偏好对训练一个给回答打分的奖励模型。",
        choices=STAGES,
    )
    dpo_beta: float = _field(
        0.1,
        "How far DPO may move away from the reference model: higher stays closer (0.1 is usual; ipo uses it as τ).",
        "DPO 允许偏离参考模型的程度：越大越贴近参考模型（常用 0.1；ipo 损失中作为 τ）。",
        show_when={"stage": ("dpo",)},
    )
    dpo_loss: str = _field(
        "sigmoid",
        "DPO loss: `sigmoid` (the original DPO), `ipo`, `hinge` (SLiC), `robust` (noisy labels), `exo_pair`, "
        "`nca_pair`, `bco_pair`, `sppo_hard`, `aot`, `apo_zero`, `apo_down`, `discopop`, `sigmoid_norm`.",
        "DPO 损失：`sigmoid`（原始 DPO）、`ipo`、`hinge`（SLiC）、`robust`（标签有噪声时）、`exo_pair`、`nca_pair`、"
        "`bco_pair`、`sppo_hard`、`aot`、`apo_zero`、`apo_down`、`discopop`、`sigmoid_norm`。",
        choices=DPO_LOSSES,
        show_when={"stage": ("dpo",)},
    )
    dpo_sft_weight: float = _field(
        0.0,
        "Add the chosen answers' SFT loss with this weight (RPO-style), which keeps answers fluent; 0 = pure DPO.",
        "以此权重加入 chosen 回答的 SFT 损失（RPO 方式），让回答保持流畅；0 表示纯 DPO。",
        show_when={"stage": ("dpo",)},
    )
    orpo_beta: float = _field(
        0.1,
        "Weight of ORPO's odds-ratio term against its SFT loss on the chosen answers (λ in the paper).",
        "ORPO 中优势比项相对 chosen 回答 SFT 损失的权重（论文中的 λ）。",
        show_when={"stage": ("orpo",)},
    )
    kto_beta: float = _field(
        0.1,
        "How far KTO may move away from the reference model: higher stays closer.",
        "KTO 允许偏离参考模型的程度：越大越贴近参考模型。",
        show_when={"stage": ("kto",)},
    )
    kto_desirable_weight: float = _field(
        1.0,
        "Loss weight of answers labelled good; raise it when good answers are much rarer than bad ones.",
        "标注为好的回答的损失权重；好回答远少于坏回答时调高。",
        show_when={"stage": ("kto",)},
    )
    kto_undesirable_weight: float = _field(
        1.0,
        "Loss weight of answers labelled bad; raise it when bad answers are much rarer than good ones.",
        "标注为坏的回答的损失权重；坏回答远少于好回答时调高。",
        show_when={"stage": ("kto",)},
    )


@dataclass
class TrainSection:
    dry_run: bool = _field(
        False,
        "Dry run: train the exact configuration for a few steps to measure its peak memory and speed, then stop; "
        "nothing is saved.",
        "试运行：用完全相同的配置训练几步，测量显存峰值和速度后停止；不保存任何权重。",
    )
    epochs: float = _field(3.0, "Passes over the dataset (ignored when max_steps > 0).", "训练轮数（max_steps > 0 时忽略）。",
                           max=100_000)
    max_steps: int = _field(
        0, "Stop after this many optimizer steps; 0 means use epochs.", "训练的最大步数；0 表示按轮数训练。"
    )
    learning_rate: float = _field(2e-4, "Peak learning rate.", "峰值学习率。")
    batch_size: int = _field(4, "Rows per device per step (micro-batch).", "每个设备每步的样本数（微批大小）。", max=65_536)
    grad_accum: int = _field(
        1,
        "Micro-batches accumulated per optimizer step; effective batch = batch_size × grad_accum × GPUs (processes).",
        "梯度累积步数；有效批大小 = batch_size × grad_accum × GPU 数（进程数）。",
    )
    cutoff_len: int = _field(
        1024, "Longest sequence in tokens; longer rows are truncated.", "最大序列长度（token 数），更长的样本会被截断。"
    )
    seed: int = _field(42, "Random seed, for a reproducible run.", "随机种子，用于复现训练。", max=2**32 - 1)
    logging_steps: int = _field(1, "Write metrics every N steps.", "每 N 步记录一次指标。")
    report_to: str = _field(
        "none",
        "Also report the metrics to an experiment tracker, besides the studio's monitor: `tensorboard` (event files "
        "in the run folder's tensorboard/; `tensorboard --logdir workspace/runs`), `wandb` (project "
        "fine-tuning-studio; needs WANDB_API_KEY, or WANDB_MODE=offline), `trackio`, `swanlab`, `mlflow`. Each needs "
        "its package installed (pip install NAME).",
        "除工作室自带的监控外，还把指标发送到实验跟踪工具：`tensorboard`（事件文件写在运行目录的 tensorboard/ 中；"
        "`tensorboard --logdir workspace/runs`）、`wandb`（项目 fine-tuning-studio；需要 WANDB_API_KEY 或 WANDB_MODE=offline）、"
        "`trackio`、`swanlab`、`mlflow`。每个都需要先安装对应的包（pip install 包名）。",
        choices=tuple(REPORTERS),
    )
    eval_steps: int = _field(
        0,
        "Evaluate on the validation rows every N steps; 0 = once per epoch (needs val_size).",
        "每 N 步在验证集上评估一次；0 表示每轮评估一次（需要设置 val_size）。",
    )
    early_stop_patience: int = _field(
        0,
        "Stop when the validation loss has not improved for N evaluations; 0 = never (needs val_size).",
        "验证损失连续 N 次评估没有改善时提前停止；0 表示不提前停止（需要设置 val_size）。",
    )
    save_steps: int = _field(
        100,
        "Save a checkpoint every N steps, so a stopped, killed or crashed run can be resumed; 0 = no checkpoints.",
        "每 N 步保存一个检查点，停止、被终止或崩溃的运行可以从中恢复；0 表示不保存检查点。",
    )
    save_total_limit: int = _field(
        2, "Keep only the newest N checkpoints (older ones are deleted).", "只保留最新的 N 个检查点（更早的会被删除）。"
    )
    keep_best: bool = _field(
        True,
        "With validation rows and save_steps > 0, the saved result is the checkpoint with the lowest validation loss, "
        "not the last one (checkpoints are then saved at each evaluation and the best is never deleted).",
        "有验证集且 save_steps > 0 时，最终保存验证损失最低的检查点而不是最后一个（此时在每次评估时保存检查点，且最佳检查点不会被删除）。",
    )
    probe_steps: int = _field(
        50,
        "Every N steps, answer the probe prompts (greedy) so you can watch the model learn; 0 = off.",
        "每 N 步用探测提示生成回答（贪心解码），便于观察模型的学习过程；0 表示关闭。",
    )
    probe_prompts: str = _field(
        "",
        "Probe prompts, one per line; empty = the prompts of up to 3 validation rows (or the first 3 rows).",
        "探测提示，每行一个；留空则使用最多 3 条验证样本（或前 3 条样本）的提示。",
    )
    optim: str = _field(
        "adamw_torch_fused",
        "Optimizer: `adamw_torch_fused` (standard AdamW in one fused kernel: no step temporaries); `adamw_torch` "
        "(the same maths, step by step); `adamw_8bit` / `paged_adamw_8bit` keep its state in 8 bits (¼ of the "
        "memory; paged spills to CPU RAM on memory peaks); `paged_adamw_32bit`; `adafactor` (little state); `sgd`; "
        "`galore_adamw` (full/freeze only: low-rank gradient projection, full fine-tuning in less memory).",
        "优化器：`adamw_torch_fused`（标准 AdamW，单个融合内核，更新时无临时张量）；`adamw_torch`（同样的算法，逐步计算）；`adamw_8bit` / `paged_adamw_8bit` 以 8 位保存优化器状态（约 ¼ 显存；paged 在显存峰值时"
        "换出到内存）；`paged_adamw_32bit`；`adafactor`（状态很小）；`sgd`；`galore_adamw`（仅 full/freeze：梯度低秩投影，"
        "以更少显存做全量微调）。",
        choices=OPTIMIZERS,
    )
    precision: str = _field(
        "auto",
        "Number format for training. `auto`: bf16 mixed precision where the GPU supports it, else fp16, fp32 on a "
        "CPU; `bf16` / `fp16`: mixed precision; `fp32`: no mixed precision; `pure_bf16`: weights and optimizer state "
        "in bf16 too (full/freeze: half the memory, slightly less precise; needs a bf16 GPU).",
        "训练的数值格式。`auto`：GPU 支持时用 bf16 混合精度，否则 fp16，CPU 上 fp32；`bf16` / `fp16`：混合精度；"
        "`fp32`：不用混合精度；`pure_bf16`：权重和优化器状态也用 bf16（full/freeze 省一半显存，精度略低；需支持 bf16 的 GPU）。",
        choices=("auto", "bf16", "fp16", "fp32", "pure_bf16"),
    )
    gradient_checkpointing: bool = _field(
        True,
        "Recompute activations in the backward pass instead of storing them: much less GPU memory for ~30% more "
        "time. Ignored on a CPU, where memory is not the limit.",
        "反向传播时重新计算激活值而不保存：大幅减少显存，耗时约增加 30%。在 CPU 上忽略（内存不是瓶颈）。",
    )
    attn_impl: str = _field(
        "sdpa",
        "Attention kernel: `sdpa` (PyTorch, works everywhere), `flash_attention_2` (faster and leaner on long "
        "sequences; needs the flash-attn package and an Ampere or newer GPU), `eager` (plain, slowest).",
        "注意力实现：`sdpa`（PyTorch 自带，到处可用）、`flash_attention_2`（长序列更快更省显存；需要 flash-attn 包和 "
        "Ampere 及更新的 GPU）、`eager`（朴素实现，最慢）。",
        choices=("sdpa", "flash_attention_2", "eager"),
    )
    packing: bool = _field(
        False,
        "Pack several rows into each sequence of cutoff_len tokens, padding-free: each row still attends only to "
        "itself (position ids restart per row). Faster on short rows; sft and pt stages only.",
        "把多条样本无填充地拼接进每条 cutoff_len 长的序列：每条样本仍只关注自身（每条的位置编号从头开始）。"
        "样本较短时更快；仅用于 sft 和 pt 阶段。",
    )
    use_liger: bool = _field(
        False,
        "Liger kernels (fused RMSNorm, RoPE, SwiGLU; the loss is computed in chunks without full logits): less "
        "memory, faster. Needs the liger-kernel package and a CUDA GPU.",
        "Liger 内核（融合 RMSNorm、RoPE、SwiGLU；分块计算损失而不生成完整 logits）：更省显存、更快。需要 liger-kernel 包和 CUDA GPU。",
    )
    neftune_alpha: float = _field(
        0.0,
        "NEFTune: add noise of this scale to the input embeddings while training, which often improves chat "
        "answers (5 is typical); 0 = off.",
        "NEFTune：训练时给输入嵌入加入此强度的噪声，常能改善对话回答（常用 5）；0 表示关闭。",
    )
    rope_scaling: str = _field(
        "none",
        "Stretch the model's position encoding (RoPE) to train beyond its native context: `linear`, `dynamic` (NTK) "
        "or `yarn`; set cutoff_len up to native length × rope_factor. `none` = native context.",
        "拉伸模型的位置编码（RoPE），以超过原生上下文长度训练：`linear`、`dynamic`（NTK）或 `yarn`；"
        "cutoff_len 最大可设为原生长度 × rope_factor。`none` 表示原生上下文。",
        choices=("none", "linear", "dynamic", "yarn"),
    )
    rope_factor: float = _field(
        2.0,
        "How many times longer than the native context the model should read (with rope_scaling).",
        "希望模型读取的长度是原生上下文的多少倍（配合 rope_scaling）。",
        show_when={"rope_scaling": ("linear", "dynamic", "yarn")},
    )
    strategy: str = _field(
        "single",
        "How the run is spread over devices: `single` (one device); `ddp` (a full copy per GPU, the fastest when the "
        "model fits one GPU); `fsdp` (weights, gradients and optimizer state sharded over the GPUs); "
        "`fsdp_shard_grad_op` (gradients and optimizer state sharded); `deepspeed_zero2` / `deepspeed_zero3` (ZeRO "
        "stage 2 / 3; need the deepspeed package). Without GPUs, ddp and fsdp run `processes` CPU processes.",
        "训练如何分布到多个设备：`single`（单设备）；`ddp`（每张 GPU 一份完整模型，模型放得进单卡时最快）；"
        "`fsdp`（权重、梯度和优化器状态分片到各 GPU）；`fsdp_shard_grad_op`（只分片梯度和优化器状态）；"
        "`deepspeed_zero2` / `deepspeed_zero3`（ZeRO 第 2 / 3 阶段；需要 deepspeed 包）。没有 GPU 时，ddp 和 fsdp 启动 `processes` 个 CPU 进程。",
        choices=("single", "ddp", "fsdp", "fsdp_shard_grad_op", "deepspeed_zero2", "deepspeed_zero3"),
    )
    gpus: str = _field(
        "",
        "Which GPUs the run uses, by index as in the hardware panel, e.g. `0,1`; empty = every visible GPU.",
        "运行使用哪些 GPU，按硬件面板中的编号填写，如 `0,1`；留空表示使用所有可见的 GPU。",
        show_when={"strategy": ("ddp", "fsdp", "fsdp_shard_grad_op", "deepspeed_zero2", "deepspeed_zero3")},
    )
    offload: bool = _field(
        False,
        "CPU offload: keep the optimizer state (FSDP and ZeRO-3: the weights too) in CPU RAM, for less GPU memory "
        "at the cost of speed.",
        "CPU 卸载：把优化器状态（FSDP 和 ZeRO-3 还包括权重）放在内存中，以速度换更少的显存。",
        show_when={"strategy": ("fsdp", "fsdp_shard_grad_op", "deepspeed_zero2", "deepspeed_zero3")},
    )
    processes: int = _field(
        2,
        "On a machine without GPUs: how many CPU processes a ddp/fsdp run starts (over gloo), to try a "
        "multi-process config. With GPUs there is one process per GPU.",
        "在没有 GPU 的机器上：ddp/fsdp 运行启动多少个 CPU 进程（gloo 通信），用于试验多进程配置。有 GPU 时每张 GPU 一个进程。",
        show_when={"strategy": ("ddp", "fsdp", "fsdp_shard_grad_op")},
    )


SECTIONS = {"model": ModelSection, "data": DataSection, "method": MethodSection, "stage": StageSection,
            "train": TrainSection}


@dataclass
class RunConfig:
    run_name: str = _field("", "Optional name shown in the Runs list.", "可选的运行名称，显示在运行列表中。")
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    method: MethodSection = field(default_factory=MethodSection)
    stage: StageSection = field(default_factory=StageSection)
    train: TrainSection = field(default_factory=TrainSection)


@dataclass
class Problem:
    """One thing wrong with a config: the key it concerns and what to do about it."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(ValueError):
    """Raised with every problem found in a config, so the user can fix them all in one go."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


def field_info(key: str) -> dataclasses.Field:
    """The dataclass field behind a flat key such as `lora_rank` or `run_name`; KeyError when unknown."""
    for f in dataclasses.fields(RunConfig):
        if f.name == key and f.name not in SECTIONS:
            return f
    for section in SECTIONS.values():
        for f in dataclasses.fields(section):
            if f.name == key:
                return f
    raise KeyError(key)


def flat_keys() -> list[str]:
    """Every key accepted on the command line (`key=value`), in display order."""
    keys = [f.name for f in dataclasses.fields(RunConfig) if f.name not in SECTIONS]
    for section in SECTIONS.values():
        keys += [f.name for f in dataclasses.fields(section)]
    return keys


def _section_of(key: str) -> str | None:
    for name, section in SECTIONS.items():
        if key in {f.name for f in dataclasses.fields(section)}:
            return name
    return None


def _coerce(key: str, value: Any, problems: list[Problem]) -> Any:
    """Convert `value` to the type of field `key`; records a problem and returns None when it cannot."""
    kind = field_info(key).type
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind == "str":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    problems.append(Problem(key, f"expected a {kind}, got {value!r}"))
    return None


def _coerce_choice(key: str, value: Any, problems: list[Problem]) -> Any:
    """`value` converted to field `key`'s type and, when the field has choices, one of them; records a problem
    and returns None when it is neither."""
    coerced = _coerce(key, value, problems)
    allowed = field_info(key).metadata.get("choices")
    if coerced is not None and allowed and coerced not in allowed:
        problems.append(Problem(key, f"must be one of {', '.join(map(str, allowed))}, got {coerced!r}"))
        return None
    return coerced


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a copy of `config` with flat `key: value` pairs applied; ConfigError lists every bad key or value.
    The pseudo-key `preset` (quick, balanced, quality) applies that hyperparameter preset under the other keys."""
    problems: list[Problem] = []
    if "preset" in overrides:
        overrides = _with_preset(config, overrides)
    result = dataclasses.replace(
        config, **{name: dataclasses.replace(getattr(config, name)) for name in SECTIONS}
    )
    for key, value in overrides.items():
        try:
            field_info(key)
        except KeyError:
            problems.append(Problem(key, f"unknown key; known keys: {', '.join(flat_keys())}"))
            continue
        coerced = _coerce_choice(key, value, problems)
        if coerced is None:
            continue
        section = _section_of(key)
        setattr(getattr(result, section) if section else result, key, coerced)
    if problems:
        raise ConfigError(problems)
    return result


def _with_preset(config: RunConfig, overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` with the keys of the preset it names filled in underneath (keys set explicitly win)."""
    from studio.presets import PresetError, preset_overrides

    rest = {key: value for key, value in overrides.items() if key != "preset"}
    try:
        return {**preset_overrides(str(overrides["preset"]), str(rest.get("method", config.method.method))), **rest}
    except PresetError as error:
        raise ConfigError([Problem("preset", str(error).removeprefix("preset: "))]) from error


def parse_cli_overrides(items: list[str]) -> dict[str, Any]:
    """Turn `key=value` strings into a dict; values are read as YAML scalars (so `1e-3` is a number)."""
    overrides: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(Problem(item, "expected key=value, for example learning_rate=1e-3"))
            continue
        if "\n" in raw:
            value = raw  # text with line breaks (probe_prompts): YAML would fold them into spaces
        else:
            try:
                value = load_yaml(raw, key) if raw.strip() else ""
            except YamlError:
                value = raw
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d*)?[eE][+-]?\d+", raw.strip()):
            value = float(raw)  # YAML 1.1 reads "1e-3" as a string
        overrides[key.strip()] = value
    if problems:
        raise ConfigError(problems)
    return overrides


def to_flat(config: RunConfig) -> dict[str, Any]:
    """The config as flat `key: value` pairs, the names used on the command line."""
    flat = {"run_name": config.run_name}
    for name in SECTIONS:
        flat.update(dataclasses.asdict(getattr(config, name)))
    return flat


def to_dict(config: RunConfig) -> dict[str, Any]:
    """The config as nested plain data, in the same shape as the YAML file."""
    return dataclasses.asdict(config)


def from_dict(data: Any, source: str = "config") -> RunConfig:
    """Build a RunConfig from nested data (as in the YAML file); ConfigError names every unknown or bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(source, "expected a mapping of sections (model:, data:, method:, train:)")])
    data = migrate(data, source)
    problems: list[Problem] = []
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                problems.append(Problem(key, "expected a mapping of keys under this section"))
                continue
            known = {f.name for f in dataclasses.fields(SECTIONS[key])}
            for sub_key, sub_value in value.items():
                if sub_key not in known:
                    problems.append(Problem(f"{key}.{sub_key}", f"unknown key; {key} accepts: {', '.join(sorted(known))}"))
                else:
                    flat[sub_key] = sub_value
        elif key == "run_name":
            flat[key] = value
        else:
            problems.append(Problem(str(key), f"unknown key; sections are {', '.join(SECTIONS)}, plus run_name"))
    try:
        config = apply_overrides(RunConfig(), flat)
    except ConfigError as error:
        problems += error.problems
    if problems:
        raise ConfigError(problems)
    return config


# The shape of a saved config. Raise it when a key is renamed or its meaning changes, and add to MIGRATIONS the
# function that turns a config of the version before into this one, so that every saved run still opens.
SCHEMA_VERSION = 1
MIGRATIONS: dict[int, Any] = {}  # version N -> function(nested data of version N) -> nested data of version N + 1


def migrate(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Nested config data (a parsed YAML file) brought to SCHEMA_VERSION; a file without `schema_version` is
    version 1, the first one written. ConfigError for a version this studio does not know."""
    data = dict(data)
    version = data.pop("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
        raise ConfigError([Problem("schema_version", f"{source} is config schema {version!r}; this studio reads 1 to "
                                   f"{SCHEMA_VERSION}: update the studio, or remove the file's newer keys")])
    while version < SCHEMA_VERSION:
        data, version = MIGRATIONS[version](data), version + 1
    return data


def to_yaml(config: RunConfig) -> str:
    """The config as YAML text, one section per block, after its schema_version."""
    return yaml.safe_dump({"schema_version": SCHEMA_VERSION, **to_dict(config)}, sort_keys=False, allow_unicode=True)


def written_keys(text: str) -> set[str]:
    """The flat keys a YAML config text sets explicitly (sections flattened); empty when it is not a mapping."""
    try:
        data = load_yaml(text)
    except YamlError:
        return set()
    keys: set[str] = set()
    for key, value in (data.items() if isinstance(data, dict) else ()):
        keys |= {str(k) for k in value} if isinstance(value, dict) else {str(key)}
    return keys - {"schema_version"}


def from_yaml(text: str, source: str = "config.yaml") -> RunConfig:
    """Parse YAML text (safe loader only) into a RunConfig; ConfigError on bad YAML or bad keys."""
    try:
        data = load_yaml(text, source)
    except YamlError as error:
        raise ConfigError([Problem(source, str(error).removeprefix(source).lstrip(":, "))]) from error
    return from_dict(data, source)


def gpu_list(gpus: str) -> list[int]:
    """The GPU indices in `gpus` ("0,1" → [0, 1]; "" → [] meaning every visible GPU). ValueError names a bad part."""
    indices = []
    for part in (p.strip() for p in gpus.split(",") if p.strip()):
        if not part.isdigit():
            raise ValueError(f"{part!r} is not a GPU index: use numbers separated by commas, e.g. 0,1")
        indices.append(int(part))
    if len(set(indices)) != len(indices):
        raise ValueError(f"a GPU is named twice in {gpus!r}")
    return indices


def read_config(path) -> RunConfig:
    """The RunConfig in the YAML file at `path`; ConfigError naming the file when it is too large, not UTF-8,
    bad YAML or holds bad keys or values."""
    try:
        text = read_yaml_text(path)
    except YamlError as error:
        raise ConfigError([Problem(str(path), str(error).removeprefix(str(path)).lstrip(":, "))]) from error
    return from_yaml(text, str(path))


def _range_problems(config: RunConfig) -> list[Problem]:
    """Numbers no run could use: past the field's `max` (metadata), past 2**31 - 1 for any whole number (what
    the trainer's and tokenizer's C code can hold), not finite, or texts over MAX_TEXT_CHARS."""
    problems = []
    for key, value in to_flat(config).items():
        info = field_info(key)
        top = info.metadata.get("max", MAX_WHOLE if info.type == "int" else MAX_REAL)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            continue
        if isinstance(value, str):
            if len(value) > MAX_TEXT_CHARS:
                problems.append(Problem(key, f"is {len(value):,} characters long; use at most {MAX_TEXT_CHARS:,}"))
        elif not math.isfinite(value):
            problems.append(Problem(key, f"must be a finite number, got {value}"))
        elif abs(value) > top:
            shown = f"{value:.3g}" if isinstance(value, float) or abs(value) > 10**12 else str(value)
            limit = f"at most {int(top):,}" if value > 0 else f"at least {-int(top):,}"
            problems.append(Problem(key, f"must be {limit}, got {shown}"))
    return problems


def validate(config: RunConfig) -> list[Problem]:
    """Every problem with the values in `config` (empty when it is good to run)."""
    problems: list[Problem] = _range_problems(config)
    m, d, t = config.model, config.data, config.train
    if not m.model.strip():
        problems.append(Problem("model", "choose a model (for example tiny-demo)"))
    if not d.dataset.strip():
        problems.append(Problem("dataset", "choose a dataset: a bundled sample or an uploaded file"))
    if t.max_steps < 0:
        problems.append(Problem("max_steps", f"must be 0 (use epochs) or more, got {t.max_steps}"))
    if t.max_steps == 0 and t.epochs <= 0:
        problems.append(Problem("epochs", f"must be above 0 when max_steps is 0, got {t.epochs}"))
    if not 0 < t.learning_rate <= 1:
        problems.append(Problem("learning_rate", f"must be above 0 and at most 1, got {t.learning_rate}"))
    if t.batch_size < 1:
        problems.append(Problem("batch_size", f"must be at least 1, got {t.batch_size}"))
    if t.grad_accum < 1:
        problems.append(Problem("grad_accum", f"must be at least 1, got {t.grad_accum}"))
    if not 16 <= t.cutoff_len <= 1_048_576:
        problems.append(Problem("cutoff_len", f"must be between 16 and 1048576 tokens, got {t.cutoff_len}"))
    if t.logging_steps < 1:
        problems.append(Problem("logging_steps", f"must be at least 1, got {t.logging_steps}"))
    if d.val_size < 0 or (d.val_size >= 1 and not float(d.val_size).is_integer()):
        problems.append(Problem("val_size", f"use a fraction below 1 (e.g. 0.1), a whole row count, or 0 for none; got {d.val_size}"))
    if getattr(d, "column_map", "").strip():
        from studio.data.formats import parse_column_map

        try:
            parse_column_map(d.column_map)
        except ValueError as error:
            problems.append(Problem("column_map", str(error).removeprefix("column_map: ")))
    for key in ("eval_steps", "early_stop_patience", "save_steps", "probe_steps"):
        if getattr(t, key) < 0:
            problems.append(Problem(key, f"must be 0 (off) or more, got {getattr(t, key)}"))
    for key, what in (("eval_steps", "evaluate"), ("early_stop_patience", "stop early")):
        if getattr(t, key) > 0 and d.val_size <= 0 and not getattr(d, "val_file", "").strip():
            problems.append(Problem(key, f"needs validation rows to {what} on: set val_size (e.g. 0.1) or val_file, or set {key}=0"))
    if t.save_total_limit < 1:
        problems.append(Problem("save_total_limit", f"must be at least 1, got {t.save_total_limit}"))
    prompts = probe_prompt_list(t.probe_prompts)
    if len(prompts) > MAX_PROBE_PROMPTS:
        problems.append(Problem("probe_prompts", f"use at most {MAX_PROBE_PROMPTS} prompts (one per line), got {len(prompts)}"))
    if len(config.run_name) > 80 or not re.fullmatch(r"[\w .\-]*", config.run_name):
        problems.append(Problem("run_name", "use at most 80 letters, digits, spaces, dots, dashes or underscores"))
    return (problems + _stage_problems(config) + _method_problems(config) + _efficiency_problems(config)
            + _distributed_problems(config))


def _distributed_problems(config: RunConfig) -> list[Problem]:
    """Problems with the strategy, the GPUs and the process count (what the distributed launch needs)."""
    t = config.train
    allowed = field_info("strategy").metadata["choices"]
    if t.strategy not in allowed:
        return [Problem("strategy", f"must be one of {', '.join(allowed)}, got {t.strategy!r}")]
    problems: list[Problem] = []
    if t.strategy.startswith("deepspeed") and not _installed("deepspeed"):
        problems.append(Problem("strategy", f"{t.strategy} needs the deepspeed package: pip install deepspeed (or use ddp or fsdp)"))
    if t.strategy == "single":
        return problems
    if t.dry_run:
        problems.append(Problem("dry_run", "a dry run measures one device: set strategy=single for it"))
    try:
        chosen = gpu_list(t.gpus)
    except ValueError as error:
        problems.append(Problem("gpus", str(error)))
        chosen = []
    visible = _gpu()["count"]
    if visible == 0:
        if chosen:
            problems.append(Problem("gpus", f"GPUs {t.gpus} were chosen but this machine has none: leave gpus empty to run CPU processes"))
        if t.strategy.startswith("deepspeed"):
            problems.append(Problem("strategy", f"{t.strategy} needs CUDA GPUs and none was found: use ddp or fsdp for CPU processes"))
        if not 1 <= t.processes <= 64:
            problems.append(Problem("processes", f"must be between 1 and 64, got {t.processes}"))
    elif any(index >= visible for index in chosen):
        problems.append(Problem("gpus", f"this machine has GPUs 0 to {visible - 1}; {t.gpus!r} names one it lacks"))
    return problems


def _stage_problems(config: RunConfig) -> list[Problem]:
    """Problems with the stage and its options (only the options of the chosen stage are checked)."""
    s = config.stage
    if s.stage not in STAGES:
        return [Problem("stage", f"must be one of {', '.join(STAGES)}, got {s.stage!r}")]
    problems: list[Problem] = []
    checks = {
        "dpo": (("dpo_beta", s.dpo_beta > 0, "must be above 0"), ("dpo_sft_weight", s.dpo_sft_weight >= 0, "must be 0 (off) or more"),
                ("dpo_loss", s.dpo_loss in DPO_LOSSES, f"must be one of {', '.join(DPO_LOSSES)}")),
        "orpo": (("orpo_beta", s.orpo_beta > 0, "must be above 0"),),
        "kto": (("kto_beta", s.kto_beta > 0, "must be above 0"),
                ("kto_desirable_weight", s.kto_desirable_weight > 0, "must be above 0"),
                ("kto_undesirable_weight", s.kto_undesirable_weight > 0, "must be above 0")),
    }
    for key, ok, message in checks.get(s.stage, ()):
        if not ok:
            problems.append(Problem(key, f"{message}, got {getattr(s, key)!r}"))
    if s.stage == "kto" and config.train.batch_size < 2:
        problems.append(Problem("batch_size", "KTO compares each answer with others in its batch: use batch_size 2 or more"))
    return problems


_NAMES = r"[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*"  # comma-separated module names


def _method_problems(config: RunConfig) -> list[Problem]:
    """Problems with the method and the options of the chosen method (others are not checked)."""
    meth = config.method
    if meth.method not in METHODS:
        return [Problem("method", f"must be one of {', '.join(METHODS)}, got {meth.method!r}")]
    problems: list[Problem] = []
    if meth.method in ("lora", "qlora"):
        if meth.lora_rank < 1:
            problems.append(Problem("lora_rank", f"must be at least 1, got {meth.lora_rank}"))
        if meth.lora_alpha < 1:
            problems.append(Problem("lora_alpha", f"must be at least 1, got {meth.lora_alpha}"))
        if not 0 <= meth.lora_dropout < 1:
            problems.append(Problem("lora_dropout", f"must be in [0, 1), got {meth.lora_dropout}"))
        if not re.fullmatch(rf"all-linear|{_NAMES}", meth.lora_targets.strip()):
            problems.append(Problem("lora_targets", "use all-linear or module names separated by commas, e.g. q_proj,v_proj"))
        if meth.loraplus_ratio != 0 and meth.loraplus_ratio < 1:
            problems.append(Problem("loraplus_ratio", f"use 0 (off) or a ratio of 1 or more (16 is typical), got {meth.loraplus_ratio}"))
    if meth.method == "qlora":
        if meth.pissa_init:
            problems.append(Problem("pissa_init", "PiSSA needs the unquantised weights: use method=lora, or turn pissa_init off"))
        if meth.quant_bits not in (4, 8):
            problems.append(Problem("quant_bits", f"must be 4 or 8, got {meth.quant_bits}"))
        for key in ("quant_type", "compute_dtype"):
            allowed = field_info(key).metadata["choices"]
            if getattr(meth, key) not in allowed:
                problems.append(Problem(key, f"must be one of {', '.join(allowed)}, got {getattr(meth, key)!r}"))
        if not _installed("bitsandbytes"):
            problems.append(Problem("method", "qlora needs the bitsandbytes package: pip install bitsandbytes (or use method=lora)"))
    if meth.method == "freeze":
        modules = meth.freeze_trainable_modules.strip()
        if meth.freeze_trainable_layers < 0:
            problems.append(Problem("freeze_trainable_layers", f"must be 0 (no layer limit) or more, got {meth.freeze_trainable_layers}"))
        if not re.fullmatch(rf"all|{_NAMES}", modules):
            problems.append(Problem("freeze_trainable_modules", "use all or name parts separated by commas, e.g. mlp or self_attn,mlp"))
        elif meth.freeze_trainable_layers == 0 and modules == "all":
            problems.append(Problem("freeze_trainable_layers", "0 layers with modules `all` trains every weight: set a layer count, choose modules, or use method=full"))
    if meth.method in ("prompt_tuning", "prefix_tuning", "p_tuning") and meth.num_virtual_tokens < 1:
        problems.append(Problem("num_virtual_tokens", f"must be at least 1, got {meth.num_virtual_tokens}"))
    return problems


def _efficiency_problems(config: RunConfig) -> list[Problem]:
    """Problems with the efficiency options: unknown values, combinations that cannot work, and what they need
    installed (a package, a CUDA GPU) that this machine lacks."""
    t, method = config.train, config.method.method
    problems: list[Problem] = []
    for key in ("optim", "precision", "attn_impl", "rope_scaling"):
        allowed = field_info(key).metadata["choices"]
        if getattr(t, key) not in allowed:
            problems.append(Problem(key, f"must be one of {', '.join(allowed)}, got {getattr(t, key)!r}"))
    if ("8bit" in t.optim or "paged" in t.optim) and not _installed("bitsandbytes"):
        problems.append(Problem("optim", f"{t.optim} needs the bitsandbytes package: pip install bitsandbytes (or use adamw_torch_fused)"))
    if t.optim == "galore_adamw":
        if method not in ("full", "freeze"):
            problems.append(Problem("optim", f"galore_adamw projects full-weight gradients: use it with method=full or freeze, not {method}"))
        if not _installed("galore_torch"):
            problems.append(Problem("optim", "galore_adamw needs the galore-torch package: pip install galore-torch"))
    if t.precision in ("fp16", "pure_bf16") and not _gpu()["cuda"]:
        problems.append(Problem("precision", f"{t.precision} needs a CUDA GPU and none was found: use auto (fp32 on a CPU)"))
    elif t.precision in ("bf16", "pure_bf16") and _gpu()["cuda"] and not _gpu()["bf16"]:
        problems.append(Problem("precision", f"this GPU ({_gpu()['name']}) has no bf16 support: use auto or fp16"))
    if t.attn_impl == "flash_attention_2":
        if not _installed("flash_attn"):
            problems.append(Problem("attn_impl", "flash_attention_2 needs the flash-attn package: pip install flash-attn (or use sdpa)"))
        elif not _gpu()["cuda"]:
            problems.append(Problem("attn_impl", "flash_attention_2 needs a CUDA GPU and none was found: use sdpa"))
    if t.use_liger:
        if not _installed("liger_kernel"):
            problems.append(Problem("use_liger", "Liger kernels need the liger-kernel package: pip install liger-kernel (or turn use_liger off)"))
        elif not _gpu()["cuda"]:
            problems.append(Problem("use_liger", "Liger kernels need a CUDA GPU and none was found: turn use_liger off"))
    if t.packing:
        if config.stage.stage not in ("sft", "pt"):
            problems.append(Problem("packing", f"packing works for the sft and pt stages, not {config.stage.stage}: turn packing off"))
        if method in ("prompt_tuning", "prefix_tuning", "p_tuning"):
            problems.append(Problem("packing", f"{method} adds virtual tokens in front of each sequence, which packed rows would share: turn packing off"))
    if t.neftune_alpha < 0:
        problems.append(Problem("neftune_alpha", f"must be 0 (off) or more, got {t.neftune_alpha}"))
    if t.rope_scaling != "none" and t.rope_factor <= 1:
        problems.append(Problem("rope_factor", f"must be above 1 to stretch the context, got {t.rope_factor}"))
    return problems


def _installed(package: str) -> bool:
    """True when `package` can be imported here (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec(package) is not None


@functools.cache
def _gpu() -> dict:
    """What this machine's first CUDA GPU offers: {"cuda", "bf16", "name", "count"} (hardware.cuda_gpus)."""
    from studio.hardware import cuda_gpus

    gpus = cuda_gpus()
    if not gpus:
        return {"cuda": False, "bf16": False, "name": None, "count": 0}
    return {"cuda": True, "bf16": gpus[0].bf16, "name": gpus[0].name, "count": len(gpus)}


def probe_prompt_list(text: str) -> list[str]:
    """The probe prompts in `probe_prompts`: one per non-empty line."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def check(config: RunConfig) -> RunConfig:
    """Return `config` unchanged when valid; otherwise raise ConfigError with all its problems."""
    problems = validate(config)
    if problems:
        raise ConfigError(problems)
    return config
