"""Chat tab: load a finished run or one of its checkpoints (base + adapter, with its saved chat template), or its
base model, and talk to it, streaming; Stop ends a reply, Unload frees the model's memory."""

from __future__ import annotations

import threading
import time

import gradio as gr

from studio import run_folder
from studio.chat import (
    GenerationSettings,
    checkpoint_names,
    load_model,
    load_run,
    with_system,
)
from studio.chat_memory import free_memory, load_refusal
from studio.hardware import GiB
from studio.models.catalog import model_choices
from studio.ui.context import UIContext, bind, for_viewers, refuse_viewer
from studio.ui.locales import lang_code, t
from studio.system_prompt import training_system_prompt
from studio.workspace import PathError

REDRAW_S = 0.2  # the least time between two updates of a streaming reply
FINAL = "final"  # the checkpoint picker's value for the run's final weights (no checkpoint folder has this name)


def chattable_runs(ctx: UIContext, lang: str = "en") -> list[tuple[str, str]]:
    """(label, run id) of every run with saved weights, newest first."""
    choices = []
    for summary in run_folder.list_runs(ctx.workspace):
        if run_folder.run_has_weights(ctx.workspace.runs_dir / summary.run_id):
            name = f" · {summary.run_name}" if summary.run_name else ""
            choices.append((f"{summary.run_id}{name} · {t(f'state.{summary.state}', lang)}", summary.run_id))
    return choices


def kept_or_newest(choices: list[tuple[str, str]], run_id: str | None) -> str | None:
    """`run_id` when it is among `choices` (label, run id), else the first (the newest), else None."""
    ids = [choice for _label, choice in choices]
    return run_id if run_id in ids else (ids[0] if ids else None)


def checkpoint_choices(ctx: UIContext, run_id: str, lang: str = "en") -> list[tuple[str, str]]:
    """The checkpoint picker's choices for run `run_id`: its final weights, then each saved checkpoint."""
    try:
        names = checkpoint_names(ctx.workspace.run_dir(run_id)) if run_id else []
    except PathError:
        names = []
    return [(t("chat.final", lang), FINAL), *[(name, name) for name in names]]


def _plain_text(content) -> str:
    """A chat message's text, whether Gradio gives it as a string or as a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)


def _release(ctx: UIContext) -> bool:
    """Empty the one model slot (the caller holds the lock) and give its memory back; True when GPU memory was."""
    ctx.chat.model, ctx.chat.run_id = None, ""
    return free_memory()


def load_into_chat(ctx: UIContext, run_id: str, base: bool, lang: str, checkpoint: str = FINAL) -> str:
    """Replace the loaded chat model with run `run_id` (a checkpoint of it, or its base model); returns a message
    to show. Refused while a training run needs the GPU memory the model would take."""
    if not run_id:
        return t("chat.pick_run" if chattable_runs(ctx) else "chat.none", lang)
    try:
        refusal = load_refusal(ctx.workspace, run_id)
    except PathError as error:
        return f"**PathError**: {error}"
    if refusal is not None:
        return t("chat.no_room", lang, run=refusal.training_run, free=f"{refusal.free_bytes / GiB:.1f}",
                 need=f"{refusal.needed_bytes / GiB:.1f}")
    chosen = None if checkpoint in ("", FINAL, None) else checkpoint
    ctx.chat.stop.set()  # a reply being written ends now, so the lock comes free
    with ctx.chat.lock:
        _release(ctx)
        try:
            ctx.chat.model = load_run(ctx.workspace, run_id, base=base, checkpoint=chosen)
        except (PathError, OSError, ValueError) as error:
            return f"**{type(error).__name__}**: {error}"
        ctx.chat.run_id = run_id
    if base:
        return t("chat.loaded_base", lang, run=run_id)
    return t("chat.loaded_checkpoint", lang, run=run_id, checkpoint=chosen) if chosen else t("chat.loaded", lang, run=run_id)


def trained_system(ctx: UIContext, run_id: str):
    """The run's training system prompt for the System box (editable there), or no change when the run has none."""
    try:
        text = training_system_prompt(ctx.workspace.run_dir(run_id)) if run_id else ""
    except PathError:
        text = ""
    return text if text else gr.skip()


def load_model_into_chat(ctx: UIContext, model: str, lang: str) -> str:
    """Replace the loaded chat model with model `model` as it is (no run, its own chat template); a message."""
    if not (model or "").strip():
        return t("chat.pick_model", lang)
    ctx.chat.stop.set()
    with ctx.chat.lock:
        _release(ctx)
        try:
            ctx.chat.model = load_model(ctx.workspace, model)
        except (PathError, OSError, ValueError) as error:
            return f"**{type(error).__name__}**: {error}"
        ctx.chat.run_id = ""
    return t("chat.loaded_model", lang, model=model)


def unload_chat(ctx: UIContext, lang: str) -> str:
    """Stop any reply, drop the loaded model and free its memory; returns a message to show."""
    ctx.chat.stop.set()
    with ctx.chat.lock:
        had = ctx.chat.model is not None
        on_gpu = _release(ctx)
    if not had:
        return t("chat.nothing_loaded", lang)
    return t("chat.unloaded_gpu" if on_gpu else "chat.unloaded", lang)


@for_viewers
def on_refresh(ctx: UIContext, lang_choice: str = "English"):
    """The run picker's choices now: the runs with saved weights."""
    return gr.update(choices=chattable_runs(ctx, lang_code(lang_choice)))


def on_models_refresh(ctx: UIContext):
    """The model picker's choices now: every model the studio can load."""
    return gr.update(choices=model_choices(ctx.workspace))


def on_run_change(ctx: UIContext, run_id: str, lang_choice: str):
    """The checkpoint picker for the picked run: its final weights and checkpoints, the final weights picked."""
    return gr.update(choices=checkpoint_choices(ctx, run_id, lang_code(lang_choice)), value=FINAL)


def on_load(ctx: UIContext, run_id: str, use_base: bool, lang_choice: str, request: gr.Request):
    """The Train tab's one-click chat: the run's final weights (a message, an empty chat, the run's system prompt)."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    return load_into_chat(ctx, run_id, use_base, lang_code(lang_choice)), [], trained_system(ctx, run_id)


def on_load_chosen(ctx: UIContext, run_id: str, chosen: str, use_base: bool, lang_choice: str, request: gr.Request):
    """Load the picked checkpoint of the run (or its base model): a message, an empty chat, the run's system prompt."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    return load_into_chat(ctx, run_id, use_base, lang_code(lang_choice), chosen), [], trained_system(ctx, run_id)


def on_load_model(ctx: UIContext, model: str, lang_choice: str, request: gr.Request):
    """Load model `model` as it is, without a run: a message and an empty chat."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    return load_model_into_chat(ctx, model, lang_code(lang_choice)), []


def on_unload(ctx: UIContext, lang_choice: str, request: gr.Request):
    """Drop the loaded model and free its memory; a message."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    return unload_chat(ctx, lang_code(lang_choice))


def on_stop(ctx: UIContext, lang_choice: str, request: gr.Request):
    """Ends the reply being written; its Send handler then says where it stopped (one writer of the status)."""
    refuse_viewer(ctx, request, lang_code(lang_choice))
    ctx.chat.stop.set()


def on_send(ctx: UIContext, text: str, history: list, system_prompt: str, tokens: int, temp: float, nucleus: float,
            k: int, penalty: float, fixed_seed, lang_choice: str, request: gr.Request):
    """Stream the loaded model's reply to `text`: the chat, the message box emptied, and where a stopped reply ended."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    history = list(history or [])
    if not (text or "").strip():
        yield history, gr.skip(), gr.skip()
        return
    settings = GenerationSettings(max_new_tokens=int(tokens), temperature=float(temp), top_p=float(nucleus),
                                  top_k=int(k or 0), repetition_penalty=float(penalty or 1.0),
                                  seed=None if fixed_seed in (None, "") else int(fixed_seed))
    with ctx.chat.lock:
        chat_model = ctx.chat.model
        if chat_model is None:
            gr.Warning(t("chat.not_loaded", lang))
            yield history, gr.skip(), gr.skip()
            return
        messages = [{"role": m["role"], "content": _plain_text(m["content"])} for m in history]
        messages.append({"role": "user", "content": text})
        try:
            messages = with_system(messages, system_prompt, chat_model.tokenizer)
        except ValueError as error:
            gr.Warning(str(error))
            yield history, gr.skip(), gr.skip()
            return
        history = history + [{"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        ctx.chat.stop = halt = threading.Event()  # Stop sets this generation's event
        shown_at = 0.0
        try:
            for reply in chat_model.stream(messages, settings, stop_event=halt):
                history[-1] = {"role": "assistant", "content": reply}
                # every update redraws the whole message in the browser: a few a second keep the page (and its
                # Stop button) responsive on a slow machine; the first piece still shows at once
                if time.monotonic() - shown_at >= REDRAW_S:
                    shown_at = time.monotonic()
                    yield history, "", gr.skip()
        except ValueError as error:  # e.g. the chat template refuses this conversation
            gr.Warning(str(error))
    if not halt.is_set():
        yield history, "", gr.skip()
        return
    written = len(chat_model.tokenizer(history[-1]["content"], add_special_tokens=False)["input_ids"])
    yield history, "", t("chat.stopped_at", lang, tokens=written, limit=settings.max_new_tokens)


def create_chat_tab(ctx: UIContext) -> dict:
    """Build the Chat tab; returns the components the Train tab's one-click chat button drives."""
    L = ctx.localizer
    with gr.Row():
        # no run chosen at first, so choosing any run (or the Train tab's one click) fills the checkpoint picker
        run = L.add(gr.Dropdown(choices=chattable_runs(ctx), value=None, label=t("chat.run"), scale=4, elem_id="chat-run"),
                    "chat.run")
        checkpoint = L.add(gr.Dropdown(choices=checkpoint_choices(ctx, ""), value=FINAL, label=t("chat.checkpoint"), scale=2,
                                       elem_id="chat-checkpoint"), "chat.checkpoint")
        base = L.add(gr.Checkbox(value=False, label=t("chat.base"), scale=2, elem_id="chat-base"), "chat.base")
    with gr.Row():
        refresh = L.add(gr.Button(t("chat.refresh"), scale=1), "chat.refresh")
        load = L.add(gr.Button(t("chat.load"), variant="primary", scale=1, elem_id="chat-load"), "chat.load")
        unload = L.add(gr.Button(t("chat.unload"), scale=1, elem_id="chat-unload"), "chat.unload")
    with gr.Row(equal_height=True):
        any_model = L.add(gr.Dropdown(choices=model_choices(ctx.workspace), value=None, allow_custom_value=True, scale=4,
                                      label=t("chat.model"), elem_id="chat-model"), "chat.model")
        load_model_button = L.add(gr.Button(t("chat.load_model"), scale=1, elem_id="chat-load-model"), "chat.load_model")
    status = gr.Markdown("", elem_id="chat-status")
    chatbot = L.add(gr.Chatbot(label=t("chat.chatbot"), height=380, elem_id="chatbot"), "chat.chatbot")
    with gr.Row():
        message = L.add(gr.Textbox(label=t("chat.message"), scale=6, elem_id="chat-input"), "chat.message")
        send = L.add(gr.Button(t("chat.send"), variant="primary", scale=1, elem_id="chat-send"), "chat.send")
        stop = L.add(gr.Button(t("chat.stop"), variant="stop", scale=1, elem_id="chat-stop"), "chat.stop")
        clear = L.add(gr.Button(t("chat.clear"), scale=1), "chat.clear")
    with gr.Accordion(t("chat.settings"), open=False, elem_id="chat-settings") as settings_box:
        system = L.add(gr.Textbox(label=t("chat.system"), lines=2, elem_id="chat-system"), "chat.system")
        with gr.Row():
            max_new = L.add(gr.Slider(1, 1024, value=128, step=1, label=t("chat.max_new_tokens"), elem_id="chat-max-new"),
                            "chat.max_new_tokens")
            temperature = L.add(gr.Slider(0.0, 2.0, value=0.0, step=0.05, label=t("chat.temperature")), "chat.temperature")
            top_p = L.add(gr.Slider(0.05, 1.0, value=1.0, step=0.05, label=t("chat.top_p")), "chat.top_p")
        with gr.Row():
            top_k = L.add(gr.Slider(0, 200, value=0, step=1, label=t("chat.top_k")), "chat.top_k")
            repetition = L.add(gr.Slider(1.0, 2.0, value=1.0, step=0.05, label=t("chat.repetition_penalty")),
                               "chat.repetition_penalty")
            seed = L.add(gr.Number(value=None, precision=0, label=t("chat.seed")), "chat.seed")
    L.add(settings_box, "chat.settings")

    refreshed, load_final, send_message = bind(on_refresh, ctx), bind(on_load, ctx), bind(on_send, ctx)
    refresh.click(refreshed, [ctx.language], [run])
    refresh.click(bind(on_models_refresh, ctx), None, [any_model])
    load_model_button.click(bind(on_load_model, ctx), [any_model, ctx.language], [status, chatbot], api_name="chat_load_model")
    run.change(bind(on_run_change, ctx), [run, ctx.language], [checkpoint])
    load.click(bind(on_load_chosen, ctx), [run, checkpoint, base, ctx.language], [status, chatbot, system], api_name="chat_load")
    unload.click(bind(on_unload, ctx), [ctx.language], [status], api_name="chat_unload")
    stop.click(bind(on_stop, ctx), [ctx.language], None, api_name="chat_stop")
    send_inputs = [message, chatbot, system, max_new, temperature, top_p, top_k, repetition, seed, ctx.language]
    send_outputs = [chatbot, message, status]
    send.click(send_message, send_inputs, send_outputs, api_name="chat_send", show_progress_on=[chatbot])
    message.submit(send_message, send_inputs, send_outputs, show_progress_on=[chatbot])
    clear.click(list, None, [chatbot])
    return {"run": run, "base": base, "checkpoint": checkpoint, "status": status, "chatbot": chatbot,
            "system": system, "on_load": load_final, "on_refresh": refreshed}
