"""``uticompile compare``: the paper's experiments (Tables I-III, Figs. 6-7) as one command.

``config`` holds the options; ``experiment`` prunes, maps and runs the variants; ``tables``
turns the numbers into JSON and markdown; ``plots`` draws the figures (matplotlib is optional).
"""

from __future__ import annotations

from uticompile.compare.config import BASELINE, SWEEP_VARIANT, CompareConfig
from uticompile.compare.experiment import (
    CompareEvent,
    CompareResult,
    run_compare,
)

__all__ = [
    "BASELINE",
    "SWEEP_VARIANT",
    "CompareConfig",
    "CompareEvent",
    "CompareResult",
    "run_compare",
]
