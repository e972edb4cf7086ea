"""Every UI string in English and 简体中文, and the Localizer that relabels the page when the language changes.

Labels of config fields come from this table; their info text comes from the field's help in
studio/config.py, so help is written once.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

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
    "data.upload": ("…or upload a JSONL / JSON / CSV file", "……或上传 JSONL / JSON / CSV 文件"),
    "data.preview": ("First rows", "前几行"),
    "data.loaded": ("Read **{rows}** rows from `{name}` (format: {format}).", "已从 `{name}` 读取 **{rows}** 行（格式：{format}）。"),
    "data.error": ("**Cannot use this file.**", "**无法使用此文件。**"),
    "data.col.where": ("where", "位置"),
    "data.col.turns": ("turns", "轮数"),
    "data.col.prompt": ("first prompt", "首个提问"),
    "data.col.reply": ("first reply", "首个回答"),
    # model tab
    "model.info.catalog": ("**{name}** · `{hub}` · licence: {license} · template: {template}", "**{name}** · `{hub}` · 许可：{license} · 模板：{template}"),
    "model.info.custom": ("`{name}`: a Hugging Face id or a folder in the workspace.", "`{name}`：Hugging Face 模型 ID 或工作区中的文件夹。"),
    "model.recommended": ("Recommended settings for this model applied: {items}", "已应用该模型的推荐设置：{items}"),
    "model.lora": ("LoRA settings", "LoRA 设置"),
    # config field labels
    "field.run_name": ("Run name", "运行名称"),
    "field.model": ("Model", "模型"),
    "field.trust_remote_code": ("Trust remote code", "信任远程代码"),
    "field.dataset": ("Dataset used for training", "用于训练的数据集"),
    "field.method": ("Method", "方法"),
    "field.lora_rank": ("LoRA rank", "LoRA 秩"),
    "field.lora_alpha": ("LoRA alpha", "LoRA alpha"),
    "field.lora_dropout": ("LoRA dropout", "LoRA dropout"),
    "field.lora_targets": ("Target modules", "目标模块"),
    "field.epochs": ("Epochs", "训练轮数"),
    "field.max_steps": ("Max steps", "最大步数"),
    "field.learning_rate": ("Learning rate", "学习率"),
    "field.batch_size": ("Batch size", "批大小"),
    "field.grad_accum": ("Gradient accumulation", "梯度累积"),
    "field.cutoff_len": ("Cutoff length", "截断长度"),
    "field.seed": ("Seed", "随机种子"),
    "field.logging_steps": ("Log every N steps", "每 N 步记录"),
    "field.val_size": ("Validation rows", "验证集样本"),
    "field.eval_steps": ("Evaluate every N steps", "每 N 步评估"),
    "field.early_stop_patience": ("Early-stop patience", "提前停止耐心值"),
    "field.save_steps": ("Checkpoint every N steps", "每 N 步保存检查点"),
    "field.save_total_limit": ("Checkpoints kept", "保留的检查点数"),
    "field.probe_steps": ("Probe every N steps", "每 N 步探测"),
    "field.probe_prompts": ("Probe prompts", "探测提示"),
    "train.more": ("Validation, checkpoints and probes", "验证、检查点与探测"),
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
    "train.best_eval": ("best validation loss {loss}", "最佳验证损失 {loss}"),
    "train.killed_note": ("killed", "已强制终止"),
    "train.early_stopped": ("stopped early: validation loss stopped improving", "提前停止：验证损失不再下降"),
    "train.resumed_from": ("resumed from {checkpoint}", "从 {checkpoint} 继续"),
    "train.metrics_chart": ("Learning rate, gradient norm, speed", "学习率、梯度范数、速度"),
    "train.system": ("#### System", "#### 系统"),
    "train.system_chart": ("GPU, CPU and memory", "GPU、CPU 与内存"),
    "train.log_title": ("#### Log", "#### 日志"),
    "train.cloned": ("Loaded the config of `{run}` as **{name}**: edit it and press Start.", "已载入 `{run}` 的配置，名称为 **{name}**：修改后点击开始。"),
    "train.watching": ("Watching run `{run}`.", "正在查看运行 `{run}`。"),
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


def field_help(key: str, lang: str = "en") -> str:
    """A config field's help text, from its metadata in studio/config.py."""
    metadata = cfg.field_info(key).metadata
    return metadata["help_zh"] if lang == "zh" else metadata["help"]


class Localizer:
    """Remembers which text key labels each component, so the whole page can be relabelled at once."""

    def __init__(self) -> None:
        self.entries: list[tuple[Any, str, str | None]] = []

    def add(self, component: Any, key: str, info_field: str | None = None) -> Any:
        """Register `component` as labelled by `key` (and, for config fields, info from `info_field`)."""
        self.entries.append((component, key, info_field))
        return component

    def field(self, key: str) -> dict[str, str]:
        """Constructor keywords (English label and info) for the control of config field `key`."""
        return {"label": t(f"field.{key}"), "info": field_help(key)}

    def components(self) -> list[Any]:
        """Every registered component, in registration order (the outputs of the language switch)."""
        return [component for component, _key, _info in self.entries]

    def relabel(self, choice: str) -> list[Any]:
        """Updates that put every registered component's text into the chosen language."""
        lang = lang_code(choice)
        updates = []
        for component, key, info_field in self.entries:
            text = t(key, lang)
            if isinstance(component, (gr.Button, gr.Markdown)):
                updates.append(gr.update(value=text))
            elif info_field:
                updates.append(gr.update(label=text, info=field_help(info_field, lang)))
            else:
                updates.append(gr.update(label=text))
        return updates
