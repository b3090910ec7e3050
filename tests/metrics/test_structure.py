"""The metrics package stands alone: no imports from the rest of the project, no import cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import declarative_train.metrics as M

ROOT = Path(M.__file__).parent
PACKAGE = "declarative_train.metrics"
ALLOWED_ROOTS = {"torch", "numpy", "attrs", "typing_extensions"} | set(sys.stdlib_module_names)


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([PACKAGE, *parts])] = path
    return out


def _imports(tree: ast.Module, module: str, top_level: bool) -> list[tuple[str, list[str]]]:
    """``(imported module, names)`` of the import statements (only module-level ones if asked)."""
    nodes = ast.walk(tree) if not top_level else _module_level(tree.body)
    out = []
    is_package = module == PACKAGE or _modules()[module].name == "__init__.py"
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, [alias.name for alias in node.names]))
    return out


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, (ast.If, ast.Try)):
            for block in (stmt.body, stmt.orelse, getattr(stmt, "handlers", [])):
                for s in block:
                    out += _module_level(s.body) if isinstance(s, ast.ExceptHandler) else [s]
    return out


def test_metrics_import_nothing_from_the_rest_of_the_project():
    for module, path in _modules().items():
        tree = ast.parse(path.read_text())
        for target, _ in _imports(tree, module, top_level=False):
            if target.startswith("declarative_train"):
                assert target.startswith(PACKAGE), f"{module} imports {target}"
        for target, _ in _imports(tree, module, top_level=True):
            root = target.split(".")[0]
            assert root == "declarative_train" or root in ALLOWED_ROOTS, f"{module}: {target}"


def test_no_import_cycles_between_metrics_modules():
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for target, names in _imports(ast.parse(path.read_text()), module, top_level=True):
            subs = {f"{target}.{n}" for n in names} & modules.keys()
            if subs:
                graph[module] |= subs  # ``from pkg import submodule``
            if target in modules and (
                not names or set(names) - {s.rsplit(".", 1)[1] for s in subs}
            ):
                graph[module].add(target)
    cycles = []
    for start in graph:  # a path from a module back to itself
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(path + [start])
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert not cycles, cycles[0]


def test_importing_metrics_alone_imports_no_framework():
    """With the parent package left out, ``declarative_train.metrics`` pulls in nothing else."""
    code = (
        "import sys, types\n"
        "pkg = types.ModuleType('declarative_train')\n"
        f"pkg.__path__ = [{str(ROOT.parent)!r}]\n"
        "sys.modules['declarative_train'] = pkg\n"
        "import declarative_train.metrics\n"
        "import declarative_train.metrics.functional\n"
        "heavy = [m for m in ('hydra', 'omegaconf', 'sklearn', 'scipy') if m in sys.modules]\n"
        "other = [m for m in sys.modules if m.startswith('declarative_train.')\n"
        "         and not m.startswith('declarative_train.metrics')]\n"
        "print(heavy, other)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[] []"
