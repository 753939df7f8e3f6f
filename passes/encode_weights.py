"""EncodeWeights: encode every tile's weights as a WSP blob (bitmask + i16 values, the paper's
format) or a compact one (Golomb-Rice zero runs + weight_bits values, format 1.2), per ``encoding``.

``auto`` stores each tile in whichever takes fewer words (WSP on ties), so an ``auto`` mapping is
never larger than a WSP one. Tiles are the same whatever the encoding (``PlaceOnPEs`` sizes them
by their WSP words, which a compact stream never exceeds), so placement, execution and cost do not
change. Postcondition: decoding every blob gives back the quantized weights exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from uticompile.errors import InvariantError, PassError
from uticompile.hwir import HwModule
from uticompile.mapfile import dense_from_wsp, wsp_encode
from uticompile.mapfile.compact import (
    ENCODING_COMPACT,
    ENCODING_WSP,
    compact_decode,
    compact_encode,
)
from uticompile.passes.base import PassResult

WEIGHT_ENCODINGS = ("wsp", "compact", "auto")


@dataclass(frozen=True)
class EncodeWeights:
    name: ClassVar[str] = "encode-weights"
    encoding: str = "wsp"

    def __post_init__(self) -> None:
        if self.encoding not in WEIGHT_ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(WEIGHT_ENCODINGS)}")

    def __call__(self, module: HwModule) -> PassResult:
        blobs: list[bytes] = []
        codes: list[tuple[int, int, int]] = []  # per tile: encoding, rice_k, words
        for layer in module.weight_layers():
            if layer.tiles is None or layer.weight is None:
                raise PassError(f"{layer.name!r} is not placed on PEs")
            flat = layer.weight.reshape(layer.weight.shape[0], -1)
            for _, _, _, f, start, count, nnz in layer.tiles.tolist():
                values = flat[f, start : start + count]
                blob, code = self._encode(values, layer.weight_bits)
                if code[0] == ENCODING_WSP:
                    decoded = dense_from_wsp(blob, count, nnz)
                else:
                    mask, kept = compact_decode(blob, count, nnz, layer.weight_bits, code[1])
                    decoded = np.zeros(count, np.int64)
                    decoded[mask] = kept
                if not np.array_equal(decoded, values):  # postcondition: decode(encode(W)) == W
                    raise InvariantError(f"{layer.name!r}: tile of filter {f} does not decode back")
                blobs.append(blob)
                codes.append(code)
        sizes = np.array([len(b) for b in blobs], dtype=np.int64)
        module.wsp = b"".join(blobs)
        module.wsp_offsets = np.cumsum(sizes) - sizes
        module.tile_codes = np.array(codes, dtype=np.int64).reshape(-1, 3)
        return PassResult(module, True)

    def _encode(self, values: np.ndarray, weight_bits: int) -> tuple[bytes, tuple[int, int, int]]:
        """(blob, (encoding, rice_k, words)) of one tile."""
        mask = values != 0
        wsp = wsp_encode(values, mask)
        if self.encoding == "wsp":
            return wsp, (ENCODING_WSP, 0, len(wsp) // 2)
        compact, k = compact_encode(values, mask, weight_bits)
        if self.encoding == "auto" and len(compact) >= len(wsp):
            return wsp, (ENCODING_WSP, 0, len(wsp) // 2)
        return compact, (ENCODING_COMPACT, k, len(compact) // 2)
