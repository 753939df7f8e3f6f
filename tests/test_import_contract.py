"""The layering the code must keep, checked on the source (an AST scan of every import, including
the ones inside functions): layers only point down. Also: a rule of knowledge lives in one place.

core (``uticompile/`` minus the CLI, the compare and shrink workflows and the API) <- models <-
passes; core <- runtime; everything <- CLI / compare / shrink / API.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from uticompile.ir import Graph
from uticompile.onnx_export import save_onnx

ROOT = Path(__file__).resolve().parents[1]
TOP = (
    "uticompile.cli",
    "uticompile.compare",
    "uticompile.shrink",
    "uticompile.api",
    "uticompile.workflow",
    "uticompile.__main__",
)
ABOVE_CORE = ("uticompile.passes", "uticompile.runtime", "uticompile.models", *TOP)

#: Each layer: its source files and the packages it must not import.
LAYERS: dict[str, tuple[list[Path], tuple[str, ...]]] = {
    "core": (
        [
            p
            for p in sorted((ROOT / "uticompile").rglob("*.py"))
            if p.relative_to(ROOT / "uticompile").parts[0]
            not in ("cli", "compare", "shrink", "api.py", "workflow")
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
EXEMPT: set[tuple[str, str]] = set()

#: By design, not a violation: the package's ``__init__`` re-exports the API lazily (module
#: ``__getattr__``), so ``import uticompile`` loads no layer above the core
#: (``test_import_uticompile_needs_no_torch``).
ALLOWED: set[tuple[str, str]] = {("uticompile/__init__.py", "uticompile.api")}


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
                rel == r and (module == m or module.startswith(m + "."))
                for r, m in EXEMPT | ALLOWED
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
    assert "uticompile.runtime.traces" in imports_of(cli_hw)  # inside a command
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


def test_import_uticompile_needs_no_torch(tmp_path: Path) -> None:
    """The package re-exports the API lazily: ``import uticompile`` works with torch blocked."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, _NoTorch())\n"
    )
    code = (
        "import sys, uticompile\n"
        "assert 'torch' not in sys.modules\n"
        "assert 'uticompile.api' not in sys.modules, 'the API must load on first use'\n"
        "print(uticompile.__version__, callable(uticompile.load_mapping))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[1] == "True"


def test_no_core_module_uses_the_api() -> None:
    """No module below the top layer looks up an API name on the package (``uticompile.run``)."""
    import uticompile

    names = set(uticompile.__all__) - {"__version__"}
    below = [f for layer in ("core", "models", "passes", "runtime") for f in LAYERS[layer][0]]
    used = {
        (f.relative_to(ROOT).as_posix(), node.attr)
        for f in below
        for node in ast.walk(ast.parse(f.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "uticompile"
        and node.attr in names
    }
    assert used == set()


def test_the_api_is_a_top_layer() -> None:
    """Nothing below the API imports it; the core's file list leaves it out."""
    assert ROOT / "uticompile" / "api.py" not in LAYERS["core"][0]
    below = [f for layer in ("core", "models", "passes", "runtime") for f in LAYERS[layer][0]]
    users = {
        f.relative_to(ROOT).as_posix()
        for f in below
        if any(m.startswith("uticompile.api") for m in imports_of(f))
    }
    assert users == {r for r, _ in ALLOWED}
    assert "uticompile.api" in TOP


def test_hardware_defaults_have_one_source() -> None:
    """The dataclass defaults are hw_default.toml's values (read from it, not copied)."""
    from uticompile.hardware import HardwareConfig, default_hardware

    assert HardwareConfig() == default_hardware()


# -- The runtime and the file formats never need PyTorch (issue 9). Two checks, because each
# misses what the other sees: an AST scan of every import that can run (top level or inside
# functions; not under ``if TYPE_CHECKING``) reachable from the torch-free modules, and the CLI
# run in a subprocess where importing torch raises, giving the same figures as with torch.

FOLDERS = {"uticompile.passes": "passes", "uticompile.runtime": "runtime",
           "uticompile.models": "models", "uticompile": "uticompile"}  # fmt: skip
TORCH_FREE = [
    "uticompile.runtime",
    "uticompile.mapfile",
    "uticompile.spikes",
    "uticompile.container",
]


def _file(module: str) -> Path | None:
    """The source file of a first-party module, or None (third party, or not a module)."""
    for package, folder in FOLDERS.items():  # the longest prefixes first
        if module == package or module.startswith(package + "."):
            rest = module[len(package) :].lstrip(".").split(".") if module != package else []
            base = ROOT / folder / Path(*rest) if rest else ROOT / folder
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
            return None
    return None


def _executed(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (never executed)."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if test is not None and "TYPE_CHECKING" in ast.unparse(test):
                todo += child.orelse
                continue
            todo.append(child)
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, wherever the import statement is (functions included).

    One exception: the package's module ``__getattr__`` (PEP 562), which imports the API only
    when an API name is looked up on ``uticompile`` (``test_import_uticompile_needs_no_torch``
    runs that; no torch-free module looks up an API name, ``test_no_core_module_uses_the_api``).
    """
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    if module == "uticompile":
        assert isinstance(tree, ast.Module)
        tree.body = [
            n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "__getattr__")
        ]
    for node in _executed(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _reachable(start: str) -> dict[str, str]:
    """{module: the module that imported it} for everything ``start`` imports, transitively."""
    seen = {start: ""}
    todo = [start]
    while todo:
        module = todo.pop()
        path = _file(module)
        if path is None:
            continue
        if path.name == "__init__.py" and module in TORCH_FREE:  # a package: all its modules
            for p in path.parent.glob("*.py"):
                if p.stem != "__init__" and f"{module}.{p.stem}" not in seen:
                    seen[f"{module}.{p.stem}"] = module
                    todo.append(f"{module}.{p.stem}")
        for name in _imports(path, module):
            parent = name.rpartition(".")[0]
            if parent and parent not in seen and _file(parent) is not None:
                seen[parent] = module  # importing a.b runs a/__init__.py first
                todo.append(parent)
            if name not in seen:
                seen[name] = module
                todo.append(name)
    return seen


@pytest.mark.parametrize("start", TORCH_FREE)
def test_torch_free_modules_never_import_torch(start: str) -> None:
    reached = _reachable(start)
    assert len(reached) > 1
    torch = sorted(m for m in reached if m == "torch" or m.startswith("torch."))
    chain = []
    if torch:
        m = torch[0]
        while m:
            chain.append(m)
            m = reached[m]
    assert not torch, f"{start} imports torch: {' <- '.join(chain)}"


_BLOCK_TORCH = """
import importlib.abc, sys

class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch' (blocked by the test)", name="torch")
        return None

sys.meta_path.insert(0, _NoTorch())
"""


def _cli(args: list[str], cwd: Path, block: Path | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if block is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(block), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "uticompile", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, check=False)  # fmt: skip


def test_inspect_encode_and_run_work_without_torch(
    tmp_path: Path, small_graphs: dict[str, Graph]
) -> None:
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(_BLOCK_TORCH)
    probe = _cli(["--version"], tmp_path, block)
    assert probe.returncode == 0, probe.stderr
    env = {**os.environ, "PYTHONPATH": str(block)}
    no_torch = subprocess.run([sys.executable, "-c", "import torch"], env=env, check=False)
    assert no_torch.returncode != 0  # the block works
    g = small_graphs["vgg_small"].copy()
    rng = np.random.default_rng(0)
    for node in g.weight_nodes():
        w = g.params[node.inputs[1]]
        g.params[node.inputs[1]] = np.where(rng.random(w.shape) < 0.3, w, 0).astype(np.float32)
    for name, v in g.params.items():  # keep the layers firing
        if name.endswith("running_var"):
            g.params[name] = rng.uniform(0.02, 0.2, v.shape).astype(np.float32)
    save_onnx(g, tmp_path / "m.onnx")
    mapped = _cli(["map", "m.onnx", "--pes", "16", "-o", "m.utm"], tmp_path, None)
    assert mapped.returncode == 0, mapped.stderr
    figures = {}
    for label, blocked in (("torch", None), ("no torch", block)):
        out = {}
        for key, args in (
            ("inspect", ["inspect", "m.utm", "--json"]),
            ("encode", ["encode-input", "m.utm", "--samples", "20", "-o", f"in{label}.uts",
                        "--json"]),
            ("run spikes", ["run", "m.utm", "--spikes", f"in{label}.uts", "--json"]),
            ("run", ["run", "m.utm", "--samples", "20", "--json"]),
        ):  # fmt: skip
            result = _cli(args, tmp_path, blocked)
            assert result.returncode == 0, f"{label}: {' '.join(args)}: {result.stderr}"
            out[key] = json.loads(result.stdout)
            out[key].pop("output", None)
        out["trace"] = (tmp_path / f"in{label}.uts").read_bytes()
        figures[label] = out
    assert figures["torch"]["run"]["work"] > 0
    assert figures["torch"]["run spikes"]["work"] == figures["torch"]["run"]["work"]
    assert figures["no torch"] == figures["torch"]
    train = _cli(
        ["train", "--model", "vgg_small", "--epochs", "1", "-o", "t.onnx"], tmp_path, block
    )
    assert train.returncode == 2
    assert train.stderr.strip().splitlines() == [
        "uticompile: error: this command needs PyTorch: pip install 'uticompile[train]'"
    ]


#: Libraries that must not know their callers' flags (the CLI maps ``option`` to a flag).
FLAG_FREE = ("passes", "models", "uticompile/shrink")


def flag_strings(path: Path) -> list[str]:
    """String literals (f-string parts included, docstrings excluded) that name a CLI flag."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and re.search(r"(?<![\w-])--[a-z]", node.value)
    ]


@pytest.mark.parametrize("folder", FLAG_FREE)
def test_library_messages_name_no_cli_flag(folder: str) -> None:
    """A library does not know its caller's flags: messages name options as fields
    (``UticompileError.option``), and the CLI shows the flag instead."""
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, folder
    found = {str(p.relative_to(ROOT)): s for p in files if (s := flag_strings(p))}
    assert found == {}


def test_the_flag_scan_sees_f_strings_and_skips_docstrings(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        '"""Module doc: --doc-flag is fine here."""\n'
        "def f(x):\n"
        '    """--also fine"""\n'
        '    raise ValueError(f"--rounds must be >= 0, got {x}")\n'
        'TEXT = "ranges like 3--4 and --- rules are not flags"\n'
    )
    assert flag_strings(src) == ["--rounds must be >= 0, got "]
