"""The layering the code must keep, checked on the source (an AST scan of every import, including
the ones inside functions): layers only point down. Also: a rule of knowledge lives in one place.

core (``uticompile/`` minus the CLI, the compare workflow and the API) <- models <- passes;
core <- runtime; everything <- CLI / compare / API.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("uticompile.cli", "uticompile.compare", "uticompile.api", "uticompile.__main__")
ABOVE_CORE = ("uticompile.passes", "uticompile.runtime", "uticompile.models", *TOP)

#: Each layer: its source files and the packages it must not import.
LAYERS: dict[str, tuple[list[Path], tuple[str, ...]]] = {
    "core": (
        [
            p
            for p in sorted((ROOT / "uticompile").rglob("*.py"))
            if p.relative_to(ROOT / "uticompile").parts[0] not in ("cli", "compare", "api.py")
            and p.name != "__main__.py"
        ],
        ABOVE_CORE,
    ),
    "models": (
        sorted((ROOT / "models").rglob("*.py")),
        ("uticompile.passes", "uticompile.runtime", *TOP),
    ),
    "passes": (sorted((ROOT / "passes").rglob("*.py")), ("uticompile.runtime", *TOP)),
    "runtime": (
        sorted((ROOT / "runtime").rglob("*.py")),
        ("uticompile.passes", "uticompile.models", *TOP),
    ),
}

#: Known violations, each to be removed by the change that fixes it (a stale entry fails below).
#: runtime/simulate.py still holds the --check recompile recipe and the torch-based test batches;
#: the runtime engine rework splits them out of the runtime.
EXEMPT: set[tuple[str, str]] = {
    ("runtime/simulate.py", "uticompile.passes.pipeline"),
    ("runtime/simulate.py", "uticompile.models.batches"),
}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute names (relative imports resolved)."""
    package = ".".join(("uticompile", *path.relative_to(ROOT).parent.parts))
    if path.relative_to(ROOT).parts[0] == "uticompile":
        package = ".".join(path.relative_to(ROOT).parent.parts)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _violations(files: list[Path], banned: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for module in sorted(imports_of(path)):
            hit = next((b for b in banned if module == b or module.startswith(b + ".")), None)
            exempt = any(
                rel == r and (module == m or module.startswith(m + ".")) for r, m in EXEMPT
            )
            if hit is not None and not exempt:
                out.append((rel, module))
    return out


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_only_point_down(layer: str) -> None:
    files, banned = LAYERS[layer]
    assert files, layer
    assert _violations(files, banned) == []


def test_exemptions_are_still_needed() -> None:
    for rel, module in sorted(EXEMPT):
        assert module in imports_of(ROOT / rel), f"{rel} no longer imports {module}: drop it"


def test_the_scan_sees_imports_inside_functions_and_relative_ones() -> None:
    """The checker itself: a lazy import in a function body and a relative import both count."""
    datasets_init = ROOT / "uticompile" / "datasets" / "__init__.py"
    assert "uticompile.datasets.loader" in imports_of(datasets_init)  # ``from .loader import``
    cli_hw = ROOT / "uticompile" / "cli" / "hw.py"
    assert "uticompile.runtime.simulate" in imports_of(cli_hw)  # inside a command
    core = LAYERS["core"][0]
    assert _violations([cli_hw], ABOVE_CORE)  # the CLI would break the core's rule
    assert ROOT / "uticompile" / "cli" / "hw.py" not in core


def test_loading_digits_needs_no_torch(tmp_path: Path) -> None:
    """``uticompile.datasets`` is core: with torch unimportable, digits still loads (8x8 -> 32)."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, _NoTorch())\n"
    )
    code = (
        "from uticompile.datasets import load_dataset\n"
        "d = load_dataset('digits')\n"
        "import sys\n"
        "assert 'torch' not in sys.modules\n"
        "print(d.x_test.shape)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(360, 1, 32, 32)"


def test_hardware_defaults_have_one_source() -> None:
    """The dataclass defaults are hw_default.toml's values (read from it, not copied)."""
    from uticompile.hardware import HardwareConfig, default_hardware

    assert HardwareConfig() == default_hardware()
