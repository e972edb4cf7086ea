"""The one place YAML is parsed: PyYAML's safe loader, bounded in size, nesting and alias expansion.

A few hundred bytes of YAML can describe a billion values through aliases ("billion laughs"): PyYAML shares
the aliased objects, so parsing is quick, but whoever walks the result (validation, JSON for the browser)
walks every copy. Before anything is constructed, the composed node graph is measured as if every alias were
expanded, and a document past the limits is refused with a YamlError that names the file, the line and
what to change. Tags beyond the safe ones (`!!python/...`) are refused by the safe loader itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_YAML_BYTES = 1_000_000  # a run config is a few kB; presets and catalog entries even less
MAX_DEPTH = 40  # sections are two levels deep; nothing the studio reads goes past a handful
MAX_ALIASES = 100
MAX_EXPANDED_NODES = 100_000  # values in the document once every alias is replaced by what it points to


class YamlError(ValueError):
    """YAML the studio will not read: bad syntax, an unsafe tag, not UTF-8, or past a size, depth or alias
    limit. The message names the file (and line where there is one)."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts nesting depth and aliases while it composes the node graph."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):  # noqa: ANN001 (PyYAML's signature)
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise YamlError(f"line {mark.line + 1}: more than {MAX_ALIASES} aliases (*name); write the values out")
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise YamlError(f"line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document would hold with every alias expanded (shared nodes counted per use);
    YamlError as soon as it passes MAX_EXPANDED_NODES or a node contains itself."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise YamlError(f"line {node.start_mark.line + 1}: a value that contains itself (a recursive alias)")
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        in_progress.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise YamlError(f"line {node.start_mark.line + 1}: its aliases expand to more than "
                            f"{MAX_EXPANDED_NODES:,} values; write the values out")
        sizes[key] = total
        return total

    return size(root)


def load_yaml(text: str, source: str = "YAML") -> Any:
    """The data in YAML `text` (safe tags only); YamlError naming `source` and the line when the text is bad
    YAML, uses an unsafe tag, is larger than MAX_YAML_BYTES, nests deeper than MAX_DEPTH or expands past the
    alias limits."""
    if len(text) > MAX_YAML_BYTES:
        raise YamlError(f"{source}: {len(text):,} characters, over the {MAX_YAML_BYTES:,} limit; is this a config file?")
    loader = _BoundedLoader(text)
    loader.name = source  # PyYAML's messages say "in <name>, line N"
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    except YamlError as error:
        raise YamlError(f"{source}, {error}") from None
    except yaml.YAMLError as error:
        raise YamlError(f"{source}: not valid YAML: {error}") from None
    except RecursionError:
        raise YamlError(f"{source}: nested too deeply to read") from None
    finally:
        loader.dispose()


def read_yaml_text(path: Path, max_bytes: int = MAX_YAML_BYTES) -> str:
    """The text of the YAML file at `path`; YamlError naming the file (and line) when it is larger than
    `max_bytes` or not UTF-8 text. OSError (missing, unreadable) passes through."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise YamlError(f"{path}: {size:,} bytes, over the {max_bytes:,} limit; is this a config file?")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise YamlError(f"{path}, line {line}: not UTF-8 text (byte {error.start}: {raw[error.start:error.start + 1]!r}); "
                        "save the file as UTF-8") from None


def read_yaml_file(path: Path, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """The data in the YAML file at `path` (see load_yaml and read_yaml_text for the limits and errors)."""
    return load_yaml(read_yaml_text(path, max_bytes), str(path))
