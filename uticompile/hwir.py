"""The hardware-level IR that the map pipeline lowers a network into.

One ``HwLayer`` per operation the accelerator (or its host) performs, in execution order; it is
what the mapped binary stores (docs/mapping-format.md, section 2.2). Weight layers start with
float weights (after lowering) and end with integer weights placed on PEs (after quantization and
placement); the passes fill the fields in that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from uticompile.hardware import HardwareConfig
from uticompile.placement import Placement

KINDS = ("ENCODE", "CONV", "FC", "LIF", "MAXPOOL", "SUMPOOL", "ADD", "FLATTEN")
WEIGHT_KINDS = ("ENCODE", "CONV", "FC")
PSUM_KINDS = ("ENCODE", "CONV", "FC", "ADD")  # outputs are partial sums, not spikes
NETWORK_INPUT = -1

#: Fields of one placed tile (before its WSP blob exists).
TILE_FIELDS = ("group", "pe", "tile", "filter", "position", "count", "nnz")


@dataclass
class HwLayer:
    name: str
    kind: str
    inputs: tuple[int, ...]
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    weight: np.ndarray | None = None  # float32 after lowering, int16 after quantization
    bias: np.ndarray | None = None  # float32 after lowering, int64 after quantization
    frac_bits: int = 0  # output scale of partial sums
    weight_frac: int = 0
    weight_bits: int = 0
    threshold: float = 0.0  # LIF, in input units (gain folded in)
    leak: float = 0.0
    reset: str = "hard"
    threshold_q: int = 0
    leak_mult: int = 0
    leak_shift: int = 0
    shifts: tuple[int, int] = (0, 0)  # ADD: left shifts; ENCODE: (right shift, 0)
    groups: int = 0
    spatial_tiles: int = 0
    placement: Placement | None = None  # which PE holds what (None: the grouping's contiguous)
    tiles: np.ndarray | None = None  # int64 [num_tiles, len(TILE_FIELDS)]
    report: dict[str, float | int | bool] = field(default_factory=dict)

    @property
    def is_weight(self) -> bool:
        return self.kind in WEIGHT_KINDS


@dataclass
class HwModule:
    name: str
    timesteps: int
    num_classes: int
    input_shape: tuple[int, int, int]
    hw: HardwareConfig
    grouping: str
    input_bound: float  # largest |normalized input| the analog layer must represent
    layers: list[HwLayer]
    input_frac_bits: int = 0
    quantized: bool = False
    wsp: bytes | None = None
    wsp_offsets: np.ndarray | None = None  # per tile, in layer then tile order
    tile_codes: np.ndarray | None = None  # per tile: encoding, rice_k, words (int64 [tiles, 3])

    def weight_layers(self) -> list[HwLayer]:
        return [layer for layer in self.layers if layer.is_weight]
