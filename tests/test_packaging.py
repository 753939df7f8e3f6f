"""The installed layout: one ``uticompile`` namespace, every source folder declared as a package."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_source_folder_is_a_declared_package() -> None:
    cfg = _setuptools()
    declared = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = set()
    for package, folder in mapping.items():
        if (
            "." in package
            and package.rsplit(".", 1)[0] in mapping
            and mapping[package].startswith(mapping[package.rsplit(".", 1)[0]] + "/")
        ):
            continue  # a subfolder mapping, walked from its parent below
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    assert found == declared
    for package in declared:
        assert package == "uticompile" or package.startswith("uticompile.")


def test_package_dirs_point_at_the_architecture_folders() -> None:
    mapping = _setuptools()["package-dir"]
    assert mapping["uticompile.passes"] == "passes"
    assert mapping["uticompile.runtime"] == "runtime"
    assert mapping["uticompile.models"] == "models"
    for package, folder in mapping.items():
        assert (ROOT / folder / "__init__.py").is_file(), package
