"""The Model tab's memory panel: this machine's hardware, the chosen model's numbers, the estimate as a
stacked bar against the chosen GPU's free memory, the verdict, one-click fixes, the largest batch and
cutoff that fit, and a Dry run that measures instead of guessing.

The estimate reads the Train tab's controls (ctx.shared by flat config key), which are built after the
Model tab: `create_estimate_panel` builds the components and `wire_estimate_panel` (called at the end of
build_app) connects them.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from studio import config as cfg
from studio import fit, hardware, jobs, run_folder
from studio.memory import GiB
from studio.models.architecture import ModelInfoError, model_architecture
from studio.train.status import FINAL_STATES, read_status
from studio.ui.context import UIContext, bind, operator_view, refuse_viewer
from studio.ui.locales import lang_code, t
from studio.workspace import PathError

FIX_BUTTONS = 4
COLORS = {"weights": "#4c78a8", "trainable": "#72b7b2", "optimizer": "#f58518", "gradients": "#e45756", "activations": "#54a24b",
          "logits": "#eeca3b", "reference_model": "#b279a2", "generation": "#ff9da6", "cuda_context": "#9d755d",
          "workspace": "#bab0ac"}


def parameter_count(count: float) -> str:
    """A parameter count as people write it: `1.54B`, `135M`, `2.1M`, `950K`."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            value = count / scale
            return f"{value:.2f}{unit}" if unit == "B" and value < 10 else f"{value:.3g}{unit}"
    return f"{int(count)}"


def hardware_text(machine: hardware.Hardware, lang: str) -> str:
    """The hardware panel in words."""
    lines = [t("est.gpu_line", lang, index=g.index, name=g.name, free=f"{g.free / GiB:.1f}", total=f"{g.total / GiB:.1f}",
               bf16=t("est.yes" if g.bf16 else "est.no", lang), flash=t("est.yes" if g.flash_attention else "est.no", lang))
             for g in machine.gpus]
    if not machine.gpus:
        lines.append(t("est.no_gpu", lang))
    lines.append(t("est.machine_line", lang, cores=machine.cpu_cores, ram=f"{machine.ram_available / GiB:.1f}",
                   ram_total=f"{machine.ram_total / GiB:.1f}", disk=f"{machine.disk_free / GiB:.1f}"))
    return "\n\n".join(lines)


def config_from_controls(values: dict[str, Any]) -> cfg.RunConfig:
    """A RunConfig from whatever control values are usable (a half-typed value is skipped, not an error)."""
    config = cfg.RunConfig()
    for key, value in values.items():
        if value is None or value == "":
            continue
        try:
            config = cfg.apply_overrides(config, {key: value})
        except cfg.ConfigError:
            continue
    return config


def part_label(name: str, lang: str) -> str:
    """An estimate component's name as the page shows it (the estimate's own name when none is translated)."""
    return t(f"est.part.{name}", lang) if name in COLORS else name


def estimate_chart(result: fit.Assessment, lang: str = "en") -> str:
    """The estimate as a stacked horizontal bar of its components (GB) against a dashed line at the memory
    available, with a legend: HTML, so the Model tab needs no charting library (loading Plotly cost the
    browser most of a second on the tab's first visit)."""
    parts = [(name, gb) for name, gb in result.estimate.gb().items() if gb > 0]
    available = result.available / GiB
    scale = max(sum(gb for _name, gb in parts), available) * 1.05 or 1.0
    segments = "".join(
        f'<div class="estimate-part" data-part="{html.escape(name)}" title="{html.escape(part_label(name, lang))}: {gb:.2f} GB" '
        f'style="width:{100 * gb / scale:.3f}%;background:{COLORS.get(name, "#999")}"></div>'
        for name, gb in parts)
    legend = "".join(
        f'<span class="estimate-key"><i style="background:{COLORS.get(name, "#999")}"></i>{html.escape(part_label(name, lang))} {gb:.2f} GB</span>'
        for name, gb in parts)
    free_line = html.escape(t("est.free_line", lang, device=result.device, gb=f"{available:.1f}"))
    label_side = ' style="left:auto;right:4px"' if available / scale > 0.6 else ""
    return (f'<div class="estimate-bar-box"><div class="estimate-bar">{segments}'
            f'<div class="estimate-free" style="left:{100 * available / scale:.3f}%" data-gb="{available:.2f}">'
            # the label reads away from the right edge once the line is past the middle
            f'<span{label_side}>{free_line}</span></div></div><div class="estimate-legend">{legend}</div></div>')


def model_details(workspace, model: str, lang: str) -> str:
    """The model's architecture numbers in one line, or why they cannot be read."""
    try:
        a = model_architecture(workspace, model)
    except (ModelInfoError, PathError) as error:
        return t("est.model_unknown", lang, error=str(error))
    moe = f" · {a.num_experts} experts, {a.experts_per_token} active" if a.num_experts else ""
    return t("est.model_line", lang, params=parameter_count(a.total_params()), layers=a.num_layers, hidden=a.hidden_size, heads=a.num_heads,
             kv=a.num_kv_heads, vocab=a.vocab_size, context=a.max_positions) + moe


def create_estimate_panel(ctx: UIContext) -> dict:
    """Build the panel's components (wired later by wire_estimate_panel)."""
    L = ctx.localizer
    machine = hardware.detect(ctx.workspace.root)
    with L.add(gr.Accordion(t("est.title"), open=True, elem_id="estimate-panel"), "est.title"):
        hardware_md = gr.Markdown(hardware_text(machine, "en"), elem_id="hardware-info")
        details = gr.Markdown("", elem_id="model-details")
        with gr.Row():
            gpu = gr.Dropdown(choices=[(f"GPU {g.index} · {g.name}", g.index) for g in machine.gpus], value=0 if machine.gpus else None,
                              visible=len(machine.gpus) > 1, label="GPU", elem_id="estimate-gpu")
            refresh = L.add(gr.Button(t("est.refresh"), size="sm", elem_id="estimate-refresh"), "est.refresh")
        chart = gr.HTML("", elem_id="estimate-chart")
        verdict = gr.Markdown("", elem_id="estimate-verdict")
        with gr.Row():
            fix_buttons = [gr.Button("", visible=False, size="sm", elem_id=f"estimate-fix-{i}") for i in range(FIX_BUTTONS)]
        with gr.Row():
            dry = L.add(gr.Button(t("est.dry_run"), elem_id="dry-run-button"), "est.dry_run")
        dry_result = gr.Markdown("", elem_id="dry-run-result")
    fixes = gr.State([])
    dry_run_id = gr.State("")
    timer = gr.Timer(2.0, active=False)
    ctx.operator_only += [dry, *fix_buttons]
    return {"hardware": hardware_md, "details": details, "gpu": gpu, "refresh": refresh, "chart": chart, "verdict": verdict,
            "fix_buttons": fix_buttons, "fixes": fixes, "dry": dry, "dry_result": dry_result, "dry_run_id": dry_run_id, "timer": timer}


def _verdict_text(result: fit.Assessment, lang: str, batch_line: str = "") -> str:
    e = result.estimate
    key = {fit.FITS: "est.fits", fit.TIGHT: "est.tight", fit.WONT_FIT: "est.wont_fit"}[result.verdict]
    text = t(key, lang, total=f"{e.total / GiB:.2f}", available=f"{result.available / GiB:.1f}", device=result.device)
    text += "\n\n" + t("est.limits", lang, batch=result.max_batch or "—", seq=e.inputs.seq_len, cutoff=result.max_seq or "—", micro=e.inputs.batch_size)
    text += f"\n\n{batch_line}" if batch_line else ""
    return text + "".join(f"\n\n⚠ {w}" for w in result.warnings + e.notes)


def effective_batch_text(config: cfg.RunConfig, machine: hardware.Hardware, lang: str) -> str:
    """"Effective batch: micro × accumulation × GPUs (or CPU processes) = N" for the config on this machine."""
    from studio.train import distributed

    try:
        processes = distributed.process_count(config, gpu_count=len(machine.gpus))
    except ValueError:  # a bad `gpus` value: the Train tab names it
        processes = 1
    unit = t("dist.unit_gpu" if machine.gpus else "dist.unit_cpu", lang)
    return t("dist.effective_batch", lang, micro=config.train.batch_size, accum=config.train.grad_accum, processes=processes,
             unit=unit, total=distributed.effective_batch(config, processes), strategy=config.train.strategy)


def on_estimate(ctx: UIContext, gpu_index, lang_choice, values: dict | None):
    """The estimate for the form's values: hardware, model numbers, chart, verdict, the fixes and their buttons."""
    lang = lang_code(lang_choice)
    config = config_from_controls(values or {})
    machine = hardware.detect(ctx.workspace.root)
    details = model_details(ctx.workspace, config.model.model, lang)
    try:
        result = fit.assess_config(config, machine, ctx.workspace, gpu_index=int(gpu_index or 0))
    except (ModelInfoError, PathError) as error:
        return [hardware_text(machine, lang), details, "", t("est.model_unknown", lang, error=str(error)), [],
                *[gr.update(visible=False)] * FIX_BUTTONS]
    fixes = [{"title": f.title, "change": f.change, "total_gb": f.total_gb, "fits": f.fits} for f in result.fixes[:FIX_BUTTONS]]
    buttons = [gr.update(visible=True, value=f"{f['title']} → {f['total_gb']:.1f} GB") for f in fixes]
    buttons += [gr.update(visible=False)] * (FIX_BUTTONS - len(fixes))
    verdict = _verdict_text(result, lang, effective_batch_text(config, machine, lang))
    return [hardware_text(machine, lang), details, estimate_chart(result, lang), verdict, fixes, *buttons]


def on_fix(ctx: UIContext, keys: list[str], index: int, fixes, lang_choice, request: gr.Request):
    """Apply fix number `index`: the new value of each control (by flat config key `keys`) it changes."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    change = fixes[index]["change"] if index < len(fixes) else {}
    return [gr.update(value=change[k]) if k in change else gr.skip() for k in keys]


def on_dry_run(ctx: UIContext, lang_choice, request: gr.Request, text: str):
    """Launch a dry run of the form's settings: a message, its run id and the poll timer (or why it cannot start)."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    config = config_from_controls({**ctx.shared["read_form"](text), "dry_run": True, "run_name": "dry-run"})
    problems = [str(p) for p in cfg.validate(config)]
    if problems:
        return t("est.dry_invalid", lang) + "\n\n" + "\n".join(f"- {p}" for p in problems), "", gr.Timer(active=False)
    try:
        run_dir = jobs.launch(ctx.workspace, config)
    except (ValueError, PathError) as error:
        return f"{t('est.dry_invalid', lang)}\n\n- {error}", "", gr.Timer(active=False)
    return t("est.dry_started", lang, run=run_dir.name), run_dir.name, gr.Timer(active=True)


def on_dry_tick(ctx: UIContext, run_id, lang_choice):
    """The dry run's progress, or how it ended and the poll timer stopped."""
    lang = lang_code(lang_choice)
    if not run_id:
        return gr.skip(), gr.Timer(active=False)
    status = run_folder.run_status(ctx.workspace.runs_dir / run_id)
    if status.get("state") not in FINAL_STATES:
        return t("est.dry_running", lang, run=run_id, phase=status.get("phase", "")), gr.skip()
    return dry_run_text(read_status(ctx.workspace.runs_dir / run_id), lang), gr.Timer(active=False)


def wire_estimate_panel(ctx: UIContext, panel: dict) -> None:
    """Connect the panel to the config controls in ctx.shared (call once every tab is built)."""
    keys = [k for k in cfg.flat_keys() if k in ctx.shared]
    controls = [ctx.shared[k] for k in keys]
    estimate = bind(on_estimate, ctx)
    outputs = [panel["hardware"], panel["details"], panel["chart"], panel["verdict"], panel["fixes"], *panel["fix_buttons"]]
    inputs = [panel["gpu"], ctx.language, ctx.shared["form_values"]]
    panel["refresh"].click(estimate, inputs, outputs)
    # the Train tab's check writes the controls' values into form_values at every change (and on page load): a
    # Load or a clone that sets every control at once runs one estimate, not one per control; the language
    # switch redraws it in the new language
    gr.on([panel["gpu"].change, ctx.shared["form_values"].change, ctx.language.change], operator_view(ctx, estimate), inputs,
          outputs, show_progress="hidden", trigger_mode="always_last")
    # each button its own handler object (its own concurrency group), as each had its own closure
    for index, button in enumerate(panel["fix_buttons"]):
        button.click(bind(on_fix, ctx, keys, index), [panel["fixes"], ctx.language], controls)
    panel["dry"].click(**ctx.shared["collect_form"]).then(
        bind(on_dry_run, ctx), [ctx.language, ctx.shared["form_snapshot"]],
        [panel["dry_result"], panel["dry_run_id"], panel["timer"]])
    panel["timer"].tick(bind(on_dry_tick, ctx), [panel["dry_run_id"], ctx.language], [panel["dry_result"], panel["timer"]])


def dry_run_text(status: dict, lang: str) -> str:
    """How a dry run ended: measured peak and speed next to the estimate, won't fit, or the failure."""
    result = status.get("dry_run")
    if not result:
        return t("est.dry_failed", lang, error=status.get("error", status.get("phase", "")))
    if result.get("out_of_memory"):
        return t("est.dry_oom", lang, phase=status.get("phase", ""))
    estimated = f"{result['estimated_gb']:.2f}" if result.get("estimated_gb") is not None else "—"
    speed = f"{result['tokens_per_s']:,.0f}" if result.get("tokens_per_s") else "—"
    return t("est.dry_done", lang, measured=f"{result['measured_peak_gb']:.2f}", kind=result["measured_kind"], estimated=estimated, speed=speed)
