"""The layers of anycl (docs/architecture.md), and no import cycles.

The graph holds every ``import`` / ``from ... import`` of a module of ``anycl`` (``anycl.adapters`` is the
folder ``adapters/``) written at module level or inside a function (a function-level import still makes a
dependency, only hidden), except those under ``if TYPE_CHECKING:``. An edge goes to the module named
(``from pkg import sub``: to ``pkg.sub`` when that is a module, else to ``pkg``).

:data:`LAYERS` is the one statement of the layer order: a module may import its own package and the
packages of lower layers, never a package of its own layer or of a higher one. Each strongly connected
component of more than one module is a cycle.

Imports inside a function are allowed only for optional or slow-to-import dependencies, each marked
``# lazy: <why>``; ``python -c "import anycl"`` must load no module of the package that sits in a cycle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# bottom-up; the units of one layer may not import each other. A unit is a package, the kernel (the root
# modules shared by all), or one of anycl's other root modules (api.py, __init__.py, __main__.py).
KERNEL = [
    "errors",
    "registry",
    "keys",
    "files",
    "reading",
    "statefile",
    "weights",
    "progress",
    "distributed",
    "version",
    "moved",
]
LAYERS = [
    ["kernel"],
    ["anycl.data", "anycl.search"],
    ["anycl.options", "anycl.losses", "anycl.adapters"],
    ["anycl.export"],
    ["anycl.model"],
    ["anycl.mining", "anycl.evaluation"],
    ["anycl.sampling", "anycl.training"],
    ["anycl.report"],
    ["anycl.fitting"],
    ["anycl.api"],  # fit
    ["anycl", "anycl.cli"],  # the public surface (__init__.py), the command line
    ["anycl.__main__"],  # python -m anycl
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "adapters":
        parts = ["anycl"] + parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    out = {}
    for folder in ("anycl", "adapters"):  # anycl/adapters is a link to adapters/ (rglob does not follow it)
        for path in sorted((ROOT / folder).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _type_checking_nodes(tree):
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def import_graph():
    modules = _modules()
    graph = {m: set() for m in modules}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_nodes(tree)
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                subs = [f"{stem}.{a.name}" for a in node.names]
                targets = [sub if sub in modules else stem for sub in subs]
            graph[mod].update(t for t in targets if t in modules and t != mod)
    return graph


def unit_of(module: str) -> str:
    """The layer unit a module belongs to: the longest unit naming it or a package above it."""
    if module == "anycl":
        return "anycl"
    if module in {f"anycl.{m}" for m in KERNEL}:
        return "kernel"
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in LAYER_OF:
            return ".".join(parts[:n])
    raise KeyError(f"{module} is in no layer: add its package to LAYERS (docs/architecture.md too)")


def layer_violations(graph):
    """Each import of a unit of the same or a higher layer, as 'a -> b (layer i -> j)'."""
    out = []
    for mod, targets in sorted(graph.items()):
        a = unit_of(mod)
        for t in sorted(targets):
            b = unit_of(t)
            if a != b and LAYER_OF[b] >= LAYER_OF[a]:
                out.append(f"{mod} -> {t} (layer {LAYER_OF[a]} {a} -> layer {LAYER_OF[b]} {b})")
    return out


def test_the_layer_check_sees_an_upward_and_a_sideways_import():
    graph = {"anycl.data.rows": {"anycl.model.tower", "anycl.search.exact", "anycl.errors"}, "anycl.errors": set()}
    assert layer_violations(graph) == [
        "anycl.data.rows -> anycl.model.tower (layer 1 anycl.data -> layer 4 anycl.model)",
        "anycl.data.rows -> anycl.search.exact (layer 1 anycl.data -> layer 1 anycl.search)",
    ]


def test_every_module_is_in_a_layer_and_only_the_kernel_api_and_init_sit_at_the_root():
    modules = _modules()
    for mod in modules:
        unit_of(mod)
    root = sorted(m for m in modules if m.count(".") == 1 and not (ROOT / m.replace(".", "/")).is_dir())
    assert root == sorted([f"anycl.{m}" for m in KERNEL] + ["anycl.api", "anycl.__main__"])


def test_imports_only_go_down_the_layers():
    violations = layer_violations(import_graph())
    assert violations == [], "imports of the same or a higher layer:\n" + "\n".join(violations)


def strongly_connected(graph):
    """Tarjan's algorithm (iterative): the components of more than one node."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    v = stack.pop()
                    on_stack.discard(v)
                    comp.append(v)
                    if v == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_checker_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_module_of_anycl_or_adapters_is_inside_an_import_cycle():
    graph = import_graph()
    assert "anycl.training.trainer" in graph and "anycl.adapters.text" in graph
    cycles = strongly_connected(graph)
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _function_level_imports(tree):
    """The import nodes written inside a function (a nested one too), each once."""
    out = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    out[id(node)] = node
    return list(out.values())


def test_the_lazy_import_check_sees_an_unmarked_import():
    tree = ast.parse("import os\ndef f():\n    import json\n    def g():\n        from . import x\n")
    assert sorted(n.lineno for n in _function_level_imports(tree)) == [3, 5]


def test_every_function_level_import_is_a_marked_lazy_one():
    unmarked = []
    for path in _modules().values():
        lines = path.read_text().splitlines()
        for node in _function_level_imports(ast.parse("\n".join(lines), str(path))):
            span = lines[node.lineno - 1 : (node.end_lineno or node.lineno)]
            if not any("# lazy:" in line for line in span):
                unmarked.append(f"{path.relative_to(ROOT)}:{node.lineno}: {span[0].strip()}")
    assert unmarked == [], "function-level imports without a `# lazy: <why>` reason:\n" + "\n".join(unmarked)


def test_import_anycl_loads_no_module_inside_a_cycle():
    code = "import json, sys, anycl; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'anycl')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    graph = import_graph()
    assert loaded - set(graph) == set(), "modules the graph does not hold"
    assert {"anycl.api", "anycl.training.trainer", "anycl.adapters.text", "anycl.losses.infonce"} <= loaded
    in_cycles = {m for comp in strongly_connected(graph) for m in comp}
    assert sorted(loaded & in_cycles) == []
