"""EncodeWSP: encode every tile's weights as a WSP blob (bitmask + packed nonzero values).

Postcondition: decoding every blob gives back the quantized weights exactly, and every blob's
popcount is its tile's nonzero count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from uticompile.errors import InvariantError, PassError
from uticompile.hwir import HwLayer, HwModule
from uticompile.mapfile import dense_from_wsp, wsp_encode
from uticompile.passes.base import PassResult


def _tile_slices(layer: HwLayer) -> tuple[np.ndarray, np.ndarray]:
    """(flattened weights [O, fsize], tiles) of a placed weight layer."""
    assert layer.weight is not None and layer.tiles is not None
    return layer.weight.reshape(layer.weight.shape[0], -1), layer.tiles


@dataclass(frozen=True)
class EncodeWSP:
    name: ClassVar[str] = "encode-wsp"

    def __call__(self, module: HwModule) -> PassResult:
        blobs: list[bytes] = []
        offsets: list[int] = []
        pos = 0
        for layer in module.weight_layers():
            if layer.tiles is None:
                raise PassError(f"{layer.name!r} is not placed on PEs")
            flat, tiles = _tile_slices(layer)
            for _, _, _, f, start, count, nnz in tiles.tolist():
                values = flat[f, start : start + count]
                blob = wsp_encode(values, values != 0)
                decoded = dense_from_wsp(blob, count, nnz)
                if not np.array_equal(decoded, values):  # postcondition: decode(encode(W)) == W
                    raise InvariantError(f"{layer.name!r}: WSP of filter {f} does not decode back")
                blobs.append(blob)
                offsets.append(pos)
                pos += len(blob)
        module.wsp = b"".join(blobs)
        module.wsp_offsets = np.asarray(offsets, dtype=np.int64)
        return PassResult(module, True)
