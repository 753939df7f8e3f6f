"""The compact weight encoding (docs/mapping-format.md §2.5, version 1.2): a tile's nonzero weights
as Golomb-Rice coded zero runs plus their values at the layer's ``weight_bits``.

Why: WSP (``wsp``) spends one mask bit per weight position, about 50 bits per nonzero weight at 98%
sparsity, where the mask's entropy is about 7. A Rice code of the zero runs with a parameter ``k``
fitted to the tile costs ``k + 1 + (run >> k)`` bits per nonzero, within a few percent of that
entropy for geometric runs, and the values drop from 16-bit words to ``weight_bits``.

The stream puts its fixed-width fields first (all values, then all remainders, then the unary
quotients): the code lengths are those of interleaved Golomb-Rice, but every value and remainder
sits at a computable bit offset and every quotient is the distance between two one bits, so
numpy decodes a whole layer with no loop over weights or tiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import numpy.typing as npt

from uticompile.errors import MappingFormatError

ENCODING_WSP = 0
ENCODING_COMPACT = 1
ENCODING_NAMES: dict[int, str] = {ENCODING_WSP: "wsp", ENCODING_COMPACT: "compact"}
ENCODING_CODES: dict[str, int] = {name: code for code, name in ENCODING_NAMES.items()}
MAX_RICE_K = 31
"""Largest Rice parameter: runs are below a tile's count (u32), so k = 31 leaves quotients 0..1."""
STREAM_WORD_BITS = 16
"""The stream is padded to whole 16-bit scratchpad words."""
_BUDGET = 1 << 20  # bytes of blobs decoded at once (bounds memory and keeps sums in int64)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

Fail = Callable[[int, str], NoReturn]


def _raise(i: int, msg: str) -> NoReturn:
    raise MappingFormatError(f"compact tile {i}: {msg}")


def runs_of(positions: npt.ArrayLike) -> np.ndarray:
    """The zero runs before each nonzero: ``p[0]``, then ``p[i] - p[i-1] - 1`` (int64)."""
    p = np.asarray(positions, dtype=np.int64)
    return np.diff(p, prepend=-1) - 1


def rice_cost(runs: np.ndarray, k: npt.ArrayLike) -> np.ndarray:
    """Bits of the index part (remainders + unary quotients) of ``runs`` for each ``k``."""
    ks = np.asarray(k, dtype=np.int64)
    r = np.asarray(runs, dtype=np.int64)
    return r.size * (ks + 1) + (r[:, None] >> ks.reshape(-1)).sum(axis=0).reshape(ks.shape)


def best_rice_k(runs: np.ndarray) -> int:
    """The Rice parameter with the fewest index bits for ``runs`` (the smallest on ties)."""
    r = np.asarray(runs, dtype=np.int64)
    if r.size == 0:
        return 0
    top = min(MAX_RICE_K, max(int(r.max()).bit_length(), 0))  # larger k only adds bits
    return int(np.argmin(rice_cost(r, np.arange(top + 1))))


def compact_stream_bits(nnz: int, weight_bits: int, k: int, runs: np.ndarray) -> int:
    """Bits of a tile's stream before padding: values, remainders, quotients."""
    return nnz * weight_bits + int(rice_cost(np.asarray(runs), k))


def compact_encode(
    values: np.ndarray, mask: np.ndarray, weight_bits: int, k: int | None = None
) -> tuple[bytes, int]:
    """(blob, k): the compact stream of one tile, padded to 16-bit words.

    ``values``/``mask`` are the tile's ``count`` weights and which of them are stored (as for
    ``wsp_encode``); every stored value must lie in ``±(2^(weight_bits-1) - 1)``. ``k`` defaults to
    the best Rice parameter for the tile (``best_rice_k``).
    """
    v = np.asarray(values)
    m = np.asarray(mask)
    if v.ndim != 1 or m.shape != v.shape:
        raise ValueError(f"values {v.shape} and mask {m.shape} must be 1-D of one length")
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be bool, got {m.dtype}")
    if v.dtype.kind not in "iu":
        raise TypeError(f"values must be integers, got {v.dtype}")
    if not 2 <= weight_bits <= 32:
        raise ValueError(f"weight_bits {weight_bits} is out of range 2..32")
    pos = np.flatnonzero(m)
    kept = v[m].astype(np.int64)
    bound = (1 << (weight_bits - 1)) - 1
    if kept.size and (int(kept.min()) < -bound or int(kept.max()) > bound):
        raise ValueError(f"a stored weight does not fit {weight_bits} bits (±{bound})")
    runs = runs_of(pos)
    if k is None:
        k = best_rice_k(runs)
    if not 0 <= k <= MAX_RICE_K:
        raise ValueError(f"k {k} is out of range 0..{MAX_RICE_K}")
    nnz = pos.size
    q = runs >> k
    value_bits = (kept[:, None] >> np.arange(weight_bits)) & 1  # two's complement, LSB first
    rem_bits = (runs[:, None] >> np.arange(k)) & 1
    unary = np.zeros(int(q.sum()) + nnz, dtype=bool)
    unary[np.cumsum(q + 1) - 1] = True  # q zeros, then the one that ends the quotient
    used = nnz * (weight_bits + k) + unary.size
    bits = np.zeros(-(-used // STREAM_WORD_BITS) * STREAM_WORD_BITS, dtype=bool)
    bits[: nnz * weight_bits] = value_bits.ravel().astype(bool)
    bits[nnz * weight_bits : nnz * (weight_bits + k)] = rem_bits.ravel().astype(bool)
    bits[nnz * (weight_bits + k) : used] = unary
    return np.packbits(bits, bitorder="little").tobytes(), int(k)


@dataclass(frozen=True)
class CompactWeights:
    """Decoded compact tiles: one entry per nonzero weight, tiles in the order given.

    ``tile`` indexes the tiles passed to ``decode_compact``; ``position`` is relative to the
    tile's first position; ``value`` the signed weight (int64).
    """

    tile: np.ndarray
    position: np.ndarray
    value: np.ndarray


def _chunks(lengths: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """Ranges of tiles whose blob bytes sum to about ``budget`` (or one larger tile)."""
    cum = np.cumsum(lengths)
    start = 0
    while start < lengths.size:
        base = int(cum[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cum, base + budget, side="right")), start + 1)
        yield start, stop
        start = stop


def _gather(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of ``buf[s : s + n]``; one span (a tile over the budget) is sliced, so
    that its index array (8 bytes per byte) is never built."""
    if len(starts) == 1:
        return np.array(buf[int(starts[0]) : int(starts[0]) + int(lengths[0])])
    seg = np.cumsum(lengths) - lengths
    idx = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - seg, lengths)
    return buf[idx]


def _fields(buf: np.ndarray, start_bit: np.ndarray, width: np.ndarray) -> np.ndarray:
    """The unsigned ``width``-bit fields (<= 57) at bit offsets of ``buf`` (8 zero bytes past)."""
    byte = start_bit >> 3
    window = np.zeros(start_bit.shape, dtype=np.uint64)
    for j in range(8):
        window |= buf[byte + j].astype(np.uint64) << np.uint64(8 * j)
    window >>= (start_bit & 7).astype(np.uint64)
    mask = (np.uint64(1) << width.astype(np.uint64)) - np.uint64(1)
    return (window & mask).astype(np.int64)


def _local_index(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., counts[t] - 1 for every t, concatenated."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


def decode_compact(
    buf: np.ndarray,
    offset: npt.ArrayLike,
    words: npt.ArrayLike,
    count: npt.ArrayLike,
    nnz: npt.ArrayLike,
    weight_bits: npt.ArrayLike,
    k: npt.ArrayLike,
    fail: Fail = _raise,
) -> CompactWeights:
    """Decode and check the compact streams of many tiles at once (vectorized, chunked).

    Tile ``t``'s stream is the ``2 * words[t]`` bytes of ``buf`` at ``offset[t]`` (the caller has
    checked those bounds). Calls ``fail(t, message)`` (which must raise) for the first tile whose
    stream is not exactly what section 2.5 allows: too short for its fields, a number of
    quotients other than ``nnz``, a position past ``count``, a value outside
    ``±(2^(weight_bits-1) - 1)``, or more words than its bits need.
    """
    arrays = [np.asarray(a, dtype=np.int64).reshape(-1) for a in (offset, words, count, nnz)]
    off, wd, cnt, nz = arrays
    b = np.broadcast_to(np.asarray(weight_bits, dtype=np.int64), off.shape)
    kk = np.broadcast_to(np.asarray(k, dtype=np.int64), off.shape)
    parts: list[CompactWeights] = []
    nbytes = 2 * wd
    for t0, t1 in _chunks(nbytes, _BUDGET):
        s = slice(t0, t1)
        part = _decode_chunk(buf, off[s], nbytes[s], cnt[s], nz[s], b[s], kk[s], t0, fail)
        parts.append(CompactWeights(part.tile + t0, part.position, part.value))
    if not parts:
        empty = np.zeros(0, np.int64)
        return CompactWeights(empty, empty, empty)
    return CompactWeights(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                            ("tile", "position", "value")))  # fmt: skip


def _decode_chunk(
    buf: np.ndarray,
    off: np.ndarray,
    nbytes: np.ndarray,
    cnt: np.ndarray,
    nz: np.ndarray,
    b: np.ndarray,
    k: np.ndarray,
    base: int,
    fail: Fail,
) -> CompactWeights:
    def first(bad: np.ndarray, msg: Callable[[int], str]) -> None:
        hits = np.flatnonzero(bad)
        if hits.size:
            i = int(hits[0])
            fail(base + i, msg(i))

    stream = nbytes * 8
    fixed = nz * (b + k)
    first(
        fixed > stream,
        lambda i: (
            f"compact stream of {stream[i]} bits cannot hold {nz[i]} values of {b[i]} bits "
            f"and {nz[i]} remainders of {k[i]} bits"
        ),
    )
    local = np.concatenate([_gather(buf, off, nbytes), np.zeros(8, np.uint8)])
    start = (np.cumsum(nbytes) - nbytes) * 8  # each tile's first bit in ``local``
    # quotients: the one bits of each tile's unary part [start + fixed, start + stream), counted
    # per byte before any bit is expanded (memory stays a small multiple of the blob bytes)
    first_byte = (start + fixed) >> 3
    lengths = (start + stream) // 8 - first_byte
    part = _gather(local, first_byte, lengths)
    heads = np.cumsum(lengths) - lengths
    has = lengths > 0
    part[heads[has]] &= (0xFF << ((start + fixed)[has] & 7)).astype(np.uint8)  # value bits out
    ones_per_byte = _POPCOUNT[part]
    if len(nz) == 1:  # one tile, maybe over the budget: no int64 copy of its bytes
        found = np.array([int(ones_per_byte.sum(dtype=np.int64))])
    else:
        padded = np.concatenate([ones_per_byte, np.zeros(1, np.uint8)])
        found = np.where(has, np.add.reduceat(padded, heads, dtype=np.int64), 0)
    first(found != nz, lambda i: f"compact stream has {found[i]} quotients, nnz is {nz[i]}")
    tile = np.repeat(np.arange(len(nz), dtype=np.int64), nz)
    ones = np.flatnonzero(np.unpackbits(part, bitorder="little"))  # exactly nnz per tile
    ones += (first_byte * 8 - heads * 8)[tile]  # bit index in ``local``
    ends = np.cumsum(nz) - 1  # each tile's last nonzero (ones are increasing, nnz per tile)
    used = np.where(nz > 0, ones[np.maximum(ends, 0)] + 1 - start if ones.size else 0, 0)
    first(
        stream - used >= 16,
        lambda i: (
            f"compact stream is {nbytes[i] // 2} words, its {used[i]} bits need {-(-used[i] // 16)}"
        ),
    )
    idx = _local_index(nz)
    prev = np.where(idx > 0, np.concatenate([[0], ones[:-1]]), (start + fixed)[tile] - 1)
    q = ones - prev - 1
    # a run is below count, so its quotient is at most (count - 1) >> k: checked before shifting
    first(
        np.bincount(tile, weights=q > ((cnt - 1) >> k)[tile], minlength=len(nz)) > 0,
        lambda i: f"compact positions run past count {cnt[i]}",
    )
    value = _fields(local, start[tile] + idx * b[tile], b[tile])
    rem = _fields(local, start[tile] + nz[tile] * b[tile] + idx * k[tile], k[tile])
    runs = (q << k[tile]) | rem
    steps = np.cumsum(runs + 1)
    tile_base = np.concatenate([[0], steps])[np.cumsum(nz) - nz][tile]
    position = steps - tile_base - 1
    last = np.where(nz > 0, position[np.maximum(ends, 0)] if position.size else 0, -1)
    first(last >= cnt, lambda i: f"compact positions run to {last[i]}, past count {cnt[i]}")
    value = np.where(value >> (b[tile] - 1) != 0, value - (np.int64(1) << b[tile]), value)
    bound = (np.int64(1) << (b[tile] - 1)) - 1
    bad = np.flatnonzero(value < -bound)
    if bad.size:
        j = int(bad[0])
        t = int(tile[j])
        fail(base + t, f"weight {int(value[j])} does not fit {int(b[t])}-bit weights")
    return CompactWeights(tile, position, value)


def compact_decode(
    blob: bytes | bytearray | memoryview, count: int, nnz: int, weight_bits: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(mask bool [count], values int64 [nnz]) of one tile's compact blob, fully checked."""
    raw = np.frombuffer(blob, dtype=np.uint8)
    if raw.size % 2:
        raise MappingFormatError(f"compact blob is {raw.size} bytes, not whole 16-bit words")
    if count < 1 or nnz < 0 or nnz > count:
        raise ValueError(f"count {count} and nnz {nnz} must satisfy 0 <= nnz <= count, count >= 1")
    got = decode_compact(raw, [0], [raw.size // 2], [count], [nnz], weight_bits, k)
    mask = np.zeros(count, dtype=bool)
    mask[got.position] = True
    return mask, got.value


def compact_words(nnz: int, weight_bits: int, k: int, runs: np.ndarray) -> int:
    """Scratchpad words of a compact tile: its stream's bits over 16, rounded up."""
    return -(-compact_stream_bits(nnz, weight_bits, k, runs) // STREAM_WORD_BITS)


def tile_compact_words(
    tile: np.ndarray, runs: np.ndarray, tiles: int, weight_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """(words, best k) of the compact streams of ``tiles`` tiles at once.

    ``tile``/``runs`` are per nonzero weight: its tile (0 .. tiles-1) and the zero run before it
    (``runs_of`` within its tile). The same k as ``best_rice_k`` per tile (smallest on ties);
    the loop is over the 32 values of k, not over weights or tiles.
    """
    t = np.asarray(tile, dtype=np.int64)
    r = np.asarray(runs, dtype=np.int64)
    nnz = np.bincount(t, minlength=tiles)
    ks = np.arange(MAX_RICE_K + 1)
    cost = nnz[:, None] * (ks + 1)
    for k in ks:
        cost[:, k] += np.bincount(t, weights=r >> k, minlength=tiles).astype(np.int64)
    best = np.argmin(cost, axis=1)
    bits = nnz * weight_bits + cost[np.arange(tiles), best]
    return -(-bits // STREAM_WORD_BITS), best
