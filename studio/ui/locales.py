"""The page's two languages: `t` gives a text in English or 简体中文 (studio/ui/strings.py holds them), and the
Localizer relabels the page when the language changes."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
from gradio.blocks import BlockContext

from studio import config as cfg
from studio.ui.strings import TEXT

LANGUAGES = {"English": "en", "简体中文": "zh"}


def t(key: str, lang: str = "en", **values: Any) -> str:
    """The text for `key` in language `lang` ("en" or "zh"), with `{placeholders}` filled in."""
    english, chinese = TEXT[key]
    text = chinese if lang == "zh" else english
    return text.format(**values) if values else text


def lang_code(choice: str | None) -> str:
    """The language code for the value of the language selector."""
    return LANGUAGES.get(choice or "", "en")


def field_label(key: str, lang: str = "en") -> str:
    """The label of config field `key`; a field with no `field.<key>` entry yet is labelled by its key."""
    return t(f"field.{key}", lang) if f"field.{key}" in TEXT else key.replace("_", " ").capitalize()


def field_help(key: str, lang: str = "en") -> str:
    """A config field's help text, from its metadata in studio/config.py."""
    metadata = cfg.field_info(key).metadata
    return metadata["help_zh"] if lang == "zh" else metadata["help"]


class Localizer:
    """Remembers which text key labels each component, so the whole page can be relabelled at once."""

    def __init__(self) -> None:
        self.entries: list[tuple[Any, str, str | None, dict[str, Any]]] = []
        self.choice_labels: dict[int, Any] = {}  # id(component) -> function(lang) -> its (label, value) choices

    def add(self, component: Any, key: str, info_field: str | None = None, choices: Any = None, **values: Any) -> Any:
        """Register `component` as labelled by `key` (with `{placeholders}` filled from `values`) and, for
        config fields, info from `info_field`; `choices(lang)` gives a radio's or dropdown's (label, value)
        choices in that language, relabelled with the rest."""
        self.entries.append((component, key, info_field, values))
        if choices is not None:
            self.choice_labels[id(component)] = choices
        return component

    def field(self, key: str) -> dict[str, str]:
        """Constructor keywords (English label and info) for the control of config field `key`."""
        return {"label": field_label(key), "info": field_help(key)}

    def components(self) -> list[Any]:
        """Every registered component that is not a container, in registration order (the outputs of the
        language switch's server step)."""
        return [entry[0] for entry in self.entries if not _is_container(entry[0])]

    def containers(self) -> list[Any]:
        """The registered tabs, accordions and other containers, in registration order: the browser relabels
        them itself (containers_js), since a container that is a server event's output makes the browser walk
        all of its children at every later status message."""
        return [entry[0] for entry in self.entries if _is_container(entry[0])]

    def relabel(self, choice: str) -> list[Any]:
        """Updates that put every registered component's text (containers aside) into the chosen language."""
        lang = lang_code(choice)
        updates = []
        for component, key, info_field, values in self.entries:
            if _is_container(component):
                continue
            if info_field:
                updates.append(gr.update(label=field_label(info_field, lang), info=field_help(info_field, lang)))
                continue
            text = t(key, lang, **values)
            if isinstance(component, (gr.Button, gr.Markdown)):
                updates.append(gr.update(value=text))
            elif id(component) in self.choice_labels:
                updates.append(gr.update(label=text, choices=self.choice_labels[id(component)](lang)))
            else:
                updates.append(gr.update(label=text))
        return updates

    def containers_js(self) -> str:
        """A js-only handler of the language switch that relabels the containers, in every language at once."""
        labels = {choice: [t(key, code, **values) for component, key, _info, values in self.entries if _is_container(component)]
                  for choice, code in LANGUAGES.items()}
        return (f"(choice) => ({json.dumps(labels, ensure_ascii=False)}[choice] || [])"
                ".map(label => ({__type__: 'update', label: label}))")


def _is_container(component: Any) -> bool:
    return isinstance(component, BlockContext)
