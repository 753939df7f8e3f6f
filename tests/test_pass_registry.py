"""The pass registry names every pass exactly once, and every pass keeps the pass conventions."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from uticompile.passes.registry import MAP_PIPELINE, PASSES

PASSES_DIR = Path(__file__).resolve().parents[1] / "passes"


def _pass_classes_in(path: Path) -> list[str]:
    """Classes of a module that declare a ``name`` ClassVar and a ``__call__``: passes."""
    tree = ast.parse(path.read_text())
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if any(isinstance(b, ast.Name) and b.id == "Protocol" for b in node.bases):
            continue  # the Pass interface itself
        names = {
            t.target.id
            for t in node.body
            if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)
        }
        methods = {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
        if "name" in names and "__call__" in methods:
            found.append(node.name)
    return found


def test_every_pass_is_registered_once_and_one_per_file() -> None:
    defined: dict[str, str] = {}
    for path in sorted(PASSES_DIR.glob("*.py")):
        classes = _pass_classes_in(path)
        assert len(classes) <= 1, f"{path.name} defines several passes: {classes}"
        for cls in classes:
            defined[cls] = path.stem
    assert {cls.__name__ for cls in PASSES.values()} == set(defined)
    for name, cls in PASSES.items():
        assert cls.name == name
        assert dataclasses.is_dataclass(cls)
        assert cls.__dataclass_params__.frozen  # options are frozen fields
        # named after what it does: the file is the pass name in snake case
        assert defined[cls.__name__] == name.replace("-", "_")


def test_map_pipeline_names_registered_passes() -> None:
    assert set(MAP_PIPELINE) == set(PASSES)
