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
    "runs.pick": ("Show run", "查看运行"),
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
