"""The package's architecture: its layers point one way (core <- analysis <- pipeline <- commands)
and no import cycle joins its modules, counting the imports made inside functions (a
function-level import does not break a cycle, it hides one)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sysa_core"


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    return mods


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its body (relative imports resolved;
    `from . import x` counts as an import of the module x when x is one)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = pkg.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            for t in targets:
                if t in mods and t != name and not name.startswith(t + "."):
                    graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_package():
    graph = import_graph()
    assert len(graph) >= 20 and any(graph.values())  # the walk found the package and its imports
    assert "sysa_core.analysis.metrics" in graph["sysa_core.pipeline.notebook"]
    assert cycles(graph) == []


#: the layers, lowest first: a module imports only modules of its own layer or lower ones
CORE = {"errors", "forked", "runtime", "config", "files", "model", "task", "engine", "training", "original"}
COMMANDS = {"cli", "bench", "__main__"}
LAYERS = ("core", "analysis", "pipeline", "commands")


def layer(module: str) -> str:
    """The layer of a package module ("sysa_core.analysis.pca" -> "analysis")."""
    name = module.removeprefix("sysa_core").lstrip(".")
    if name in CORE:
        return "core"
    if name in COMMANDS:
        return "commands"
    top = name.split(".")[0]
    if top in ("analysis", "pipeline"):
        return top
    if name == "":
        return "core"  # the package's __init__ (its version)
    raise AssertionError(f"{module}: in no layer; add it to one in test_layout.py")


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where a module imports one of a higher layer."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return sorted((m, t) for m, ts in graph.items() for t in ts if rank[layer(t)] > rank[layer(m)])


def test_the_direction_check_finds_an_upward_import():
    assert upward({"sysa_core.training": {"sysa_core.pipeline.plots"}, "sysa_core.pipeline.plots": set()}) == [
        ("sysa_core.training", "sysa_core.pipeline.plots")]
    assert upward({"sysa_core.analysis.metrics": {"sysa_core.training"}, "sysa_core.training": set()}) == []


def test_layers_point_one_way():
    graph = import_graph()
    assert upward(graph) == []
    assert graph["sysa_core.config"] == {"sysa_core.errors"}  # the configuration loads neither files nor torch


def test_analysis_writes_no_files():
    """The analysis computes; pipeline.store writes and reads its results. Of sysa_core.files the
    analysis uses only the code version (part of its cache keys)."""
    used = set()
    for path in (PACKAGE / "analysis").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "files":
                used.add((path.name, node.attr))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                used.add((path.name, "open"))
    assert {attr for _, attr in used} <= {"code_version"}, used


@pytest.mark.parametrize("module, absent", [("sysa_core.analysis.metrics", "matplotlib"),
                                            ("sysa_core.training", "matplotlib"),
                                            ("sysa_core.config", "torch"),
                                            # the notebooks' kernels: rendering HTML is the parent's work
                                            ("sysa_core.pipeline.notebook", "nbconvert")])
def test_a_lower_layer_loads_nothing_of_a_higher_one(module, absent):
    code = f"import sys, {module}; assert {absent!r} not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_run_process_and_a_seeds_kernel_leave_scipy_stats_to_the_population():
    """scipy.stats and seaborn (which imports it) cost about half a second of CPU to import; only the
    population's statistics and figures use them. The `sysa run` process and the imports every
    notebook kernel makes at its start (jobs.WARM_IMPORTS) go without them; the population's
    figures import them when drawn."""
    code = ("import sys\n"
            "import sysa_core.cli, sysa_core.pipeline.run\n"
            "from sysa_core.pipeline.jobs import WARM_IMPORTS\n"
            "exec(WARM_IMPORTS)\n"
            "heavy = {'scipy.stats', 'seaborn'}\n"
            "assert not heavy & set(sys.modules), sorted(heavy & set(sys.modules))\n"
            "import numpy as np, pandas as pd\n"
            "from sysa_core.pipeline import population_plots\n"
            "population_plots._stripplot(data=pd.DataFrame({'x': ['a', 'b'], 'y': [1.0, 2.0]}), x='x', y='y')\n"
            "assert heavy <= set(sys.modules)  # the check itself can fail\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def _names(path: Path) -> set[str]:
    """The names and attributes a module's code uses, and its string constants."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
    return out


def test_the_cli_only_parses_arguments():
    """The run folder's lifecycle (its lock, its manifest) is pipeline.folder's, not the CLI's."""
    used = _names(PACKAGE / "cli.py")
    assert not used & {"FolderLock", "RUN_MARKER", "manifest", "write_json", "check_owned", "prepare"}, used


def test_the_improvement_over_untrained_is_computed_in_one_place():
    """Only analysis.metrics (its `improvement`, and the analysis that stores its value as
    improvement_over_untrained) reads the untrained in-range precision or calls `improvement`; every
    report reads the stored value."""
    readers = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if {"precision_untrained_trained_range", "improvement"} & _names(p)}
    assert readers == {"analysis/metrics.py"}
