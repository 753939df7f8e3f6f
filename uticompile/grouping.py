"""PE grouping of one layer's weight tensor: which processing element holds which weight.

This is THE single implementation of the weight-to-PE assignment: pruning (workload balancing) and
the hardware mapper must agree on it, or balanced workloads on paper are unbalanced on the chip.

Two groupings, both from the u-Ticket public code:

* ``sata``: output channels in contiguous blocks of ``n``; in a block (group) each PE holds one
  whole filter (``C_in*kh*kw`` weights). A partial last block has ``C_out % n`` active PEs; the
  other slots hold no filter (they are clock-gated, neither work nor idle).
* ``systolic``: one group per output channel; the filter's input channels are split into ``n``
  contiguous chunks of ``ceil(C_in / n)``; PE ``p`` holds chunk ``p`` (all kernel positions of
  those input channels). Chunks past ``C_in`` are empty (inactive PEs); the last non-empty chunk may
  be shorter (smaller capacity).

Linear weights ``[out, in]`` are treated as ``[out, in, 1, 1]``. In both groupings every PE slot
holds one contiguous run of C-order weight positions, and the runs are ordered by slot index; the
layout records where each run starts (``start``), which lets balancing work on the few surviving
weights instead of scanning every pruned position.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

import numpy as np

from uticompile.errors import ConfigError, PassError

GROUPINGS: tuple[str, ...] = ("sata", "systolic")


def _frozen(a: np.ndarray) -> np.ndarray:
    """Mark an array read-only: layouts are cached and shared, so nobody may mutate them."""
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class GroupLayout:
    """How one layer's weights are spread over PE groups of ``n`` PEs.

    PE slot ``(g, p)`` has global index ``g*n + p``. All arrays are read-only.

    Attributes:
        shape: the weight shape as given (rank 2 or 4).
        n: PEs per group.
        grouping: one of ``GROUPINGS``.
        num_groups: number of groups.
        pe_of: int64, one entry per weight position (C order): the global slot holding it.
        active: bool ``[num_groups, n]``: the slot holds at least one weight position.
        capacity: int64 ``[num_groups, n]``: weight positions held by each slot (0 if inactive).
        start: int64 ``[num_groups, n]``: first C-order position of the slot's contiguous run
            (the run is ``start .. start + capacity - 1``; inactive slots have an empty run).
    """

    shape: tuple[int, ...]
    n: int
    grouping: str
    num_groups: int
    pe_of: np.ndarray
    active: np.ndarray
    capacity: np.ndarray
    start: np.ndarray

    @property
    def size(self) -> int:
        """Number of weight positions of the layer."""
        return int(self.pe_of.size)

    @property
    def num_slots(self) -> int:
        """Number of PE slots, ``num_groups * n`` (active or not)."""
        return self.num_groups * self.n

    def _flat_mask(self, mask: np.ndarray) -> np.ndarray:
        m = np.asarray(mask)
        if m.shape != self.shape:
            raise PassError(f"mask shape {m.shape} does not match the weight shape {self.shape}")
        return m.reshape(-1).astype(bool, copy=False)

    def workloads(self, mask: np.ndarray) -> np.ndarray:
        """Nonzero count per PE slot, int64 ``[num_groups, n]`` (the paper's workload)."""
        nz = np.flatnonzero(self._flat_mask(mask))
        counts = np.bincount(self.pe_of[nz], minlength=self.num_slots)
        return counts.astype(np.int64, copy=False).reshape(self.num_groups, self.n)

    def loads(self, mask: np.ndarray, cost: np.ndarray | float) -> np.ndarray:
        """Sum of per-position costs over each slot's nonzero positions, ``[num_groups, n]``.

        ``cost`` must broadcast to the weight shape (e.g. ``[1, C_in, 1, 1]`` input firing rates).
        """
        nz = np.flatnonzero(self._flat_mask(mask))
        try:
            c = np.broadcast_to(np.asarray(cost, dtype=np.float64), self.shape)
        except ValueError as exc:
            raise ConfigError(
                f"cost of shape {np.shape(cost)} does not broadcast to weight shape {self.shape}"
            ) from exc
        values = c[np.unravel_index(nz, self.shape)]
        out = np.bincount(self.pe_of[nz], weights=values, minlength=self.num_slots)
        return out.reshape(self.num_groups, self.n)


def group_layout(shape: tuple[int, ...], n: int, grouping: str) -> GroupLayout:
    """Build (or fetch from a small cache) the PE layout of a weight tensor.

    Raises ConfigError for ``n < 1``, an unknown grouping, a weight rank other than 2 or 4, or a
    zero-size dimension. The result is immutable and cached per ``(shape, n, grouping)``.
    """
    try:
        dims = tuple(operator.index(d) for d in shape)
        n_pe = operator.index(n)
    except TypeError as exc:
        raise ConfigError(f"weight shape {shape!r} and PE count {n!r} must be integers") from exc
    if n_pe < 1:
        raise ConfigError(f"the number of PEs per group must be >= 1, got {n_pe}")
    if grouping not in GROUPINGS:
        choices = ", ".join(GROUPINGS)
        raise ConfigError(f"unknown PE grouping {grouping!r}; expected one of {choices}")
    if len(dims) not in (2, 4):
        raise ConfigError(f"weight rank must be 2 (linear) or 4 (conv), got shape {dims}")
    if min(dims) < 1:
        raise ConfigError(f"weight shape {dims} has a zero-size dimension")
    return _build_layout(dims, n_pe, grouping)


@functools.lru_cache(maxsize=32)
def _build_layout(shape: tuple[int, ...], n: int, grouping: str) -> GroupLayout:
    c_out, c_in = shape[0], shape[1]
    k = shape[2] * shape[3] if len(shape) == 4 else 1
    fsize = c_in * k
    if grouping == "sata":
        num_groups = -(-c_out // n)
        slot = np.arange(num_groups * n, dtype=np.int64)
        active = slot < c_out
        start = np.minimum(slot, c_out) * fsize
        capacity = np.where(active, fsize, 0).astype(np.int64)
        pe_of = np.repeat(np.arange(c_out, dtype=np.int64), fsize)
    else:
        num_groups = c_out
        chunk = -(-c_in // n)
        lo = np.minimum(np.arange(n, dtype=np.int64) * chunk, c_in)
        hi = np.minimum(lo + chunk, c_in)
        filt = np.arange(c_out, dtype=np.int64)[:, None]
        start = ((filt * c_in + lo[None, :]) * k).reshape(-1)
        capacity = np.broadcast_to((hi - lo) * k, (c_out, n)).reshape(-1).astype(np.int64)
        active = capacity > 0
        template = np.repeat(np.arange(c_in, dtype=np.int64) // chunk, k)
        pe_of = (filt * n + template[None, :]).reshape(-1)
    return GroupLayout(
        shape=shape,
        n=n,
        grouping=grouping,
        num_groups=num_groups,
        pe_of=_frozen(pe_of),
        active=_frozen(active.reshape(num_groups, n)),
        capacity=_frozen(capacity.reshape(num_groups, n)),
        start=_frozen(start.reshape(num_groups, n)),
    )
