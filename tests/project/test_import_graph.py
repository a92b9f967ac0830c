"""The pack's import graph (memo_model + nodes): no cycles, and every import points down the stages.

Every import statement counts, at module level or inside a function (or under TYPE_CHECKING):
a lazy import is still a dependency. ``from . import x`` counts as importing the submodule x
when there is one, else the package; ``from ..memo_model import job`` in nodes is the library.

Stages (docs/architecture.md), lowest first: the base modules (``memo_model`` itself, ``constants``,
``identity``, ``job``, ``partial_files``); ``face``; ``checks`` (it reads picture headers);
``networks`` (model file headers); ``audio`` (the emotion classifier) and ``generation`` side by
side; ``output``; ``apps``; ``nodes``. A module imports its own package and lower stages only.
Only ``nodes/host/`` imports ComfyUI: its runtime in ``comfy.py``, the node API the classes are
declared with (``comfy_api.v0_0_2``) in ``node_api.py``; nothing in memo_model imports the nodes.
"""
from __future__ import annotations

import ast
from pathlib import Path

from memo_testing.paths import REPO

PACKAGES = ("memo_model", "nodes")
BASE = {"memo_model", "memo_model.constants", "memo_model.identity", "memo_model.job", "memo_model.partial_files"}
# the stages, lowest first; a module may import its own package and any lower stage (audio and
# generation are side by side: neither imports the other)
RANK = {"base": 0, "face": 1, "checks": 2, "networks": 3, "audio": 4, "generation": 4, "output": 5, "apps": 6,
        "nodes": 7}
COMFYUI = ("comfy", "folder_paths", "latent_preview", "execution")      # "comfy" also covers comfy_api, ...
COMFYUI_ONLY_IN = ["nodes.host.comfy", "nodes.host.node_api"]


def modules(root: Path = REPO) -> dict:
    """Dotted module name -> (path, is a package)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            found[".".join(parts)] = (path, is_package)
    return found


def imports(name: str, path: Path, is_package: bool, known: dict) -> tuple[set, set]:
    """(modules of the pack that `name` imports, top-level names of everything else it imports)."""
    inside, outside = set(), set()

    def add(target: str):
        if target in known:
            inside.add(target)
        elif target.split(".")[0] not in PACKAGES:
            outside.add(target.split(".")[0])

    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:        # relative; climbing above `nodes` reaches the pack root, holding memo_model
                base = here[:max(0, len(here) - (node.level - 1))]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            if module == "__future__":
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}" if module else alias.name
                add(sub if sub in known else module)
    inside.discard(name)
    return inside, outside


def graph(root: Path = REPO) -> tuple[dict, dict]:
    known = modules(root)
    edges, external = {}, {}
    for name, (path, is_package) in known.items():
        edges[name], external[name] = imports(name, path, is_package, known)
    return edges, external


def cycles(edges: dict) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def stage(name: str) -> str:
    if name.startswith("nodes"):
        return "nodes"
    if name in BASE:
        return "base"
    if name == "memo_model.__main__":
        return "apps"
    return name.split(".")[1]


def test_the_graph_is_read_the_way_python_imports():
    """The reader itself: lazy imports count, `from . import x` is the submodule, nodes reach the library."""
    edges, external = graph()
    assert "memo_model.apps.batch" in edges["memo_model.apps.cli"]                # inside main(), lazily
    assert "nodes.host" in edges["nodes.ops_face"]                                # from . import host
    assert "memo_model.job" in edges["nodes.face_nodes"]                          # from ..memo_model import job
    assert "memo_model.generation.state" in edges["memo_model.generation.continuation"]   # under TYPE_CHECKING
    assert "memo_model.apps" not in edges["memo_model.apps.cli"]                  # submodules, not the package
    assert "torch" in external["memo_model.networks.blocks"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(graph()[0]) == []


def test_imports_point_down_the_stages():
    edges, _ = graph()
    unplaced = sorted(m for m in edges if stage(m) not in RANK)
    assert unplaced == [], f"modules outside every stage (place them in RANK / BASE): {unplaced}"
    upward = [f"{a} -> {b}" for a, targets in edges.items() for b in sorted(targets)
              if stage(b) != stage(a) and RANK[stage(b)] >= RANK[stage(a)]]
    assert upward == [], "imports against the stage order:\n" + "\n".join(upward)
    assert all(not b.startswith("nodes") for a, t in edges.items() if a.startswith("memo_model") for b in t)


def test_networks_import_nothing_above_them():
    edges, _ = graph()
    above = {b for a, t in edges.items() if a.startswith("memo_model.networks") for b in t
             if b.startswith(("memo_model.generation", "memo_model.output", "memo_model.apps"))}
    assert above == set()


def test_only_the_host_module_imports_comfyui():
    _, external = graph()
    users = sorted(name for name, names in external.items()
                   if any(n == c or n.startswith(c) for n in names for c in COMFYUI))
    assert users == COMFYUI_ONLY_IN
