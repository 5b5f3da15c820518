"""The folders are the architecture: imports only run downward, and only `web/` imports Gradio."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ollamastack"
# Each layer and the layers it may import (the shared top is `ollamastack/*.py`).
MAY_IMPORT = {
    "top": {"top"},
    "engines": {"engines", "top"},
    "storage": {"storage", "top"},
    "documents": {"documents", "top"},
    "agent": {"agent", "engines", "storage", "documents", "top"},
    "web": {"web", "agent", "engines", "storage", "documents", "top"},
}


def layer_of(module: str) -> str:
    """`ollamastack.agent.tools.weather` -> "agent"; `ollamastack.errors` -> "top"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else "top"


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append((".".join(p for p in parts if p != "__init__"), path))
    return found


def test_imports_run_only_downward():
    upward = []
    for module, path in modules():
        here = layer_of(module)
        for name in imports(path):
            if name.startswith("ollamastack."):
                there = layer_of(name)
                if there not in MAY_IMPORT[here]:
                    upward.append(f"{module} imports {name}")
    assert upward == []


def test_only_the_web_layer_imports_gradio():
    outside = [
        module for module, path in modules()
        if layer_of(module) != "web"
        and any(name.split(".")[0] in ("gradio", "gradio_client") for name in imports(path))
    ]
    assert outside == []
