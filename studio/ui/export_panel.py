"""Export & Serve tab: export a finished run (adapter folder or zip, or the merged model; an Ollama Modelfile; a
Hub push) in the background and show the folder, the zip download, the Modelfile with its `ollama create` command
and the vLLM / SGLang commands; and serve the run as an OpenAI-compatible API in its own process, with the URL,
the model name and copyable curl / Python snippets. Exports run in studio.export's background jobs and the server
in studio.serve_process's registry, so both are still shown after a page reload.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr

from studio import export, export_jobs, serve_process
from studio.model_card import PushError
from studio.serve import API_KEY_ENV, PublicBindError
from studio.ui.chat_tab import chattable_runs, kept_or_newest
from studio.ui.context import UIContext, bind, in_turn, operator_view, refuse_viewer, top_copy
from studio.ui.locales import lang_code, t
from studio.ui.visits import TabRefresh
from studio.workspace import PathError

KINDS = ("folder", "zip", "merged", "gguf")
DEFAULT_PORT = 8000
# the events that set which run the tab exports (page load, a visit, Refresh, the user's own pick; context.in_turn):
# the user's pick, answered after a page load's or a visit's proposal that arrived late, puts the picked run back
# with its folder and export
RUN_IN_TURN = in_turn("export-run")
SERVE_PARTS = 8  # the outputs serve_view gives


def kind_choices(lang: str) -> list[tuple[str, str]]:
    """(label, value) of the things a run can be exported as."""
    return [(t(f"export.what.{kind}", lang), kind) for kind in KINDS]


def hub_token_note(lang: str) -> str:
    """Whether a Hugging Face token is available for a push (never the token itself)."""
    from huggingface_hub import get_token

    return t("export.token_found" if get_token() else "export.token_missing", lang)


def default_folder(ctx: UIContext, run_id: str) -> str:
    """A free export folder for the run, relative to the workspace (exports/RUN, exports/RUN-2, …)."""
    if not run_id:
        return ""
    return export.next_export_dir(ctx.workspace, run_id).relative_to(ctx.workspace.root).as_posix()


def downloadable(path: Path) -> str:
    """A link (or copy) of `path` in a temp folder, which Gradio serves wherever the workspace lies: the same one
    for the same file as long as it is unchanged, so showing a download again neither copies it again nor gives
    the page a new address (a tab's visit compares what it would show with what it showed)."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:20]
    target = Path(tempfile.gettempdir()) / f"studio-export-{key}" / path.name
    if target.is_file() and target.stat().st_size == stat.st_size:
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        os.link(path, partial)
    except OSError:  # another file system
        shutil.copyfile(path, partial)
    os.replace(partial, target)  # whole, whoever wins
    return str(target)


def job_view(ctx: UIContext, job: export_jobs.ExportJob | None, lang: str) -> list:
    """Outputs for an export job: status text, result box, folder, download, Modelfile, ollama / vLLM / SGLang
    commands, and whether the poll timer keeps running."""
    hidden = [gr.update(visible=False), "", gr.update(value=None, visible=False), gr.update(value="", visible=False),
              "", "", ""]
    if job is None:
        return ["", *hidden, gr.Timer(active=False)]
    if job.state == "running":
        status = t("export.running", lang, run=job.run_id, folder=job.out_dir,
                   step=t(f"export.step.{job.step}", lang), seconds=time.time() - job.started)
        return [status, *hidden, gr.Timer(active=True)]
    if job.state == "failed":
        return [t("export.failed", lang, error=job.error), *hidden, gr.Timer(active=False)]
    result = job.result
    status = t("export.done", lang, run=job.run_id, kind=t(f"export.kind.{result.kind}", lang), folder=result.out_dir)
    status += "".join(f"\n\n- {note}" for note in result.notes)
    if job.pushed_url:
        status += "\n\n" + t("export.pushed", lang, url=job.pushed_url)
    if job.push_error:
        status += "\n\n" + t("export.push_failed", lang, error=job.push_error)
    folder = t("export.folder_line", lang, folder=result.out_dir) + (
        "\n\n" + t("export.zip_line", lang, zip=result.zip_path) if result.zip_path else "")
    zipped = result.zip_path is not None and result.zip_path.is_file()
    download = gr.update(value=downloadable(result.zip_path) if zipped else None, visible=zipped)
    modelfile, ollama_command = gr.update(value="", visible=False), ""
    try:  # the run (or the export) may have been deleted since
        run_dir = ctx.workspace.run_dir(job.run_id)
        if result.modelfile:
            modelfile = gr.update(value=result.modelfile.read_text(encoding="utf-8"), visible=True)
            ollama_command = f"ollama create {export.served_name(run_dir)} -f {result.modelfile}"
        if result.kind == "gguf":  # llama.cpp and Ollama read the file; vLLM and SGLang serve safetensors exports
            vllm = sglang = next((line for line in result.serving.splitlines() if line.startswith("llama-server")), "")
        else:
            vllm, sglang, _ask = export.engine_commands(ctx.workspace, run_dir, result.out_dir, result.kind)
    except (OSError, ValueError) as error:  # PathError, ExportError (not a LoRA adapter), ConfigError
        vllm = sglang = str(error)
    return [status, gr.update(visible=True), folder, download, modelfile, ollama_command, vllm, sglang, gr.Timer(active=False)]


def on_kind(kind: str) -> list:
    """The merge settings shown for a merged export, the GGUF settings for a GGUF one."""
    return [gr.update(visible=kind == "merged"), gr.update(visible=kind == "gguf")]


def on_serve_tick(lang_choice: str) -> list:
    """The served model's view now (see `serve_view`)."""
    return serve_view(lang_code(lang_choice))


def serve_view(lang: str) -> list:
    """Outputs for the served model: status, info box, base URL, model name, curl and Python snippets,
    whether the poll timer keeps running (while the model loads), and Stop serving (shown while one is)."""
    served = serve_process.current()
    if served is None:
        return [t("export.serve_none", lang), gr.update(visible=False), "", "", "", "", gr.Timer(active=False), gr.update(visible=False)]
    state = served.state()
    if state == "exited":
        status = t("export.serve_exited", lang, run=served.run_id, code=served.process.returncode, log=served.log_tail())
        return [status, gr.update(visible=False), "", "", "", "", gr.Timer(active=False), gr.update(visible=False)]
    curl, python = serve_process.client_snippets(served.base_url, served.model, served.keyed)
    auth = t("export.serve_keyed" if served.keyed else "export.serve_open", lang, env=API_KEY_ENV)
    where = t("export.serve_public" if served.host == serve_process.ALL_INTERFACES else "export.serve_local", lang)
    status = t(f"export.serve_{state}", lang, run=served.run_id, url=served.base_url, auth=auth, where=where)
    return [status, gr.update(visible=True), served.base_url, served.model, curl, python, gr.Timer(active=state == "starting"),
            gr.update(visible=True)]


def on_refresh(ctx: UIContext, run_id: str | None, to: str, lang_choice: str):
    """The run list now, the run kept (or the newest), its folder, the token note, its export and the served model."""
    lang = lang_code(lang_choice)
    choices = chattable_runs(ctx, lang)
    chosen = kept_or_newest(choices, run_id)
    job = export_jobs.export_job(chosen) if chosen else None
    to = to if chosen == run_id and to else default_folder(ctx, chosen)
    return [gr.update(choices=choices, value=chosen), to, hub_token_note(lang), *job_view(ctx, job, lang), *serve_view(lang)]


def on_open(ctx: UIContext, lang_choice: str):
    """The export tab as a page opens: the newest run, its export and the served model, if any."""
    return on_refresh(ctx, None, "", lang_choice)


def on_run(ctx: UIContext, run_id: str | None, lang_choice: str):
    """The picked run (put back should a late proposal of the newest have replaced it), its export folder and view."""
    job = export_jobs.export_job(run_id) if run_id else None
    return [run_id, default_folder(ctx, run_id) if run_id else "", *job_view(ctx, job, lang_code(lang_choice))]


def on_export(ctx: UIContext, run_id, kind, dtype_value, shard_value, with_ollama, repo_value, is_private, to, gguf_value,
              lang_choice, request: gr.Request):
    """Start exporting the run in the background: its status and the poll timer started (or why it was refused)."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    if not run_id:
        return [t("export.no_run", lang), gr.skip()]
    repo_value = (repo_value or "").strip()
    from huggingface_hub import get_token

    if repo_value and not get_token():
        return [t("export.refused", lang, reason=t("export.token_missing", lang)), gr.skip()]
    try:
        job = export_jobs.start_export(ctx.workspace, run_id, (to or "").strip() or default_folder(ctx, run_id),
                                       push_repo=repo_value, private=bool(is_private), merge=kind == "merged",
                                       dtype=dtype_value, max_shard_size=(shard_value or "2GB").strip(),
                                       ollama=bool(with_ollama), make_zip=kind == "zip",
                                       **({"gguf": gguf_value or "q8_0"} if kind == "gguf" else {}))
    except (PathError, export.ExportError, PushError) as error:
        return [t("export.refused", lang, reason=str(error)), gr.skip()]
    return [t("export.running", lang, run=job.run_id, folder=job.out_dir, step=t("export.step.start", lang), seconds=0),
            gr.Timer(active=True)]


def on_poll(ctx: UIContext, run_id: str | None, to: str, lang_choice: str):
    """The run's export now: the next free folder once it is done (else no change) and the export's view."""
    job = export_jobs.export_job(run_id) if run_id else None
    view = job_view(ctx, job, lang_code(lang_choice))
    # once this export is done, the folder box offers the next free folder for another export
    done = job is not None and job.state != "running" and (not to or ctx.workspace.root / to == job.out_dir)
    return [default_folder(ctx, run_id) if done else gr.skip(), *view]


def on_serve(ctx: UIContext, run_id, port_value, is_public, key, lang_choice, request: gr.Request):
    """Serve the run as an OpenAI-compatible API in its own process: the served model's view (or why it was refused)."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    if not run_id:
        return [t("export.no_run", lang), *[gr.skip()] * (SERVE_PARTS - 1)]
    try:
        serve_process.start_serving(ctx.workspace, run_id, int(port_value or DEFAULT_PORT), bool(is_public),
                                    (key or "").strip() or os.environ.get(API_KEY_ENV) or None)
    except PublicBindError as error:
        return [t("export.refused", lang, reason=f"{t('export.need_key', lang)} {error}"), *[gr.skip()] * (SERVE_PARTS - 1)]
    except (PathError, export.ExportError, serve_process.ServeError, OSError) as error:
        return [t("export.refused", lang, reason=str(error)), *[gr.skip()] * (SERVE_PARTS - 1)]
    return serve_view(lang)


def on_stop(ctx: UIContext, lang_choice: str, request: gr.Request):
    """Stop serving: the served model's view, saying which run was stopped."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    stopped = serve_process.stop_serving()
    view = serve_view(lang)
    if stopped is not None:
        view[0] = t("export.serve_stopped", lang, run=stopped.run_id)
    return view


def on_public(is_public: bool, lang_choice: str):
    """The warning shown while serving on every network interface is ticked (empty otherwise)."""
    return t("export.public_note", lang_code(lang_choice)) if is_public else ""


def create_export_tab(ctx: UIContext) -> dict:
    """Build the Export & Serve tab; returns `refresh` (handler, inputs, outputs) for page load and tab select."""
    L = ctx.localizer
    with gr.Row(equal_height=True):
        run = L.add(gr.Dropdown(choices=chattable_runs(ctx), label=t("export.run"), scale=5, elem_id="export-run"), "export.run")
        refresh = L.add(gr.Button(t("export.refresh"), scale=0, min_width=120, elem_id="export-refresh"), "export.refresh")
    L.add(gr.Markdown(t("export.title")), "export.title")
    with gr.Row():
        what = L.add(gr.Radio(choices=kind_choices("en"), value="zip", label=t("export.what"), elem_id="export-what", scale=2),
                     "export.what", choices=kind_choices)
        ollama = L.add(gr.Checkbox(value=False, label=t("export.ollama"), elem_id="export-ollama", scale=1), "export.ollama")
    with gr.Row(visible=False) as merge_row:
        dtype = L.add(gr.Dropdown(choices=list(export.DTYPES), value="bf16", label=t("export.dtype"), elem_id="export-dtype"), "export.dtype")
        shard = L.add(gr.Textbox(value="2GB", label=t("export.shard"), max_lines=1, elem_id="export-shard"), "export.shard")
    with gr.Row(visible=False) as gguf_row:
        gguf_type = L.add(gr.Dropdown(choices=["f16", "bf16", "q8_0"], value="q8_0", label=t("export.gguf_type"),
                                      elem_id="export-gguf-type"), "export.gguf_type")
    with gr.Row():
        repo = L.add(gr.Textbox(label=t("export.repo"), placeholder="user/name", max_lines=1, elem_id="export-repo", scale=3), "export.repo")
        private = L.add(gr.Checkbox(value=True, label=t("export.private"), elem_id="export-private", scale=1), "export.private")
    token_note = gr.Markdown(hub_token_note("en"), elem_id="export-token")
    with gr.Row(equal_height=True):
        folder = L.add(gr.Textbox(label=t("export.to"), max_lines=1, elem_id="export-to", scale=5), "export.to")
        start = L.add(gr.Button(t("export.start"), variant="primary", scale=1, elem_id="export-start"), "export.start")
    status = gr.Markdown("", elem_id="export-status")
    timer = gr.Timer(1.0, active=False)
    with gr.Column(visible=False, elem_id="export-result") as result_box:
        folder_line = gr.Markdown("", elem_id="export-folder")
        download = L.add(gr.File(label=t("export.download"), interactive=False, visible=False, elem_id="export-download"), "export.download")
        modelfile = L.add(gr.Code(label=t("export.modelfile"), language=None, interactive=False, visible=False,
                                  elem_id="export-modelfile"), "export.modelfile")
        ollama_cmd = L.add(gr.Textbox(label=t("export.ollama_cmd"), buttons=["copy"], elem_id="export-ollama-cmd"), "export.ollama_cmd")
        vllm = L.add(gr.Textbox(label=t("export.vllm"), buttons=["copy"], elem_id="export-vllm"), "export.vllm")
        sglang = L.add(gr.Textbox(label=t("export.sglang"), buttons=["copy"], elem_id="export-sglang"), "export.sglang")

    L.add(gr.Markdown(t("export.serve_title")), "export.serve_title")
    L.add(gr.Markdown(t("export.serve_memory")), "export.serve_memory")
    with gr.Row(equal_height=True):
        port = L.add(gr.Number(value=DEFAULT_PORT, precision=0, minimum=1024, maximum=65535, label=t("export.port"),
                               elem_id="serve-port", scale=1), "export.port")
        public = L.add(gr.Checkbox(value=False, label=t("export.public"), elem_id="serve-public", scale=1), "export.public")
        api_key = L.add(gr.Textbox(type="password", label=t("export.api_key"), elem_id="serve-key", scale=2), "export.api_key")
    with gr.Row():
        serve = L.add(gr.Button(t("export.serve"), variant="primary", elem_id="serve-start"), "export.serve")
        stop = L.add(gr.Button(t("export.stop"), variant="stop", visible=False, elem_id="serve-stop"), "export.stop")
    public_note = gr.Markdown("", elem_id="serve-public-note")
    serve_status = gr.Markdown("", elem_id="serve-status")
    serve_timer = gr.Timer(1.0, active=False)
    with gr.Column(visible=False, elem_id="serve-info") as serve_box:
        with gr.Row():
            url = L.add(gr.Textbox(label=t("export.url"), max_lines=1, buttons=["copy"], elem_id="serve-url"), "export.url")
            model = L.add(gr.Textbox(label=t("export.model"), max_lines=1, buttons=["copy"], elem_id="serve-model"), "export.model")
        curl = L.add(gr.Code(label="curl", language="shell", interactive=False, elem_id="serve-curl"), "export.curl")
        python = L.add(gr.Code(label="Python (openai)", language="python", interactive=False, elem_id="serve-python"), "export.python")
    ctx.operator_only += [start, serve, stop]

    job_outputs = [status, result_box, folder_line, download, modelfile, ollama_cmd, vllm, sglang, timer]
    serve_outputs = [serve_status, serve_box, url, model, curl, python, serve_timer, stop]

    refresh_io = (operator_view(ctx, bind(on_refresh, ctx)), [run, folder, ctx.language],
                  [run, folder, token_note, *job_outputs, *serve_outputs])
    refresh.click(*refresh_io, **RUN_IN_TURN)
    # .input: a refresh that sets the run sends its folder and export with it
    run.input(bind(on_run, ctx), [run, ctx.language], [run, folder, *job_outputs], **RUN_IN_TURN)
    what.change(on_kind, [what], [merge_row, gguf_row])
    start.click(bind(on_export, ctx), [run, what, dtype, shard, ollama, repo, private, folder, gguf_type, ctx.language],
                [status, timer], api_name="export_run")
    timer.tick(bind(on_poll, ctx), [run, folder, ctx.language], [folder, *job_outputs], show_progress="hidden")
    # in the same queue as the tab's refreshes: a visit's refresh sent before Stop cannot answer after it with the
    # server still serving, nor take away the "Stopped serving" line
    serve.click(bind(on_serve, ctx), [run, port, public, api_key, ctx.language], serve_outputs, api_name="serve_run", **RUN_IN_TURN)
    serve_timer.tick(on_serve_tick, [ctx.language], serve_outputs, show_progress="hidden", **RUN_IN_TURN)
    stop.click(bind(on_stop, ctx), [ctx.language], serve_outputs, api_name="stop_serving", **RUN_IN_TURN)
    public.change(on_public, [public, ctx.language], [public_note])
    # the tab's own refresh (a visit) reads copies of the run and the folder (context.top_copy)
    copies = [top_copy(ctx, source, gr.Textbox("", visible=False)) for source in (run, folder)]
    visit = TabRefresh(refresh_io[0], [*copies, ctx.language], refresh_io[2], {"show_progress": "hidden", **RUN_IN_TURN},
                       opening=operator_view(ctx, bind(on_open, ctx)), opening_inputs=[ctx.language])
    return {"refresh": refresh_io, "visit": visit, "run": run}
