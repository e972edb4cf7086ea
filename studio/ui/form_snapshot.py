"""The Train form's values travel to the server as one JSON object, gathered in the browser.

Gradio's page keeps a loading status for every input of every server event that has run, and at each later
status message of any event it looks every one of them up with a walk of the page. An event that read the
form's ~85 controls directly made every tab switch and every click cost the browser a walk per control from
then on. So each form event is two steps: a js-only step (no server call, no loading status) writes
{config key: value} into one hidden text box, then the server handler reads that box.

Over the API the same box takes any subset of the keys; the rest keep the form's starting values.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr


def snapshot_box() -> gr.Textbox:
    """The hidden text box that carries the form's values (create it where the form is built)."""
    return gr.Textbox("{}", visible=False, elem_id="train-form-snapshot")


def collect_step(controls: list, keys: list[str], box: gr.Textbox) -> dict:
    """Keyword arguments for a js-only event step that writes the `controls`' values (one per config key in
    `keys`) into `box` as a JSON object; chain the server handler that reads the box with `.then`."""
    js = f"(...values) => JSON.stringify(Object.fromEntries({json.dumps(keys)}.map((key, i) => [key, values[i]])))"
    return {"fn": None, "inputs": controls, "outputs": [box], "js": js, "show_progress": "hidden"}


def read_snapshot(text: str | None, starting: dict[str, Any]) -> dict[str, Any]:
    """The form's values from the box's JSON `text`: every key of `starting`, with the ones the text names
    replaced. Raises gr.Error naming what is wrong when the text is not a JSON object of known keys."""
    try:
        sent = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise gr.Error(f"The form's values are not valid JSON ({error.msg} at character {error.pos}): send an object of config keys") from None
    if not isinstance(sent, dict):
        raise gr.Error("The form's values must be a JSON object of config keys, e.g. {\"max_steps\": 3}")
    unknown = sorted(set(sent) - set(starting))
    if unknown:
        raise gr.Error(f"Unknown config key(s): {', '.join(unknown)}. The keys are those of `python -m studio train`.")
    return {**starting, **sent}
