"""What each browser event costs the page: Gradio's browser side looks up, at every status message of any event,
every component that ever showed an event's progress (and each of a container's children). The app keeps that
set small: an event shows its progress on one component, and never on a container holding a part of the page."""

from __future__ import annotations

import gradio as gr
from gradio.blocks import BlockContext

from studio.ui import build_app
from studio.workspace import Workspace

LARGEST_CONTAINER_TARGET = 4  # components under a container that may show an event's progress (a confirm row)


def _descendants(block) -> int:
    children = getattr(block, "children", None) or []
    return len(children) + sum(_descendants(child) for child in children)


def test_every_server_event_shows_its_progress_on_one_small_component(tmp_path):
    app = build_app(Workspace(tmp_path / "ws"))
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


def test_an_event_that_sets_its_own_progress_target_keeps_it(tmp_path):
    with gr.Blocks() as app:
        a, b, c = gr.Textbox(), gr.Textbox(), gr.Textbox()
        a.change(lambda x: (x, x), a, [b, c], show_progress_on=[c])
        a.submit(lambda x: (x, x), a, [b, c])
    from studio.ui import show_progress_on_first_output

    show_progress_on_first_output(app)
    change, submit = app.fns.values()
    assert change.show_progress_on == [c] and submit.show_progress_on == [b]
