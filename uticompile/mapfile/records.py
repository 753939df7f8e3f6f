"""The records of the mapped binary (``.utm``, docs/mapping-format.md §2): byte layouts as numpy
structured dtypes, the codes of every enumerated field, and the in-memory ``Mapping``.

This module is the one place for the format's codes; the mapper, the readers and the printer
import them from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uticompile.limits import HARDWARE_RANGES, MAX_DIM, MAX_TIMESTEPS
from uticompile.mapfile.compact import ENCODING_WSP, compact_decode
from uticompile.mapfile.wsp import dense_from_wsp

MAGIC_UTM = b"UTMAP\x00\r\n"
VERSION = (1, 2)
"""The newest format version this package reads and writes (docs/mapping-format.md §1.1)."""
BASE_VERSION = (1, 1)
"""What a file needs no newer feature for is written as this version, so 1.1 readers keep reading
it; ``required_version`` says which minor a mapping needs."""
#: The first minor version in which a ``SUMPOOL`` may pool windows (kernel/stride read; §2.2)
#: and a ``LIF`` may have reset 2 (``subtract-after-leak``).
WINDOW_SUMPOOL_MINOR = 2
#: The first minor version in which a tile may use the compact weight encoding (§2.5).
COMPACT_MINOR = 2

MODL_DTYPE = np.dtype(
    [
        ("name", "<u4"),
        ("timesteps", "<u4"),
        ("num_classes", "<u4"),
        ("input_shape", "<u4", (3,)),
        ("input_frac_bits", "<i4"),
        ("input_bits", "<u4"),
        ("num_pes", "<u4"),
        ("scratchpad_words", "<u4"),
        ("word_bits", "<u4"),
        ("acc_bits", "<u4"),
        ("accumulators", "<u4"),
        ("grouping", "<u4"),
        ("layer_count", "<u4"),
        ("tile_count", "<u4"),
    ]
)
LAYR_DTYPE = np.dtype(
    [
        ("kind", "<u2"),
        ("flags", "<u2"),
        ("name", "<u4"),
        ("input0", "<i4"),
        ("input1", "<i4"),
        ("in_shape", "<u4", (3,)),
        ("out_shape", "<u4", (3,)),
        ("kernel", "<u2", (2,)),
        ("stride", "<u2", (2,)),
        ("pads", "<u2", (4,)),
        ("frac_bits", "<i4"),
        ("weight_bits", "<u4"),
        ("bias_index", "<u8"),
        ("tile_first", "<u4"),
        ("tile_count", "<u4"),
        ("threshold", "<i4"),
        ("leak_mult", "<u4"),
        ("leak_shift", "<u4"),
        ("reset", "<u4"),
        ("shift0", "<i4"),
        ("shift1", "<i4"),
        ("groups", "<u4"),
        ("spatial_tiles", "<u4"),
        ("placement", "u1"),
        ("reserved", "u1", (15,)),
    ]
)
TILE_DTYPE = np.dtype(
    [
        ("layer", "<u4"),
        ("group", "<u4"),
        ("pe", "<u2"),
        ("tile", "<u2"),
        ("filter", "<u4"),
        ("position", "<u4"),
        ("count", "<u4"),
        ("nnz", "<u4"),
        ("words", "<u4"),
        ("wsp_offset", "<u8"),
        ("wsp_bytes", "<u4"),
        ("encoding", "u1"),
        ("rice_k", "u1"),
        ("reserved", "<u2"),
    ]
)

KIND_ENCODE = 1
KIND_CONV = 2
KIND_FC = 3
KIND_LIF = 4
KIND_MAXPOOL = 5
KIND_SUMPOOL = 6
KIND_ADD = 7
KIND_FLATTEN = 8
KIND_NAMES: dict[int, str] = {
    KIND_ENCODE: "ENCODE",
    KIND_CONV: "CONV",
    KIND_FC: "FC",
    KIND_LIF: "LIF",
    KIND_MAXPOOL: "MAXPOOL",
    KIND_SUMPOOL: "SUMPOOL",
    KIND_ADD: "ADD",
    KIND_FLATTEN: "FLATTEN",
}
KIND_CODES: dict[str, int] = {name: code for code, name in KIND_NAMES.items()}
WEIGHT_KINDS = frozenset({KIND_ENCODE, KIND_CONV, KIND_FC})

LAYER_FLAG_BIAS = 1
GROUPING_SATA = 0
GROUPING_SYSTOLIC = 1
GROUPING_NAMES: dict[int, str] = {GROUPING_SATA: "sata", GROUPING_SYSTOLIC: "systolic"}
GROUPING_CODES: dict[str, int] = {name: code for code, name in GROUPING_NAMES.items()}
PLACEMENT_CONTIGUOUS = 0
PLACEMENT_SORTED = 1
PLACEMENT_SPLIT = 2
PLACEMENT_NAMES: dict[int, str] = {
    PLACEMENT_CONTIGUOUS: "contiguous",
    PLACEMENT_SORTED: "sorted",
    PLACEMENT_SPLIT: "split",
}
RESET_HARD = 0
RESET_SUBTRACT = 1
RESET_SUBTRACT_AFTER_LEAK = 2  # 1.2: snnTorch's order, fires on u > threshold (section 2.2)
#: The IR's reset names (``uticompile.ir.RESETS``) -> LAYR ``reset`` codes.
RESET_CODES: dict[str, int] = {
    "hard": RESET_HARD,
    "subtract": RESET_SUBTRACT,
    "subtract-after-leak": RESET_SUBTRACT_AFTER_LEAK,
}

SECTION_TAGS = (b"MODL", b"LAYR", b"TILE", b"WSPW", b"BIAS", b"STRS", b"META")
"""Sections in the order written; all but META are required."""
REQUIRED_SECTIONS = SECTION_TAGS[:-1]

#: MODL fields and their accepted ranges. The document gives input_bits 8, word_bits 16,
#: acc_bits 24 and accumulators 256 (the paper's accelerator); the hardware config admits other
#: values, so the reader accepts the ranges a mapping can represent (``uticompile.limits``).
MODL_RANGES: dict[str, tuple[int, int]] = {
    "timesteps": (1, MAX_TIMESTEPS),
    "num_classes": (1, MAX_DIM),
    **HARDWARE_RANGES,
    "grouping": (min(GROUPING_NAMES), max(GROUPING_NAMES)),
}


def window_sumpools(layers: np.ndarray) -> np.ndarray:
    """Mask of the ``SUMPOOL`` records that pool windows, not the whole input map (1.2)."""
    is_sum = layers["kind"] == KIND_SUMPOOL
    return is_sum & (layers["kernel"] != layers["in_shape"][:, 1:]).any(axis=1)


def required_version(layers: np.ndarray, tiles: np.ndarray | None = None) -> tuple[int, int]:
    """The lowest format version that expresses these layer (and tile) records."""
    after_leak = (layers["kind"] == KIND_LIF) & (layers["reset"] == RESET_SUBTRACT_AFTER_LEAK)
    minor = BASE_VERSION[1]
    if window_sumpools(layers).any() or after_leak.any():
        minor = max(minor, WINDOW_SUMPOOL_MINOR)
    if tiles is not None and np.any(tiles["encoding"] != ENCODING_WSP):
        minor = max(minor, COMPACT_MINOR)
    return (VERSION[0], minor)


def meta_text(meta: dict[str, Any]) -> str:
    """Canonical META text; NaN and infinities are refused, as JSON has none."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(eq=False)
class Mapping:
    """One mapped network: the records of a ``.utm`` file, with names resolved.

    ``model`` is one ``MODL_DTYPE`` record (shape ``()``), ``layers`` ``LAYR_DTYPE [L]``,
    ``tiles`` ``TILE_DTYPE [N]``, ``wsp`` the WSPW bytes (uint8), ``bias`` the BIAS int32 array.
    The string offsets (``name`` fields) and MODL ``layer_count``/``tile_count`` are storage
    details derived on write from ``name``, ``layer_names`` and the array lengths; their values
    here are ignored by ``encode_mapping`` and by ``equals``.
    """

    name: str
    model: np.ndarray
    layers: np.ndarray
    layer_names: list[str]
    tiles: np.ndarray
    wsp: np.ndarray
    bias: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def equals(self, other: object) -> bool:
        """Exact equality of every field and byte (derived storage fields excepted, see above)."""
        if not isinstance(other, Mapping):
            return False
        if self.name != other.name or list(self.layer_names) != list(other.layer_names):
            return False
        for a, b in zip(_comparable(self), _comparable(other), strict=True):
            if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
                return False
        try:
            return meta_text(self.meta) == meta_text(other.meta)
        except (TypeError, ValueError):
            return bool(self.meta == other.meta)

    def tile_wsp(self, index: int) -> bytes:
        """The blob of tile ``index`` in WSPW (WSP or compact: ``2 * words`` bytes)."""
        t = self.tiles[index]
        start = int(t["wsp_offset"])
        return bytes(self.wsp[start : start + 2 * int(t["words"])])

    def tile_dense(self, index: int) -> np.ndarray:
        """Tile ``index``'s weights at its ``count`` positions (int16, pruned ones 0)."""
        t = self.tiles[index]
        count, nnz = int(t["count"]), int(t["nnz"])
        if int(t["encoding"]) == ENCODING_WSP:
            return dense_from_wsp(self.tile_wsp(index), count, nnz)
        bits = int(self.layers[int(t["layer"])]["weight_bits"])
        mask, values = compact_decode(self.tile_wsp(index), count, nnz, bits, int(t["rice_k"]))
        dense = np.zeros(count, dtype=np.int16)
        dense[mask] = values
        return dense

    @property
    def version(self) -> tuple[int, int]:
        """The version this mapping is written as (``required_version``): 1.1 unless a 1.2
        feature (a compact tile, a SUMPOOL window, LIF reset 2) is used."""
        return required_version(self.layers, self.tiles)


def _comparable(m: Mapping) -> list[np.ndarray]:
    """The arrays ``equals`` compares, with the derived storage fields zeroed."""
    model = np.array(m.model, copy=True)
    layers = np.array(m.layers, copy=True)
    if model.dtype == MODL_DTYPE:
        model["name"] = model["layer_count"] = model["tile_count"] = 0
    if layers.dtype == LAYR_DTYPE:
        layers["name"] = 0
    return [model, layers, np.asarray(m.tiles), np.asarray(m.wsp), np.asarray(m.bias)]
