"""The package's layering (docs/architecture.md): a package imports only from layers
below its own and from the leaf helpers, so data keeps flowing one way."""

from __future__ import annotations

import ast
from pathlib import Path

import shiftbench

LAYERS = {
    "results": 0,
    "data": 1,
    "models": 2,
    "transforms": 2,
    "metrics": 2,
    "adaptation": 2.5,  # adapts fitted models (models, metrics); protocols run it
    "protocols": 3,
    "analysis": 3,
    "inference": 3,
    "app": 4,
    "testing": 4,
    "cli": 5,
}
LEAVES = {"errors", "_hashing", "_registry", "_io", "_progress", "_catalogue"}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out |= {n.split(".")[1] for n in names if n.startswith("shiftbench.")}
    return out


def test_every_package_imports_only_lower_layers_and_leaves():
    root = Path(shiftbench.__file__).parent
    wrong = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if len(parts) == 1:  # a leaf module or the package's __init__
            continue
        own = parts[0]
        assert own in LAYERS, f"{own}: a new package; give it a layer here and in the docs"
        for dep in _imports(path) - {own} - LEAVES:
            if LAYERS.get(dep, 99) >= LAYERS[own]:
                wrong.append(f"{path.relative_to(root)} imports shiftbench.{dep}")
    assert not wrong, "; ".join(wrong)


def test_leaves_import_only_leaves():
    root = Path(shiftbench.__file__).parent
    for name in LEAVES:
        deps = _imports(root / f"{name}.py") - LEAVES
        assert not deps, f"{name}.py imports {sorted(deps)}"


#: the floors of ``analysis`` (docs/architecture.md): each imports only the ones below it
ANALYSIS_FLOORS = {"stats": 0, "tables": 1, "figures": 2, "report": 3}


def test_analysis_floors_import_only_lower_floors():
    root = Path(shiftbench.__file__).parent / "analysis"
    wrong = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if len(parts) == 1:  # the package's __init__
            continue
        own = parts[0]
        assert own in ANALYSIS_FLOORS, f"analysis/{own}: a new floor; give it a rank here"
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                bits = n.split(".")
                if bits[:2] != ["shiftbench", "analysis"] or len(bits) < 3:
                    continue
                dep = bits[2]
                if dep in ANALYSIS_FLOORS and ANALYSIS_FLOORS[dep] > ANALYSIS_FLOORS[own]:
                    wrong.append(f"analysis/{'/'.join(parts)} imports analysis.{dep}")
    assert not wrong, "; ".join(sorted(set(wrong)))
