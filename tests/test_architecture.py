"""The layout rules of docs/architecture.md, checked on the source with ``ast``.

A change that breaks one of them fails here, with the module and line to look at.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "keyservices"
MAX_LINES = 500
MAX_TOP_LEVEL = 12

# what each layer may import (besides the standard library and third-party packages); the
# top-level shared modules (credentials, errors, model, overrides, progress, resources,
# yamlfile) are open to all
SHARED = {"credentials", "errors", "model", "overrides", "progress", "resources", "words",
          "yamlfile"}
ALLOWED: dict[str, set[str]] = {
    "rules": set(),
    "engine": {"rules"},
    "calls": {"rules", "engine"},
    "erp": {"rules", "engine", "calls", "state", "config"},
    "state": {"calls"},
    "outputs": {"rules", "engine", "calls"},
    "config": {"erp", "settings"},
    "settings": {"erp"},
    "night": {"rules", "engine", "calls", "erp", "state", "config"},
    "commands": {"rules", "engine", "calls", "erp", "state", "outputs", "config", "night",
                 "demodb"},
    "demodb": set(),
    "cli": {"commands", "config", "calls", "outputs", "night", "rules", "demodb"},
}
PURE = ("rules", "engine", "calls")  # never SQLAlchemy, smtplib, or any I/O library
IO_LIBRARIES = {"sqlalchemy", "smtplib", "email", "psycopg", "pyodbc", "filelock", "click",
                "rich"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path, *, module_level_only: bool) -> list[tuple[int, str, str]]:
    """(line, imported module, imported name or '') for every import of a keyservices module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("keyservices"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:  # ``from . import monitors``: the submodule itself
                    out.append((node.lineno, sub, ""))
                else:
                    out.append((node.lineno, target, alias.name))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, "") for a in node.names
                    if a.name.startswith("keyservices")]
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "keyservices"


def test_no_module_is_over_500_lines_and_few_stay_at_the_top() -> None:
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL, f"{len(top)} modules at the top of keyservices/: {top}"


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for name, path in MODULES.items():
        for line, target, imported in _imports(name, path, module_level_only=False):
            if imported.startswith("_") and imported != "__version__" and target != name:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target}.{imported}")
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for _, target, _ in _imports(name, path, module_level_only=True):
            if target not in MODULES or target == name:
                continue
            graph[name].add(target)
            # importing a submodule runs its packages' __init__ first (unless we are inside)
            parts = target.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in MODULES and not name.startswith(parent + ".") and parent != name:
                    graph[name].add(parent)
    return graph


def test_module_level_imports_have_no_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_layers_point_one_way() -> None:
    found = []
    for name, path in MODULES.items():
        layer = _layer(name)
        if layer in ("keyservices", "__main__") or layer in SHARED:
            continue
        allowed = ALLOWED[layer] | SHARED | {layer}
        for line, target, _ in _imports(name, path, module_level_only=False):
            other = _layer(target)
            if other != "keyservices" and other not in allowed:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {layer} -> {other}")
    assert not found, "imports against the layering of docs/architecture.md:\n" + "\n".join(found)


def test_nothing_below_the_cli_imports_it() -> None:
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}"
             for name, path in MODULES.items() if _layer(name) not in ("cli", "__main__")
             for line, target, _ in _imports(name, path, module_level_only=False)
             if _layer(target) == "cli"]
    assert not found, "the library reaches into the CLI: " + ", ".join(found)


@pytest.mark.parametrize("layer", PURE)
def test_the_pure_core_imports_no_io_library(layer: str) -> None:
    found = []
    for name, path in MODULES.items():
        if _layer(name) != layer:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{name}:{node.lineno}: {n}" for n in names
                      if n.split(".")[0] in IO_LIBRARIES]
    assert not found, f"the pure {layer} layer imports I/O libraries: {found}"
