"""The house rules of the code base, checked: no import cycles (lazy imports included), no
kind switches outside the kind modules, and one kind module per spec model."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import networkx as nx

from simarch.kinds import KINDS, Kind
from simarch.model.components import COMPONENT_MODELS

PKG = Path(__file__).resolve().parents[1] / "simarch"
# where a kind may be named: its spec model and its kind module
KIND_HOMES = {PKG / "model" / "components.py"} | set((PKG / "kinds").glob("*.py"))


def test_no_import_cycles():
    g = grimp.build_graph("simarch", exclude_type_checking_imports=True)
    d = nx.DiGraph()
    for m in g.modules:
        for i in g.find_modules_directly_imported_by(m):
            d.add_edge(m, i)
    cycles = list(nx.simple_cycles(d))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_no_function_level_imports_of_simarch():
    """Imports of simarch's own modules sit at the top of each module (third-party imports
    may be lazy, for a fast start). The CLI is the top layer: it imports the stage of each
    command when that command runs, so that ``simarch --help`` starts fast; nothing can
    import it, so this cannot hide a cycle."""
    found = []
    for path in PKG.rglob("*.py"):
        if path == PKG / "cli.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.ImportFrom) and (sub.level > 0 or (sub.module or "").startswith("simarch")):
                        found.append(f"{path.relative_to(PKG.parent)}:{sub.lineno}")
    assert not found, f"function-level imports of simarch modules: {found}"


def _kind_switches(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    spec_classes = {m.__name__ for m in COMPONENT_MODELS.values()}
    kind_classes = {k.__name__ for k in KINDS.values()}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for c in [node.left, *node.comparators]:
                if isinstance(c, ast.Constant) and c.value in KINDS:
                    out.append(f"{path.name}:{node.lineno} compares with '{c.value}'")
        if isinstance(node, ast.Name) and (node.id in spec_classes or node.id in kind_classes):
            out.append(f"{path.name}:{node.lineno} names {node.id}")
    return out


def test_no_kind_switches_outside_the_kind_modules():
    found = []
    for path in PKG.rglob("*.py"):
        if path not in KIND_HOMES:
            found += _kind_switches(path)
    assert not found, "kind-specific code outside simarch/kinds and model/components.py:\n" + "\n".join(found)


def test_one_kind_module_per_spec_model():
    assert set(KINDS) == set(COMPONENT_MODELS)
    for name, cls in KINDS.items():
        assert issubclass(cls, Kind) and cls.kind == name
        assert cls.label and cls.colour, f"kind {name} needs a label and a colour for plots"
        assert cls.__module__ == f"simarch.kinds.{name}", "one module per kind, named after it"
