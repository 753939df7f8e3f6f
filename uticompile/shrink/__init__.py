"""``uticompile shrink``: spatio-temporal pruning (PCA channel widths, then fewer timesteps).

The pure pieces live in ``passes`` (``pca_widths``, ``resize_channels``, ``timestep_schedule``);
this package runs them as resumable stages and costs every stage on the modeled accelerator.
"""

from __future__ import annotations

from uticompile.shrink.api import shrink
from uticompile.shrink.config import ShrinkConfig
from uticompile.shrink.paths import ShrinkPaths, StagePaths
from uticompile.shrink.runner import ShrinkEvent, ShrinkResult, run_shrink

__all__ = [
    "ShrinkConfig",
    "ShrinkEvent",
    "ShrinkPaths",
    "ShrinkResult",
    "StagePaths",
    "run_shrink",
    "shrink",
]
