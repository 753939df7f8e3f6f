"""The examples of docs/api.md run: train -> prune -> map -> run -> compare from Python."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    """The bodies of the document's ```python fences, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_blocks_cover_every_step() -> None:
    code = "\n".join(python_blocks(DOC.read_text()))
    for step in ("build_model", "train", "prune", "Pruner", "map_model", "run", "compare_variants"):
        assert f"uticompile.{step}(" in code, step


def test_api_doc_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "api_doc"}
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 6
    for i, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name}[block {i}]", "exec"), namespace)
    assert (tmp_path / "vgg_small.onnx").is_file()
    assert (tmp_path / "vgg_small.utm").is_file()
