"""The registry of generated sections of docs/results.md: name -> commands -> output file.

A section is the shell commands a user would type (run in the section's own work directory with
the project's ``uticompile`` first on PATH) and a ``render`` function that reads what they wrote
and returns the section's markdown: tables with the paper's figure beside each number and the
difference explained. ``python docs/regen.py NAME`` runs the commands, times them and writes
``docs/results/NAME.md`` and the marked region of docs/results.md.

To add a section: write ``docs/sections/your_name.py`` defining ``SECTION = Section(...)`` and
add its module name to ``MODULES`` below. Order in ``MODULES`` is the order in results.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Section:
    """One generated section of docs/results.md."""

    name: str  # file docs/results/{name}.md and region name in results.md
    title: str  # the section's heading
    commands: tuple[str, ...]  # shell lines, run in order in the work directory
    render: Callable[[Path], str]  # work directory -> markdown body (no heading, no commands)
    cost: str  # what a run costs, for --list (e.g. "1-3 min")


#: Section modules in docs/sections/, in the order they appear in results.md.
MODULES: tuple[str, ...] = ("demo", "et_ticket", "resnet19", "balance98", "benchmarks")


def load_sections() -> dict[str, Section]:
    """Every registered section by name (raises if two share a name)."""
    out: dict[str, Section] = {}
    for module in MODULES:
        section: Section = importlib.import_module(f"sections.{module}").SECTION
        if section.name in out:
            raise ValueError(f"two sections are named {section.name!r}")
        out[section.name] = section
    return out
