"""The stage and training settings of a run (what it learns from, how long, how fast, on which devices)."""

from __future__ import annotations

from dataclasses import dataclass

from studio.config.fields import OPTIMIZERS, REPORTERS, _field


STAGES = ("pt", "sft", "dpo", "orpo", "kto", "rm", "grpo")
DPO_LOSSES = ("sigmoid", "ipo", "hinge", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
              "apo_zero", "apo_down", "discopop", "sigmoid_norm")
GRPO_LOSSES = ("dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo")
_GRPO = {"stage": ("grpo",)}


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

    reward_funcs: str = _field(
        "exact_match,format",
        "GRPO reward functions, comma-separated, added up with reward_weights. Built in: `exact_match` (the answer "
        "equals the reference column), `number_match` (the last number equals the reference's, GSM8K `#### 42` "
        "understood), `format` (the whole answer matches reward_format), `length` (close to reward_length_target "
        "characters), `valid_json` (parses, and fits reward_json_schema when set), `no_repetition` (few repeated "
        "3-grams). Any other name is a function in reward_file.",
        "GRPO 奖励函数，逗号分隔，按 reward_weights 加权求和。内置：`exact_match`（回答等于参考列）、`number_match`"
        "（最后一个数字等于参考答案中的数字，支持 GSM8K 的 `#### 42`）、`format`（整个回答符合 reward_format）、"
        "`length`（长度接近 reward_length_target 个字符）、`valid_json`（能解析为 JSON，设置了 reward_json_schema 时还要符合它）、"
        "`no_repetition`（重复的三元组少）。其他名称表示 reward_file 中的函数。",
        show_when=_GRPO,
    )
    reward_weights: str = _field(
        "",
        "Weight of each reward function, comma-separated in the same order (e.g. `1,0.5`); empty = 1 each.",
        "每个奖励函数的权重，按相同顺序逗号分隔（如 `1,0.5`）；留空表示都为 1。",
        show_when=_GRPO,
    )
    reward_answer_column: str = _field(
        "answer",
        "The dataset column exact_match and number_match compare with (a chat dataset's last answer is given as "
        "`answer`).",
        "exact_match 和 number_match 对比的数据列（对话数据集的最后一个回答作为 `answer` 列提供）。",
        show_when=_GRPO,
    )
    reward_format: str = _field(
        "think_answer",
        "What the `format` reward wants: `think_answer` (<think>…</think> then <answer>…</answer>), `answer_tag` "
        "(<answer>…</answer>), or your own regular expression the whole answer must match.",
        "`format` 奖励要求的格式：`think_answer`（先 <think>…</think> 再 <answer>…</answer>）、`answer_tag`"
        "（<answer>…</answer>），或整个回答必须匹配的自定义正则表达式。",
        show_when=_GRPO,
    )
    reward_length_target: int = _field(
        200, "The answer length, in characters, the `length` reward is highest at.", "`length` 奖励最高时的回答长度（字符数）。",
        show_when=_GRPO,
    )
    reward_json_schema: str = _field(
        "",
        "A JSON schema file inside the workspace that `valid_json` answers must fit; empty = any valid JSON.",
        "工作区内的 JSON Schema 文件，`valid_json` 的回答必须符合它；留空表示任何合法 JSON 都可以。",
        show_when=_GRPO,
    )
    reward_file: str = _field(
        "",
        "A Python file inside the workspace with your own reward functions, def NAME(prompts, completions, **columns) "
        "returning one number per completion; name them in reward_funcs. It runs in the training process: needs "
        "allow_reward_code.",
        "工作区内包含自定义奖励函数的 Python 文件：def 名称(prompts, completions, **columns)，为每个回答返回一个数字；"
        "在 reward_funcs 中填写其名称。它在训练进程中运行：需要勾选 allow_reward_code。",
        show_when=_GRPO,
    )
    allow_reward_code: bool = _field(
        False,
        "Allow reward_file's Python code to run in the training process. Read the file first.",
        "允许 reward_file 中的 Python 代码在训练进程中运行。请先阅读该文件。",
        show_when=_GRPO,
    )
    grpo_generations: int = _field(
        4,
        "Answers sampled per prompt; each is scored against the others for the same prompt. batch_size × "
        "grad_accum (× processes) must be a multiple of it.",
        "每个提示采样的回答数；每个回答与同一提示的其他回答比较打分。batch_size × grad_accum（× 进程数）必须是它的倍数。",
        show_when=_GRPO, max=256,
    )
    grpo_max_completion_len: int = _field(
        256, "Longest sampled answer in tokens (its KV cache is part of the memory estimate).",
        "采样回答的最大长度（token 数；其 KV 缓存计入显存估算）。", show_when=_GRPO, max=131_072,
    )
    grpo_temperature: float = _field(
        1.0, "Sampling temperature of the answers: higher gives more varied answers to learn from.",
        "采样回答的温度：越高回答越多样，可学习的差异越多。", show_when=_GRPO, max=10.0,
    )
    grpo_beta: float = _field(
        0.0,
        "KL penalty keeping the model near the starting one; 0 = none and no reference model in memory (0.001-0.04 "
        "is usual when set).",
        "让模型贴近初始模型的 KL 惩罚；0 表示不加，也不在显存中保留参考模型（设置时常用 0.001-0.04）。",
        show_when=_GRPO,
    )
    grpo_loss: str = _field(
        "dapo",
        "GRPO loss: `dapo` (token-level, no length bias), `grpo` (the original, per answer), `dr_grpo`, `bnpo`, "
        "`cispo`, `sapo`.",
        "GRPO 损失：`dapo`（按 token 汇总，无长度偏置）、`grpo`（原始形式，按回答）、`dr_grpo`、`bnpo`、`cispo`、`sapo`。",
        choices=GRPO_LOSSES, show_when=_GRPO,
    )
    grpo_vllm: bool = _field(
        False,
        "Sample the answers with vLLM in the training process (colocate mode): much faster on a GPU; needs the vllm "
        "package and a CUDA GPU. Off: transformers' generate.",
        "在训练进程中用 vLLM 采样回答（colocate 模式）：在 GPU 上快得多；需要 vllm 包和 CUDA GPU。关闭时使用 transformers 的 generate。",
        show_when=_GRPO,
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
