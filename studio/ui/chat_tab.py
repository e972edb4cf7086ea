"""Chat tab: load a finished run (base + adapter, with its saved chat template) and talk to it, streaming."""

from __future__ import annotations

import gc

import gradio as gr

from studio import jobs
from studio.chat import GenerationSettings, load_run, run_has_weights
from studio.ui.context import UIContext, refuse_viewer
from studio.ui.locales import lang_code, t
from studio.workspace import PathError


def chattable_runs(ctx: UIContext, lang: str = "en") -> list[tuple[str, str]]:
    """(label, run id) of every run with saved weights, newest first."""
    choices = []
    for summary in jobs.list_runs(ctx.workspace):
        if run_has_weights(ctx.workspace.runs_dir / summary.run_id):
            name = f" · {summary.run_name}" if summary.run_name else ""
            choices.append((f"{summary.run_id}{name} · {t(f'state.{summary.state}', lang)}", summary.run_id))
    return choices


def _plain_text(content) -> str:
    """A chat message's text, whether Gradio gives it as a string or as a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)


def load_into_chat(ctx: UIContext, run_id: str, base: bool, lang: str) -> str:
    """Replace the loaded chat model with run `run_id` (or its base model); returns a message to show."""
    if not run_id:
        return t("chat.none", lang)
    with ctx.chat.lock:
        ctx.chat.model, ctx.chat.run_id = None, ""
        gc.collect()
        try:
            ctx.chat.model = load_run(ctx.workspace, run_id, base=base)
        except (PathError, OSError, ValueError) as error:
            return f"**{type(error).__name__}**: {error}"
        ctx.chat.run_id = run_id
        return t("chat.loaded_base" if base else "chat.loaded", lang, run=run_id)


def create_chat_tab(ctx: UIContext) -> dict:
    """Build the Chat tab; returns the components the Train tab's one-click chat button drives."""
    L = ctx.localizer
    with gr.Row():
        run = L.add(gr.Dropdown(choices=chattable_runs(ctx), label=t("chat.run"), scale=4, elem_id="chat-run"), "chat.run")
        base = L.add(gr.Checkbox(value=False, label=t("chat.base"), scale=2), "chat.base")
        refresh = L.add(gr.Button(t("chat.refresh"), scale=1), "chat.refresh")
        load = L.add(gr.Button(t("chat.load"), variant="primary", scale=1, elem_id="chat-load"), "chat.load")
    status = gr.Markdown("", elem_id="chat-status")
    chatbot = L.add(gr.Chatbot(label=t("chat.chatbot"), height=380, elem_id="chatbot"), "chat.chatbot")
    with gr.Row():
        message = L.add(gr.Textbox(label=t("chat.message"), scale=6, elem_id="chat-input"), "chat.message")
        send = L.add(gr.Button(t("chat.send"), variant="primary", scale=1, elem_id="chat-send"), "chat.send")
        clear = L.add(gr.Button(t("chat.clear"), scale=1), "chat.clear")
    with gr.Accordion(t("chat.settings"), open=False) as settings_box:
        with gr.Row():
            max_new = L.add(gr.Slider(1, 1024, value=128, step=1, label=t("chat.max_new_tokens")), "chat.max_new_tokens")
            temperature = L.add(gr.Slider(0.0, 2.0, value=0.0, step=0.05, label=t("chat.temperature")), "chat.temperature")
            top_p = L.add(gr.Slider(0.05, 1.0, value=1.0, step=0.05, label=t("chat.top_p")), "chat.top_p")
    L.add(settings_box, "chat.settings")

    def on_refresh(lang_choice: str = "English"):
        return gr.update(choices=chattable_runs(ctx, lang_code(lang_choice)))

    def on_load(run_id: str, use_base: bool, lang_choice: str, request: gr.Request):
        refuse_viewer(ctx, request, lang_code(lang_choice))
        return load_into_chat(ctx, run_id, use_base, lang_code(lang_choice)), []

    def on_send(text: str, history: list, tokens: int, temp: float, nucleus: float, lang_choice: str, request: gr.Request):
        refuse_viewer(ctx, request, lang_code(lang_choice))
        history = list(history or [])
        if not (text or "").strip():
            yield history, gr.skip()
            return
        if ctx.chat.model is None:
            gr.Warning(t("chat.not_loaded", lang_code(lang_choice)))
            yield history, gr.skip()
            return
        messages = [{"role": m["role"], "content": _plain_text(m["content"])} for m in history]
        messages.append({"role": "user", "content": text})
        history = history + [{"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        settings = GenerationSettings(max_new_tokens=int(tokens), temperature=float(temp), top_p=float(nucleus))
        with ctx.chat.lock:
            for reply in ctx.chat.model.stream(messages, settings):
                history[-1] = {"role": "assistant", "content": reply}
                yield history, ""
        yield history, ""

    refresh.click(on_refresh, [ctx.language], [run])
    load.click(on_load, [run, base, ctx.language], [status, chatbot], api_name="chat_load")
    send_inputs = [message, chatbot, max_new, temperature, top_p, ctx.language]
    send.click(on_send, send_inputs, [chatbot, message], api_name="chat_send")
    message.submit(on_send, send_inputs, [chatbot, message])
    clear.click(lambda: [], None, [chatbot])
    return {"run": run, "base": base, "status": status, "chatbot": chatbot, "on_load": on_load, "on_refresh": on_refresh}
