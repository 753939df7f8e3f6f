"""WSP blobs (docs/mapping-format.md §2.4): a tile's weights as a bitmask plus its nonzero values.

The one place for the WSP word counts: the placer sizes tiles, the mapper fills TILE's ``words``
and ``wsp_bytes``, and the reader checks them, all with ``mask_words``/``wsp_words``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from uticompile.errors import MappingFormatError

MASK_WORD_BITS = 16
"""A WSP bitmask is stored in 16-bit words."""
WORD_BYTES = 2
"""Every WSP word (bitmask or i16 value) is 2 bytes."""


def mask_words(count: npt.ArrayLike) -> np.ndarray:
    """Bitmask words of tiles of ``count`` weight positions (int64, vectorized)."""
    return -(-np.asarray(count, dtype=np.int64) // MASK_WORD_BITS)


def wsp_words(count: npt.ArrayLike, nnz: npt.ArrayLike) -> np.ndarray:
    """Words of a tile's WSP blob: its bitmask, then one word per nonzero weight (vectorized)."""
    return mask_words(count) + np.asarray(nnz, dtype=np.int64)


def _mask_bytes(count: int) -> int:
    return WORD_BYTES * int(mask_words(count))


def wsp_encode(values: np.ndarray, mask: np.ndarray) -> bytes:
    """The WSP blob of one tile: ``mask`` as 16-bit bitmask words, then ``values[mask]`` (i16).

    ``values`` are the tile's weights at its ``count`` positions (integers fitting int16),
    ``mask`` a bool array of the same length; every set bit stores its value, whatever it is.
    """
    v = np.asarray(values)
    m = np.asarray(mask)
    if v.ndim != 1 or m.shape != v.shape:
        raise ValueError(f"values {v.shape} and mask {m.shape} must be 1-D of one length")
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be bool, got {m.dtype}")
    if v.dtype.kind not in "iu":
        raise TypeError(f"values must be integers, got {v.dtype}")
    kept = v[m]
    if kept.size and (int(kept.min()) < -32768 or int(kept.max()) > 32767):
        raise ValueError("a stored weight does not fit int16")
    bits = np.zeros(_mask_bytes(v.size) * 8, dtype=bool)
    bits[: v.size] = m
    return np.packbits(bits, bitorder="little").tobytes() + kept.astype("<i2").tobytes()


def wsp_decode(
    blob: bytes | bytearray | memoryview, count: int, nnz: int
) -> tuple[np.ndarray, np.ndarray]:
    """(mask bool [count], values int16 [nnz]) of one tile's blob, checked against the bitmask."""
    if count < 0 or nnz < 0:
        raise ValueError(f"count {count} and nnz {nnz} must be >= 0")
    raw = np.frombuffer(blob, dtype=np.uint8)
    mbytes = _mask_bytes(count)
    if raw.size != mbytes + 2 * nnz:
        raise MappingFormatError(
            f"WSP blob is {raw.size} bytes; count {count} and nnz {nnz} need {mbytes + 2 * nnz}"
        )
    bits = np.unpackbits(raw[:mbytes], bitorder="little").view(bool)
    if bits[count:].any():
        raise MappingFormatError(f"WSP blob has bitmask bits set past count {count}")
    mask = bits[:count].copy()
    ones = int(np.count_nonzero(mask))
    if ones != nnz:
        raise MappingFormatError(f"WSP bitmask has {ones} set bits, nnz is {nnz}")
    values = np.frombuffer(raw, dtype="<i2", count=nnz, offset=mbytes).astype(np.int16)
    return mask, values


def dense_from_wsp(blob: bytes | bytearray | memoryview, count: int, nnz: int) -> np.ndarray:
    """The tile's ``count`` weights (int16) from its blob, pruned positions 0."""
    mask, values = wsp_decode(blob, count, nnz)
    dense = np.zeros(count, dtype=np.int16)
    dense[mask] = values
    return dense
