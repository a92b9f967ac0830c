"""The docs describe the code as it is: every `memo_model.…` name they mention exists, and the
package map in docs/architecture.md lists every module of the library. (Their commands run:
tests/project/test_documented_commands.py.)"""
import importlib
import re

import pytest

from memo_testing.paths import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NAME = re.compile(r"\bmemo_model(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def resolve(dotted: str):
    """Import the longest module prefix, then walk attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_memo_model_object_exists(doc):
    names = sorted(set(NAME.findall(doc.read_text())))
    assert names, f"{doc.name} names nothing in memo_model"
    missing = []
    for name in names:
        try:
            resolve(name)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{name} ({type(exc).__name__}: {exc})")
    assert not missing, f"{doc.name} names things that do not exist:\n" + "\n".join(missing)


def test_package_map_lists_every_module():
    text = (REPO / "docs" / "architecture.md").read_text()
    listed = set(re.findall(r"`([a-z_0-9]+)`", text))
    modules = {p.stem for p in (REPO / "memo_model").glob("*/*.py") if p.stem != "__init__"}
    assert modules <= listed, f"modules missing from docs/architecture.md: {sorted(modules - listed)}"
    # the node pack's modules too; its `ops_*` modules are one entry
    nodes = {p.stem for p in (REPO / "nodes").glob("*.py") if p.stem != "__init__" and not p.stem.startswith("ops_")}
    assert "ops_*" in text and nodes <= listed, f"missing from docs/architecture.md: {sorted(nodes - listed)}"
