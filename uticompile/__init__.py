"""uticompile: compiler and deployment toolchain for workload-balanced sparse SNNs.

The public Python API (``uticompile.api``) is re-exported here lazily: ``import uticompile`` stays
cheap and torch-free, and ``uticompile.map_model`` (etc.) imports the API on first use. The
comparison step is ``compare_variants``: ``uticompile.compare`` is the experiment package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from uticompile.api import (
        Comparison,
        Mapped,
        Pruned,
        Pruner,
        PruneRound,
        PruneStep,
        Trained,
        VariantResult,
        build_model,
        compare_variants,
        load_dataset,
        load_mapping,
        load_model,
        map_model,
        prune,
        run,
        save_mapping,
        save_model,
        train,
    )

__all__ = [
    "Comparison",
    "Mapped",
    "PruneRound",
    "PruneStep",
    "Pruned",
    "Pruner",
    "Trained",
    "VariantResult",
    "__version__",
    "build_model",
    "compare_variants",
    "load_dataset",
    "load_mapping",
    "load_model",
    "map_model",
    "prune",
    "run",
    "save_mapping",
    "save_model",
    "train",
]
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    """Resolve the API's names on first use (importing ``uticompile.api`` then, not before)."""
    if name in _API:
        from uticompile import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'uticompile' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
