"""Placement: which PE of which group holds which part of which filter, and what it costs.

The cost rule of the PE array lives here, because placement must optimize exactly what the cost
model charges: in every step (one timestep of one sample) a group lasts as long as its busiest PE,
groups run one after another, so a layer's latency is ``sum over steps and groups of the max over
the group's PEs``; no schedule of the same work on ``n`` PEs beats ``ceil(step work / n)`` per
step (the floor).

A placement gives every PE slot one contiguous range of input channels of one filter; all PEs of
a filter sit in one group (their partial sums are added there, as in ``systolic``). Placement
moves weights between PEs and never changes one, so every output is bit-identical.

Families (``code`` as stored in the mapping, docs/mapping-format.md):
- ``CONTIGUOUS`` (0): the paper's grouping (``sata``: filters ``g*n .. g*n+n-1`` in group ``g``;
  ``systolic``: one filter per group, equal channel chunks).
- ``SORTED`` (1): whole filters, by descending expected cost, ``n`` per group (``sorted_filters``).
- ``SPLIT`` (2): filters cut at input-channel boundaries over several PEs of their group, chunk
  bounds at the quantiles of the channels' cost (``split_filters``, ``sorted_and_filled``).

``choose`` evaluates the candidates on the layer's load (static: one cycle per nonzero weight;
measured: calibration spikes) and keeps ``contiguous`` unless another is clearly cheaper, so no
layer gets slower than the paper's mapping on the data it was chosen on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from uticompile.errors import ConfigError, PassError

if TYPE_CHECKING:
    from uticompile.grouping import GroupLayout

CONTIGUOUS, SORTED, SPLIT = 0, 1, 2
CODE_NAMES: dict[int, str] = {CONTIGUOUS: "contiguous", SORTED: "sorted", SPLIT: "split"}
PLACEMENTS: tuple[str, ...] = ("auto", "sorted", "contiguous")
"""What ``map --placement`` accepts."""

_STEP_BUDGET = 1 << 24  # gathered (step, weight) values at once while summing PE work


@dataclass(frozen=True, eq=False)
class Placement:
    """One row per PE slot holding weights, sorted by (group, pe).

    Slot ``(group, pe)`` holds input channels ``first .. first + channels - 1`` of ``filter``.
    """

    code: int
    n: int
    groups: int
    group: np.ndarray
    pe: np.ndarray
    filter: np.ndarray
    first: np.ndarray
    channels: np.ndarray

    @property
    def name(self) -> str:
        return CODE_NAMES[self.code]

    def slot_of(self, num_filters: int, c_in: int) -> np.ndarray:
        """int64 [num_filters, c_in]: the global slot ``group * n + pe`` of every filter channel."""
        out = np.full((num_filters, c_in), -1, np.int64)
        reps = self.channels.astype(np.int64)
        rows = np.repeat(self.filter, reps)
        cols = np.repeat(self.first - np.cumsum(reps) + reps, reps) + np.arange(int(reps.sum()))
        out[rows, cols] = np.repeat(self.group * self.n + self.pe, reps)
        return out

    def check(self, num_filters: int, c_in: int) -> None:
        """Postcondition: every filter channel in exactly one slot; a filter in one group."""
        slot = self.group * self.n + self.pe
        if np.any(np.diff(slot) <= 0) or np.any((self.pe < 0) | (self.pe >= self.n)):
            raise PassError(f"{self.name} placement: slots are not unique and (group, pe) sorted")
        if np.any(self.channels < 1) or np.any(self.first + self.channels > c_in):
            raise PassError(f"{self.name} placement: a PE's channel range is outside the filter")
        covered = np.zeros((num_filters, c_in), np.int64)
        reps = self.channels.astype(np.int64)
        cols = np.repeat(self.first - np.cumsum(reps) + reps, reps) + np.arange(int(reps.sum()))
        np.add.at(covered, (np.repeat(self.filter, reps), cols), 1)
        if np.any(covered != 1):
            raise PassError(f"{self.name} placement: a filter channel is held {covered.max()}x")
        home = np.full(num_filters, -1, np.int64)
        home[self.filter] = self.group
        if np.any(home[self.filter] != self.group):
            raise PassError(f"{self.name} placement: a filter spans several groups")
        if set(np.unique(self.group).tolist()) != set(range(self.groups)):
            raise PassError(f"{self.name} placement: a group holds no filter")


def _placement(code: int, n: int, rows: np.ndarray) -> Placement:
    """A placement from int64 rows (group, pe, filter, first, channels), sorted by slot."""
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    groups = int(rows[:, 0].max()) + 1 if len(rows) else 0
    return Placement(code, n, groups, *(np.ascontiguousarray(rows[:, j]) for j in range(5)))


def contiguous(layout: GroupLayout, kernel: int) -> Placement:
    """The paper's placement: the grouping rule itself (``uticompile.grouping``), as a placement."""
    slots = np.flatnonzero(layout.active.ravel())
    fsize = layout.shape[1] * kernel
    start = layout.start.ravel()[slots]
    rows = np.stack(
        [
            slots // layout.n,
            slots % layout.n,
            start // fsize,
            (start % fsize) // kernel,
            layout.capacity.ravel()[slots] // kernel,
        ],
        axis=1,
    )
    return _placement(CONTIGUOUS, layout.n, rows.astype(np.int64))


def _by_descending(cost: np.ndarray) -> np.ndarray:
    """Indices by descending cost, lower index first on ties (deterministic)."""
    return np.lexsort((np.arange(len(cost)), -np.asarray(cost, np.float64)))


def sorted_filters(cost: np.ndarray, n: int, c_in: int) -> Placement:
    """Whole filters, the ``n`` most expensive in group 0, the next ``n`` in group 1, ...

    Optimal for the sum of group maxima when every group holds at most ``n`` filters: sort the
    costs ``c_1 >= c_2 >= ... >= c_O``. In any assignment, filters ``1 .. (k-1)n + 1`` do not fit
    in ``k - 1`` groups, so at least ``k`` groups hold one of them and have a maximum of at least
    ``c_{(k-1)n+1}``; the ``k``-th largest group maximum is therefore ``>= c_{(k-1)n+1}`` for every
    ``k``, and the sum of the maxima is ``>= sum_k c_{(k-1)n+1}``, which this assignment attains
    (group ``k`` is led by filter ``(k-1)n + 1``). More groups only add maxima, never remove one.
    With static costs (nonzero weights per filter) that sum is the layer's latency exactly.
    """
    order = _by_descending(cost)
    rank = np.arange(len(order))
    rows = np.stack(
        [rank // n, rank % n, order, np.zeros_like(order), np.full_like(order, c_in)], axis=1
    )
    return _placement(SORTED, n, rows.astype(np.int64))


def _cuts(channel_cost: np.ndarray, pieces: np.ndarray) -> list[np.ndarray]:
    """Chunk bounds per filter: ``pieces[f] + 1`` increasing channel indices from 0 to C.

    Interior bounds sit where the cumulative cost comes nearest ``k / pieces`` of the filter's
    total, then are pushed apart so that every chunk holds at least one channel.
    """
    o, c = channel_cost.shape
    cum = np.concatenate([np.zeros((o, 1)), np.cumsum(channel_cost, axis=1)], axis=1)  # [O, C+1]
    out = []
    for f in range(o):  # one vectorized search per filter (filters, not weights)
        s = int(pieces[f])
        k = np.arange(1, s)
        target = cum[f, -1] * k / s
        j = np.clip(np.searchsorted(cum[f], target), 1, c)
        nearer = np.abs(cum[f, j - 1] - target) <= np.abs(cum[f, j] - target)
        b = np.clip(np.where(nearer, j - 1, j), k, c - s + k)
        b = np.maximum.accumulate(b - k) + k if s > 1 else b
        out.append(np.concatenate([[0], b, [c]]).astype(np.int64))
    return out


def _chunk_rows(cuts: list[np.ndarray], filters: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Rows placing each filter's chunks on consecutive PEs of its group, in the given order."""
    pieces = np.array([len(b) - 1 for b in cuts], np.int64)
    first_pe = np.zeros(len(filters), np.int64)
    for g in np.unique(group):  # PEs are numbered in order within each group
        sel = np.flatnonzero(group == g)
        first_pe[sel] = np.cumsum(pieces[sel]) - pieces[sel]
    bounds = np.concatenate([b[:-1] for b in cuts]) if cuts else np.zeros(0, np.int64)
    sizes = np.concatenate([np.diff(b) for b in cuts]) if cuts else np.zeros(0, np.int64)
    within = np.arange(int(pieces.sum())) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    return np.stack(
        [
            np.repeat(group, pieces),
            np.repeat(first_pe, pieces) + within,
            np.repeat(filters, pieces),
            bounds,
            sizes,
        ],
        axis=1,
    ).astype(np.int64)


def split_filters(channel_cost: np.ndarray, n: int, pieces: int) -> Placement:
    """Every filter cut into ``pieces`` channel chunks; ``n // pieces`` filters per group.

    Filters are sorted by their most expensive chunk, so the argument of ``sorted_filters``
    applies to that cost: optimal over assignments of these chunked filters to groups.
    """
    o, c = channel_cost.shape
    if not 1 <= pieces <= min(n, c):
        raise ConfigError(f"cannot cut {c} input channels into {pieces} pieces on {n} PEs")
    cuts = _cuts(channel_cost, np.full(o, pieces))
    cum = np.concatenate([np.zeros((o, 1)), np.cumsum(channel_cost, axis=1)], axis=1)
    peak = np.array([np.diff(cum[f, b]).max() for f, b in enumerate(cuts)])
    order = _by_descending(peak)
    group = np.arange(o) // (n // pieces)
    rows = _chunk_rows([cuts[f] for f in order], order, group)
    return _placement(SORTED if pieces == 1 else SPLIT, n, rows)


def apportion(cost: np.ndarray, pes: int, limit: np.ndarray) -> np.ndarray:
    """PEs per filter (>= 1, <= limit, summing to at most ``pes``) minimizing max cost / PEs.

    Greedy: each spare PE goes to the filter whose cost per PE is highest (and may still be cut).
    That is optimal for ``max_f cost_f / pes_f``: the filter holding the maximum can only be
    helped by giving it a PE, and every step gives one to it.
    """
    share = np.ones(len(cost), np.int64)
    for _ in range(pes - len(cost)):  # one step per spare PE
        load = np.where(share < limit, cost / share, -1.0)
        f = int(np.argmax(load))
        if load[f] <= 0:
            break
        share[f] += 1
    return share


def sorted_and_filled(channel_cost: np.ndarray, n: int) -> Placement:
    """``sorted_filters``, then the PEs the last group leaves idle split its costliest filters.

    For a layer with fewer filters than PEs (the classifier: 10 on 16) that is one group in which
    every PE works; the chunks of a filter are balanced by channel cost.
    """
    o, c = channel_cost.shape
    total = channel_cost.sum(axis=1)
    order = _by_descending(total)
    last = (o - 1) // n
    pieces = np.ones(o, np.int64)
    tail = slice(last * n, o)
    pieces[tail] = apportion(total[order[tail]], n, np.full(o - last * n, c))
    cuts = _cuts(channel_cost[order], pieces)
    rows = _chunk_rows(cuts, order, np.minimum(np.arange(o) // n, last))
    return _placement(SPLIT if np.any(pieces > 1) else SORTED, n, rows)


# --- what a placement costs -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LayerLoad:
    """The work of one weight layer's nonzero weights.

    ``mask``: bool ``[O, C, K]`` (K = kernel positions, 1 for a linear layer). ``hits``: ``[S, C,
    K]``, the cycles one nonzero weight at each position costs in each step (spikes it meets over
    the output positions); ``None`` = static: every nonzero weight costs one cycle in one step.
    """

    mask: np.ndarray
    hits: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mask.ndim != 3:
            raise ConfigError(f"mask must be [O, C, K], got shape {self.mask.shape}")
        if self.hits is not None and self.hits.shape[1:] != self.mask.shape[1:]:
            raise ConfigError(
                f"hits of shape {self.hits.shape} do not fit weights {self.mask.shape}"
            )

    @property
    def steps(self) -> int:
        return 1 if self.hits is None else int(self.hits.shape[0])

    def channel_cost(self) -> np.ndarray:
        """float64 [O, C]: expected cycles of each filter channel, summed over the steps."""
        m = self.mask.astype(np.float64)
        if self.hits is None:
            return m.sum(axis=2)
        return np.einsum("ock,ck->oc", m, self.hits.sum(axis=0, dtype=np.float64))

    def slot_work(self, p: Placement) -> np.ndarray:
        """int64 [S, groups, n]: the cycles of every PE slot in every step."""
        o, c, k = self.mask.shape
        f, ch, kk = np.nonzero(self.mask)
        slot = p.slot_of(o, c)[f, ch]
        out = np.zeros((self.steps, p.groups * p.n), np.int64)
        if self.hits is None:
            out[0] = np.bincount(slot, minlength=p.groups * p.n)
            return out.reshape(1, p.groups, p.n)
        order = np.argsort(slot, kind="stable")
        where, starts = np.unique(slot[order], return_index=True)
        pos = (ch * k + kk)[order]
        hits = self.hits.reshape(self.steps, c * k)
        chunk = max(1, _STEP_BUDGET // max(len(pos), 1))
        for s0 in range(0, self.steps, chunk):
            if len(pos):
                part = hits[s0 : s0 + chunk][:, pos].astype(np.int64)
                out[s0 : s0 + chunk, where] = np.add.reduceat(part, starts, axis=1)
        return out.reshape(self.steps, p.groups, p.n)


def group_latency(work: np.ndarray) -> np.ndarray:
    """Per group: the sum over steps of its busiest PE (``work`` is ``[..., groups, n]``, >= 0)."""
    steps = work.reshape(-1, *work.shape[-2:])
    return steps.max(axis=2).sum(axis=0)


def step_floor(work: np.ndarray, n: int) -> int:
    """The floor: sum over steps of ``ceil(all work of the step / n)``; ``work`` ``[..., G, n]``."""
    per_step = work.reshape(-1, work.shape[-2] * work.shape[-1]).sum(axis=1)
    return int((-(-per_step // n)).sum())


def latency(load: LayerLoad, p: Placement) -> int:
    """The layer's latency under placement ``p`` on ``load``."""
    return int(group_latency(load.slot_work(p)).sum())


def candidates(load: LayerLoad, n: int, base: Placement) -> list[Placement]:
    """``base`` (contiguous), sorted whole filters, sorted and filled, and uniform splits."""
    cost = load.channel_cost()
    c = cost.shape[1]
    out = [base, sorted_filters(cost.sum(axis=1), n, c), sorted_and_filled(cost, n)]
    pieces = sorted({p for p in (2**i for i in range(1, 13)) if p <= min(n, c)} | {min(n, c)})
    out += [split_filters(cost, n, p) for p in pieces if p > 1]
    return out


def choose(load: LayerLoad, n: int, base: Placement, margin: float = 0.0) -> Placement:
    """The cheapest candidate on ``load``; ``base`` unless one is more than ``margin`` cheaper.

    With a static load every candidate's cost is its exact static latency, and ``sorted`` is never
    above ``base`` (see ``sorted_filters``), so the result is never statically slower. With a
    measured load the margin guards against choosing on noise: a layer leaves ``base`` only for a
    clear gain on the calibration data.
    """
    options = candidates(load, n, base)
    costs = [latency(load, p) for p in options]
    best = min(range(1, len(options)), key=lambda i: (costs[i], i))
    if costs[best] < costs[0] * (1 - margin) and costs[best] < costs[0]:
        return options[best]
    return base


def place(
    placement: str, load: LayerLoad, n: int, base: Placement, margin: float = 0.0
) -> Placement:
    """The placement named by ``map --placement`` (``PLACEMENTS``) for one layer."""
    if placement == "contiguous":
        return base
    if placement == "sorted":
        if np.any(base.channels < load.mask.shape[1]):
            return base  # systolic: one filter per group, nothing to sort
        return sorted_filters(load.channel_cost().sum(axis=1), n, load.mask.shape[1])
    if placement == "auto":
        return choose(load, n, base, margin)
    raise ConfigError(f"unknown placement {placement!r}; expected one of {', '.join(PLACEMENTS)}")
