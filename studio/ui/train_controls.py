"""The Train tab's settings as widgets: one control per config field, laid out in rows of cells from the fields'
metadata (studio/ui/train_form.py), each cell with its problem line under it, and the titles of the folded groups."""

from __future__ import annotations

from typing import Any

import gradio as gr

from studio.ui import train_form as form
from studio.ui.context import UIContext
from studio.ui.locales import t
from studio.ui.strings import TEXT

CELLS_PER_ROW = 4
RADIO_MAX_CHOICES = 8  # more choices than this get a dropdown


def group_title(group: form.Group) -> tuple[str, dict[str, str]]:
    """The text key (and its placeholder values) that titles a group's accordion."""
    if group.group_id == "validation":
        return "train.more", {}
    if group.switch:
        return f"train.group.{group.switch}", {"names": " / ".join(form.VALUE_NAMES.get(v, v) for v in group.values)}
    section = group.group_id.split("=", 1)[1]
    if f"train.group.section.{section}" in TEXT:
        return f"train.group.section.{section}", {}
    return "train.group.section.other", {"section": section}


def _make_control(ctx: UIContext, spec: form.FieldSpec, value: Any) -> Any:
    """The widget for one config field: checkbox, radio for choices, number or text box."""
    L = ctx.localizer
    if spec.key in form.MODULE_KEYS:  # the config's text, kept out of sight behind _make_module_picker's
        # multiselect by the page's CSS: visible="hidden" was undone when its cell was shown again (a method switch)
        return gr.Textbox(value=value, max_lines=1, elem_classes=["kept-out-of-sight"], elem_id=f"train-{spec.key}-text", **L.field(spec.key))
    options = {"value": value, "elem_id": f"train-{spec.key}", **L.field(spec.key)}
    if spec.kind == "bool":
        control = gr.Checkbox(**options)
    elif spec.choices:
        widget = gr.Radio if len(spec.choices) <= RADIO_MAX_CHOICES else gr.Dropdown
        control = widget(choices=list(spec.choices), **options)
    elif spec.kind in ("int", "float"):
        control = gr.Number(precision=0 if spec.kind == "int" else None, **options)
    else:
        # a one-line field is an <input>: Gradio grows a text area to 20 lines by measuring it (a forced layout) at each change
        multiline = spec.key in form.MULTILINE_KEYS
        control = gr.Textbox(lines=3 if multiline else 1, max_lines=None if multiline else 1, **options)
    return L.add(control, f"field.{spec.key}", spec.key)


def _make_module_picker(ctx: UIContext, key: str, text: str) -> gr.Dropdown:
    """A multiselect of the model's linear layer names (and all-linear) for module field `key`; the layer names
    arrive once the page has loaded (reading them needs torch, which the studio imports only when a page asks),
    and names typed by hand are kept."""
    L = ctx.localizer
    names = form.names_from_text(text)
    picker = gr.Dropdown(
        choices=form.offered_with(names, [form.ALL_LINEAR]), value=names, multiselect=True, allow_custom_value=True,
        elem_id=f"train-{key}", **L.field(key),
    )
    return L.add(picker, f"field.{key}", key)


def _is_wide(spec: form.FieldSpec) -> bool:
    return spec.kind == "str" and (not spec.choices or len(spec.choices) > CELLS_PER_ROW)


def build_cells(ctx: UIContext, keys: list[str], specs: dict, values: dict, built: dict) -> None:
    """Lay out the controls of `keys`: narrow ones side by side, text and long choice lists on their own row;
    each in a cell with its problem line under it."""
    rows: list[list[str]] = []
    for key in keys:
        if _is_wide(specs[key]) or not rows or _is_wide(specs[rows[-1][-1]]) or len(rows[-1]) == CELLS_PER_ROW:
            rows.append([key])
        else:
            rows[-1].append(key)
    for row in rows:
        with gr.Row(equal_height=False):
            for key in row:
                with gr.Column(min_width=180, visible=form.applies(specs[key], values), elem_id=f"train-{key}-cell") as cell:
                    built["controls"][key] = _make_control(ctx, specs[key], values[key])
                    if key in form.MODULE_KEYS:
                        built["pickers"][key] = _make_module_picker(ctx, key, values[key])
                    if key == "reward_file":  # a .py upload lands in workspace/rewards; its code is shown before
                        # anyone allows it to run
                        built["reward_upload"] = ctx.localizer.add(gr.UploadButton(t("train.reward_upload"), file_types=[".py"], size="sm",
                                                                       elem_id="train-reward_file-upload"), "train.reward_upload")
                        built["reward_code"] = gr.Code(language="python", visible=False, interactive=False,
                                                       elem_id="train-reward_file-code")
                    built["problems"][key] = gr.Markdown("", visible=False, elem_id=f"train-{key}-problem", elem_classes=["field-problem"])
                built["cells"][key] = cell
