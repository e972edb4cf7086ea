"""Compare tab: the same prompt answered side by side by a run and its base model, or by two runs; a blind A/B
mode hides who wrote which until the user rates, and each rating is saved to a preference dataset."""

from __future__ import annotations

import weakref

import gradio as gr

from studio.chat import GenerationSettings
from studio.chat_memory import free_memory, load_refusal
from studio.compare import (
    CompareError,
    ComparePair,
    Comparison,
    compare,
    count_rows,
    load_pair,
    preference_file,
    save_rating,
    undecided_file,
)
from studio.ui.chat_tab import chattable_runs, trained_system
from studio.ui.context import UIContext, bind, for_viewers, refuse_viewer
from studio.ui.locales import lang_code, t
from studio.workspace import PathError

VERDICT_BUTTONS = (("a", "compare.pick_a"), ("b", "compare.pick_b"), ("tie", "compare.pick_tie"),
                   ("both_bad", "compare.pick_both_bad"))


def mode_choices(lang: str = "en") -> list[tuple[str, str]]:
    """(label, mode) of the two ways to compare."""
    return [(t("compare.mode_base", lang), "base"), (t("compare.mode_runs", lang), "runs")]


def saved_counter(ctx: UIContext, slug: str, lang: str) -> str:
    """How many preferences (and undecided ratings) the pair's files hold, and where they are."""
    preferences, undecided = preference_file(ctx.workspace, slug), undecided_file(ctx.workspace, slug)
    text = t("compare.saved", lang, n=count_rows(preferences), path=preferences.relative_to(ctx.workspace.root))
    aside = count_rows(undecided)
    if aside:
        text += " " + t("compare.aside", lang, n=aside, path=undecided.relative_to(ctx.workspace.root))
    return text


def _headers(comparison: Comparison, revealed: bool) -> tuple[str, str]:
    """The titles above answers A and B: who wrote them when not blind or once rated; only the letter otherwise."""
    if comparison.blind and not revealed:
        return "### A", "### B"
    name_a, name_b = comparison.shown_names()
    return f"### A · {name_a}", f"### B · {name_b}"


def current_pair(ctx: UIContext, loaded_pairs: weakref.WeakKeyDictionary) -> ComparePair | None:
    """The pair loaded for comparing while its primary copy is still the studio's loaded model, else None."""
    primary = ctx.chat.model
    held = loaded_pairs.get(primary) if primary is not None else None
    return ComparePair(held[0], held[1], primary, held[2]) if held else None


def on_mode(chosen: str):
    """The second run's picker, shown when two runs are compared."""
    return gr.update(visible=chosen == "runs")


@for_viewers
def on_language(lang_choice: str, chosen: str):
    """The mode choices in the page's language, the chosen mode kept."""
    return gr.update(choices=mode_choices(lang_code(lang_choice)), value=chosen)


@for_viewers
def on_refresh(ctx: UIContext, lang_choice: str = "English"):
    """Both run pickers' choices now: the runs with saved weights."""
    choices = chattable_runs(ctx, lang_code(lang_choice))
    return gr.update(choices=choices), gr.update(choices=choices)


def on_load(ctx: UIContext, loaded_pairs: weakref.WeakKeyDictionary, chosen: str, first: str, other: str,
            lang_choice: str, request: gr.Request):
    """Load the pair to compare into the studio's one model slot: a message and the pair's saved-ratings counter."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    if not first:
        return t("compare.pick_run", lang), gr.skip()
    for run_id in filter(None, (first, other if chosen == "runs" else "")):
        refusal = load_refusal(ctx.workspace, run_id)
        if refusal:
            return t("compare.refused", lang, run=refusal.training_run, need=refusal.needed_bytes / 2**30,
                     free=refusal.free_bytes / 2**30), ""
    ctx.chat.stop.set()  # a Chat reply being written ends now, so the slot's lock comes free
    with ctx.chat.lock:
        ctx.chat.model, ctx.chat.run_id = None, ""  # free the slot before loading (one model at a time)
        free_memory()
        try:
            pair = load_pair(ctx.workspace, chosen, first, other or "")
        except (CompareError, PathError, OSError, ValueError) as error:
            return f"**{type(error).__name__}**: {error}", ""
        ctx.chat.model, ctx.chat.run_id = pair.primary, pair.sides[0].run_id
        loaded_pairs[pair.primary] = (pair.mode, pair.sides, pair.second)
    how = "compare.loaded_one" if pair.copies == 1 else "compare.loaded_two"
    text = t(how, lang, a=pair.sides[0].name, b=pair.sides[1].name)
    return text, saved_counter(ctx, pair.slug, lang)


def on_answer(ctx: UIContext, loaded_pairs: weakref.WeakKeyDictionary, text: str, system_prompt: str, is_blind: bool,
              tokens: int, temp: float, nucleus: float, sampling_seed, lang_choice: str, request: gr.Request):
    """Both sides' answers to `text`: their titles and texts, the Comparison to rate, and the saved-ratings counter."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    with ctx.chat.lock:
        pair = current_pair(ctx, loaded_pairs)
        if pair is None:
            raise gr.Error(t("compare.not_loaded", lang), print_exception=False)
        settings = GenerationSettings(max_new_tokens=int(tokens), temperature=float(temp), top_p=float(nucleus),
                                      seed=int(sampling_seed) if sampling_seed is not None else None)
        try:
            result = compare(pair, text, system_prompt, settings, blind=bool(is_blind))
        except (CompareError, ValueError) as error:
            raise gr.Error(str(error), print_exception=False) from None
    shown_a, shown_b = result.shown()
    title_a, title_b = _headers(result, revealed=False)
    return title_a, shown_a, title_b, shown_b, result, saved_counter(ctx, result.slug, lang)


def on_rate(ctx: UIContext, verdict: str, comparison: Comparison | None, lang_choice: str, request: gr.Request):
    """Save `verdict` on the comparison on screen: the titles revealed, the comparison, and the saved-ratings counter."""
    lang = lang_code(lang_choice)
    refuse_viewer(ctx, request, lang)
    if comparison is None:
        raise gr.Error(t("compare.nothing_to_rate", lang), print_exception=False)
    try:
        rating = save_rating(ctx.workspace, comparison, verdict)
    except CompareError as error:
        raise gr.Error(str(error), print_exception=False) from None
    title_a, title_b = _headers(comparison, revealed=True)
    note = f"{t('compare.kept_aside', lang, why=rating.note)} " if rating.note else ""
    return title_a, title_b, comparison, note + saved_counter(ctx, comparison.slug, lang)


def create_compare_tab(ctx: UIContext) -> dict:
    """Build the Compare tab; returns its components."""
    L = ctx.localizer
    # A loaded pair lives as long as its primary copy stays in the studio's one model slot (ctx.chat): when Chat
    # or a new Compare load replaces that copy, this entry, and a full fine-tune's second copy with it, goes away.
    loaded_pairs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # primary ChatModel -> (mode, sides, second)

    L.add(gr.Markdown(t("compare.intro")), "compare.intro")
    mode = gr.Radio(choices=mode_choices(), value="base", label=t("compare.mode"), elem_id="compare-mode")
    L.add(mode, "compare.mode")
    with gr.Row():
        run_a = L.add(gr.Dropdown(choices=chattable_runs(ctx), label=t("compare.run_a"), scale=4, elem_id="compare-run-a"),
                      "compare.run_a")
        run_b = L.add(gr.Dropdown(choices=chattable_runs(ctx), label=t("compare.run_b"), scale=4, visible=False,
                                  elem_id="compare-run-b"), "compare.run_b")
        refresh = L.add(gr.Button(t("compare.refresh"), scale=1), "compare.refresh")
        load = L.add(gr.Button(t("compare.load"), variant="primary", scale=1, elem_id="compare-load"), "compare.load")
    status = gr.Markdown("", elem_id="compare-status")
    system = L.add(gr.Textbox(label=t("compare.system"), lines=1, elem_id="compare-system"), "compare.system")
    with gr.Row():
        prompt = L.add(gr.Textbox(label=t("compare.prompt"), lines=2, scale=6, elem_id="compare-prompt"), "compare.prompt")
        with gr.Column(scale=1, min_width=160):
            blind = L.add(gr.Checkbox(value=False, label=t("compare.blind"), elem_id="compare-blind"), "compare.blind")
            answer = L.add(gr.Button(t("compare.answer"), variant="primary", elem_id="compare-answer"), "compare.answer")
    with gr.Accordion(t("compare.settings"), open=False) as settings_box, gr.Row():
        max_new = L.add(gr.Slider(1, 1024, value=128, step=1, label=t("compare.max_new_tokens")), "compare.max_new_tokens")
        temperature = L.add(gr.Slider(0.0, 2.0, value=0.0, step=0.05, label=t("compare.temperature")), "compare.temperature")
        top_p = L.add(gr.Slider(0.05, 1.0, value=1.0, step=0.05, label=t("compare.top_p")), "compare.top_p")
        seed = L.add(gr.Number(value=0, precision=0, label=t("compare.seed")), "compare.seed")
    L.add(settings_box, "compare.settings")
    with gr.Row(equal_height=True):
        with gr.Column():
            header_a = gr.Markdown("### A", elem_id="compare-header-a")
            answer_a = L.add(gr.Textbox(label=t("compare.answer_a"), show_label=False, lines=8, interactive=False,
                                         elem_id="compare-answer-a"), "compare.answer_a")
        with gr.Column():
            header_b = gr.Markdown("### B", elem_id="compare-header-b")
            answer_b = L.add(gr.Textbox(label=t("compare.answer_b"), show_label=False, lines=8, interactive=False,
                                         elem_id="compare-answer-b"), "compare.answer_b")
    with gr.Row():
        picks = [L.add(gr.Button(t(key), elem_id=f"compare-pick-{verdict.replace('_', '-')}"), key)
                 for verdict, key in VERDICT_BUTTONS]
    saved = gr.Markdown("", elem_id="compare-saved")
    comparison_state = gr.State(None)  # the Comparison on screen; kept on the server, so a blind order stays hidden

    refreshed = bind(on_refresh, ctx)
    load_compared = bind(on_load, ctx, loaded_pairs)
    answer_both = bind(on_answer, ctx, loaded_pairs)
    mode.change(on_mode, [mode], [run_b])
    ctx.language.change(on_language, [ctx.language, mode], [mode])
    refresh.click(refreshed, [ctx.language], [run_a, run_b])
    load.click(load_compared, [mode, run_a, run_b, ctx.language], [status, saved], api_name="compare_load").then(
        bind(trained_system, ctx), [run_a], [system], queue=False, api_visibility="private")
    answer_inputs = [prompt, system, blind, max_new, temperature, top_p, seed, ctx.language]
    answer_outputs = [header_a, answer_a, header_b, answer_b, comparison_state, saved]
    answer.click(answer_both, answer_inputs, answer_outputs, api_name="compare_answer")
    prompt.submit(answer_both, answer_inputs, answer_outputs)
    # one handler per verdict, each its own concurrency group as before
    raters = {verdict: bind(on_rate, ctx, verdict) for verdict, _key in VERDICT_BUTTONS}
    for (verdict, _key), button in zip(VERDICT_BUTTONS, picks):
        button.click(raters[verdict], [comparison_state, ctx.language], [header_a, header_b, comparison_state, saved],
                     api_name=f"compare_rate_{verdict}")
    return {"mode": mode, "run_a": run_a, "run_b": run_b, "status": status, "on_refresh": refreshed,
            "on_load": load_compared, "on_answer": answer_both, "raters": raters,
            "current_pair": bind(current_pair, ctx, loaded_pairs)}
