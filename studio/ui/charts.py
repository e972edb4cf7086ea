"""Plotly chart builders shared by the live monitor and the Runs page, fed with a run_library.Series.

Every builder takes a Series (a live one that grows, or a whole run's) and the UI language, and returns a
plotly Figure. Long series are thinned to at most MAX_POINTS per trace so the browser stays quick; the
smoothed loss is computed on every point before thinning. `uirevision` is the run id, so a chart the user
zoomed keeps its zoom while live updates arrive (Gradio draws with Plotly.react).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from studio.run_library import Series
from studio.ui.locales import t

# A chart is about 800 px wide: more points than this draw nothing new, and each one costs the browser
# time at every redraw (Plotly builds an SVG path per trace, and a node per marker).
MAX_POINTS = 600
SMOOTHING = 0.9  # weight of the exponential moving average on the training loss
MARKERS_UP_TO = 60  # draw a marker per point while a trace has at most this many
COLOURS = ("#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#ec4899", "#14b8a6", "#64748b")
# No figure titles: each gr.Plot carries a (translated) label; the top margin leaves room for it.
LAYOUT = {"margin": {"l": 55, "r": 15, "t": 40, "b": 40}, "legend": {"orientation": "h", "y": -0.2}, "template": "plotly_white"}


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


def _figure(height: int, revision: str):
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.update_layout(height=height, uirevision=revision, **LAYOUT)
    return figure


def _line(x, y, name: str, colour: str, *, width: float = 2, opacity: float = 1.0, dash: str | None = None, markers: bool = False, **extra):
    import plotly.graph_objects as go

    return go.Scatter(
        x=x, y=y, name=name, mode="lines+markers" if markers else "lines", opacity=opacity,
        line={"color": colour, "width": width, **({"dash": dash} if dash else {})}, marker={"size": 3}, **extra,
    )


def _no_data(figure, text: str):
    figure.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 14, "color": "#6b7280"})
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def loss_figure(series: Series, lang: str = "en"):
    """Training loss (raw and smoothed) against step, with validation loss points on the same axes."""
    figure = _figure(360, series.run_id)
    if not series.steps and not series.eval_steps:
        return _no_data(figure, t("chart.waiting", lang))
    steps, raw, smooth = thin(series.steps, series.loss, ema(series.loss))
    figure.add_trace(_line(steps, raw, t("chart.loss_raw", lang), COLOURS[0], width=1, opacity=0.45, markers=len(steps) <= MARKERS_UP_TO))
    figure.add_trace(_line(steps, smooth, t("chart.loss_smooth", lang), COLOURS[0], width=2.5))
    if series.eval_steps:
        import plotly.graph_objects as go

        figure.add_trace(go.Scatter(
            x=series.eval_steps, y=series.eval_loss, name=t("chart.eval_loss", lang), mode="lines+markers",
            line={"color": COLOURS[1], "width": 1.5, "dash": "dot"}, marker={"size": 8, "symbol": "diamond"},
        ))
    figure.update_xaxes(title_text=t("chart.step", lang))
    figure.update_yaxes(title_text=t("chart.loss_axis", lang))
    return figure


# GRPO's panels above the usual three, each shown once its metric is logged (the clipped share once it is above
# 0): (chart text key, metrics.jsonl key)
STAGE_PANELS = (("chart.completion_length", "completion_length"), ("chart.kl", "kl"), ("chart.clip_ratio", "clip_ratio"))


def training_figure(series: Series, lang: str = "en"):
    """Learning rate, gradient norm and tokens per second against step, one panel each; for a GRPO run, first
    the rewards (the weighted total with its spread across answers, and each function's mean) and the sampled
    answers' length, KL and clipped share."""
    from plotly.subplots import make_subplots

    rewards = [key for key in series.stage if key.startswith("reward/")]
    # clipping happens only when a batch is reused (TRL's num_iterations > 1): a panel of zeros says nothing
    extra = [(text, key) for text, key in STAGE_PANELS
             if any(v is not None and (v != 0 or key != "clip_ratio") for v in series.stage.get(key, ()))]
    titles = ([t("chart.reward", lang)] if "reward" in series.stage else []) + [t(text, lang) for text, _ in extra]
    top = len(titles)
    titles += [t("chart.learning_rate", lang), t("chart.grad_norm", lang), t("chart.tokens_per_s", lang)]
    figure = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.27 / len(titles))
    figure.update_layout(height=120 * len(titles), showlegend=bool(rewards), uirevision=series.run_id,
                         **{**LAYOUT, "margin": {"l": 55, "r": 15, "t": 45, "b": 40}})
    if not series.steps:
        return _no_data(figure, t("chart.waiting", lang))
    columns = [series.stage[key] for key in ("reward", "reward_std", *rewards, *(k for _, k in extra)) if key in series.stage]
    steps, *thinned = thin(series.steps, *columns, series.learning_rate, series.grad_norm, series.tokens_per_s)
    if "reward" in series.stage:
        mean, spread, *thinned = thinned
        _add_reward_panel(figure, steps, mean, spread, dict(zip(rewards, thinned[:len(rewards)])), lang)
        thinned = thinned[len(rewards):]
    for row, (values, (text, _key)) in enumerate(zip(thinned, extra), start=1 + ("reward" in series.stage)):
        figure.add_trace(_line(steps, values, t(text, lang), COLOURS[5], showlegend=False), row=row, col=1)
    for row, (values, colour, name) in enumerate(zip(thinned[len(extra):], COLOURS[2:5], titles[top:]), start=top + 1):
        figure.add_trace(_line(steps, values, name, colour, showlegend=False), row=row, col=1)
    figure.update_yaxes(exponentformat="e", row=top + 1, col=1)
    figure.update_xaxes(title_text=t("chart.step", lang), row=len(titles), col=1)
    return figure


def _add_reward_panel(figure, steps: list, mean: list, spread: list, functions: dict[str, list], lang: str) -> None:
    """The first panel of a GRPO run: the total reward, a band of ± its spread across the sampled answers, and
    each reward function's mean as a thinner line."""
    import plotly.graph_objects as go

    band = [(s, m, d) for s, m, d in zip(steps, mean, spread) if m is not None and d is not None]
    if band:
        xs = [s for s, _, _ in band]
        figure.add_trace(go.Scatter(x=xs + xs[::-1], y=[m + d for _, m, d in band] + [m - d for _, m, d in band][::-1],
                                    fill="toself", fillcolor="rgba(16,185,129,0.15)", line={"width": 0}, hoverinfo="skip",
                                    name=t("chart.reward_spread", lang)), row=1, col=1)
    figure.add_trace(_line(steps, mean, t("chart.reward_total", lang), COLOURS[2], width=2.5), row=1, col=1)
    for colour, (key, values) in zip(COLOURS[3:] + COLOURS[:2], functions.items()):
        figure.add_trace(_line(steps, values, key.split("/", 1)[1], colour, width=1.2), row=1, col=1)


def system_figure(series: Series, lang: str = "en"):
    """GPU memory (used vs total), utilisation, temperature and power per GPU, then CPU % and RAM."""
    from plotly.subplots import make_subplots

    has_gpu = bool(series.gpus)
    titles = ([t("chart.gpu_memory", lang), t("chart.gpu_util", lang), t("chart.gpu_temp", lang), t("chart.gpu_power", lang)] if has_gpu else [])
    titles += [t("chart.cpu", lang), t("chart.ram", lang)]
    cols = 3 if has_gpu else 2
    figure = make_subplots(rows=2 if has_gpu else 1, cols=cols, subplot_titles=titles, horizontal_spacing=0.07, vertical_spacing=0.16)
    figure.update_layout(height=440 if has_gpu else 250, uirevision=series.run_id, **{**LAYOUT, "margin": {"l": 50, "r": 15, "t": 50, "b": 40}})
    if not series.system_seen:
        return _no_data(figure, t("chart.no_system", lang))
    cell = iter([(r, c) for r in range(1, 3) for c in range(1, cols + 1)])
    minutes_axis = t("chart.minutes", lang)
    if has_gpu:
        panels = [next(cell) for _ in range(4)]
        for number, (index, gpu) in enumerate(sorted(series.gpus.items())):
            colour, label = COLOURS[number % len(COLOURS)], f"GPU {index}"
            x, used, util, temp, power = thin(gpu.minutes, gpu.memory_used_gb, gpu.utilization, gpu.temperature, gpu.power)
            figure.add_trace(_line(x, used, f"{label} {t('chart.used', lang)}", colour, markers=len(x) == 1), *panels[0])
            if gpu.memory_total_gb:
                figure.add_trace(_line([x[0], x[-1]], [gpu.memory_total_gb] * 2, f"{label} {t('chart.total', lang)}", colour, dash="dash", width=1), *panels[0])
            for panel, values in zip(panels[1:], (util, temp, power)):
                figure.add_trace(_line(x, values, label, colour, markers=len(x) == 1), *panel)
        figure.update_yaxes(title_text="GB", row=panels[0][0], col=panels[0][1])
        figure.update_yaxes(range=[0, 100], row=panels[1][0], col=panels[1][1])
    cpu_cell, ram_cell = next(cell), next(cell)
    x, cpu, ram = thin(series.sys_minutes, series.cpu_percent, series.ram_used_gb)
    figure.add_trace(_line(x, cpu, "CPU %", COLOURS[5], markers=len(x) == 1), *cpu_cell)
    figure.update_yaxes(range=[0, 100], row=cpu_cell[0], col=cpu_cell[1])
    figure.add_trace(_line(x, ram, f"RAM {t('chart.used', lang)}", COLOURS[6], markers=len(x) == 1), *ram_cell)
    if series.ram_total_gb:
        figure.add_trace(_line([x[0], x[-1]], [series.ram_total_gb] * 2, f"RAM {t('chart.total', lang)}", COLOURS[6], dash="dash", width=1), *ram_cell)
    figure.update_yaxes(title_text="GB", row=ram_cell[0], col=ram_cell[1], rangemode="tozero")
    figure.update_xaxes(title_text=minutes_axis, row=2 if has_gpu else 1)
    figure.update_layout(showlegend=len(series.gpus) > 1)
    return figure


def overlay_figure(runs: list[tuple[str, Series]], lang: str = "en"):
    """The loss curves of several runs on one chart: smoothed lines, raw faintly behind, validation dotted."""
    figure = _figure(420, " ".join(series.run_id for _label, series in runs))
    if not any(series.steps or series.eval_steps for _label, series in runs):
        return _no_data(figure, t("chart.no_metrics", lang))
    for number, (label, series) in enumerate(runs):
        colour, group = COLOURS[number % len(COLOURS)], f"run{number}"
        steps, raw, smooth = thin(series.steps, series.loss, ema(series.loss))
        figure.add_trace(_line(steps, raw, label, colour, width=1, opacity=0.25, legendgroup=group, showlegend=False, hoverinfo="skip"))
        figure.add_trace(_line(steps, smooth, label, colour, width=2.5, legendgroup=group))
        if series.eval_steps:
            figure.add_trace(_line(series.eval_steps, series.eval_loss, f"{label} · {t('chart.eval_loss', lang)}", colour, width=1.5, dash="dot", markers=True, legendgroup=group))
    figure.update_xaxes(title_text=t("chart.step", lang))
    figure.update_yaxes(title_text=t("chart.loss_axis", lang))
    return figure
