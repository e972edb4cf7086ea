"""Server-drawn SVG charts: ticks a reader can use, lines that break where values are missing, text escaped."""

import re

from studio.ui.svg_chart import Chart, Line, Panel, nice_ticks, tick_label


def test_ticks_are_round_numbers_inside_the_range():
    assert nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    ticks = nice_ticks(1.93, 2.71)
    assert all(1.93 <= v <= 2.71 for v in ticks) and 3 <= len(ticks) <= 6
    assert [tick_label(v, ticks) for v in ticks] == ["2.0", "2.2", "2.4", "2.6"]
    small = nice_ticks(0, 2e-4)
    assert tick_label(small[1], small) == "5.0e-05"  # a learning rate reads as a learning rate
    assert [tick_label(v, [0, 0.25, 0.5]) for v in (0, 0.25, 0.5)] == ["0", "0.25", "0.50"]
    assert nice_ticks(3, 3) == [3]


def path_of(drawn: str, name: str) -> str:
    return re.search(rf'data-name="{name}"[^>]* d="([^"]*)"', drawn).group(1)


def test_a_line_lifts_its_pen_over_missing_values_and_counts_only_known_points():
    chart = Chart("Loss", [Panel(lines=[Line("loss", [1, 2, 3, 4, 5], [2.0, None, 1.5, float("nan"), 1.0], "#000")])])
    drawn = chart.html()
    path = path_of(drawn, "loss")
    assert path.count("M") == 3 and path.count("L") == 0  # three separate points: nothing joins across a gap
    assert 'data-points="3"' in drawn
    assert "loss: 1 (5)" in drawn  # the tooltip names the last value and its step
    assert "loss</span>" not in drawn and "loss<b> 1</b>" in drawn  # the legend gives the last value


def test_names_and_titles_are_escaped_and_a_chart_without_data_says_why():
    chart = Chart("<b>Loss</b>", [Panel(title="a & b", lines=[Line("<script>x</script>", [1, 2], [1.0, 2.0], "#000")])])
    drawn = chart.html()
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn and "a &amp; b" in drawn and "&lt;b&gt;Loss" in drawn
    waiting = Chart("Loss", message="Waiting for the first logged step…").html()
    assert "chart-message" in waiting and "Waiting for the first logged step…" in waiting and "<svg" not in waiting


def test_a_name_drawn_in_several_panels_is_one_legend_key_without_a_value():
    gpu = [Panel(title=title, lines=[Line("GPU 0", [0, 1], [v, v], "#000")]) for title, v in (("util", 97.0), ("temp", 65.0))]
    drawn = Chart("System", gpu + [Panel(lines=[Line("CPU %", [0, 1], [10.0, 55.0], "#111")])], columns=3).html()
    legend = drawn.split('class="chart-legend"')[1]
    assert legend.count("GPU 0") == 1 and "GPU 0<b></b>" in legend and "CPU %<b> 55</b>" in legend
    assert drawn.count("<svg") == 3 and "repeat(3," in drawn
