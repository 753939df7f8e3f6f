"""ChoosePlacement: decide, per weight layer, which PE of which group holds which filter channels.

The rule itself lives in ``uticompile.placement`` (the cost model charges the same rule). This
pass builds each layer's load (its nonzero weights, and the calibration hits when the options
carry them; otherwise every nonzero weight costs one cycle) and records the chosen placement for
``PlaceOnPEs``. The analog ``ENCODE`` layer runs on the host and keeps the grouping's layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from uticompile.errors import ConfigError, PassError
from uticompile.grouping import group_layout
from uticompile.hwir import HwModule
from uticompile.passes.base import PassResult
from uticompile.placement import CONTIGUOUS, PLACEMENTS, LayerLoad, contiguous, place


@dataclass(frozen=True)
class ChoosePlacement:
    """Options: ``placement`` (``PLACEMENTS``), ``hits`` per layer name (``[steps, C, K]``
    calibration cycles per weight position), ``margin`` (the gain ``auto`` needs to leave the
    contiguous layout on measured hits)."""

    name: ClassVar[str] = "choose-placement"
    placement: str = "auto"
    hits: Mapping[str, np.ndarray] = field(default_factory=dict)
    margin: float = 0.02

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ConfigError(
                f"unknown placement {self.placement!r}; expected one of {', '.join(PLACEMENTS)}"
            )
        if not 0 <= self.margin < 1:
            raise ConfigError(f"the placement margin must lie in [0, 1), got {self.margin}")

    def __call__(self, module: HwModule) -> PassResult:
        if not module.quantized:
            raise PassError("weights must be quantized before placement (nonzeros are final)")
        n = module.hw.num_pes
        changed = False
        for layer in module.weight_layers():
            assert layer.weight is not None
            w = layer.weight
            o, c = w.shape[:2]
            k = int(np.prod(w.shape[2:])) if w.ndim == 4 else 1
            base = contiguous(group_layout(tuple(w.shape), n, module.grouping), k)
            if layer.kind == "ENCODE":
                layer.placement = base
                continue
            load = LayerLoad(w.reshape(o, c, k) != 0, self.hits.get(layer.name))
            chosen = place(self.placement, load, n, base, self.margin)
            chosen.check(o, c)  # postcondition: every filter channel on exactly one PE
            layer.placement = chosen
            changed |= chosen.code != CONTIGUOUS
        return PassResult(module, changed)
