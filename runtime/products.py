"""Exact integer products ``W @ im2col`` by the cheapest of three kernels, chosen per call.

The engine knows, before multiplying, how many (nonzero weight, input spike) pairs a product
matches (its hits times the nonzeros of each weight position). With that it estimates, in
nanoseconds on one core, three exact ways to compute the same integers:

- ``event``: int64 sparse weights x sparse spikes (scipy's SMMP), the im2col matrix built from
  the list of input spikes: work is the matched pairs only (plus the spikes and the output), but
  each pair costs a scattered accumulate (~5.5 ns measured); a silent layer costs ~nothing;
- ``sparse``: sparse weights x dense spike rows (one vectorized axpy over all columns per
  nonzero weight, ~0.6 ns per weight x column);
- ``dense``: a BLAS matrix product (~0.07 ns per MAC in float32), which wins when both weights
  and spikes are dense enough (the early layers of VGG-16 keep 20-35% of their weights and
  40-80% of their inputs spike in ``bench/bench_runtime.py``).

Floating point is exact here: every operand and partial sum is an integer whose magnitude is at
most ``max_row_abs * top`` (``top`` = the largest |input|), checked below 2^24 for float32 and
2^53 for float64; otherwise the product runs in int64 (``event``). All three give identical
integers, so the choice changes only time (tests run every kernel against the others).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from uticompile.mapstats import LayerWeights

# ns per unit of work, measured with scipy 1.x / OpenBLAS on one core (see the module docstring)
_NS_EVENT = 5.5
_NS_ENTRY = 20.0  # building the sparse im2col from the input spikes, per nonzero
_NS_OUTPUT = 2.0  # the sparse result made dense, per output value
_NS_COPY = 0.3  # the dense im2col copy, per element
_NS_SPARSE = {np.float32: 0.6, np.float64: 1.0}
_NS_DENSE = {np.float32: 0.07, np.float64: 0.14}
KERNELS = ("event", "sparse", "dense")


class WeightMatrix:
    """A weight layer as a matrix [filters, positions], in the forms the kernels need."""

    def __init__(self, w: LayerWeights) -> None:
        self.shape = w.shape
        self.nnz = len(w.value)
        self.csr = sparse.csr_matrix(
            (w.value.astype(np.int64), (w.filter, w.position)), shape=w.shape
        )
        self.col_nnz = np.bincount(w.position, minlength=w.shape[1]).astype(np.int64)
        row_abs = np.bincount(w.filter, weights=np.abs(w.value.astype(np.float64)))
        self.max_row_abs = int(row_abs.max(initial=0))
        self._float: dict[type, sparse.csr_matrix] = {}
        self._dense: dict[type, np.ndarray] = {}

    def float_type(self, top: int) -> type:
        """The narrowest type in which inputs up to |top| multiply exactly with these weights."""
        bound = max(self.max_row_abs, 1) * top
        if bound < 2**24:
            return np.float32
        return np.float64 if bound < 2**53 else np.int64

    def sparse_as(self, dtype: type) -> sparse.csr_matrix:
        if dtype not in self._float:
            self._float[dtype] = self.csr.astype(dtype)
        return self._float[dtype]

    def dense_as(self, dtype: type) -> np.ndarray:
        if dtype not in self._dense:
            self._dense[dtype] = self.csr.toarray().astype(dtype)
        return self._dense[dtype]


def choose(w: WeightMatrix, dtype: type, columns: int, matched: int, entries: int) -> str:
    """The kernel with the least estimated time for ``w @ cols`` (``event`` if not float).

    ``columns`` is the number of im2col columns, ``matched`` the (nonzero weight, nonzero input)
    pairs that the product meets, ``entries`` the nonzeros of the im2col matrix.
    """
    if dtype not in (np.float32, np.float64):
        return "event"
    o, k = w.shape
    estimate = {
        "event": matched * _NS_EVENT + entries * _NS_ENTRY + o * columns * _NS_OUTPUT,
        "sparse": (w.nnz * _NS_SPARSE[dtype] + k * _NS_COPY) * columns,
        "dense": (o * k * _NS_DENSE[dtype] + k * _NS_COPY) * columns,
    }
    return min(KERNELS, key=lambda name: estimate[name])


def product(w: WeightMatrix, cols: np.ndarray | sparse.spmatrix, kernel: str) -> np.ndarray:
    """Exact int64 ``W [O, K] @ cols [K, columns]`` by ``kernel`` (one of ``KERNELS``); ``cols``
    may already be sparse (then the kernel is ``event``)."""
    if sparse.issparse(cols) or kernel == "event" or cols.dtype == np.int64:
        spikes = sparse.csr_matrix(cols)
        spikes = sparse.csr_matrix(
            (spikes.data.astype(np.int64), spikes.indices, spikes.indptr), shape=cols.shape
        )
        return np.asarray((w.csr @ spikes).toarray(), dtype=np.int64)
    if kernel == "sparse":
        out = w.sparse_as(cols.dtype.type) @ cols
    else:
        out = w.dense_as(cols.dtype.type) @ cols
    return np.asarray(out).astype(np.int64)
