"""Line charts drawn on the server as SVG, for the live monitor and the Runs page.

A chart is data (`Chart` → `Panel` → `Line`) that `Chart.html()` turns into one HTML block: a title, a grid of
SVG panels and a legend in HTML (so long names wrap). The browser only swaps that HTML in: no charting library
loads, lays out or redraws, which kept a watched run's tab busy before (a Plotly redraw measures the page's
layout again at every update). Each line carries its name and point count as data attributes, and a tooltip
with its last value; a line drawn with markers gets a marker per point with its own tooltip.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Sequence

TICKS = 5  # about this many labelled ticks per axis
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 58, 12, 24, 34
TEXT = 'font-family="inherit" font-size="11" fill="currentColor"'


@dataclass
class Line:
    """One series: y against x, with None where a value is missing (the line breaks there)."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    colour: str
    width: float = 2.0
    opacity: float = 1.0
    dashed: bool = False
    markers: bool = False  # a marker on every point, each with its value as a tooltip
    in_legend: bool = True
    spread: Sequence[float | None] | None = None  # a shaded band of ± this around ys


@dataclass
class Panel:
    """One pair of axes and the lines drawn on them."""

    title: str = ""
    lines: list[Line] = field(default_factory=list)
    x_title: str = ""
    y_title: str = ""
    y_range: tuple[float, float] | None = None  # fixed (e.g. 0–100 for a percentage), else from the data
    from_zero: bool = False  # the y axis starts at 0 (memory in GB)


@dataclass
class Chart:
    """A titled grid of panels (`columns` side by side) and one legend, or a message while there is no data."""

    title: str
    panels: list[Panel] = field(default_factory=list)
    columns: int = 1
    width: int = 640  # of each panel's drawing, in SVG units (it scales to the space it gets)
    panel_height: int = 300
    message: str = ""  # shown instead of the panels

    @property
    def lines(self) -> list[Line]:
        return [line for panel in self.panels for line in panel.lines]

    def html(self) -> str:
        """The chart as one HTML block (what a gr.HTML shows)."""
        title = f'<div class="chart-title">{html.escape(self.title)}</div>'
        if self.message or not self.panels:
            return (f'<div class="studio-chart">{title}<div class="chart-message" style="height:{self.panel_height}px">'
                    f'{html.escape(self.message)}</div></div>')
        panels = "".join(_panel_svg(panel, self.width, self.panel_height) for panel in self.panels)
        grid = f'<div class="chart-grid" style="grid-template-columns:repeat({self.columns},minmax(0,1fr))">{panels}</div>'
        return f'<div class="studio-chart">{title}{grid}{_legend(self.lines)}</div>'


def nice_ticks(low: float, high: float, count: int = TICKS) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) covering [low, high]."""
    if not high > low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    first = math.ceil(low / step - 1e-9) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """A tick's label with as many decimals as the ticks' spacing needs; tiny or huge values as 2.0e-04."""
    if abs(value) < 1e-12:
        return "0"
    largest = max(abs(t) for t in ticks)
    if largest >= 1e5 or largest < 1e-2:
        return f"{value:.1e}"
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value)
    decimals = next((d for d in range(7) if abs(round(step, d) - step) <= step * 1e-6), 6)
    return f"{value:.{decimals}f}"


def value_text(value: float) -> str:
    """A value for a tooltip or the legend: four significant digits."""
    return f"{value:.4g}"


def _known(value: float | None) -> bool:
    """Whether a value can be drawn (not missing, not NaN or infinite: a diverged loss is logged as nan)."""
    return value is not None and math.isfinite(value)


def _bounds(panel: Panel) -> tuple[float, float, float, float]:
    xs = [x for line in panel.lines for x, y in zip(line.xs, line.ys) if _known(y)]
    ys = [y for line in panel.lines for y in line.ys if _known(y)]
    for line in panel.lines:
        if line.spread:
            ys += [y + s * sign for y, s in zip(line.ys, line.spread) if _known(y) and _known(s) for sign in (1, -1)]
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if panel.y_range:
        y_low, y_high = panel.y_range
    else:
        y_low, y_high = (min(ys), max(ys)) if ys else (0.0, 1.0)
        if panel.from_zero:
            y_low = min(0.0, y_low)
        pad = (y_high - y_low) * 0.05 or abs(y_high) * 0.1 or 1.0
        y_low, y_high = (y_low if panel.from_zero else y_low - pad), y_high + pad
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    return x_low, x_high, y_low, y_high


def _panel_svg(panel: Panel, width: int, height: int) -> str:
    x_low, x_high, y_low, y_high = _bounds(panel)
    left, right = MARGIN_LEFT + (14 if panel.y_title else 0), width - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM - (12 if panel.x_title else 0)

    def sx(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * (right - left)

    def sy(y: float) -> float:
        return bottom - (y - y_low) / (y_high - y_low) * (bottom - top)

    parts = [f'<text x="{left}" y="15" {TEXT} font-weight="600">{html.escape(panel.title)}</text>']
    y_ticks = [v for v in nice_ticks(y_low, y_high) if y_low - 1e-12 <= v <= y_high + 1e-12]
    for value in y_ticks:
        y = sy(value)
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" stroke-opacity="0.12"/>'
                     f'<text x="{left - 5}" y="{y + 4:.1f}" {TEXT} fill-opacity="0.7" text-anchor="end">{tick_label(value, y_ticks)}</text>')
    x_ticks = [v for v in nice_ticks(x_low, x_high) if x_low - 1e-9 <= v <= x_high + 1e-9]
    for value in x_ticks:
        x = sx(value)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="currentColor" stroke-opacity="0.4"/>'
                     f'<text x="{x:.1f}" y="{bottom + 16}" {TEXT} fill-opacity="0.7" text-anchor="middle">{tick_label(value, x_ticks)}</text>')
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="currentColor" stroke-opacity="0.4"/>')
    if panel.x_title:
        parts.append(f'<text x="{(left + right) / 2:.1f}" y="{height - 6}" {TEXT} text-anchor="middle">{html.escape(panel.x_title)}</text>')
    if panel.y_title:
        middle = (top + bottom) / 2
        parts.append(f'<text x="12" y="{middle:.1f}" {TEXT} text-anchor="middle" transform="rotate(-90 12 {middle:.1f})">'
                     f'{html.escape(panel.y_title)}</text>')
    parts += [_band(line, sx, sy) for line in panel.lines if line.spread]
    parts += [_line(line, sx, sy) for line in panel.lines]
    return (f'<svg class="chart-panel" data-title="{html.escape(panel.title)}" viewBox="0 0 {width} {height}" '
            f'preserveAspectRatio="xMidYMid meet" role="img">{"".join(parts)}</svg>')


def _path(points: list[tuple[float, float | None]], sx, sy) -> str:
    """An SVG path through the points, lifting the pen over missing values."""
    commands, pen_down = [], False
    for x, y in points:
        if not _known(y):
            pen_down = False
            continue
        commands.append(f'{"L" if pen_down else "M"}{sx(x):.1f} {sy(y):.1f}')
        pen_down = True
    return "".join(commands)


def _line(line: Line, sx, sy) -> str:
    points = list(zip(line.xs, line.ys))
    known = [(x, y) for x, y in points if _known(y)]
    name = html.escape(line.name)
    last = f"{name}: {value_text(known[-1][1])} ({value_text(known[-1][0])})" if known else name
    dash = ' stroke-dasharray="5 4"' if line.dashed else ""
    drawn = (f'<path class="chart-line" data-name="{name}" data-points="{len(known)}" d="{_path(points, sx, sy)}" fill="none" '
             f'stroke="{line.colour}" stroke-width="{line.width}" stroke-opacity="{line.opacity}" stroke-linejoin="round"{dash}>'
             f'<title>{last}</title></path>')
    if line.markers:
        drawn += "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{line.colour}" fill-opacity="{line.opacity}">'
                         f'<title>{name}: {value_text(y)} ({value_text(x)})</title></circle>' for x, y in known)
    return drawn


def _band(line: Line, sx, sy) -> str:
    kept = [(x, y, s) for x, y, s in zip(line.xs, line.ys, line.spread or ()) if _known(y) and _known(s)]
    if not kept:
        return ""
    outline = [(x, y + s) for x, y, s in kept] + [(x, y - s) for x, y, s in reversed(kept)]
    return f'<path class="chart-band" d="{_path(outline, sx, sy)}Z" fill="{line.colour}" fill-opacity="0.15" stroke="none"/>'


def _legend(lines: list[Line]) -> str:
    """One key per name (a name drawn in several panels, as a GPU is, is listed once), with its last value."""
    names = [line.name for line in lines if line.in_legend]
    keys, seen = [], set()
    for line in lines:
        if not line.in_legend or line.name in seen:
            continue
        seen.add(line.name)
        known = [y for y in line.ys if _known(y)]
        value = f" {value_text(known[-1])}" if known and names.count(line.name) == 1 else ""
        swatch = f"border-top:2px dashed {line.colour}" if line.dashed else f"background:{line.colour}"
        keys.append(f'<span class="chart-key"><i style="{swatch};opacity:{max(line.opacity, 0.5)}"></i>'
                    f'{html.escape(line.name)}<b>{value}</b></span>')
    return f'<div class="chart-legend">{"".join(keys)}</div>' if keys else ""
