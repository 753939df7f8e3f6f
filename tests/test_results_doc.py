"""docs/results.md's generated sections: the registry, the splicing, and §1 against a fresh run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _regen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("regen", DOCS / "regen.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["regen"] = module
    spec.loader.exec_module(module)
    return module


regen = _regen()


def test_every_section_module_is_registered_and_committed() -> None:
    from sections import MODULES, load_sections

    files = {p.stem for p in (DOCS / "sections").glob("*.py")} - {"__init__", "paper"}
    assert set(MODULES) == files
    document = (DOCS / "results.md").read_text()
    for name, section in load_sections().items():
        committed = (DOCS / "results" / f"{name}.md").read_text()
        assert committed.startswith(f"## {section.title}\n")
        # results.md holds the section verbatim between its markers
        assert regen.splice(document, name, committed) == document


def test_splice_replaces_only_its_region() -> None:
    doc = "# R\n\nintro\n"
    once = regen.splice(doc, "a", "## A\n\nold")
    twice = regen.splice(regen.splice(once, "b", "## B"), "a", "## A\n\nnew")
    assert twice.startswith("# R\n\nintro\n")
    assert "old" not in twice
    assert twice.index("## A") < twice.index("## B")
    assert regen.splice(twice, "a", "## A\n\nnew") == twice


def test_makefile_demo_is_the_demo_section() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "docs/regen.py demo --run-only" in makefile


@pytest.mark.skipif(sys.platform == "win32", reason="the section's commands are POSIX shell")
def test_demo_section_matches_a_fresh_run(tmp_path: Path) -> None:
    """The acceptance claim: running §1's commands now reproduces the committed §1."""
    from sections import load_sections

    section = load_sections()["demo"]
    regen.run_commands(section, tmp_path, keep=False)
    fresh = regen.render(section, tmp_path)
    committed = (DOCS / "results" / "demo.md").read_text()
    assert regen.without_measured(fresh) == regen.without_measured(committed)
