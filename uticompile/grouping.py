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


def group_count(grouping: str, c_out: np.ndarray | int, n: int) -> np.ndarray:
    """Groups of a layer with ``c_out`` filters on groups of ``n`` PEs (vectorized over layers)."""
    c = np.asarray(c_out, dtype=np.int64)
    return -(-c // n) if grouping == "sata" else c


def active_slot_count(
    grouping: str, c_out: np.ndarray | int, c_in: np.ndarray | int, n: int
) -> np.ndarray:
    """PE slots holding at least one weight position (vectorized over layers)."""
    c, ci = np.asarray(c_out, dtype=np.int64), np.asarray(c_in, dtype=np.int64)
    if grouping == "sata":
        return c
    chunk = -(-ci // n)
    return c * -(-ci // chunk)


def slot_filter(grouping: str, group: np.ndarray, pe: np.ndarray, n: int) -> np.ndarray:
    """The filter (output channel) PE slot ``(group, pe)`` works on; past ``C_out`` = no filter."""
    g = np.asarray(group, dtype=np.int64)
    return g * n + np.asarray(pe, dtype=np.int64) if grouping == "sata" else g


def slot_span(
    grouping: str, pe: np.ndarray, c_in: np.ndarray | int, k: np.ndarray | int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last C-order position, inside its filter, of the run PE ``pe`` holds.

    ``c_in`` input channels of ``k`` kernel positions each; an empty run has ``lo == hi``.
    """
    p = np.asarray(pe, dtype=np.int64)
    ci, kk = np.asarray(c_in, dtype=np.int64), np.asarray(k, dtype=np.int64)
    if grouping == "sata":
        return np.zeros_like(p * ci), np.broadcast_to(ci * kk, np.broadcast(p, ci, kk).shape)
    chunk = -(-ci // n)
    return np.minimum(p * chunk, ci) * kk, np.minimum((p + 1) * chunk, ci) * kk


@functools.lru_cache(maxsize=32)
def _build_layout(shape: tuple[int, ...], n: int, grouping: str) -> GroupLayout:
    c_out, c_in = shape[0], shape[1]
    k = shape[2] * shape[3] if len(shape) == 4 else 1
    fsize = c_in * k
    num_groups = int(group_count(grouping, c_out, n))
    slot = np.arange(num_groups * n, dtype=np.int64)
    filt = slot_filter(grouping, slot // n, slot % n, n)
    lo, hi = slot_span(grouping, slot % n, c_in, k, n)
    has_filter = filt < c_out
    start = np.minimum(filt, c_out) * fsize + np.where(has_filter, lo, 0)
    capacity = np.where(has_filter, hi - lo, 0).astype(np.int64)
    active = capacity > 0
    # Runs are contiguous, in slot order, and cover every position once (module docstring).
    pe_of = np.repeat(slot, capacity)
    assert pe_of.size == c_out * fsize
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
