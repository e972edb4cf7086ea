"""The package's layers point one way: every import in studio/ (function-local ones too) goes to the module's own
layer or a lower one, and no modules import each other in a circle. docs/layout.md explains the layers."""

from __future__ import annotations

import ast
from pathlib import Path

STUDIO = Path(__file__).resolve().parent.parent / "studio"

# Lowest first. A module belongs to the layer that lists the longest prefix of its name.
LAYERS = [
    ("core", ["studio.workspace", "studio.safe_yaml", "studio.hardware", "studio.presets", "studio.chat_streaming",
              "studio.system_prompt", "studio.hf_import"]),
    ("dataset shapes", ["studio.data.formats", "studio.data.messages", "studio.data.tool_calls"]),
    ("config", ["studio.config"]),
    ("models", ["studio.models"]),
    ("data and estimate", ["studio.data", "studio.memory", "studio.fit", "studio.layering"]),
    ("training parts", ["studio.train"]),
    ("runs and jobs", ["studio.run_folder", "studio.run_library", "studio.jobs"]),
    ("inference", ["studio.chat", "studio.chat_memory", "studio.compare", "studio.scoring", "studio.eval", "studio.model_card",
                   "studio.export", "studio.export_gguf", "studio.export_jobs", "studio.serve", "studio.serve_process"]),
    ("the worker", ["studio.train.worker", "studio.train.probes"]),
    ("entry points", ["studio.cli", "studio.cli_gguf", "studio.cli_runs", "studio.__main__", "studio.ui"]),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(STUDIO.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in STUDIO.rglob("*.py")}


def layer_of(module: str) -> int:
    """The index in LAYERS of the layer listing the longest prefix of `module`."""
    matches = [(len(prefix), index) for index, (_name, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS in {__file__} and to DESIGN.md"
    return max(matches)[1]


def imports_of(module: str) -> dict[str, int]:
    """The studio modules `module` imports anywhere in its file, with the line of the first import."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(kept + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
            targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
        else:
            continue
        for target in targets:
            if target in MODULES and target != module:
                found.setdefault(target, node.lineno)
    return found


def test_every_module_imports_only_its_own_layer_or_lower_ones():
    upward = [f"{module} (layer {LAYERS[layer_of(module)][0]}) imports {target} (layer {LAYERS[layer_of(target)][0]}) "
              f"at line {line}"
              for module in sorted(MODULES) for target, line in imports_of(module).items()
              if layer_of(target) > layer_of(module)]
    assert not upward, "imports that run up a layer:\n" + "\n".join(upward)


def test_no_modules_import_each_other_in_a_circle():
    graph = {module: set(imports_of(module)) for module in MODULES}
    circles, done, path = [], set(), []

    def visit(module: str) -> None:
        if module in path:
            circles.append(" -> ".join(path[path.index(module):] + [module]))
            return
        if module in done:
            return
        path.append(module)
        for target in sorted(graph[module]):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_check_sees_function_local_imports(tmp_path):
    """The parser counts an import inside a function, as Python runs it when the function is called."""
    assert "studio.train.log" in imports_of("studio.train.stages")  # imported inside build_datasets
