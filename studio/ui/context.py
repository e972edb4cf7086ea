"""What every tab builder receives: the workspace, the localizer, the language selector, shared components."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from studio import config as cfg
from studio.models.catalog import recommended_overrides
from studio.ui.locales import Localizer
from studio.workspace import Workspace


@dataclass
class LoadedChat:
    """The one model loaded for chatting (shared by all browser sessions; one at a time)."""

    model: Any = None
    run_id: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class UIContext:
    workspace: Workspace
    localizer: Localizer = field(default_factory=Localizer)
    language: Any = None  # the language selector; an input to handlers that produce text
    shared: dict[str, Any] = field(default_factory=dict)  # components other tabs read, by name
    chat: LoadedChat = field(default_factory=LoadedChat)
    initial: cfg.RunConfig = field(default_factory=lambda: initial_config())


def initial_config() -> cfg.RunConfig:
    """The values the controls start with: defaults plus the catalog's recommendations for the default model."""
    defaults = cfg.RunConfig()
    return cfg.apply_overrides(defaults, recommended_overrides(defaults.model.model))
