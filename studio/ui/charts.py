"""The charts of a run, shared by the live monitor and the Runs page, fed with a run_library.Series.

Every builder takes a Series (a live one that grows, or a whole run's) and the UI language, and returns an
svg_chart.Chart, which the page shows as server-drawn SVG (`Chart.html()`). Long series are thinned to at most
MAX_POINTS per line so each update stays small; the smoothed loss is computed on every point before thinning.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from studio.run_library import Series
from studio.ui.locales import t
from studio.ui.svg_chart import Chart, Line, Panel

# A chart is about 800 px wide: more points than this draw nothing new, and each one is bytes sent at every update.
MAX_POINTS = 600
SMOOTHING = 0.9  # weight of the exponential moving average on the training loss
MARKERS_UP_TO = 60  # draw a marker per point while a line has at most this many
COLOURS = ("#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#ec4899", "#14b8a6", "#64748b")


def ema(values: Sequence[float | None], weight: float = SMOOTHING) -> list[float | None]:
    """Debiased exponential moving average (as TensorBoard smooths), skipping missing values."""
    smoothed: list[float | None] = []
    last, count = 0.0, 0
    for value in values:
        if value is None:
            smoothed.append(None)
            continue
        count += 1
        last = weight * last + (1 - weight) * value
        smoothed.append(last / (1 - weight**count))
    return smoothed


def thin(xs: Sequence[Any], *columns: Sequence[Any], limit: int = MAX_POINTS) -> tuple[list, ...]:
    """Every k-th point (and always the last one) so that at most about `limit` points remain."""
    stride = max(1, math.ceil(len(xs) / limit))
    if stride == 1:
        return (list(xs), *(list(c) for c in columns))
    keep = list(range(0, len(xs), stride))
    if keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return ([xs[i] for i in keep], *([c[i] for i in keep] for c in columns))


def loss_chart(series: Series, lang: str = "en") -> Chart:
    """Training loss (raw and smoothed) against step, with validation loss points on the same axes."""
    chart = Chart(t("train.loss_chart", lang), panel_height=340)
    if not series.steps and not series.eval_steps:
        chart.message = t("chart.waiting", lang)
        return chart
    steps, raw, smooth = thin(series.steps, series.loss, ema(series.loss))
    panel = Panel(x_title=t("chart.step", lang), y_title=t("chart.loss_axis", lang), lines=[
        Line(t("chart.loss_raw", lang), steps, raw, COLOURS[0], width=1, opacity=0.45, markers=len(steps) <= MARKERS_UP_TO),
        Line(t("chart.loss_smooth", lang), steps, smooth, COLOURS[0], width=2.5),
    ])
    if series.eval_steps:
        panel.lines.append(Line(t("chart.eval_loss", lang), series.eval_steps, series.eval_loss, COLOURS[1], width=1.5,
                                dashed=True, markers=True))
    chart.panels = [panel]
    return chart


# GRPO's panels above the usual three, each shown once its metric is logged (the clipped share once it is above
# 0): (chart text key, metrics.jsonl key)
STAGE_PANELS = (("chart.completion_length", "completion_length"), ("chart.kl", "kl"), ("chart.clip_ratio", "clip_ratio"))


def training_chart(series: Series, lang: str = "en") -> Chart:
    """Learning rate, gradient norm and tokens per second against step, one panel each; for a GRPO run, first
    the rewards (the weighted total with its spread across answers, and each function's mean) and the sampled
    answers' length, KL and clipped share."""
    rewards = [key for key in series.stage if key.startswith("reward/")]
    # clipping happens only when a batch is reused (TRL's num_iterations > 1): a panel of zeros says nothing
    extra = [(text, key) for text, key in STAGE_PANELS
             if any(v is not None and (v != 0 or key != "clip_ratio") for v in series.stage.get(key, ()))]
    chart = Chart(t("train.metrics_chart", lang), width=480, panel_height=130)
    if not series.steps:
        chart.message = t("chart.waiting", lang)
        return chart
    columns = [series.stage[key] for key in ("reward", "reward_std", *rewards, *(k for _, k in extra)) if key in series.stage]
    steps, *thinned = thin(series.steps, *columns, series.learning_rate, series.grad_norm, series.tokens_per_s)
    if "reward" in series.stage:
        mean, spread, *thinned = thinned
        chart.panels.append(_reward_panel(steps, mean, spread, dict(zip(rewards, thinned[:len(rewards)])), lang))
        thinned = thinned[len(rewards):]
    for values, (text, _key) in zip(thinned, extra):
        chart.panels.append(Panel(t(text, lang), [Line(t(text, lang), steps, values, COLOURS[5], in_legend=False)]))
    for values, colour, text in zip(thinned[len(extra):], COLOURS[2:5], ("chart.learning_rate", "chart.grad_norm", "chart.tokens_per_s")):
        chart.panels.append(Panel(t(text, lang), [Line(t(text, lang), steps, values, colour, in_legend=False)]))
    chart.panels[-1].x_title = t("chart.step", lang)
    return chart


def _reward_panel(steps: list, mean: list, spread: list, functions: dict[str, list], lang: str) -> Panel:
    """The first panel of a GRPO run: the total reward, a band of ± its spread across the sampled answers, and
    each reward function's mean as a thinner line."""
    lines = [Line(t("chart.reward_total", lang), steps, mean, COLOURS[2], width=2.5, spread=spread)]
    for colour, (key, values) in zip(COLOURS[3:] + COLOURS[:2], functions.items()):
        lines.append(Line(key.split("/", 1)[1], steps, values, colour, width=1.2))
    return Panel(t("chart.reward", lang), lines)


def system_chart(series: Series, lang: str = "en") -> Chart:
    """GPU memory (used vs total), utilisation, temperature and power per GPU, then CPU % and RAM."""
    has_gpu = bool(series.gpus)
    columns = 3 if has_gpu else 2
    chart = Chart(t("train.system_chart", lang), columns=columns, width=1080 // columns, panel_height=190 if has_gpu else 240)
    if not series.system_seen:
        chart.message = t("chart.no_system", lang)
        chart.panel_height = 120
        return chart
    minutes = t("chart.minutes", lang)
    if has_gpu:
        memory, util, temp, power = (Panel(t(key, lang), x_title=minutes) for key in ("chart.gpu_memory", "chart.gpu_util", "chart.gpu_temp", "chart.gpu_power"))
        memory.from_zero, util.y_range = True, (0, 100)
        for number, (index, gpu) in enumerate(sorted(series.gpus.items())):
            colour, label = COLOURS[number % len(COLOURS)], f"GPU {index}"
            x, used, utilisation, temperature, watts = thin(gpu.minutes, gpu.memory_used_gb, gpu.utilization, gpu.temperature, gpu.power)
            memory.lines.append(Line(f"{label} {t('chart.used', lang)}", x, used, colour, markers=len(x) == 1))
            if gpu.memory_total_gb:
                memory.lines.append(Line(f"{label} {t('chart.total', lang)}", [x[0], x[-1]], [gpu.memory_total_gb] * 2, colour, width=1, dashed=True))
            for panel, values in ((util, utilisation), (temp, temperature), (power, watts)):
                panel.lines.append(Line(label, x, values, colour, markers=len(x) == 1))
        chart.panels += [memory, util, temp, power]
    x, cpu, ram = thin(series.sys_minutes, series.cpu_percent, series.ram_used_gb)
    cpu_panel = Panel(t("chart.cpu", lang), [Line("CPU %", x, cpu, COLOURS[5], markers=len(x) == 1)], x_title=minutes, y_range=(0, 100))
    ram_panel = Panel(t("chart.ram", lang), [Line(f"RAM {t('chart.used', lang)}", x, ram, COLOURS[6], markers=len(x) == 1)],
                      x_title=minutes, from_zero=True)
    if series.ram_total_gb:
        ram_panel.lines.append(Line(f"RAM {t('chart.total', lang)}", [x[0], x[-1]], [series.ram_total_gb] * 2, COLOURS[6], width=1, dashed=True))
    chart.panels += [cpu_panel, ram_panel]
    return chart


def overlay_chart(runs: list[tuple[str, Series]], lang: str = "en") -> Chart:
    """The loss curves of several runs on one chart: smoothed lines, raw faintly behind, validation dotted."""
    chart = Chart(t("chart.overlay", lang), panel_height=420, width=1100)
    if not any(series.steps or series.eval_steps for _label, series in runs):
        chart.message = t("chart.no_metrics", lang)
        return chart
    panel = Panel(x_title=t("chart.step", lang), y_title=t("chart.loss_axis", lang))
    for number, (label, series) in enumerate(runs):
        colour = COLOURS[number % len(COLOURS)]
        steps, raw, smooth = thin(series.steps, series.loss, ema(series.loss))
        panel.lines += [Line(label, steps, raw, colour, width=1, opacity=0.25, in_legend=False), Line(label, steps, smooth, colour, width=2.5)]
        if series.eval_steps:
            panel.lines.append(Line(f"{label} · {t('chart.eval_loss', lang)}", series.eval_steps, series.eval_loss, colour,
                                    width=1.5, dashed=True, markers=True))
    chart.panels = [panel]
    return chart
