"""No import cycles among anycl's and the adapters' modules.

The graph holds every ``import`` / ``from ... import`` of a module of ``anycl`` or ``adapters`` written at
module level or inside a function (a function-level import still makes a cycle, only hidden), except
those under ``if TYPE_CHECKING:``. An edge goes to the module named (``from pkg import sub``: to
``pkg.sub`` when that is a module, else to ``pkg``); ``anycl.adapters`` is the top-level ``adapters``
package (``anycl/__init__.py`` mounts it there). Each strongly connected component of more than one
module is a cycle.

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
PACKAGES = ("anycl", "adapters")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _type_checking_nodes(tree):
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _canonical(name: str) -> str:
    return name[len("anycl.") :] if name == "anycl.adapters" or name.startswith("anycl.adapters.") else name


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
                targets = [_canonical(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                stem = _canonical(stem)
                subs = [_canonical(f"{stem}.{a.name}") for a in node.names]
                targets = [sub if sub in modules else stem for sub in subs]
            graph[mod].update(t for t in targets if t in modules and t != mod)
    return graph


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
    assert "anycl.training" in graph and "adapters.text" in graph
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
    loaded = {_canonical(m) for m in json.loads(proc.stdout.strip().splitlines()[-1])}
    graph = import_graph()
    assert loaded - set(graph) == set(), "modules the graph does not hold"
    assert {"anycl.api", "anycl.training", "adapters.text", "anycl.losses.infonce"} <= loaded
    in_cycles = {m for comp in strongly_connected(graph) for m in comp}
    assert sorted(loaded & in_cycles) == []
