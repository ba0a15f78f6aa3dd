"""
The package's layers run one way (DESIGN.md), checked on the source: every import of a lenskit module,
at module level or inside a function, goes to the same layer or below; no import cycle; no built-in
plugin module imports another.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lenskit"

#: Sub-package (or top-level module) -> layer, bottom (0) to top.
LAYERS = {
    "_version": 0, "core": 0,
    "plugins": 1, "io": 1,
    "lensing": 2,
    "mass_models": 3, "sources": 3, "instruments": 3, "datasets": 3,
    "simulation": 4,
    "estimators": 5, "deblenders": 5,
    "modelling": 6, "scale": 6, "fitting": 6, "pipeline": 6, "distributed": 6, "plotting": 6,
    "cli": 7, "__main__": 7, "__init__": 7,
}
# io/asdf converts lenskit's value types (core), and the registry reads what plugins register: both sit just
# above core.  The package's __init__ re-exports the public API, so it is the top.


def _module(path):
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["lenskit", *parts])


def _layer_key(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports():
    """(importing module, imported lenskit module, line) for every import in the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _module(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name == "lenskit" or name.startswith("lenskit."):
                    out.append((here, name, node.lineno))
    return out


def _existing(name):
    """The longest prefix of ``name`` that is a lenskit module or package."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        rel = Path(*parts[1:k]) if k > 1 else Path()
        if (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists():
            return ".".join(parts[:k])
    return "lenskit"


IMPORTS = _imports()


def test_every_subpackage_has_a_layer():
    for here, _, _ in IMPORTS:
        assert _layer_key(here) in LAYERS, f"{here}: add its sub-package to LAYERS (and to DESIGN.md)"


def test_imports_go_to_the_same_layer_or_below():
    back = []
    for here, name, line in IMPORTS:
        there = _existing(name)
        if LAYERS[_layer_key(there)] > LAYERS[_layer_key(here)]:
            back.append(f"{here}:{line} imports {there}")
    assert not back, "imports against the layers:\n" + "\n".join(back)


def test_no_import_cycle():
    graph = {}
    for here, name, _ in IMPORTS:
        there = _existing(name)
        if there != here and not here.startswith(there + "."):  # a module importing its own package's names
            graph.setdefault(here, set()).add(there)
    # the package __init__ re-exports from everything below it; importing "lenskit" for a name is an edge to it
    state, cycle = {}, []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, path + [nxt]):
                return True
        state[node] = 2
        return False

    for node in sorted(graph):
        if state.get(node) is None and visit(node, [node]):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle[0])


def test_no_builtin_plugin_module_imports_another():
    from lenskit.plugins.builtin import BUILTINS

    plugin_modules = {spec.partition(":")[0] for names in BUILTINS.values() for spec in names.values()}
    bad = []
    for here, name, line in IMPORTS:
        there = _existing(name)
        if here in plugin_modules and there in plugin_modules and there != here:
            bad.append(f"{here}:{line} imports the plugin module {there}")
    assert not bad, "\n".join(bad)


def test_function_local_imports_say_why():
    """A function-local import is for an optional or heavy dependency, and its line says which (a comment)."""
    bare = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = path.read_text()
        lines = src.split("\n")
        for fn in ast.walk(ast.parse(src, str(path))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                if "#" not in "\n".join(lines[node.lineno - 1:node.end_lineno]):
                    bare.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not bare, "function-local imports without a reason (hoist them, or say why):\n" + "\n".join(sorted(set(bare)))


def test_layers_above_the_plugins_reach_them_through_the_registry():
    """simulation/, modelling/, scale/ and the rest name implementations by registry key, never by module."""
    from lenskit.plugins.builtin import BUILTINS

    plugin_modules = {spec.partition(":")[0] for names in BUILTINS.values() for spec in names.values()}
    users = ("lenskit.core", "lenskit.lensing", "lenskit.io", "lenskit.simulation", "lenskit.modelling",
             "lenskit.scale", "lenskit.plotting")
    bad = [f"{here}:{line} imports {_existing(name)}" for here, name, line in IMPORTS
           if here.startswith(users) and _existing(name) in plugin_modules]
    assert not bad, "\n".join(bad)
