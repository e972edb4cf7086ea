"""The model, data and method settings of a run: typed dataclass sections whose fields carry their help text.

Each field's metadata holds its help in English and Chinese, its choices and where the UI shows it: the single
source the CLI, the validation messages and the UI's info text are built from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
