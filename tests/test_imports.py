"""No import cycles between addbench's packages (issue 20): every ``import addbench.X...`` anywhere in a module of a
package, at module level or inside a function, is an edge from its package to X's package (``eval``, ``train``,
``bases``, ...); that graph must be acyclic, so each package can be read, tested and replaced on top of the ones it
uses. Top-level modules (``cli``, ``api``, ``config``, ``registry``, ``rng``, ...) are not nodes: ``cli`` and
``api`` sit above every package, the helpers below them; cycles through those helpers (e.g. config -> eval -> bases
-> config) are not checked here yet."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "addbench"
PACKAGES = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}


def _package(module: str) -> str | None:
    """The addbench package of a dotted module name (None for top-level modules and outside addbench)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "addbench" and parts[1] in PACKAGES else None


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        src = _package(".".join(rel.parts))
        if src is None:  # a top-level module
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                dst = _package(t)
                if dst and dst != src:
                    graph[src].add(dst)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_packages():
    graph = package_graph()
    assert {"eval", "train", "bases", "metrics", "video", "toy"} <= set(graph)
    assert "toy" in graph["train"]  # the walk sees imports inside functions too (train.data reads toy data lazily)
    found = cycles(graph)
    assert not found, f"import cycles between addbench packages: {found}; edges: " + "; ".join(
        f"{a} -> {', '.join(sorted(b & set(sum(found, []))))}" for a, b in sorted(graph.items()) if a in sum(found, []))
