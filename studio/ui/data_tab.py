"""Data tab: choose a dataset (sample, upload, workspace path, hf: id or the library), see its format and why,
every bad row by line, paged rows raw and as chat bubbles with search, quality checks, the token report with
the chosen model, and the loss mask as the trainer builds it.

The dataset being looked at (`candidate`) becomes the training dataset (`dataset`, a config key) only when the
trainer can use it: no bad rows, or bad rows with *Skip bad rows* ticked. The token report and the mask view
need the Model tab's model and set the Train tab's cutoff, so `wire()` connects them once every tab is built."""

from __future__ import annotations

import threading
import time
from typing import Any

import gradio as gr

from studio.data import library
from studio.data.inspect import load_tokenizer, summary
from studio.data.loading import (
    SUPPORTED_SUFFIXES,
    DataError,
    LoadedDataset,
    list_samples,
    refusal,
)
from studio.data.masking import TemplateError, mask_view
from studio.data.preview import PAGE_SIZE, open_preview
from studio.data.quality import quality_report
from studio.data.readers import is_hub_ref
from studio.data.tokens import TokenReport, epoch_seconds, token_report
from studio.ui import data_views as views
from studio.ui.context import UIContext, bind, refuse_viewer
from studio.ui.locales import lang_code, t
from studio.workspace import PathError, Workspace

BIG_FILE_BYTES = 200 * 2**20  # above this the summary checks rows without keeping them (no cache, no token report)
EFFECTIVE_TFLOPS = {"GPU": 40.0, "CPU": 0.05}  # sustained training throughput assumed for the time estimate
CHOOSE_PARTS = 9  # the outputs on_choose gives
CHECK_PARTS = 5  # the outputs on_check gives
_reports: dict[tuple, TokenReport] = {}  # last token reports, by (dataset, model, options)
_reports_lock = threading.Lock()


def _error(error: Exception, lang: str) -> str:
    return f"{t('data.error', lang)}\n\n```\n{error}\n```"


def _load(workspace: Workspace, ref: str, column_map: str) -> LoadedDataset:
    """The dataset with every bad row recorded; a huge file is only checked (rows not kept)."""
    if not is_hub_ref(ref):
        path, detected = library.source_of(workspace, ref)
        if path.is_file() and path.stat().st_size > BIG_FILE_BYTES:
            from studio.data.loading import load_records
            from studio.data.readers import iter_file_records

            return load_records(path.name, iter_file_records(path), column_map, keep=False, detected=detected)
    return library.read_dataset(workspace, ref, column_map)



def describe(dataset: LoadedDataset, skip_bad: bool, lang: str) -> tuple[str, bool]:
    """The summary shown for a dataset (format and why, rows, bad rows by line) and whether training may use it."""
    info = summary(dataset)
    lines = [t("data.loaded", lang, rows=info["rows"], name=info["dataset"], format=info["format"]),
             t("data.reason", lang, reason=info["reason"])]
    usable = refusal(dataset, skip_bad) is None
    if dataset.problems:
        counts = ", ".join(f"{kind} {n}" for kind, n in info["problem_counts"].items())
        key = "data.skipped" if usable else "data.bad_rows"
        lines.append(t(key, lang, skipped=info["skipped"], total=info["rows_read"], counts=counts, good=info["rows"]))
        lines += [f"- {e['location']}: {e['message']}" for e in info["errors"]]
        if info["skipped"] > len(info["errors"]):
            lines.append(f"- {t('data.more_errors', lang, n=info['skipped'] - len(info['errors']))}")
    return "\n\n".join(lines[:3]) + ("\n" + "\n".join(lines[3:]) if len(lines) > 3 else ""), usable


def _checks_text(dataset: LoadedDataset, lang: str) -> str:
    findings = quality_report(dataset.examples, dataset.locations) if dataset.examples else []
    if not findings:
        return t("data.checks_none", lang)
    return "\n".join(f"- **{f.count}** × {f.check} — {', '.join(f.rows)}{' …' if f.count > len(f.rows) else ''}" for f in findings)


def last_page(total: int) -> int:
    """The 0-based number of the last page of `total` rows (0 for none)."""
    return max(0, (total - 1) // PAGE_SIZE)


def _page(workspace: Workspace, ref: str, column_map: str, page: int, query: str, lang: str) -> tuple[dict, str, str, int]:
    """(raw rows table, chat bubbles HTML, page caption, the 1-based page shown) for one page (a page past the
    end shows the last one), or for the search results."""
    headers = [t(k, lang) for k in ("data.col.where", "data.col.raw", "data.col.problem")]
    try:
        if is_hub_ref(ref):
            loaded = library.read_dataset(workspace, ref, column_map)
            from studio.data.preview import PreviewRow

            rows = [PreviewRow(loc, "", ex, None) for loc, ex in zip(loaded.locations, loaded.examples)]
            found = [r for r in rows if query.lower() in str(r.row).lower()] if query.strip() else None
            total, complete = len(rows), True
            page = min(page, last_page(total))
            rows = found[:PAGE_SIZE] if found is not None else rows[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
            more = found is not None and len(found) > PAGE_SIZE
        else:
            preview = open_preview(*library.source_of(workspace, ref), column_map=column_map)
            found, more = preview.search(query) if query.strip() else (None, False)
            total, complete = preview.rows_known()
            if complete:
                page = min(page, last_page(total))
            rows = found if found is not None else preview.page(page)
    except (DataError, PathError, ValueError, OSError) as error:
        return {"headers": headers, "data": []}, "", _error(error, lang), page + 1
    table = {"headers": headers, "data": [[r.location, r.raw[:2000], r.error or ""] for r in rows]}
    if found is not None:
        caption = t("data.found", lang, n=len(found), more="+" if more else "")
    else:
        shown_total = total if complete else t("data.counting", lang, n=total)
        caption = t("data.page_info", lang, page=page + 1, first=page * PAGE_SIZE + 1, last=page * PAGE_SIZE + len(rows), total=shown_total)
    return table, views.bubbles_html(rows), caption, page + 1


def library_view(workspace: Workspace, lang: str) -> tuple[dict, Any]:
    """The library's table (name, format, rows, size, date) and the picker's choices (its datasets' names)."""
    entries = library.list_library(workspace)
    headers = [t(f"data.lib.{k}", lang) for k in ("name", "format", "rows", "size", "date")]
    rows = [[e.name, e.format, "" if e.rows is None else e.rows, f"{e.size_bytes / 2**20:.2f} MB",
             time.strftime("%Y-%m-%d %H:%M", time.localtime(e.modified))] for e in entries]
    return {"headers": headers, "data": rows}, gr.update(choices=[e.name for e in entries])


def on_choose(ctx: UIContext, ref: str, lang_choice: str):
    """A dataset was picked: show its first page at once, restore what was saved with it."""
    lang = lang_code(lang_choice)
    saved = library.dataset_settings(ctx.workspace, ref)
    mapping = saved.get("column_map", "")
    table, html, page_caption, _shown = _page(ctx.workspace, ref, mapping, 0, "", lang)
    return (ref, t("data.reading", lang), table, html, page_caption, 1, "",
            mapping, saved.get("skip_bad_rows", False))


def on_check(ctx: UIContext, ref: str, mapping: str, skip: bool, lang_choice: str):
    """Read and check every row; the dataset becomes the training dataset when the trainer can use it."""
    lang = lang_code(lang_choice)
    if not ref:
        return [gr.skip()] * CHECK_PARTS
    try:
        loaded = _load(ctx.workspace, ref, mapping)
    except (DataError, PathError) as error:
        return _error(error, lang), gr.skip(), "", *library_view(ctx.workspace, lang)
    text, usable = describe(loaded, skip, lang)
    if usable:
        text += "\n\n" + t("data.chosen", lang, ref=ref)
    return text, (ref if usable else gr.skip()), _checks_text(loaded, lang), *library_view(ctx.workspace, lang)


def on_upload(ctx: UIContext, temp_path: str | None, lang_choice: str, request: gr.Request):
    """Keep an uploaded dataset in the library and show it as on_choose does, or say why it was refused."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    if not temp_path:
        return [gr.skip()] * CHOOSE_PARTS
    try:
        ref = library.add_upload(ctx.workspace, temp_path)
    except DataError as error:
        return ["", _error(error, lang_code(lang_choice)), *[gr.skip()] * (CHOOSE_PARTS - 2)]
    return on_choose(ctx, ref, lang_choice)


def on_settings(ctx: UIContext, ref: str, mapping: str, skip: bool, lang_choice: str, request: gr.Request):
    """Save the column map and Skip bad rows with the dataset; its first page as they read it (rows, bubbles, caption)."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    try:
        library.save_settings(ctx.workspace, ref, mapping, skip)
    except PathError:
        pass  # a sample or hf: dataset: nothing to save it with, the controls still apply to the run
    return _page(ctx.workspace, ref, mapping, 0, "", lang_code(lang_choice))[:3]


def on_page(ctx: UIContext, delta: int, ref: str, mapping: str, number: float | None, query: str, lang_choice: str):
    """The page `delta` pages from page `number` (or the search results): rows, bubbles, caption and the page shown."""
    number = max(1, int(number or 1) + delta)
    return _page(ctx.workspace, ref, mapping, number - 1, query, lang_code(lang_choice))


def on_cutoff_from_stats(key: str, numbers: dict | None):
    """The cutoff length that keeps the `key` share of rows whole ("p95", "p99"), from the token statistics."""
    return max(16, int(numbers[key])) if numbers else gr.skip()


def on_rename(ctx: UIContext, ref: str, name: str, lang_choice: str, request: gr.Request):
    """Rename a library dataset: what was done (or why not) and the library redrawn."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    try:
        new_ref = library.rename_dataset(ctx.workspace, ref or "", name or "")
    except (DataError, PathError) as error:
        return _error(error, lang), *library_view(ctx.workspace, lang)
    return t("data.lib.done", lang, what=f"{ref} → {new_ref}"), *library_view(ctx.workspace, lang)


def on_delete(ctx: UIContext, ref: str, lang_choice: str, request: gr.Request):
    """Delete a library dataset: what was done (or why not) and the library redrawn."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    try:
        library.delete_dataset(ctx.workspace, ref or "")
    except (DataError, PathError) as error:
        return _error(error, lang), *library_view(ctx.workspace, lang)
    return t("data.lib.done", lang, what=f"{ref} ✗"), *library_view(ctx.workspace, lang)


def on_tokens(ctx: UIContext, ref: str, mapping: str, model: str, cutoff: float, on_prompt: bool, history: bool,
              lang_choice: str, progress=gr.Progress()):  # noqa: B008 (Gradio injects the progress tracker through this default)
    """The token report with the model: its numbers and time per epoch in words, the length histogram, the numbers."""
    lang = lang_code(lang_choice)
    try:
        loaded = library.read_dataset(ctx.workspace, ref, mapping)
        key = (ref, mapping, model, on_prompt, history, len(loaded))
        with _reports_lock:
            report = _reports.get(key)
        if report is None:
            progress(0, desc=t("data.sub.tokens", lang))
            report = token_report(load_tokenizer(ctx.workspace, model), loaded.examples, on_prompt, history,
                                  lambda done, total: progress(done / total))
            with _reports_lock:
                _reports.clear()  # keep only the latest report in memory
                _reports[key] = report
    except (DataError, PathError, TemplateError) as error:
        return _error(error, lang), None, {}
    cutoff = int(cutoff or 1024)
    numbers = report.stats(cutoff)
    text = t("data.tokens_stats", lang, model=model, cutoff=cutoff, over=numbers["over_cutoff"],
             trained=numbers["trained_tokens"], tokens=numbers["tokens"],
             **{k: numbers[k] for k in ("p50", "p95", "p99", "max", "dropped")})
    device, seconds = _epoch_estimate(ctx.workspace, model, numbers)
    text += "\n\n" + t("data.tokens_time", lang, device=device, time=views.duration_text(seconds))
    labels = {"x": t("data.hist_x", lang), "y": t("data.hist_y", lang), "cutoff": t("data.cutoff", lang)}
    return text, views.length_histogram(report.lengths, cutoff, labels), numbers


def on_mask(ctx: UIContext, ref: str, mapping: str, model: str, row: float | None, on_prompt: bool, history: bool,
            lang_choice: str):
    """One row's tokens as the trainer masks them (HTML), or why they cannot be shown."""
    lang = lang_code(lang_choice)
    try:
        loaded = library.read_dataset(ctx.workspace, ref, mapping)
        if not loaded.examples:
            return t("data.tokens_need", lang)
        from studio.data.formats import conversation_of

        example = loaded.examples[min(max(1, int(row or 1)), len(loaded)) - 1]
        pieces = mask_view(load_tokenizer(ctx.workspace, model), conversation_of(example), on_prompt, history)
    except (DataError, PathError, TemplateError) as error:
        return _error(error, lang)
    return views.mask_html(pieces, t("data.mask_legend", lang))


def create_data_tab(ctx: UIContext) -> dict:
    """Build the Data tab; returns its components and `wire`, to call once the Model and Train tabs exist
    (the config controls `dataset`, `val_file`, `column_map`, `skip_bad_rows`, `train_on_prompt` and
    `mask_history` are shared in ctx.shared)."""
    L = ctx.localizer
    data = ctx.initial.data
    with gr.Row():
        sample = L.add(gr.Dropdown(choices=list_samples(), value="demo-chat", label=t("data.sample"), scale=1), "data.sample")
        upload = L.add(gr.File(label=t("data.upload"), file_types=list(SUPPORTED_SUFFIXES), type="filepath", scale=2,
                               elem_id="data-upload"), "data.upload")
        with gr.Column(scale=2):
            source = L.add(gr.Textbox(label=t("data.source"), max_lines=1, elem_id="data-source"), "data.source")
            open_button = L.add(gr.Button(t("data.open"), size="sm"), "data.open")
    candidate = gr.State("demo-chat")
    dataset = L.add(gr.Textbox(value=data.dataset, interactive=False, max_lines=1, elem_id="dataset-ref", **L.field("dataset")), "field.dataset", "dataset")
    summary_box = gr.Markdown(t("data.reading"), elem_id="data-summary")
    with gr.Row():
        column_map = L.add(gr.Textbox(value=data.column_map, max_lines=1, elem_id="data-column_map", scale=3, **L.field("column_map")), "field.column_map", "column_map")
        apply_map = L.add(gr.Button(t("data.apply_map"), size="sm", scale=1), "data.apply_map")
        skip_bad = L.add(gr.Checkbox(value=data.skip_bad_rows, elem_id="data-skip_bad_rows", scale=1, **L.field("skip_bad_rows")), "field.skip_bad_rows", "skip_bad_rows")
        val_file = L.add(gr.Textbox(value=data.val_file, max_lines=1, elem_id="data-val_file", scale=2, **L.field("val_file")), "field.val_file", "val_file")
    with gr.Tabs():
        with L.add(gr.Tab(t("data.sub.preview"), id="data-preview-tab"), "data.sub.preview"):
            with gr.Row():
                prev_button = L.add(gr.Button(t("data.prev"), size="sm"), "data.prev")
                page = L.add(gr.Number(value=1, minimum=1, precision=0, label=t("data.page"), elem_id="data-page"), "data.page")
                next_button = L.add(gr.Button(t("data.next"), size="sm"), "data.next")
                search = L.add(gr.Textbox(label=t("data.search"), max_lines=1, elem_id="data-search", scale=3), "data.search")
            caption = gr.Markdown("", elem_id="data-page-info")
            preview = L.add(gr.Dataframe(label=t("data.preview"), wrap=True, interactive=False, elem_id="data-preview"), "data.preview")
            L.add(gr.Markdown(f"**{t('data.bubbles')}**"), "data.bubbles")
            bubbles = gr.HTML("", elem_id="data-bubbles")
        with L.add(gr.Tab(t("data.sub.checks")), "data.sub.checks"):
            checks = gr.Markdown("", elem_id="data-checks")
        with L.add(gr.Tab(t("data.sub.tokens")), "data.sub.tokens"):
            tokens_button = L.add(gr.Button(t("data.tokens_run"), elem_id="data-tokens-run"), "data.tokens_run")
            tokens_text = gr.Markdown("", elem_id="data-tokens")
            histogram = gr.Plot(elem_id="data-histogram", show_label=False)
            with gr.Row():
                p95_button = L.add(gr.Button(t("data.set_p95"), size="sm", elem_id="data-set-p95"), "data.set_p95")
                p99_button = L.add(gr.Button(t("data.set_p99"), size="sm", elem_id="data-set-p99"), "data.set_p99")
            stats = gr.State({})
        with L.add(gr.Tab(t("data.sub.mask")), "data.sub.mask"):
            with gr.Row():
                mask_row = L.add(gr.Number(value=1, minimum=1, precision=0, label=t("data.mask_row"), elem_id="data-mask-row"), "data.mask_row")
                train_on_prompt = L.add(gr.Checkbox(value=data.train_on_prompt, elem_id="data-train_on_prompt", **L.field("train_on_prompt")), "field.train_on_prompt", "train_on_prompt")
                mask_history = L.add(gr.Checkbox(value=data.mask_history, elem_id="data-mask_history", **L.field("mask_history")), "field.mask_history", "mask_history")
                mask_button = L.add(gr.Button(t("data.mask_show"), size="sm", elem_id="data-mask-show"), "data.mask_show")
            mask_box = gr.HTML("", elem_id="data-mask")
        with L.add(gr.Tab(t("data.sub.library")), "data.sub.library"):
            library_table = gr.Dataframe(interactive=False, elem_id="data-library")
            with gr.Row():
                picked = L.add(gr.Dropdown(choices=[], label=t("data.lib.pick"), allow_custom_value=True, elem_id="data-lib-pick", scale=2), "data.lib.pick")
                new_name = L.add(gr.Textbox(label=t("data.lib.new_name"), max_lines=1, scale=2), "data.lib.new_name")
                rename_button = L.add(gr.Button(t("data.lib.rename"), size="sm"), "data.lib.rename")
                delete_button = L.add(gr.Button(t("data.lib.delete"), size="sm", variant="stop"), "data.lib.delete")
            library_message = gr.Markdown("")

    choose_outputs = [candidate, summary_box, preview, bubbles, caption, page, search, column_map, skip_bad]
    check_inputs = [candidate, column_map, skip_bad, ctx.language]
    check_outputs = [summary_box, dataset, checks, library_table, picked]
    # each is one handler object, so one concurrency group, for every event that runs it (and in the returned dict)
    choose, check, save_settings = bind(on_choose, ctx), bind(on_check, ctx), bind(on_settings, ctx)
    count_tokens, show_mask = bind(on_tokens, ctx), bind(on_mask, ctx)

    page_inputs = [candidate, column_map]
    sample.input(choose, [sample, ctx.language], choose_outputs).then(check, check_inputs, check_outputs)
    open_button.click(choose, [source, ctx.language], choose_outputs).then(check, check_inputs, check_outputs)
    upload.upload(bind(on_upload, ctx), [upload, ctx.language], choose_outputs, api_name="upload_dataset").then(
        check, check_inputs, check_outputs)
    ctx.language.change(check, check_inputs, check_outputs, show_progress="hidden")  # the summary in the new language
    picked.input(choose, [picked, ctx.language], choose_outputs).then(check, check_inputs, check_outputs)
    for trigger in (apply_map.click, skip_bad.input):
        trigger(save_settings, [candidate, column_map, skip_bad, ctx.language], [preview, bubbles, caption]).then(
            check, check_inputs, check_outputs)
    paging_inputs, paging_outputs = [*page_inputs, page, search, ctx.language], [preview, bubbles, caption, page]
    for trigger, delta in ((prev_button.click, -1), (next_button.click, 1), (page.submit, 0), (search.submit, 0)):
        trigger(bind(on_page, ctx, delta), paging_inputs, paging_outputs)
    rename_button.click(bind(on_rename, ctx), [picked, new_name, ctx.language], [library_message, library_table, picked])
    delete_button.click(bind(on_delete, ctx), [picked, ctx.language], [library_message, library_table, picked])

    def wire() -> None:
        """Connect the controls that need the Model tab's model and the Train tab's cutoff (built after this tab)."""
        model, cutoff = ctx.shared["model"], ctx.shared["cutoff_len"]
        token_inputs = [candidate, column_map, model, cutoff, train_on_prompt, mask_history, ctx.language]
        tokens_button.click(count_tokens, token_inputs, [tokens_text, histogram, stats])
        for button, key in ((p95_button, "p95"), (p99_button, "p99")):
            button.click(bind(on_cutoff_from_stats, key), [stats], [cutoff])
        mask_inputs = [candidate, column_map, model, mask_row, train_on_prompt, mask_history, ctx.language]
        for trigger in (mask_button.click, train_on_prompt.input, mask_history.input, mask_row.submit):
            trigger(show_mask, mask_inputs, [mask_box])

    ctx.shared.update({"dataset": dataset, "column_map": column_map, "skip_bad_rows": skip_bad, "val_file": val_file,
                       "train_on_prompt": train_on_prompt, "mask_history": mask_history})
    initial = on_choose(ctx, "demo-chat", "English")
    preview.value, bubbles.value, caption.value = initial[2], initial[3], initial[4]
    summary_box.value, _, checks.value, _table, _choices = on_check(ctx, "demo-chat", "", False, "English")
    library_table.value = _table
    return {"sample": sample, "upload": upload, "dataset": dataset, "summary": summary_box, "preview": preview,
            "candidate": candidate, "tokens_text": tokens_text, "mask": mask_box, "wire": wire,
            "on_choose": choose, "on_check": check, "on_tokens": count_tokens, "on_mask": show_mask, "on_settings": save_settings}


def _epoch_estimate(workspace: Workspace, model: str, numbers: dict[str, Any]) -> tuple[str, float | None]:
    """(device name, rough seconds per epoch) for the model on this machine's first GPU, or its CPU."""
    from studio.hardware import detect_gpus
    from studio.models.architecture import ModelInfoError, model_architecture

    device = "GPU" if detect_gpus() else "CPU"
    try:
        parameters = model_architecture(workspace, model).total_params()
    except (ModelInfoError, PathError, OSError, ValueError):
        parameters = None
    return device, epoch_seconds(numbers["trained_tokens"], numbers["tokens"], parameters, EFFECTIVE_TFLOPS[device])
