"""Every UI string in English and 简体中文, and the Localizer that relabels the page when the language changes.

Labels of config fields come from this table; their info text comes from the field's help in
studio/config.py, so help is written once.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
from gradio.blocks import BlockContext

from studio import config as cfg

LANGUAGES = {"English": "en", "简体中文": "zh"}

TEXT: dict[str, tuple[str, str]] = {
    "title": ("# Fine-tuning Studio", "# 微调工作室"),
    "subtitle": (
        "Upload data, pick a model, train, watch the loss fall, chat with the result.",
        "上传数据、选择模型、开始训练、观察损失下降，然后与训练结果对话。",
    ),
    "language": ("Language", "语言"),
    # tabs
    "tab.data": ("1 · Data", "1 · 数据"),
    "tab.model": ("2 · Model", "2 · 模型"),
    "tab.train": ("3 · Train", "3 · 训练"),
    "tab.chat": ("4 · Chat", "4 · 对话"),
    "tab.runs": ("Runs", "运行记录"),
    # data tab
    "data.sample": ("Bundled sample", "内置示例数据"),
    "data.upload": ("…or upload a .jsonl / .json / .csv / .tsv / .parquet / .txt file", "……或上传 .jsonl / .json / .csv / .tsv / .parquet / .txt 文件"),
    "data.source": ("…or a path in the workspace, or hf:OWNER/NAME[:CONFIG][@SPLIT]", "……或工作区内的路径，或 hf:所有者/名称[:配置][@划分]"),
    "data.open": ("Open", "打开"),
    "data.preview": ("Rows as in the file", "文件中的原始行"),
    "data.loaded": ("Read **{rows}** rows from `{name}` (format: {format}).", "已从 `{name}` 读取 **{rows}** 行（格式：{format}）。"),
    "data.reason": ("Detected: {reason}.", "识别依据：{reason}。"),
    "data.reading": ("Checking every row… the first rows are below.", "正在检查每一行……下方是前几行。"),
    "data.skipped": ("**{skipped}** of {total} rows cannot be used and are skipped ({counts}):", "{total} 行中有 **{skipped}** 行无法使用，已跳过（{counts}）："),
    "data.bad_rows": ("**{skipped}** of {total} rows cannot be used ({counts}). Fix them and upload again, or tick *Skip bad rows* to train on the {good} good rows:",
                      "{total} 行中有 **{skipped}** 行无法使用（{counts}）。请修正后重新上传，或勾选“跳过错误行”，用其余 {good} 行训练："),
    "data.more_errors": ("… and {n} more", "……还有 {n} 行"),
    "data.error": ("**Cannot use this file.**", "**无法使用此文件。**"),
    "data.chosen": ("Training will use `{ref}`.", "训练将使用 `{ref}`。"),
    "data.apply_map": ("Apply mapping", "应用映射"),
    "data.sub.preview": ("Preview", "预览"),
    "data.sub.checks": ("Quality checks", "质量检查"),
    "data.sub.tokens": ("Token report", "Token 报告"),
    "data.sub.mask": ("Loss mask", "损失掩码"),
    "data.sub.library": ("Dataset library", "数据集库"),
    "data.page": ("Page", "页码"),
    "data.prev": ("◀ Previous", "◀ 上一页"),
    "data.next": ("Next ▶", "下一页 ▶"),
    "data.search": ("Search rows", "搜索行"),
    "data.page_info": ("Page {page} · rows {first}–{last} of {total}", "第 {page} 页 · 第 {first}–{last} 行，共 {total} 行"),
    "data.counting": ("{n}+ (still counting)", "{n}+（仍在统计）"),
    "data.found": ("{n} matching rows{more}", "{n} 条匹配的行{more}"),
    "data.bubbles": ("As the trainer sees them", "训练时看到的样子"),
    "data.col.where": ("where", "位置"),
    "data.col.raw": ("row as in the file", "文件中的行"),
    "data.col.problem": ("problem", "问题"),
    "data.checks_none": ("No duplicates, conflicting answers, odd lengths or likely secrets found.", "未发现重复、矛盾回答、异常长度或疑似密钥/隐私信息。"),
    "data.tokens_run": ("Compute the token report", "计算 Token 报告"),
    "data.tokens_need": ("Choose a dataset the trainer can use first.", "请先选择训练可以使用的数据集。"),
    "data.tokens_stats": ("With **{model}**: p50 **{p50}**, p95 **{p95}**, p99 **{p99}**, max **{max}** tokens. At cutoff {cutoff}: **{over}** rows truncated, **{dropped}** dropped (no trained token left); **{trained:,}** trained tokens of {tokens:,} per epoch.",
                          "使用 **{model}**：p50 **{p50}**、p95 **{p95}**、p99 **{p99}**、最大 **{max}** 个 token。截断长度 {cutoff} 时：**{over}** 行被截断，**{dropped}** 行被丢弃（没有剩余训练 token）；每轮训练 **{trained:,}** 个 token（共 {tokens:,} 个）。"),
    "data.tokens_time": ("Rough time per epoch on {device}: {time}.", "在 {device} 上每轮大约需要 {time}。"),
    "data.set_p95": ("Set cutoff to p95", "截断长度设为 p95"),
    "data.set_p99": ("Set cutoff to p99", "截断长度设为 p99"),
    "data.cutoff_set": ("Cutoff length set to {cutoff} (Train tab).", "截断长度已设为 {cutoff}（训练页）。"),
    "data.hist_x": ("tokens per row", "每行 token 数"),
    "data.hist_y": ("rows", "行数"),
    "data.cutoff": ("cutoff", "截断长度"),
    "data.mask_row": ("Row (1 = first usable row)", "行号（1 = 第一条可用行）"),
    "data.mask_show": ("Show", "显示"),
    "data.mask_legend": ("Green tokens are trained on; grey tokens are masked (label -100). Same code path as the trainer.",
                         "绿色 token 参与训练；灰色 token 被掩码（标签 -100）。与训练使用同一段代码。"),
    "data.lib.name": ("dataset", "数据集"),
    "data.lib.format": ("format", "格式"),
    "data.lib.rows": ("rows", "行数"),
    "data.lib.size": ("size", "大小"),
    "data.lib.date": ("date", "日期"),
    "data.lib.pick": ("Dataset in the library", "库中的数据集"),
    "data.lib.new_name": ("New name", "新名称"),
    "data.lib.rename": ("Rename", "重命名"),
    "data.lib.delete": ("Delete", "删除"),
    "data.lib.done": ("Done: {what}.", "完成：{what}。"),
    "field.val_file": ("Validation file", "验证集文件"),
    "field.column_map": ("Column map", "列映射"),
    "field.skip_bad_rows": ("Skip bad rows", "跳过错误行"),
    "field.train_on_prompt": ("Train on prompt", "在提示上训练"),
    "field.mask_history": ("Mask history", "屏蔽历史回答"),
    # model tab
    "model.info.catalog": ("**{name}** · `{hub}` · licence: {license} · template: {template}", "**{name}** · `{hub}` · 许可：{license} · 模板：{template}"),
    "model.import.title": ("**Import a GGUF file** (llama.cpp / Ollama format): de-quantized into a model folder in the workspace",
                           "**导入 GGUF 文件**（llama.cpp / Ollama 格式）：反量化后保存为工作区中的模型文件夹"),
    "model.import.open": ("Import a GGUF file", "导入 GGUF 文件"),
    "model.import.file": ("Upload a .gguf", "上传 .gguf 文件"),
    "model.import.path": ("…or a .gguf path in the workspace", "…或工作区中的 .gguf 路径"),
    "model.import.name": ("Name (default: the file name)", "名称（默认：文件名）"),
    "model.import.start": ("Import", "导入"),
    "model.import.none": ("Upload a .gguf file or type its path first.", "请先上传 .gguf 文件或填写其路径。"),
    "model.import.done": ("Imported **{name}** ({arch}, {params:.1f}M parameters, {dtype}) in {seconds} s into `{folder}`; it is now chosen as the model.",
                          "已导入 **{name}**（{arch}，{params:.1f}M 参数，{dtype}），用时 {seconds} 秒，保存在 `{folder}`；已选为当前模型。"),
    "model.import.failed": ("Not imported: {error}", "导入失败：{error}"),
    "model.info.custom": ("`{name}`: a Hugging Face id or a folder in the workspace.", "`{name}`：Hugging Face 模型 ID 或工作区中的文件夹。"),
    "model.recommended": ("Recommended settings for this model applied: {items}", "已应用该模型的推荐设置：{items}"),
    # config field labels
    "field.run_name": ("Run name", "运行名称"),
    "field.model": ("Model", "模型"),
    "field.trust_remote_code": ("Trust remote code", "信任远程代码"),
    "field.dataset": ("Dataset used for training", "用于训练的数据集"),
    "field.method": ("Method", "方法"),
    "field.lora_rank": ("LoRA rank", "LoRA 秩"),
    "field.lora_alpha": ("LoRA alpha", "LoRA 缩放系数 alpha"),
    "field.lora_dropout": ("LoRA dropout", "LoRA 随机丢弃率 dropout"),
    "field.lora_targets": ("Target modules", "目标模块"),
    "field.epochs": ("Epochs", "训练轮数"),
    "field.max_steps": ("Max steps", "最大步数"),
    "field.learning_rate": ("Learning rate", "学习率"),
    "field.batch_size": ("Batch size", "批大小"),
    "field.grad_accum": ("Gradient accumulation", "梯度累积"),
    "field.cutoff_len": ("Cutoff length", "截断长度"),
    "field.seed": ("Seed", "随机种子"),
    "field.logging_steps": ("Log every N steps", "每 N 步记录"),
    "field.report_to": ("Also report to", "同时发送到"),
    "field.val_size": ("Validation rows", "验证集样本"),
    "field.dataset_dir": ("LLaMA-Factory data folder", "LLaMA-Factory 数据文件夹"),
    "field.mix_strategy": ("Mixing several datasets", "多数据集混合方式"),
    "field.interleave_probs": ("Interleave probabilities", "交替抽取概率"),
    "field.text_split": (".txt documents", ".txt 文档切分"),
    "field.eval_steps": ("Evaluate every N steps", "每 N 步评估"),
    "field.early_stop_patience": ("Early-stop patience", "提前停止耐心值"),
    "field.save_steps": ("Checkpoint every N steps", "每 N 步保存检查点"),
    "field.save_total_limit": ("Checkpoints kept", "保留的检查点数"),
    "field.keep_best": ("Keep the best checkpoint", "保留最佳检查点"),
    "field.probe_steps": ("Probe every N steps", "每 N 步探测"),
    "field.probe_prompts": ("Probe prompts", "探测提示"),
    # labels of the method, stage and efficiency keys (added with the Train tab form)
    "field.stage": ("Stage", "训练阶段"),
    "field.use_rslora": ("rsLoRA scaling", "rsLoRA 缩放"),
    "field.use_dora": ("DoRA", "DoRA"),
    "field.pissa_init": ("PiSSA initialisation", "PiSSA 初始化"),
    "field.loraplus_ratio": ("LoRA+ learning-rate ratio", "LoRA+ 学习率比例"),
    "field.quant_bits": ("Quantisation bits", "量化位数"),
    "field.quant_type": ("4-bit data type", "4 位数据类型"),
    "field.double_quant": ("Double quantisation", "双重量化"),
    "field.compute_dtype": ("Compute dtype", "计算精度"),
    "field.freeze_trainable_layers": ("Trainable last layers", "可训练的末尾层数"),
    "field.freeze_trainable_modules": ("Trainable modules", "可训练的模块"),
    "field.num_virtual_tokens": ("Virtual tokens", "虚拟 token 数"),
    "field.dpo_beta": ("DPO beta", "DPO beta"),
    "field.dpo_loss": ("DPO loss", "DPO 损失函数"),
    "field.dpo_sft_weight": ("SFT loss weight", "SFT 损失权重"),
    "field.orpo_beta": ("ORPO beta", "ORPO beta"),
    "field.kto_beta": ("KTO beta", "KTO beta"),
    "field.kto_desirable_weight": ("Weight of good answers", "好回答的权重"),
    "field.kto_undesirable_weight": ("Weight of bad answers", "差回答的权重"),
    "train.reward_upload": ("Upload a reward file (.py)", "上传奖励函数文件（.py）"),
    "field.reward_funcs": ("Reward functions", "奖励函数"),
    "field.reward_weights": ("Reward weights", "奖励权重"),
    "field.reward_answer_column": ("Reference column", "参考答案列"),
    "field.reward_format": ("Answer format (format reward)", "回答格式（format 奖励）"),
    "field.reward_length_target": ("Target length, characters (length reward)", "目标长度，字符数（length 奖励）"),
    "field.reward_json_schema": ("JSON schema file (valid_json reward)", "JSON Schema 文件（valid_json 奖励）"),
    "field.reward_file": ("Your reward functions (.py)", "自定义奖励函数（.py）"),
    "field.allow_reward_code": ("Allow the reward file's code to run", "允许运行奖励文件中的代码"),
    "field.grpo_generations": ("Answers per prompt", "每个提示的回答数"),
    "field.grpo_max_completion_len": ("Longest answer (tokens)", "最长回答（token）"),
    "field.grpo_temperature": ("Sampling temperature", "采样温度"),
    "field.grpo_beta": ("KL beta", "KL beta"),
    "field.grpo_loss": ("GRPO loss", "GRPO 损失函数"),
    "field.grpo_vllm": ("Sample with vLLM", "用 vLLM 采样"),
    "field.dry_run": ("Dry run", "试运行"),
    "field.optim": ("Optimizer", "优化器"),
    "field.precision": ("Precision", "精度"),
    "field.gradient_checkpointing": ("Gradient checkpointing", "梯度检查点"),
    "field.attn_impl": ("Attention implementation", "注意力实现"),
    "field.packing": ("Sequence packing", "序列打包"),
    "field.use_liger": ("Liger kernels", "Liger 内核"),
    "field.neftune_alpha": ("NEFTune noise alpha", "NEFTune 噪声 alpha"),
    "field.rope_scaling": ("RoPE scaling", "RoPE 缩放"),
    "field.rope_factor": ("RoPE scaling factor", "RoPE 缩放倍数"),
    "train.more": ("Validation, checkpoints and probes", "验证、检查点与探测"),
    # model tab: memory estimate panel (studio/ui/estimate_panel.py)
    "est.title": ("Hardware and memory estimate", "硬件与显存估算"),
    "est.refresh": ("Re-estimate", "重新估算"),
    "est.dry_run": ("Dry run: measure it (a few real steps)", "试运行：实际测量（训练几步）"),
    "est.yes": ("yes", "是"),
    "est.no": ("no", "否"),
    "est.gpu_line": ("**GPU {index}** · {name}: {free} of {total} GB free · bf16 {bf16} · FlashAttention 2 {flash}",
                     "**GPU {index}** · {name}：{total} GB 中 {free} GB 可用 · bf16 {bf16} · FlashAttention 2 {flash}"),
    "est.no_gpu": ("**No GPU**: training runs on the CPU, which suits small models (tiny-demo, SmolLM2 135M/360M, Qwen 0.5B).",
                   "**没有 GPU**：训练将在 CPU 上进行，只适合小模型（tiny-demo、SmolLM2 135M/360M、Qwen 0.5B）。"),
    "est.machine_line": ("CPU: {cores} cores · RAM: {ram} of {ram_total} GB free · disk: {disk} GB free in the workspace",
                         "CPU：{cores} 核 · 内存：{ram_total} GB 中 {ram} GB 可用 · 磁盘：工作区剩余 {disk} GB"),
    "est.model_line": ("**{params} parameters** · {layers} layers · hidden {hidden} · {heads} heads ({kv} KV) · vocabulary {vocab} · context {context}",
                       "**{params} 参数** · {layers} 层 · 隐藏维度 {hidden} · {heads} 个注意力头（{kv} 个 KV）· 词表 {vocab} · 上下文 {context}"),
    "est.model_unknown": ("No estimate: {error}", "无法估算：{error}"),
    "est.part.weights": ("weights", "权重"),
    "est.part.trainable": ("trainable", "可训练参数"),
    "est.part.optimizer": ("optimizer", "优化器状态"),
    "est.part.gradients": ("gradients", "梯度"),
    "est.part.activations": ("activations", "激活值"),
    "est.part.logits": ("logits", "logits 输出"),
    "est.part.reference_model": ("reference_model", "参考模型"),
    "est.part.generation": ("generation", "生成缓存"),
    "est.part.cuda_context": ("cuda_context", "CUDA 上下文"),
    "est.part.workspace": ("workspace", "CUDA 工作空间"),
    "est.free_line": ("{device}: {gb} GB free", "{device}：可用 {gb} GB"),
    "est.fits": ("**Fits**: about {total} GB of the {available} GB free on {device}.", "**可以运行**：约需 {total} GB，{device} 可用 {available} GB。"),
    "est.tight": ("**Tight**: about {total} GB of the {available} GB free on {device} (above 90%). A fix below gives headroom.",
                  "**较紧张**：约需 {total} GB，{device} 可用 {available} GB（超过 90%）。下面的修改可以留出余量。"),
    "est.wont_fit": ("**Won't fit**: about {total} GB but only {available} GB free on {device}. Click a fix to apply it:",
                     "**放不下**：约需 {total} GB，但 {device} 只有 {available} GB 可用。点击下面的修改即可应用："),
    "est.limits": ("Largest micro-batch that fits at cutoff {seq}: **{batch}** · longest cutoff that fits at micro-batch {micro}: **{cutoff}**",
                   "截断长度 {seq} 时能放下的最大微批：**{batch}** · 微批 {micro} 时能放下的最长截断长度：**{cutoff}**"),
    "est.dry_invalid": ("**Cannot start the dry run:**", "**无法开始试运行：**"),
    "est.dry_started": ("Dry run `{run}` started: a few real steps, then the measured peak appears here.",
                        "试运行 `{run}` 已开始：训练几步后在此显示实测峰值。"),
    "est.dry_running": ("Dry run `{run}`: {phase}…", "试运行 `{run}`：{phase}……"),
    "est.dry_done": ("**Measured peak {measured} GB** ({kind}) · estimated {estimated} GB · {speed} tokens/s",
                     "**实测峰值 {measured} GB**（{kind}）· 估算 {estimated} GB · 每秒 {speed} 个 token"),
    "est.dry_oom": ("**Won't fit** (out of memory in the dry run). {phase}", "**放不下**（试运行显存不足）。{phase}"),
    "est.dry_failed": ("**Dry run failed:** {error}", "**试运行失败：**{error}"),
    # train tab
    "train.start": ("Start training", "开始训练"),
    "train.stop": ("Stop", "停止"),
    "train.chat": ("Chat with this run", "与此运行对话"),
    "train.progress": ("Progress", "进度"),
    "train.loss_chart": ("Training loss", "训练损失"),
    "train.log": ("Log", "日志"),
    "train.invalid": ("**Fix these before starting:**", "**开始前请修正：**"),
    "train.started": ("Started run `{run}`.", "已开始运行 `{run}`。"),
    "train.stopping": ("Stopping `{run}` after the current step…", "将在当前步结束后停止 `{run}`……"),
    "train.no_run": ("No run is being watched. Set up data and model, then press Start.", "当前没有正在查看的运行。设置好数据和模型后点击开始。"),
    "train.phase": ("{state} · {phase}", "{state} · {phase}"),
    "train.step": ("step {step} / {total}", "第 {step} / {total} 步"),
    "train.elapsed": ("elapsed {elapsed}", "已用 {elapsed}"),
    "train.eta": ("ETA {eta}", "剩余 {eta}"),
    "train.loss": ("loss {loss}", "损失 {loss}"),
    "train.kill": ("Kill", "强制终止"),
    "train.kill_confirm": (
        "**Kill run `{run}` now?** The worker ends at once; training since the last checkpoint is lost.",
        "**立即强制终止运行 `{run}`？** 工作进程会马上结束，上次检查点之后的训练将丢失。",
    ),
    "train.kill_yes": ("Yes, kill it", "确认终止"),
    "train.cancel": ("Cancel", "取消"),
    "train.killed": ("Killed run `{run}`.", "已强制终止运行 `{run}`。"),
    "train.not_active": ("Run `{run}` is not running.", "运行 `{run}` 不在运行中。"),
    "train.resume": ("Resume", "继续训练"),
    "train.resumed": ("Resuming run `{run}` from its last checkpoint.", "正在从最近的检查点继续运行 `{run}`。"),
    "train.cannot_resume": ("Run `{run}` cannot be resumed: {reason}", "无法继续运行 `{run}`：{reason}"),
    "train.price": ("Price per hour (any currency), for the cost", "每小时价格（任意货币），用于估算花费"),
    "train.cost": ("cost so far {so_far} · about {total} by the end", "目前花费 {so_far} · 预计总计约 {total}"),
    "train.cost_final": ("cost {so_far}", "花费 {so_far}"),
    "train.start_anyway": ("Start anyway", "仍然开始"),
    "train.wont_fit": (
        ("**The memory check says this run won't fit.** {details}\n\nApply a fix in 2 · Model (memory check), run a Dry run "
         "to measure, or press **Start anyway**."),
        "**显存检查认为此次训练放不下。** {details}\n\n可在「2 · 模型」的显存检查中应用修复、先做一次试运行实测，或点击**仍然开始**。",
    ),
    "train.oom.title": ("Out of GPU memory: this configuration does not fit.", "GPU 显存不足：此配置放不下。"),
    "train.oom.estimate": (
        "Before it started, the estimate was {total} GB of {available} GB on {device} ({verdict}); largest parts: {parts}.",
        "开始前的估算为 {total} GB（{device} 可用 {available} GB，结论：{verdict}）；占用最多的部分：{parts}。",
    ),
    "train.oom.where": (
        "Apply a fix with one click in 2 · Model → memory check, then start again (or Resume after lowering the batch).",
        "在「2 · 模型」的显存检查中一键应用修复，然后重新开始训练。",
    ),
    "train.best_eval": ("best validation loss {loss}", "最佳验证损失 {loss}"),
    "train.killed_note": ("killed", "已强制终止"),
    "train.early_stopped": ("stopped early: validation loss stopped improving", "提前停止：验证损失不再下降"),
    "train.resumed_from": ("resumed from {checkpoint}", "从 {checkpoint} 继续"),
    "train.metrics_chart": ("Training signals", "训练指标"),
    "train.system": ("#### System", "#### 系统"),
    "train.system_chart": ("GPU, CPU and memory", "GPU、CPU 与内存"),
    "train.log_title": ("#### Log", "#### 日志"),
    "train.cloned": ("Loaded the config of `{run}` as **{name}**: edit it and press Start.", "已载入 `{run}` 的配置，名称为 **{name}**：修改后点击开始。"),
    "train.watching": ("Watching run `{run}`.", "正在查看运行 `{run}`。"),
    # train tab: the form built from the config fields (studio/ui/train_form.py)
    "train.group.method": ("{names} settings", "{names} 设置"),
    "train.group.stage": ("{names} stage settings", "{names} 阶段设置"),
    "train.group.section.train": ("Speed, memory and precision", "速度、显存与精度"),
    "train.group.section.data": ("More data options", "更多数据选项"),
    "train.group.section.method": ("More method options", "更多方法选项"),
    "train.group.section.stage": ("More stage options", "更多阶段选项"),
    "train.group.section.model": ("More model options", "更多模型选项"),
    "train.group.section.run": ("More run options", "更多运行选项"),
    "train.group.section.other": ("More options: {section}", "更多选项：{section}"),
    "train.ready": ("No problems found: ready to start.", "未发现问题：可以开始训练。"),
    "train.settings_toggle": ("Settings (folded while the watched run trains): show or hide", "训练设置（所查看的运行训练期间已折叠）：显示或隐藏"),
    "train.preview": ("Preview command", "预览命令"),
    "train.preview_yaml": ("config.yaml", "config.yaml"),
    "train.preview_cli": (
        "The same run from a terminal (or save the YAML and run `python -m studio train config.yaml`)",
        "在终端中启动同样的运行（或保存 YAML 后运行 `python -m studio train config.yaml`）",
    ),
    "train.save": ("Save config", "保存配置"),
    "train.load": ("Load config", "载入配置"),
    "train.saved_file": ("Saved config (click to download)", "已保存的配置（点击下载）"),
    "train.loaded": ("Loaded the config `{name}`: check it and press Start.", "已载入配置 `{name}`：检查后点击开始。"),
    "train.load_failed": ("**Cannot load `{name}`:**", "**无法载入 `{name}`：**"),
    "train.preset": (
        "Hyperparameter preset: fills in the settings below (edit them afterwards)",
        "超参数预设：填入下方的设置（之后仍可修改）",
    ),
    "train.cannot_save": ("**Cannot save yet; fix these first:**", "**暂时无法保存，请先修正：**"),
    # long waits before and after training (status.json "progress")
    "phase.download": ("downloading {label}", "正在下载 {label}"),
    "phase.download.plain": ("downloading…", "正在下载……"),
    "phase.tokenize": ("tokenizing {label}", "正在分词 {label}"),
    "phase.tokenize.plain": ("tokenizing…", "正在分词……"),
    "phase.load": ("loading {label}…", "正在加载 {label}……"),
    "phase.load.plain": ("loading the model…", "正在加载模型……"),
    "phase.save": ("saving {label}…", "正在保存 {label}……"),
    "phase.save.plain": ("saving…", "正在保存……"),
    "phase.rows": ("{done}/{total} rows", "{done}/{total} 行"),
    "phase.rows.open": ("{done} rows", "{done} 行"),
    "phase.steps": ("{done}/{total} steps", "{done}/{total} 步"),
    "phase.steps.open": ("{done} steps", "{done} 步"),
    "phase.rate.rows": ("{rate} rows/s", "{rate} 行/秒"),
    "phase.rate.steps": ("{rate} steps/s", "{rate} 步/秒"),
    # charts
    "chart.loss": ("Loss", "损失"),
    "chart.loss_raw": ("training loss", "训练损失"),
    "chart.loss_smooth": ("smoothed", "平滑后"),
    "chart.eval_loss": ("validation loss", "验证损失"),
    "chart.step": ("step", "步"),
    "chart.loss_axis": ("loss", "损失"),
    "chart.waiting": ("Waiting for the first logged step…", "等待第一个记录的训练步……"),
    "chart.learning_rate": ("learning rate", "学习率"),
    "chart.grad_norm": ("gradient norm", "梯度范数"),
    "chart.reward": ("reward", "奖励"),
    "chart.reward_total": ("total (weighted)", "总奖励（加权）"),
    "chart.reward_spread": ("± spread across answers", "± 回答间的波动"),
    "chart.completion_length": ("answer length (tokens)", "回答长度（token）"),
    "chart.kl": ("KL to the starting model", "与初始模型的 KL"),
    "chart.clip_ratio": ("clipped share", "被裁剪的比例"),
    "chart.tokens_per_s": ("tokens/s", "tokens/秒"),
    "chart.gpu_memory": ("GPU memory (GB)", "显存（GB）"),
    "chart.gpu_util": ("GPU utilisation %", "GPU 利用率 %"),
    "chart.gpu_temp": ("GPU temperature °C", "GPU 温度 °C"),
    "chart.gpu_power": ("GPU power (W)", "GPU 功耗（W）"),
    "chart.cpu": ("CPU %", "CPU %"),
    "chart.ram": ("RAM (GB)", "内存（GB）"),
    "chart.minutes": ("minutes", "分钟"),
    "chart.used": ("used", "已用"),
    "chart.total": ("total", "总量"),
    "chart.no_system": ("No system readings yet.", "暂无系统读数。"),
    "chart.overlay": ("Loss of the selected runs", "所选运行的损失"),
    "chart.no_metrics": ("These runs logged no metrics.", "这些运行没有记录指标。"),
    # system readings in words
    "system.waiting": ("Waiting for the first system reading…", "等待第一次系统读数……"),
    "system.no_gpu": ("No GPU: this run trains on the CPU.", "没有 GPU：此运行在 CPU 上训练。"),
    "system.gpu": (
        "GPU {index} · {name}: memory {used}/{total} GB · {util}% busy · {temp} °C · {power} W",
        "GPU {index} · {name}：显存 {used}/{total} GB · 利用率 {util}% · {temp} °C · {power} W",
    ),
    "system.cpu": ("CPU {cpu}% · RAM {used}/{total} GB", "CPU {cpu}% · 内存 {used}/{total} GB"),
    # probe answers
    "probe.title": ("#### Probe answers: the same prompts, asked as training goes on", "#### 探针回答：训练过程中反复提出的同样问题"),
    "probe.none": ("No probe answers yet.", "还没有探针回答。"),
    "probe.prompt": ("Prompt {n}", "问题 {n}"),
    "probe.step": ("step", "步"),
    "probe.answer": ("answer", "回答"),
    "probe.base": ("base model (step 0)", "基础模型（第 0 步）"),
    "probe.earlier": ("{count} earlier answers", "更早的 {count} 个回答"),
    # read-only viewer login
    "viewer.banner": (
        "Signed in as **{user}** (read-only): you can watch runs and charts, but not start, stop or change anything.",
        "已以 **{user}** 身份登录（只读）：可以查看运行和图表，但不能开始、停止或修改任何内容。",
    ),
    "viewer.closed_tab": ("This tab is for the operator login; a read-only login can watch runs in Train and Runs.", "此页面仅供操作员登录使用；只读登录可在“训练”和“运行记录”页查看运行。"),
    "viewer.refused": (
        "This login is read-only: it can watch runs but cannot start, stop, kill, resume, delete, edit, upload or chat.",
        "此登录为只读：只能查看运行，不能开始、停止、强制终止、继续、删除、编辑、上传或对话。",
    ),
    # chat tab
    "chat.run": ("Run", "运行"),
    "chat.model": ("…or a model without a run (catalog, imported, folder or Hub id)", "…或不经训练直接加载模型（目录、已导入、文件夹或 Hub ID）"),
    "chat.load_model": ("Load model", "加载模型"),
    "chat.pick_model": ("Choose a model to load.", "请选择要加载的模型。"),
    "chat.loaded_model": ("Loaded model **{model}** as it is (its own chat template, no run).", "已按原样加载模型 **{model}**（使用其自带的对话模板，不涉及运行）。"),
    "chat.base": ("Base model only (no adapter)", "仅基础模型（不加载适配器）"),
    "chat.load": ("Load", "加载"),
    "chat.refresh": ("Refresh", "刷新"),
    "chat.loaded": ("Loaded run **{run}** (base model + trained adapter).", "已加载运行 **{run}**（基础模型 + 训练得到的适配器）。"),
    "chat.loaded_base": ("Loaded the base model of run **{run}** (no adapter).", "已加载运行 **{run}** 的基础模型（不含适配器）。"),
    "chat.none": ("No finished run yet: train one first.", "还没有完成的运行：请先训练。"),
    "chat.not_loaded": ("Load a run first.", "请先加载一个运行。"),
    "chat.message": ("Message", "消息"),
    "chat.send": ("Send", "发送"),
    "chat.clear": ("Clear", "清空"),
    "chat.chatbot": ("Chat", "对话"),
    "chat.max_new_tokens": ("Max new tokens", "最大生成 token 数"),
    "chat.temperature": ("Temperature (0 = greedy)", "温度（0 = 贪心解码）"),
    "chat.top_p": ("Top-p", "Top-p"),
    "chat.settings": ("Generation settings", "生成设置"),
    "chat.checkpoint": ("Weights", "权重"),
    "chat.pick_run": ("Choose a run to load.", "请选择要加载的运行。"),
    "chat.final": ("Final weights", "最终权重"),
    "chat.loaded_checkpoint": ("Loaded run **{run}** at **{checkpoint}** (base model + that checkpoint's weights).",
                               "已加载运行 **{run}** 的 **{checkpoint}**（基础模型 + 该检查点的权重）。"),
    "chat.unload": ("Unload", "卸载"),
    "chat.unloaded": ("Unloaded: the model's memory is freed.", "已卸载：模型占用的内存已释放。"),
    "chat.unloaded_gpu": ("Unloaded: the model's memory is freed, GPU memory included.", "已卸载：模型占用的内存（包括显存）已释放。"),
    "chat.nothing_loaded": ("No model is loaded.", "当前没有加载模型。"),
    "chat.no_room": (
        ("Not loaded: training run **{run}** is using the GPU, which has {free} GB free; this model needs about {need} GB. "
         "Wait for the training to finish or stop it, then load again."),
        "未加载：训练运行 **{run}** 正在使用 GPU，当前空闲 {free} GB；此模型约需 {need} GB。请等待训练结束或停止训练后再加载。",
    ),
    "chat.stop": ("Stop", "停止"),
    "chat.stopped_at": ("Stopped after {tokens} new tokens (of at most {limit}): the reply so far is kept.",
                        "已在生成 {tokens} 个 token 后停止（上限 {limit}）：保留已生成的回复。"),
    "chat.system": ("System prompt (optional; sent before the conversation)", "系统提示词（可选；放在对话最前面）"),
    "chat.top_k": ("Top-k (0 = off)", "Top-k（0 = 关闭）"),
    "chat.repetition_penalty": ("Repetition penalty (1 = off)", "重复惩罚（1 = 关闭）"),
    "chat.seed": ("Seed (empty = random; fixes sampled replies)", "随机种子（留空 = 随机；固定后采样结果可复现）"),
    # compare tab
    "tab.compare": ("Compare", "对比"),
    "compare.intro": (
        ("The same prompt answered side by side. **Base vs tuned** compares a run with its own base model: for a LoRA-style "
        "run the base answer comes from the same loaded weights with the adapter switched off; a full fine-tune has no "
        "adapter, so its base model is loaded as a second copy (twice the memory). **Two runs** of the same base model "
        "share one copy when both saved adapters; runs on different base models are not compared. Loading here replaces "
        "the model loaded in Chat, and the other way round. Tick **Blind A/B** to rate without knowing who wrote which: "
        "each pick is saved as a preference pair (ready for stage `dpo`)."),
        ("同一个提示词，两个回答并排显示。**基础 vs 微调**：把一个运行与它自己的基础模型比较——LoRA 类运行的基础回答来自同一份已加载的权重"
        "（关闭适配器）；全参数微调没有适配器，因此会另外加载一份基础模型（占用两倍内存）。**两个运行**：基于同一基础模型且都保存了适配器的"
        "两个运行共用一份权重；基础模型不同的运行不做比较。在这里加载会替换“对话”页已加载的模型，反之亦然。勾选 **盲评 A/B** 可在不知道回答"
        "来自哪个模型的情况下打分：每次选择都会保存为一条偏好数据（可直接用于 `dpo` 阶段）。"),
    ),
    "compare.mode": ("Compare", "比较方式"),
    "compare.mode_base": ("Base vs tuned", "基础 vs 微调"),
    "compare.mode_runs": ("Two runs", "两个运行"),
    "compare.run_a": ("Run (A)", "运行（A）"),
    "compare.run_b": ("Run B", "运行 B"),
    "compare.refresh": ("Refresh", "刷新"),
    "compare.load": ("Load", "加载"),
    "compare.pick_run": ("Choose a finished run first.", "请先选择一个已完成的运行。"),
    "compare.loaded_one": ("Loaded **{a}** and **{b}** on one copy of the weights.", "已加载 **{a}** 与 **{b}**，共用一份权重。"),
    "compare.loaded_two": (("Loaded **{a}** and **{b}** as two copies of the weights (a full fine-tune has no adapter to "
                           "switch off), so twice the memory."),
                           "已加载 **{a}** 与 **{b}**，共两份权重（全参数微调没有可关闭的适配器），占用两倍内存。"),
    "compare.refused": (("Not loaded: training run **{run}** is using the GPU; the model needs about {need:.1f} GiB and "
                        "{free:.1f} GiB is free. Wait for the run to finish, or stop it."),
                        ("未加载：训练运行 **{run}** 正在使用 GPU；该模型约需 {need:.1f} GiB，当前仅剩 {free:.1f} GiB。"
                        "请等待训练结束或停止它。")),
    "compare.not_loaded": ("Load a run to compare first (Chat may have loaded another model since).",
                           "请先加载要比较的运行（“对话”页可能已加载了其他模型）。"),
    "compare.system": ("System prompt (optional)", "系统提示词（可选）"),
    "compare.prompt": ("Prompt", "提示词"),
    "compare.blind": ("Blind A/B", "盲评 A/B"),
    "compare.answer": ("Answer", "生成回答"),
    "compare.answer_a": ("Answer A", "回答 A"),
    "compare.answer_b": ("Answer B", "回答 B"),
    "compare.settings": ("Generation settings (the same for both answers)", "生成设置（两个回答相同）"),
    "compare.max_new_tokens": ("Max new tokens", "最大生成 token 数"),
    "compare.temperature": ("Temperature (0 = greedy)", "温度（0 = 贪心解码）"),
    "compare.top_p": ("Top-p", "Top-p"),
    "compare.seed": ("Sampling seed (used when temperature > 0)", "采样随机种子（温度 > 0 时生效）"),
    "compare.pick_a": ("A is better", "A 更好"),
    "compare.pick_b": ("B is better", "B 更好"),
    "compare.pick_tie": ("Tie", "平局"),
    "compare.pick_both_bad": ("Both bad", "都不好"),
    "compare.nothing_to_rate": ("Answer a prompt first, then rate the two answers.", "请先生成回答，再为两个回答打分。"),
    "compare.saved": ("**{n}** preferences saved to `{path}`.", "已保存 **{n}** 条偏好数据到 `{path}`。"),
    "compare.aside": ("{n} ties / both-bad ratings kept aside in `{path}` (not used for DPO).",
                      "{n} 条平局 / 都不好的评分另存于 `{path}`（不用于 DPO）。"),
    "compare.kept_aside": ("Kept aside, not a preference pair: {why}.", "已另存，未作为偏好数据：{why}。"),
    # evaluate tab (studio/ui/eval_tab.py)
    "tab.eval": ("Evaluate", "评估"),
    "eval.intro": (
        ("Answer a run's validation split (the rows it held out), its training data, or a file with the **base model** "
         "and the **tuned model** (greedy), and score both against the reference answers: loss and perplexity on the "
         "references (answer tokens only, as in training), exact match, ROUGE-L and BLEU. It runs in the background with "
         "its own copy of the model; results are saved in the run folder under `eval/`."),
        ("用**基础模型**和**微调后的模型**（贪心解码）回答运行的验证集（训练时留出的样本）、训练数据或一个文件，并与参考答案比较打分："
         "参考答案上的损失和困惑度（与训练一样只计回答部分的 token）、完全匹配率、ROUGE-L 和 BLEU。评估在后台运行，使用单独加载的模型；"
         "结果保存在运行文件夹的 `eval/` 下。"),
    ),
    "eval.run": ("Run", "运行"),
    "eval.refresh": ("Refresh", "刷新"),
    "eval.data": ("Evaluate on", "评估数据"),
    "eval.data_val": ("Validation split", "验证集"),
    "eval.data_train": ("Training data", "训练数据"),
    "eval.data_file": ("A file", "文件"),
    "eval.upload": ("Upload a test file (any format the Data tab reads)", "上传测试文件（数据页支持的任意格式）"),
    "eval.data_ref": ("…or a path in the workspace, or a sample name", "……或工作区内的路径，或示例数据名称"),
    "eval.max_rows": ("Max rows", "最多行数"),
    "eval.max_new_tokens": ("Max new tokens", "最大生成 token 数"),
    "eval.start": ("Start evaluation", "开始评估"),
    "eval.cancel": ("Cancel", "取消"),
    "eval.scores": ("Scores: base model vs tuned model", "得分：基础模型 vs 微调模型"),
    "eval.results": ("Answers", "回答"),
    "eval.downloads": ("Download the results (CSV, JSONL)", "下载结果（CSV、JSONL）"),
    "eval.pick_run": ("Choose a run with trained weights first.", "请先选择一个已有训练权重的运行。"),
    "eval.pick_file": ("Upload a file or type its path first.", "请先上传文件或填写文件路径。"),
    "eval.cannot": ("Cannot evaluate:", "无法评估："),
    "eval.started": ("Evaluating run `{run}`…", "正在评估运行 `{run}`……"),
    "eval.cancelling": ("Cancelling after the current answer…", "将在当前回答完成后取消……"),
    "eval.not_running": ("No evaluation is running here.", "这里没有正在进行的评估。"),
    "eval.answers": ("{done}/{total} answers", "已完成 {done}/{total} 个回答"),
    "eval.rate": ("{rate} answers/s", "每秒 {rate} 个回答"),
    "eval.state.loading": ("starting", "启动中"),
    "eval.state.running": ("running", "进行中"),
    "eval.state.completed": ("completed", "已完成"),
    "eval.state.cancelled": ("cancelled", "已取消"),
    "eval.state.failed": ("failed", "失败"),
    "eval.phase.loading": ("loading the model", "正在加载模型"),
    "eval.phase.base": ("base model answering", "基础模型作答中"),
    "eval.phase.loading_tuned": ("loading the tuned model", "正在加载微调模型"),
    "eval.phase.tuned": ("tuned model answering", "微调模型作答中"),
    "eval.col.metric": ("metric", "指标"),
    "eval.col.base": ("base model", "基础模型"),
    "eval.col.tuned": ("tuned model", "微调模型"),
    "eval.col.prompt": ("prompt", "提示"),
    "eval.col.reference": ("reference", "参考答案"),
    "eval.m.loss": ("loss on the references", "参考答案上的损失"),
    "eval.m.perplexity": ("perplexity", "困惑度"),
    "eval.m.exact_match": ("exact match %", "完全匹配率 %"),
    "eval.m.rouge_l": ("ROUGE-L F", "ROUGE-L F 值"),
    "eval.m.bleu": ("BLEU", "BLEU"),
    # runs tab
    "runs.refresh": ("Refresh", "刷新"),
    "runs.table": ("All runs", "全部运行"),
    "runs.pick": ("Select runs: one to open it, two or more to compare them", "选择运行：选一个查看详情，选两个或更多进行比较"),
    "runs.config": ("Config (config.yaml)", "配置（config.yaml）"),
    "runs.status": ("Status (status.json)", "状态（status.json）"),
    "runs.col.run": ("run", "运行"),
    "runs.col.name": ("name", "名称"),
    "runs.col.state": ("state", "状态"),
    "runs.col.model": ("model", "模型"),
    "runs.col.dataset": ("dataset", "数据集"),
    "runs.col.method": ("method", "方法"),
    "runs.col.loss": ("final loss", "最终损失"),
    "runs.col.created": ("created", "创建时间"),
    "runs.col.error": ("error", "错误"),
    "runs.col.duration": ("duration", "时长"),
    "runs.col.best": ("best val. loss", "最佳验证损失"),
    "runs.col.tags": ("tags", "标签"),
    "runs.col.notes": ("notes", "备注"),
    "runs.col.key": ("config key", "配置项"),
    "runs.filter": ("Filter by name, tag, model, dataset or note", "按名称、标签、模型、数据集或备注筛选"),
    "runs.compare": ("#### Compare", "#### 比较"),
    "runs.diff": ("Config keys whose values differ", "取值不同的配置项"),
    "runs.no_diff": ("The selected runs have the same config.", "所选运行的配置相同。"),
    "runs.tags": ("Tags (comma-separated)", "标签（逗号分隔）"),
    "runs.notes": ("Notes", "备注"),
    "runs.save_meta": ("Save tags and notes", "保存标签和备注"),
    "runs.saved": ("Saved the tags and notes of `{run}`.", "已保存 `{run}` 的标签和备注。"),
    "runs.clone": ("Clone config to Train", "复制配置到训练页"),
    "runs.watch": ("Watch in Train", "在训练页查看"),
    "runs.delete": ("Delete run", "删除运行"),
    "runs.delete_confirm": (
        "**Delete run `{run}`** and all its files (weights, checkpoints, metrics, log)? This cannot be undone.",
        "**删除运行 `{run}`** 及其全部文件（权重、检查点、指标、日志）？此操作无法撤销。",
    ),
    "runs.delete_yes": ("Yes, delete", "确认删除"),
    "runs.deleted": ("Deleted run `{run}`.", "已删除运行 `{run}`。"),
    "runs.refused": ("**Not done:** {reason}", "**未执行：**{reason}"),
    "runs.files": ("Config and status files", "配置与状态文件"),
    "runs.summary": (
        "**{run}** {name} · {state} · ran {duration} · {steps} steps · final loss {final} · best validation loss {best}",
        "**{run}** {name} · {state} · 用时 {duration} · {steps} 步 · 最终损失 {final} · 最佳验证损失 {best}",
    ),
    # export & serve tab
    "tab.export": ("Export & Serve", "导出与部署"),
    "export.run": ("Run", "运行"),
    "export.refresh": ("Refresh", "刷新"),
    "export.title": ("### Export", "### 导出"),
    "export.what": ("What to export", "导出内容"),
    "export.what.folder": ("Adapter folder", "适配器文件夹"),
    "export.what.zip": ("Adapter zip (download)", "适配器 zip（可下载）"),
    "export.what.merged": ("Merged model (loads with plain transformers)", "合并后的完整模型（可直接用 transformers 加载）"),
    "export.ollama": ("Ollama Modelfile", "Ollama Modelfile"),
    "export.dtype": ("Merged weights dtype", "合并权重的精度"),
    "export.shard": ("Max shard size (e.g. 2GB, 500MB)", "单个分片最大大小（如 2GB、500MB）"),
    "export.repo": ("Push to the Hugging Face Hub (optional repo id)", "推送到 Hugging Face Hub（可选，仓库 ID）"),
    "export.private": ("Private repo", "私有仓库"),
    "export.token_found": ("A Hugging Face token was found (HF_TOKEN or your saved login); a push uses it. The studio never asks for, shows or stores it.",
                           "已找到 Hugging Face 令牌（HF_TOKEN 或已保存的登录）；推送时使用它。工作室从不询问、显示或保存令牌。"),
    "export.token_missing": ("No Hugging Face token found, so nothing can be pushed: run `hf auth login` (or `huggingface-cli login`) in a terminal on this machine, or start the studio with HF_TOKEN set. The token is never typed into or stored by the studio.",
                             "未找到 Hugging Face 令牌，因此无法推送：请在本机终端运行 `hf auth login`（或 `huggingface-cli login`），或在启动工作室前设置 HF_TOKEN。令牌不会在工作室中输入或保存。"),
    "export.to": ("Export folder (inside the workspace)", "导出文件夹（须在工作区内）"),
    "export.start": ("Export", "导出"),
    "export.no_run": ("Choose a finished run first.", "请先选择一个已完成的运行。"),
    "export.refused": ("**Not done:** {reason}", "**未执行：**{reason}"),
    "export.running": ("Exporting **{run}** to `{folder}`: {step}… ({seconds:.0f} s)", "正在导出 **{run}** 到 `{folder}`：{step}……（{seconds:.0f} 秒）"),
    "export.step.start": ("starting", "准备中"),
    "export.step.copy": ("copying the trained weights", "复制训练得到的权重"),
    "export.step.merge": ("merging the adapter into the base model", "将适配器合并进基础模型"),
    "export.step.modelfile": ("writing the Ollama Modelfile", "写入 Ollama Modelfile"),
    "export.step.card": ("writing the model card and serving commands", "写入模型卡片和部署命令"),
    "export.step.zip": ("zipping", "打包 zip"),
    "export.step.push": ("pushing to the Hugging Face Hub", "推送到 Hugging Face Hub"),
    "export.failed": ("**Export failed:** {error}", "**导出失败：**{error}"),
    "export.done": ("Exported the {kind} of **{run}** to `{folder}`.", "已将 **{run}** 的{kind}导出到 `{folder}`。"),
    "export.kind.adapter": ("adapter", "适配器"),
    "export.kind.merged": ("merged model", "合并模型"),
    "export.kind.gguf": ("GGUF file", "GGUF 文件"),
    "export.what.gguf": ("GGUF (llama.cpp, Ollama)", "GGUF（llama.cpp、Ollama）"),
    "export.gguf_type": ("GGUF weights type (q8_0: half the size of f16)", "GGUF 权重类型（q8_0 约为 f16 的一半大小）"),
    "export.step.gguf": ("writing the GGUF file", "写入 GGUF 文件"),
    "export.kind.model": ("fully trained model", "全参数微调模型"),
    "export.pushed": ("Pushed to {url}", "已推送到 {url}"),
    "export.push_failed": ("**Push failed** (the export itself is complete): {error}", "**推送失败**（导出本身已完成）：{error}"),
    "export.folder_line": ("Folder: `{folder}` (with README.md model card and SERVING.md)", "文件夹：`{folder}`（含 README.md 模型卡片和 SERVING.md）"),
    "export.zip_line": ("Zip: `{zip}`", "Zip：`{zip}`"),
    "export.download": ("Download the zip", "下载 zip"),
    "export.modelfile": ("Ollama Modelfile", "Ollama Modelfile"),
    "export.ollama_cmd": ("Create the Ollama model", "创建 Ollama 模型"),
    "export.vllm": ("Serve with vLLM", "用 vLLM 部署"),
    "export.sglang": ("Serve with SGLang", "用 SGLang 部署"),
    "export.serve_title": ("### Serve an OpenAI-compatible API", "### 部署 OpenAI 兼容 API"),
    "export.serve_memory": ("The server runs `python -m studio serve` in its own process with its own copy of the model: it does not share memory with the model loaded in the Chat tab, so chatting and serving at once needs room for both. One served model at a time; it keeps running after a page reload until you stop it or the studio exits.",
                            "服务器在独立进程中运行 `python -m studio serve`，并加载自己的一份模型：它与“对话”页加载的模型不共享内存，同时对话和部署需要能容纳两份模型。一次只部署一个模型；刷新页面后仍在运行，直到你停止它或工作室退出。"),
    "export.port": ("Port", "端口"),
    "export.public": ("Listen on all interfaces (needs an API key)", "监听所有网络接口（需要 API 密钥）"),
    "export.public_note": ("Other machines will be able to reach the API: an API key is required.", "其他机器将可以访问该 API：必须设置 API 密钥。"),
    "export.api_key": ("API key (empty: STUDIO_API_KEY from the studio's environment, if set)", "API 密钥（留空：使用工作室环境变量 STUDIO_API_KEY，如已设置）"),
    "export.need_key": ("Type an API key, or untick “listen on all interfaces”.", "请填写 API 密钥，或取消勾选“监听所有网络接口”。"),
    "export.serve": ("Serve", "开始部署"),
    "export.stop": ("Stop serving", "停止部署"),
    "export.serve_none": ("Nothing is being served.", "当前没有部署任何模型。"),
    "export.serve_starting": ("Starting: loading **{run}** in its own process… ({where})", "启动中：正在独立进程中加载 **{run}**……（{where}）"),
    "export.serve_serving": ("Serving **{run}** at {url} ({where}; {auth}).", "正在部署 **{run}**：{url}（{where}；{auth}）。"),
    "export.serve_local": ("this machine only", "仅本机可访问"),
    "export.serve_public": ("all interfaces: other machines use this machine's address", "所有网络接口：其他机器请使用本机地址"),
    "export.serve_keyed": ("API key required: send `Authorization: Bearer ${env}`", "需要 API 密钥：请发送 `Authorization: Bearer ${env}`"),
    "export.serve_open": ("no API key", "无需 API 密钥"),
    "export.serve_exited": ("The server for **{run}** stopped (exit code {code}). Last lines of its log:\n\n```\n{log}\n```",
                            "**{run}** 的服务器已退出（退出码 {code}）。日志最后几行：\n\n```\n{log}\n```"),
    "export.serve_stopped": ("Stopped serving **{run}**.", "已停止部署 **{run}**。"),
    "export.url": ("Base URL", "Base URL"),
    "export.model": ("Model name", "模型名称"),
    "export.curl": ("curl", "curl"),
    "export.python": ("Python (openai)", "Python（openai）"),
    # several GPUs (distributed launch)
    "dist.effective_batch": ("Effective batch: {micro} × {accum} × {processes} {unit} = **{total}** rows per step ({strategy}).",
                             "有效批大小：{micro} × {accum} × {processes} 个{unit} = 每步 **{total}** 条（{strategy}）。"),
    "dist.unit_gpu": ("GPUs", "GPU"),
    "dist.unit_cpu": ("CPU processes", "CPU 进程"),
    "dist.nodes_title": ("Several machines", "多台机器"),
    "dist.nodes_intro": (("Train one run on several machines: choose a strategy other than `single` above, then make the "
                         "commands; run each on its machine, the main one (node rank 0) first. Every machine must see the "
                         "workspace at the same path (shared storage such as NFS); the run folder on the main machine "
                         "receives the metrics, checkpoints and the result."),
                         ("在多台机器上训练同一个运行：先在上面选择 `single` 以外的策略，再生成命令；在各自的机器上运行，先启动主机"
                         "（节点序号 0）。每台机器都必须以相同路径访问工作区（如 NFS 共享存储）；主机上的运行文件夹接收指标、检查点和结果。")),
    "dist.nodes": ("Machines", "机器数"),
    "dist.per_node": ("GPUs per machine", "每台机器的 GPU 数"),
    "dist.main_ip": ("Main machine's address", "主机地址"),
    "dist.port": ("Port", "端口"),
    "dist.make_commands": ("Make the run and its commands", "创建运行并生成命令"),
    "dist.needs_strategy": ("choose ddp, fsdp or a deepspeed strategy for several machines", "多台机器请选择 ddp、fsdp 或 deepspeed 策略"),
    "dist.needs_ip": ("enter the main machine's address, reachable from the others", "请输入主机地址（其他机器需能访问）"),
    "field.strategy": ("Several GPUs: strategy", "多 GPU：分布策略"),
    "field.gpus": ("GPUs to use", "使用的 GPU"),
    "field.offload": ("CPU offload", "CPU 卸载"),
    "field.processes": ("CPU processes (no GPU)", "CPU 进程数（无 GPU 时）"),
    # states
    "state.queued": ("queued", "排队中"),
    "state.running": ("running", "训练中"),
    "state.completed": ("completed", "已完成"),
    "state.failed": ("failed", "失败"),
    "state.stopped": ("stopped", "已停止"),
}


def t(key: str, lang: str = "en", **values: Any) -> str:
    """The text for `key` in language `lang` ("en" or "zh"), with `{placeholders}` filled in."""
    english, chinese = TEXT[key]
    text = chinese if lang == "zh" else english
    return text.format(**values) if values else text


def lang_code(choice: str | None) -> str:
    """The language code for the value of the language selector."""
    return LANGUAGES.get(choice or "", "en")


def field_label(key: str, lang: str = "en") -> str:
    """The label of config field `key`; a field with no `field.<key>` entry yet is labelled by its key."""
    return t(f"field.{key}", lang) if f"field.{key}" in TEXT else key.replace("_", " ").capitalize()


def field_help(key: str, lang: str = "en") -> str:
    """A config field's help text, from its metadata in studio/config.py."""
    metadata = cfg.field_info(key).metadata
    return metadata["help_zh"] if lang == "zh" else metadata["help"]


class Localizer:
    """Remembers which text key labels each component, so the whole page can be relabelled at once."""

    def __init__(self) -> None:
        self.entries: list[tuple[Any, str, str | None, dict[str, Any]]] = []
        self.choice_labels: dict[int, Any] = {}  # id(component) -> function(lang) -> its (label, value) choices

    def add(self, component: Any, key: str, info_field: str | None = None, choices: Any = None, **values: Any) -> Any:
        """Register `component` as labelled by `key` (with `{placeholders}` filled from `values`) and, for
        config fields, info from `info_field`; `choices(lang)` gives a radio's or dropdown's (label, value)
        choices in that language, relabelled with the rest."""
        self.entries.append((component, key, info_field, values))
        if choices is not None:
            self.choice_labels[id(component)] = choices
        return component

    def field(self, key: str) -> dict[str, str]:
        """Constructor keywords (English label and info) for the control of config field `key`."""
        return {"label": field_label(key), "info": field_help(key)}

    def components(self) -> list[Any]:
        """Every registered component that is not a container, in registration order (the outputs of the
        language switch's server step)."""
        return [entry[0] for entry in self.entries if not _is_container(entry[0])]

    def containers(self) -> list[Any]:
        """The registered tabs, accordions and other containers, in registration order: the browser relabels
        them itself (containers_js), since a container that is a server event's output makes the browser walk
        all of its children at every later status message."""
        return [entry[0] for entry in self.entries if _is_container(entry[0])]

    def relabel(self, choice: str) -> list[Any]:
        """Updates that put every registered component's text (containers aside) into the chosen language."""
        lang = lang_code(choice)
        updates = []
        for component, key, info_field, values in self.entries:
            if _is_container(component):
                continue
            if info_field:
                updates.append(gr.update(label=field_label(info_field, lang), info=field_help(info_field, lang)))
                continue
            text = t(key, lang, **values)
            if isinstance(component, (gr.Button, gr.Markdown)):
                updates.append(gr.update(value=text))
            elif id(component) in self.choice_labels:
                updates.append(gr.update(label=text, choices=self.choice_labels[id(component)](lang)))
            else:
                updates.append(gr.update(label=text))
        return updates

    def containers_js(self) -> str:
        """A js-only handler of the language switch that relabels the containers, in every language at once."""
        labels = {choice: [t(key, code, **values) for component, key, _info, values in self.entries if _is_container(component)]
                  for choice, code in LANGUAGES.items()}
        return (f"(choice) => ({json.dumps(labels, ensure_ascii=False)}[choice] || [])"
                ".map(label => ({__type__: 'update', label: label}))")


def _is_container(component: Any) -> bool:
    return isinstance(component, BlockContext)
