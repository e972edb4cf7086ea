"""The studio's web UI: `build_app(workspace, viewers)` returns the Gradio Blocks with every tab wired.

Logins named in `viewers` are read-only: on page load they see only the Train tab's live view and the
Runs tab, without any control that changes something. The server refuses them every handler not marked
`for_viewers` (studio.ui.viewer_gate, given to launch), and every mutating handler refuses them again
itself (studio.ui.context.refuse_viewer)."""

from __future__ import annotations

import json
from collections.abc import Iterable

import gradio as gr

from studio.ui.chat_tab import chattable_runs, create_chat_tab
from studio.ui.compare_tab import create_compare_tab
from studio.ui.context import UIContext, bind, for_viewers
from studio.ui.data_tab import create_data_tab
from studio.ui.estimate_panel import wire_estimate_panel
from studio.ui.eval_tab import create_eval_tab
from studio.ui.export_panel import create_export_tab
from studio.ui.locales import LANGUAGES, lang_code, t
from studio.ui.model_tab import create_model_tab
from studio.ui.runs_tab import create_runs_tab
from studio.ui.train_tab import create_train_tab
from studio.ui.visits import TabRefresh, forget_after_other_writers, open_visits, refresh_on_visit
from studio.workspace import Workspace

# Pass to launch(css=...): Gradio 6 takes page CSS there. The UI's HTML carries inline styles too.
CSS = """
@keyframes studio-stripes { from { background-position: 0 0; } to { background-position: 34px 0; } }
#train-log, #probes, #runs-probes { width: 100%; }
.kept-out-of-sight { display: none !important; }
.tabitem[style*="display: none"] { display: flex !important; content-visibility: hidden; height: 0; padding: 0 !important; margin: 0 !important; border: 0 !important; overflow: hidden; }
.field-problem, .field-problem p { color: var(--error-text-color, #dc2626); font-size: var(--text-sm); margin: 0; }
#train-settings-toggle { display: none; }
.gradio-container:has(#run-progress:is([data-state=running], [data-state=queued])) #train-settings-toggle { display: flex; }
.gradio-container:has(#run-progress:is([data-state=running], [data-state=queued])):not(.settings-open) #train-settings { display: none !important; }
.estimate-bar-box { padding: 22px 4px 4px; }
.estimate-bar { position: relative; display: flex; height: 28px; border-radius: 4px; background: var(--block-background-fill); }
.estimate-part { height: 100%; }
.estimate-free { position: absolute; top: -20px; bottom: -4px; border-left: 2px dashed #dc2626; }
.estimate-free span { position: absolute; top: 0; left: 4px; white-space: nowrap; font-size: var(--text-sm); color: #dc2626; }
.estimate-legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin-top: 8px; font-size: var(--text-sm); }
.estimate-key i { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
.studio-chart { width: 100%; }
.chart-title { font-weight: 600; margin: 2px 0 4px; }
.chart-grid { display: grid; gap: 4px 14px; }
.chart-grid svg { display: block; width: 100%; height: auto; color: var(--body-text-color); }
.chart-message { display: flex; align-items: center; justify-content: center; color: var(--body-text-color-subdued);
  border: 1px dashed var(--border-color-primary); border-radius: 6px; }
.chart-legend { display: flex; flex-wrap: wrap; gap: 2px 14px; margin-top: 4px; font-size: var(--text-sm); }
.chart-key i { display: inline-block; width: 14px; height: 3px; margin: 0 5px 3px 0; vertical-align: middle; }
.chart-key b { font-weight: 500; margin-left: 5px; }
"""


# Gradio 6 makes a tab's components on its first visit, which then costs 0.04-0.08 s of the browser's main
# thread; a tab made before stays made, and switching back to it costs ~0.02 s. Once the page is idle, every
# top-level tab is made in one go: one synchronous round of clicks on the tab buttons, ending on the tab shown,
# so the browser paints nothing in between and sends the server nothing; the focus, a text selection and the
# scroll are put back (tabs Gradio moved into its overflow menu on a narrow screen are made on their first
# visit). It costs the page ~0.3 s once, after it is shown (measured in bench/page_weight.py).
MAKE_EVERY_TAB_JS = """() => {
  const make = () => {
    const nav = document.getElementById('studio-tabs');
    const buttons = nav ? [...nav.querySelectorAll('button[role=tab]')].filter(b => b.closest('.tabs') === nav) : [];
    const shown = buttons.find(b => b.getAttribute('aria-selected') === 'true');
    if (shown) {
      const focused = document.activeElement, x = window.scrollX, y = window.scrollY;
      const range = focused && typeof focused.selectionStart === 'number' ? [focused.selectionStart, focused.selectionEnd] : null;
      for (const button of buttons) if (button !== shown) button.click();
      shown.click();
      if (focused && focused !== document.activeElement && focused.focus) {
        focused.focus({preventScroll: true});
        if (range) try { focused.setSelectionRange(...range); } catch (error) {}
      }
      window.scrollTo(x, y);
    }
    document.body.dataset.everyTabMade = 'true';
  };
  const whenIdle = window.requestIdleCallback || ((callback) => setTimeout(callback, 1));
  setTimeout(() => whenIdle(make, {timeout: 2000}), 500);
  return [];
}"""


def open_tab(tabs: gr.Tabs, tab_id: str, inputs: list | None = None, when: str = "true") -> dict:
    """Arguments for a js-only event step that selects tab `tab_id` (chain it with `.then(**…)`), if the JS
    expression `when` over the values of `inputs` (named a, b, …) holds. The browser switches tabs itself, so
    the Tabs never become a server event's output, which would make the browser walk the whole page at every
    later status message."""
    names = ", ".join("abcdefgh"[: len(inputs or [])])
    return {"fn": None, "inputs": inputs, "outputs": [tabs],
            "js": f"({names}) => ({when}) ? {{__type__: 'update', selected: '{tab_id}'}} : {{__type__: 'update'}}"}


@for_viewers
def relabel(ctx: UIContext, lang_choice: str):
    """The page's texts in the chosen language: an update for each of ctx.localizer.components()."""
    return ctx.localizer.relabel(lang_choice)


# The language this browser chose last time, when it is one of the page's and not English (else no change)
RESTORE_LANGUAGE_JS = ("(saved) => [%s.includes(saved) && saved !== 'English' ? saved : {__type__: 'update'}]"
                       % json.dumps(list(LANGUAGES), ensure_ascii=False))


def on_chat_with_run(ctx: UIContext, run_id: str, lang_choice: str):
    """The Chat tab's run picker with the runs that can answer, on `run_id`."""
    return gr.update(choices=chattable_runs(ctx, lang_code(lang_choice)), value=run_id)


@for_viewers
def on_role(ctx: UIContext, note_count: int, lang_choice: str, request: gr.Request):
    """For a viewer's page: "viewer" for the page's role box, the banner, and the note for each of the
    `note_count` closed tabs; nothing changed for the operator's."""
    if not ctx.is_viewer(request):
        return [gr.skip()] * (2 + note_count)
    lang = lang_code(lang_choice)
    banner_text = t("viewer.banner", lang, user=request.username)
    return ["viewer", gr.update(value=banner_text, visible=True), *[t("viewer.closed_tab", lang)] * note_count]


def build_app(workspace: Workspace, viewers: Iterable[str] = ()) -> gr.Blocks:
    """Build the whole UI over `workspace`: Data, Model, Train, Chat and Runs tabs and the language switch."""
    ctx = UIContext(workspace=workspace, viewers=frozenset(viewers))
    L = ctx.localizer
    with gr.Blocks(title="Fine-tuning Studio") as app:
        quiet_progress = gr.HTML("", visible=False, elem_id="quiet-progress", padding=False)
        with gr.Row():
            with gr.Column(scale=4):
                L.add(gr.Markdown(t("title")), "title")
                L.add(gr.Markdown(t("subtitle")), "subtitle")
            ctx.language = L.add(
                gr.Radio(choices=list(LANGUAGES), value="English", label=t("language"), scale=1, elem_id="language"), "language"
            )
        banner = gr.Markdown("", visible=False, elem_id="viewer-banner")
        # Tab headers cannot be hidden after the page is built (Gradio 6), so for a viewer the Data, Model,
        # Chat, Compare, Evaluate and Export tabs show a read-only note instead of their controls.
        closed: list[tuple[gr.Tab, gr.Markdown, gr.Column]] = []  # (tab, its note, its controls)
        with gr.Tabs(elem_id="studio-tabs") as tabs:
            ctx.shared["tabs"] = tabs
            ctx.shared["open_tab"] = lambda tab_id, inputs=None, when="true": open_tab(tabs, tab_id, inputs, when)
            with L.add(gr.Tab(t("tab.data"), id="data"), "tab.data") as data_tab:
                data_note = gr.Markdown("", elem_classes="viewer-note")
                with gr.Column() as data_body:
                    data = create_data_tab(ctx)
            with L.add(gr.Tab(t("tab.model"), id="model"), "tab.model") as model_tab:
                model_note = gr.Markdown("", elem_classes="viewer-note")
                with gr.Column() as model_body:
                    model = create_model_tab(ctx)
            with L.add(gr.Tab(t("tab.train"), id="train"), "tab.train"):
                train = create_train_tab(ctx)
            with L.add(gr.Tab(t("tab.chat"), id="chat"), "tab.chat") as chat_tab:
                chat_note = gr.Markdown("", elem_classes="viewer-note")
                with gr.Column() as chat_body:
                    chat = create_chat_tab(ctx)
            closed += [(data_tab, data_note, data_body), (model_tab, model_note, model_body), (chat_tab, chat_note, chat_body)]
            with L.add(gr.Tab(t("tab.compare"), id="compare"), "tab.compare") as compare_tab:
                compare_note = gr.Markdown("", elem_classes="viewer-note")
                with gr.Column() as compare_body:
                    compare = create_compare_tab(ctx)
            closed.append((compare_tab, compare_note, compare_body))
            with L.add(gr.Tab(t("tab.eval"), id="eval"), "tab.eval") as eval_tab:
                eval_note = gr.Markdown("", elem_classes="viewer-note")
                with gr.Column() as eval_body:
                    evaluator = create_eval_tab(ctx)
            closed.append((eval_tab, eval_note, eval_body))
            with L.add(gr.Tab(t("tab.runs"), id="runs"), "tab.runs") as runs_tab:
                runs = create_runs_tab(ctx)
            with L.add(gr.Tab(t("tab.export"), id="export"), "tab.export") as export_tab:
                export_note = gr.Markdown("", elem_classes="viewer-note")
                with gr.Column() as export_body:
                    exporter = create_export_tab(ctx)
            closed.append((export_tab, export_note, export_body))

        # the language is remembered in this browser (localStorage) and comes back with the next visit
        remembered = gr.BrowserState("English", storage_key="studio-language")

        # both in the browser, with no server event: the page opens in English, and only another language is set
        app.load(None, [remembered], [ctx.language], js=RESTORE_LANGUAGE_JS)
        ctx.language.change(None, [ctx.language], [remembered], js="(choice) => [choice]")
        ctx.language.change(bind(relabel, ctx), [ctx.language], L.components())
        ctx.language.change(None, [ctx.language], L.containers(), js=L.containers_js())
        data["wire"]()  # the token report and mask view need the Model tab's model and the Train tab's cutoff
        wire_estimate_panel(ctx, model["estimate"])  # the estimate reads the Train tab's controls; fixes write to them

        # One click from a finished run to chatting with it.
        chat_with_run = bind(on_chat_with_run, ctx)
        train["chat_button"].click(chat_with_run, [train["watched"], ctx.language], [chat["run"]]).then(
            **open_tab(tabs, "chat")).then(
            chat["on_load"], [chat["run"], chat["base"], ctx.language], [chat["status"], chat["chatbot"], chat["system"]]
        )

        # A viewer login sees the live view and the runs, and no control that changes anything. The server says
        # who is looking (with the banner and the closed tabs' notes); the browser then hides the operator's
        # controls and opens the Train tab in a js-only step: a container that is a server event's output
        # makes the browser walk all of its children at every later status message of any event.
        role = gr.Textbox(visible=False, elem_id="page-role")
        notes = [note for _tab, note, _body in closed]
        hidden_for_viewer = [*ctx.operator_only, *(body for _tab, _note, body in closed)]

        hide_js = ("(role) => role === 'viewer' ? [...Array(%d).fill({__type__: 'update', visible: false}), "
                   "{__type__: 'update', selected: 'train'}] : []") % len(hidden_for_viewer)

        app.load(bind(on_role, ctx, len(notes)), [ctx.language], [role, banner, *notes], show_progress="hidden").then(
            None, [role], [*hidden_for_viewer, tabs], js=hide_js)
        app.load(**train["collect_form"]).then(**train["page_load"]).then(**train["follow_run"])
        app.load(**train["sync_pickers"], api_name="module_picker_names")  # the model's layer names in the module pickers
        model["imported"].then(**train["sync_pickers"])  # and the imported model's
        # Each tab's visit brings it up to date (runs finished or started from the command line since the page
        # opened, an export done, a served model) and costs the page no server event when nothing changed.
        quiet = {"show_progress": "hidden"}
        runs_visit = refresh_on_visit(ctx, app, runs_tab, "runs", runs["visit"])
        # the page's own refreshes show no progress: a progress target is looked up at every later status message
        listed_at_start = runs_visit.recording(runs["visit"].handler)
        for start in (train["start"], train["start_anyway"]):
            start.click(listed_at_start, runs["visit"].inputs, [*runs["visit"].outputs, runs_visit.shown], **runs_visit.event)
        refresh_on_visit(ctx, app, chat_tab, "chat_runs", TabRefresh(chat["on_refresh"], [ctx.language], [chat["run"]], quiet))
        refresh_on_visit(ctx, app, compare_tab, "compare_runs",
                         TabRefresh(compare["on_refresh"], [ctx.language], [compare["run_a"], compare["run_b"]], quiet))
        refresh_on_visit(ctx, app, eval_tab, "eval_runs", evaluator["visit"])
        refresh_on_visit(ctx, app, export_tab, "export_runs", exporter["visit"])  # the export and the served model
        open_visits(ctx, app)
        app.load(None, js=MAKE_EVERY_TAB_JS)
        forget_after_other_writers(ctx, app)
    show_progress_on_first_output(app, quiet_progress)
    hoist_unseen(app, quiet_progress, [ctx.shared["form_snapshot"], role, *ctx.shared["unseen"]])
    return app


def hoist_unseen(app: gr.Blocks, first: gr.components.Component, hidden: list[gr.components.Component]) -> None:
    """Move every State and BrowserState of `app`, and the `hidden` components (never shown), to the top of the
    page's layout, right after `first`; where they are in the layout changes nothing a user sees.

    Gradio's browser remembers each component that was ever an input or a progress target of an event, and at
    every status message of any event it looks each one up by a walk of the layout that stops where the
    component is found. A state made in the Train tab, or a hidden box at the end of the page, cost a walk of most
    of the page's ~730 components per message; at the top, a few steps."""
    moving = [block for block in app.blocks.values() if isinstance(block, (gr.State, gr.BrowserState))] + hidden
    for block in moving:
        block.parent.children.remove(block)
        block.parent = app
    at = app.children.index(first) + 1
    app.children[at:at] = moving


def show_progress_on_first_output(app: gr.Blocks, quiet_progress: gr.components.Component) -> None:
    """Every event of `app` that shows its progress on all its outputs shows it on its first output only, and
    every event that shows no progress keeps its progress on `quiet_progress`, a hidden component first on the page.

    Gradio's browser side remembers each component that ever showed an event's progress, and at every status
    message of any event it looks each one up by a walk of the page that stops where the component is found:
    with every output a progress target, a tab switch cost the browser up to a second. The first output is where
    a handler puts its message, if any; a quiet event (a refresh, a timer's tick) needs no progress target of its
    own, and the one it shares is found at the first step of the walk."""
    for block_fn in app.fns.values():
        if block_fn.show_progress == "hidden" and block_fn.outputs:
            block_fn.show_progress_on = [quiet_progress]
        elif block_fn.show_progress_on is None and len(block_fn.outputs) > 1:
            block_fn.show_progress_on = [block_fn.outputs[0]]
