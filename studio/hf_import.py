"""transformers imported once, under a lock, before any thread of the studio's server uses it.

While `import transformers` runs, transformers puts a lazy module of its own in sys.modules, so Python's import
lock no longer makes a second thread wait for the import to finish: a thread that imports a name from it
meanwhile gets "cannot import name 'AutoTokenizer' from 'transformers'". The server answers in several threads
at once (a page load asks for a model's layer names and a dataset's token counts together; an export runs beside
the page's own events), so code the server runs calls `import_transformers()` before it imports from
transformers, or from peft, which imports it.
"""

from __future__ import annotations

import importlib
import threading

_LOCK = threading.Lock()
_imported = False


def import_transformers() -> None:
    """Import transformers' top level once: the first caller imports it, callers meanwhile wait, later calls
    return at once. Its classes load lazily afterwards, which is safe from any thread."""
    global _imported
    if _imported:
        return
    with _LOCK:
        if not _imported:
            importlib.import_module("transformers")
            _imported = True
