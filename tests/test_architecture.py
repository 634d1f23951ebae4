"""The layers point one way: every first-party import (lazy ones too) goes down or sideways, never up.

Layers, lowest first (``docs/architecture.md`` draws them). A module's layer is the longest prefix in
:data:`LAYERS` that names it. Imports under ``if TYPE_CHECKING:`` are skipped (they never run); a
package ``__init__`` re-exporting its own children is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rl_router", "envs", "rewards")
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "rl_router.pool.types",
            "rl_router.config",
            "rl_router.loggers",
            "rl_router.zoo",
            "rl_router.embeddings",
            "rl_router.data",
            "rl_router.run",
        ),
    ),
    ("pool", ("rl_router.pool", "rl_router.checkpoint", "rl_router.trust")),
    ("rewards", ("rewards",)),
    ("envs", ("envs",)),
    ("generation", ("rl_router.generation", "rl_router.policies")),
    ("rollout", ("rl_router.rollout",)),
    ("routers", ("rl_router.routers",)),
    ("eval", ("rl_router.eval", "rl_router.hub", "rl_router.model_card")),
    ("trainers", ("rl_router.trainers",)),
    ("recipes", ("rl_router.recipes",)),
    ("serve", ("rl_router.serve",)),
    ("cli", ("rl_router.cli", "rl_router.registry")),
]
FACADES = {"rl_router"}  # the package root: its lazy `load_router` re-export is the public API


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "assets" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def layer_of(module: str) -> int:
    if module in FACADES:
        return 0  # importing the package root gets `__version__`
    best, index = "", None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    if index is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return index


def imports_of(path: Path, module: str, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for sub in node.body for n in ast.walk(sub))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {m: imports_of(p, m, known) for m, p in known.items()}
    for module, path in known.items():
        if path.name == "__init__.py":  # a package re-exporting its children is no edge
            graph[module] = {w for w in graph[module] if not w.startswith(module + ".")}
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        if module in FACADES:
            continue
        for target in sorted(targets):
            low, high = layer_of(module), layer_of(target)
            if high > low:
                bad.append(f"{module} ({LAYERS[low][0]}) imports {target} ({LAYERS[high][0]})")
    return bad


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_points_up_a_layer():
    bad = upward_imports(import_graph())
    assert not bad, "imports that point up a layer:\n" + "\n".join(bad)


def test_no_import_circles():
    found = circles(import_graph())
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_nothing_outside_trainers_and_recipes_imports_trainers():
    graph = import_graph()
    bad = [
        f"{m} imports {t}"
        for m, ts in graph.items()
        for t in ts
        if t.startswith("rl_router.trainers")
        and not m.startswith(("rl_router.trainers", "rl_router.recipes"))
        and m not in ("rl_router.registry",)  # the schema registry lists the trainers' configs
    ]
    assert not bad, "\n".join(bad)


def test_no_library_module_over_600_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in modules().values()
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, f"modules over 600 lines: {long}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from rl_router.recipes import run_training\n",
            "rl_router.envs_probe (envs) imports rl_router.recipes",
        ),
        ("def f():\n    from rl_router.trainers import grpo\n", "imports rl_router.trainers"),
    ],
)
def test_the_checker_catches_an_upward_import_even_a_lazy_one(tmp_path, source, expected):
    known = {**modules(), "envs.envs_probe": tmp_path / "probe.py"}
    (tmp_path / "probe.py").write_text(source)
    graph = {"envs.envs_probe": imports_of(tmp_path / "probe.py", "envs.envs_probe", known)}
    bad = upward_imports(graph)
    assert bad and all(expected.split(" imports ")[-1] in line for line in bad)


def test_the_checker_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
