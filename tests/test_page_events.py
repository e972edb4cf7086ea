"""What each browser event costs the page: Gradio's browser side looks up, at every status message of any event,
every component that ever showed an event's progress or was an input of a server event that ran (and each of a
container's children), each by a walk of the page. The app keeps that set small: an event shows its progress on
one component, never on a container holding a part of the page; a quiet event on one hidden component first on the
page; and no server event reads more than a dozen inputs (the Train form's values come as one JSON text)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import gradio as gr
import pytest
from gradio.blocks import BlockContext

from studio.ui import build_app
from studio.ui.visits import records_into
from studio.workspace import Workspace

LARGEST_CONTAINER_TARGET = 4  # components under a container that may show an event's progress (a confirm row)
MOST_INPUTS = 12  # inputs a server event may read (Chat's send reads its message and the generation settings)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return build_app(Workspace(tmp_path_factory.mktemp("page-events") / "ws"))


def _descendants(block) -> int:
    children = getattr(block, "children", None) or []
    return len(children) + sum(_descendants(child) for child in children)


def test_every_server_event_shows_its_progress_on_one_small_component(app):
    server_events = [fn for fn in app.fns.values() if fn.fn is not None]
    assert len(server_events) > 50
    for fn in server_events:
        targets = fn.show_progress_on or fn.outputs
        assert len(targets) <= 1, f"{fn.name} shows its progress on {len(targets)} components"
        for target in targets:
            if isinstance(target, BlockContext) and not isinstance(target, gr.HTML):
                assert _descendants(target) <= LARGEST_CONTAINER_TARGET, (
                    f"{fn.name} shows its progress on {type(target).__name__} {target.elem_id}, which holds "
                    f"{_descendants(target)} components")


def test_no_server_event_reads_the_whole_train_form(app):
    for fn in app.fns.values():
        if fn.fn is not None:
            assert len(fn.inputs) <= MOST_INPUTS, f"{fn.name} reads {len(fn.inputs)} components"
    start = next(fn for fn in app.fns.values() if fn.api_name == "start")
    assert [getattr(c, "elem_id", None) for c in start.inputs][0] == "train-form-snapshot"


def test_quiet_events_share_one_progress_target_first_on_the_page(app):
    quiet = [fn for fn in app.fns.values() if fn.fn is not None and fn.show_progress == "hidden" and fn.outputs]
    assert len(quiet) > 10
    assert {target.elem_id for fn in quiet for target in fn.show_progress_on} == {"quiet-progress"}
    first = app.get_config_file()["layout"]["children"][0]["id"]
    assert next(c for c in app.blocks.values() if getattr(c, "elem_id", None) == "quiet-progress")._id == first


def _load_steps(app) -> set[int]:
    """The ids of the page-load events and of every step chained after them."""
    steps = {fn._id for fn in app.fns.values() if any(event == "load" for _block, event in fn.targets)}
    while True:
        more = {fn._id for fn in app.fns.values() if fn.trigger_after in steps} - steps
        if not more:
            return steps
        steps |= more


def test_a_page_load_event_sets_a_train_setting_only_in_turn_with_the_users_own_events(app):
    # a page-load event carries the values the page opened with and may answer after the user's first clicks (a
    # model picked at once got the first model's target modules back): every event that sets the module picker
    # waits its turn in one queue, so the page load's, sent first, is answered first
    served = {getattr(c, "elem_id", None): c for c in app.blocks.values()}
    picker = served["train-lora_targets"]
    setting_picker = [fn for fn in app.fns.values() if fn.fn is not None and picker in fn.outputs
                      and fn.name != "relabel"]  # the language switch's relabel sets labels, never a value
    assert len(setting_picker) >= 5  # page load, model picked, Load config, preset, clone, GGUF import
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in setting_picker} == {("module-pickers", 1)}
    # and no other page-load step sets anything the user may already have changed in the Train form
    settings = {elem_id for elem_id in served if elem_id and elem_id.startswith("train-") and elem_id != "train-form-snapshot"}
    kinds = (gr.Dropdown, gr.Radio, gr.Number, gr.Checkbox, gr.Textbox, gr.Slider)
    loads = _load_steps(app)
    written = {getattr(out, "elem_id", None) for fn in app.fns.values() if fn._id in loads and fn not in setting_picker
               for out in fn.outputs}
    assert not {e for e in written & settings if isinstance(served[e], kinds)}


def test_the_form_checks_that_draw_its_problems_answer_in_turn(app):
    # the page load checks the settings it opened with: answering after a user's change, it would clear the
    # problem that change showed
    problem_lines = {c for c in app.blocks.values() if re.fullmatch(r"train-(\w+-problem|problems)", getattr(c, "elem_id", None) or "")}
    assert len(problem_lines) > 50
    drawing = [fn for fn in app.fns.values() if fn.fn is not None and problem_lines & set(fn.outputs)]
    assert {fn.name for fn in drawing} >= {"on_page_load", "on_validate", "on_switch", "on_preview"}
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in drawing} == {("train-checks", 1)}


def test_the_export_tabs_run_follows_the_users_pick_whatever_answers_late(app):
    # the page load (and a visit) propose the newest run; a user who picked another before that answer came has the
    # pick answered after it (one queue, first in first out), and that answer puts the picked run back
    run = next(c for c in app.blocks.values() if getattr(c, "elem_id", None) == "export-run")
    setting_run = [fn for fn in app.fns.values() if fn.fn is not None and run in fn.outputs and fn.name != "relabel"]
    assert {fn.name for fn in setting_run} >= {"on_page_open", "on_refresh", "on_run"}
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in setting_run} == {("export-run", 1)}
    pick = next(fn for fn in setting_run if any(block == run._id and event == "input" for block, event in fn.targets))
    assert pick.outputs[0] is run and pick.inputs[0] is run


def test_the_served_models_status_answers_in_turn_with_the_tabs_refreshes(app):
    # a visit's refresh sent just before Stop, answering after it, showed the server as serving (or took the
    # "Stopped serving" line away): every event that sets the status shares the Export tab's one queue
    status = next(c for c in app.blocks.values() if getattr(c, "elem_id", None) == "serve-status")
    setting = [fn for fn in app.fns.values() if fn.fn is not None and status in fn.outputs and fn.name != "relabel"]
    assert {fn.name for fn in setting} >= {"on_page_open", "on_refresh", "on_serve", "on_serve_tick", "on_stop"}
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in setting} == {("export-run", 1)}


def test_an_event_that_sets_its_own_progress_target_keeps_it(tmp_path):
    with gr.Blocks() as app:
        a, b, c, sink = gr.Textbox(), gr.Textbox(), gr.Textbox(), gr.HTML(visible=False)
        a.change(lambda x: (x, x), a, [b, c], show_progress_on=[c])
        a.submit(lambda x: (x, x), a, [b, c])
        a.blur(lambda x: (x, x), a, [b, c], show_progress="hidden")
    from studio.ui import show_progress_on_first_output

    show_progress_on_first_output(app, sink)
    change, submit, blur = app.fns.values()
    assert change.show_progress_on == [c] and submit.show_progress_on == [b] and blur.show_progress_on == [sink]


def test_every_handler_is_a_named_module_level_function(app):
    """A handler can be read, tested and found by its endpoint name: none is a closure built with the page or a
    lambda (Gradio would name its endpoint lambda_3)."""
    for fn in app.fns.values():
        handler = fn.fn
        if handler is None or handler.__module__ == "builtins":
            continue
        where = f"{handler.__module__}.{handler.__qualname__} (endpoint {fn.api_name})"
        assert handler.__module__.startswith("studio.ui") and handler.__name__ != "<lambda>", where
        assert handler.__qualname__ == handler.__name__, f"{where} is defined inside another function"
        assert callable(getattr(sys.modules[handler.__module__], handler.__name__, None)), f"{where} is not in its module"


def test_a_visit_to_evaluate_brings_its_runs_and_the_picked_runs_latest_evaluation(tmp_path):
    """The Evaluate tab's refresh (as a page opens and at a visit that finds something new): the run list as it
    is now and the picked run's latest evaluation; the fingerprint a visit compares changes with either."""
    from studio import config as cfg
    from studio.eval import job
    from studio.ui import eval_tab
    from studio.ui.context import UIContext
    from studio.ui.visits import fingerprint

    ctx = UIContext(Workspace(tmp_path / "ws"))
    empty = eval_tab.on_visit(ctx, None, "English")
    assert empty[0]["choices"] == [] and empty[1] is None  # no run, no evaluation

    run_dir = ctx.workspace.runs_dir / "20260101-000000-demo-abcd"
    (run_dir / "adapter").mkdir(parents=True)  # a run with weights: one Evaluate can answer with
    (run_dir / "config.yaml").write_text(cfg.to_yaml(ctx.initial), encoding="utf-8")
    listed = eval_tab.on_visit(ctx, run_dir.name, "English")
    assert [run_id for _label, run_id in listed[0]["choices"]] == [run_dir.name] and listed[1] is None
    assert fingerprint(listed) != fingerprint(empty)
    assert fingerprint(eval_tab.on_visit(ctx, run_dir.name, "English")) == fingerprint(listed)  # nothing new

    finished = run_dir / job.EVAL_DIR / "20260101-000100"
    finished.mkdir(parents=True)
    (finished / job.PROGRESS_FILE).write_text('{"state": "completed", "done": 2, "total": 2}', encoding="utf-8")
    evaluated = eval_tab.on_visit(ctx, run_dir.name, "English")
    _list, folder, progress, *_rest = evaluated
    assert folder == finished and "data-state='completed'" in progress
    assert fingerprint(evaluated) != fingerprint(listed)


def test_a_fingerprint_tells_apart_whatever_the_page_would_show_differently():
    """Two answers a page would show differently never share a fingerprint (a visit would then keep stale data);
    the same answer always has the same one (else every visit would send an event)."""
    import pandas as pd

    from studio.ui.visits import fingerprint

    table = pd.DataFrame({"run": ["a", "b"], "loss": [1.5, 0.25]})
    answer = [gr.update(choices=[("a · running", "a")]), "folder", gr.Timer(active=False), table, gr.skip(), None]
    assert fingerprint(answer) == fingerprint([gr.update(choices=[("a · running", "a")]), "folder",
                                               gr.Timer(active=False), table.copy(), gr.skip(), None])
    changed = [
        [gr.update(choices=[("a · completed", "a")]), *answer[1:]],
        [answer[0], "folder ", *answer[2:]],
        [*answer[:2], gr.Timer(active=True), *answer[3:]],
        [*answer[:3], pd.DataFrame({"run": ["a", "b"], "loss": [1.5, 0.26]}), *answer[4:]],
        [*answer[:4], "", None],
        [*answer[:5], float("nan")],
    ]
    assert len({fingerprint(answer), *map(fingerprint, changed)}) == 1 + len(changed)
    unreadable = [object()]  # a value it cannot read exactly: never taken as unchanged
    assert fingerprint(unreadable) != fingerprint(unreadable)


def test_each_tab_visit_asks_for_a_fingerprint_and_sends_its_refresh_only_on_a_change(app):
    """The tabs whose visit brings them up to date select through a js-only step (no server event of its own),
    and each has a fingerprint endpoint outside the queue whose handler is the refresh's own."""
    visits = [fn for fn in app.fns.values() if fn.fn is None and fn.js and "/run/" in fn.js and "_fingerprint" in fn.js]
    names = sorted(fn.js.split("/run/")[1].split("`")[0] for fn in visits)
    assert names == ["chat_runs_fingerprint", "compare_runs_fingerprint", "eval_runs_fingerprint",
                     "export_runs_fingerprint", "runs_fingerprint"]
    endpoints = {fn.api_name: fn for fn in app.fns.values() if fn.api_name in names}
    assert sorted(endpoints) == names and not any(fn.queue for fn in endpoints.values())
    for visit in visits:
        assert [trigger for _block, trigger in visit.targets] == ["select"]


def test_a_download_shown_again_is_the_same_file_until_the_file_changes(tmp_path):
    """The Evaluate and Export tabs offer a finished file for download: showing it again (a visit, a poll) gives
    the same address and makes no new copy, so the page is not redrawn for nothing; a changed file gets a new one."""
    import os

    from studio.ui.export_panel import downloadable

    result = tmp_path / "results.csv"
    result.write_text("prompt,answer\nhi,hello\n", encoding="utf-8")
    first = downloadable(result)
    assert downloadable(result) == first and Path(first).read_text(encoding="utf-8") == result.read_text(encoding="utf-8")
    result.write_text("prompt,answer\nhi,hello there\n", encoding="utf-8")
    os.utime(result, ns=(1, 1))  # a changed file, whatever the clock's resolution
    changed = downloadable(result)
    assert changed != first and Path(changed).read_text(encoding="utf-8").endswith("hello there\n")


def test_every_event_that_sets_what_a_visit_refreshes_records_or_forgets_its_fingerprint(app):
    """A visit sends nothing when the refresh would answer what the page last got from it; an event that changes
    the same outputs another way (a Refresh, a filter, Serve, an export's poll) must make the next visit look
    again, or the tab would keep what that event showed (a stopped server still shown as serving)."""
    forgets: dict[int, set[int]] = {}  # event → the fingerprint boxes emptied after it
    for fn in app.fns.values():
        if fn.fn is None and fn.js == "() => ''":
            forgets.setdefault(fn.trigger_after, set()).add(fn.outputs[0]._id)
    shown_boxes = {}
    for fn in app.fns.values():
        if len(records_into(fn.fn)) == 1:  # a visit's own events (the page's opening records them all at once)
            (shown,) = records_into(fn.fn)
            shown_boxes.setdefault(shown, set()).update(block._id for block in fn.outputs if block._id != shown)
    assert len(shown_boxes) == 5  # Chat, Compare, Evaluate, Runs, Export
    for fn in app.fns.values():
        for shown, outputs in shown_boxes.items():
            if outputs & {block._id for block in fn.outputs} and shown not in records_into(fn.fn):
                assert shown in forgets.get(fn._id, set()), (
                    f"{getattr(fn.fn, '__name__', fn.js)} ({fn.api_name}) changes a visit's outputs and leaves its fingerprint")


def test_a_page_opening_does_not_start_a_timer_that_a_visit_would():
    """A tab made as the page opens but never visited does not poll: the opening's answer leaves a timer as it is
    (and so differs from a visit's, which starts it at the first visit)."""
    from studio.ui.visits import fingerprint, recording_handler

    def view():
        return ["running", gr.Timer(active=True)]

    shown = gr.Textbox()
    opened = recording_handler(view, 2, shown, timers_left_off=True)()
    visited = recording_handler(view, 2, shown)()
    assert opened[1] == gr.skip() and isinstance(visited[1], gr.Timer)
    assert opened[2] != visited[2] == fingerprint(view())


def test_the_page_opens_every_visit_in_one_event_that_records_each_fingerprint():
    """One server event as the page opens brings every visit's tab up to date (each event costs the browser's
    opening 0.02 s) and records each fingerprint, so a first visit with nothing new sends nothing; a handler that
    wants the request gets it, and a viewer gets no change from an opening that is not for viewers."""
    from types import SimpleNamespace

    from studio.ui.context import UIContext, for_viewers
    from studio.ui.visits import TabRefresh, fingerprint, open_visits, refresh_on_visit

    seen_requests = []

    @for_viewers
    def runs_view(lang):
        return [f"runs in {lang}", "newest"]

    def export_view(request: gr.Request, lang):
        seen_requests.append(request)
        return f"export in {lang}"

    ctx = UIContext(workspace=None, viewers=frozenset({"guest"}))
    with gr.Blocks() as app:
        lang = gr.Textbox("en")
        with gr.Tab("Runs") as runs_tab:
            table, pick = gr.Textbox(), gr.Textbox()
        with gr.Tab("Export") as export_tab:
            status = gr.Textbox()
        runs = refresh_on_visit(ctx, app, runs_tab, "runs", TabRefresh(runs_view, [lang], [table, pick]))
        export = refresh_on_visit(ctx, app, export_tab, "export", TabRefresh(export_view, [lang], [status]))
        open_visits(ctx, app)
    (opening,) = [fn for fn in app.fns.values() if any(trigger == "load" for _block, trigger in fn.targets)]
    assert opening.outputs == [table, pick, runs.shown, status, export.shown]
    assert records_into(opening.fn) == {runs.shown._id, export.shown._id}

    operator = SimpleNamespace(username="admin")
    answer = opening.fn(operator, "en", "en")
    assert answer == ["runs in en", "newest", fingerprint(["runs in en", "newest"]), "export in en", fingerprint(["export in en"])]
    assert seen_requests == [operator]
    viewer = opening.fn(SimpleNamespace(username="guest"), "zh", "zh")
    assert viewer[:2] == ["runs in zh", "newest"] and viewer[3] == gr.skip() and len(seen_requests) == 1


GROWING_TEXT = {"chat-input", "compare-system", "train-cli", "export-ollama-cmd", "export-vllm", "export-sglang"}


def test_a_one_line_field_is_an_input_that_the_page_never_measures(app):
    """Gradio draws a one-line Textbox as a text area that grows to 20 lines, measuring it (a forced layout of the
    page) whenever its value changes; fields meant for one line say max_lines=1 and are drawn as an <input>. Only
    a chat message, a system prompt and the commands shown to copy grow (a password box is an <input> anyway)."""
    grown = {box.elem_id for box in app.blocks.values()
             if isinstance(box, gr.Textbox) and box.visible is not False and box.type == "text" and box.lines == 1
             and box.max_lines != 1}
    assert grown == GROWING_TEXT
