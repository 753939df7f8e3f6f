"""Workload balancing of a pruning mask (u-Ticket Algorithm 1 step 3, plus two extensions).

Pure functions on numpy masks; the caller rewinds regrown weights to their rewind-point values.

Modes of ``balance_mask``:

* ``"uticket"`` (paper and public code): per group, ``avg = ceil(mean workload over active PEs)``;
  an active PE below its target regrows ``target - w`` uniformly random pruned positions of its
  own; one above loses ``w - target`` uniformly random survivors of its own.
* ``"magnitude"``: same targets, but regrows the pruned positions with the LARGEST ``|scores|`` and
  removes the survivors with the SMALLEST ``|scores|``. Ties are broken uniformly at random with
  ``rng``, not by index: most pruned positions usually tie at ``|score| = 0`` (pruned in earlier
  rounds), and an index rule would crowd regrowth into the first input channels.
* ``"activity"``: balances each PE's LOAD (sum of ``cost`` over its nonzero positions, e.g. the
  firing rate of the input channel a weight reads) toward the group's mean load ``T`` over active
  PEs. A PE above ``T`` removes survivors in increasing ``|score|`` order and stops before the next
  removal would bring it below ``T``; a PE below regrows pruned positions in decreasing ``|score|``
  order and stops before the next would bring it above ``T`` (ties random, as above).

Targets and guarantees (count modes): the per-PE target is ``min(avg, capacity)``. Whenever all
active PEs of a group have the same capacity (always for ``sata``; for ``systolic`` whenever
``ceil(C_in / n)`` divides ``C_in``, e.g. ``C_in`` a multiple of ``n``), every active PE ends with
exactly ``avg`` weights, because ``avg <= max workload <= capacity``. Otherwise a short PE whose
capacity is below ``avg`` takes all its positions and the others end at ``avg``; in every case
each active PE ends at ``min(group max, capacity)``, which ``check_balanced`` verifies.

Guarantee (activity mode, up to float rounding): with ``L`` a PE's load before and ``L'`` after,
and ``c`` the largest cost among the PE's positions: if ``L > T`` then ``T <= L' < T + c``; if
``L < T`` then ``T - c < L' <= T`` unless the PE is saturated (every position nonzero, possible only
when its full load is below ``T``, which needs cost varying along the output-channel axis in
``sata``); a PE at ``T`` is unchanged. Moreover the removed survivors are a lowest-``|score|``
prefix and the regrown positions a highest-``|score|`` prefix of the PE's candidates.

Edge cases, all modes: ``n = 1`` and a layer with no survivor are unchanged; a group with no
survivor stays empty (its target is 0); a partial ``sata`` group is balanced over its active PEs;
inactive slots never receive weights; the mask changes only in PEs off target. The input mask is
never mutated, and the same inputs with the same rng seed give the same output.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from uticompile.errors import ConfigError, PassError
from uticompile.grouping import GroupLayout

BALANCE_MODES: tuple[str, ...] = ("uticket", "magnitude", "activity")

# Upper bound on the elements of one padded [rows, length] candidate block (memory bound for
# large linear layers; VGG-16 conv layers fit in one block).
_BLOCK_ELEMS = 1 << 22


def workload_targets(workloads: np.ndarray, layout: GroupLayout) -> np.ndarray:
    """Per-slot target workloads of the count modes, int64 ``[num_groups, n]``.

    ``min(ceil(mean over active PEs), capacity)`` for active slots, 0 for inactive ones.
    """
    w = np.asarray(workloads, dtype=np.int64)
    act = layout.active
    n_act = np.maximum(act.sum(axis=1), 1)
    avg = -(-np.where(act, w, 0).sum(axis=1) // n_act)
    return np.where(act, np.minimum(avg[:, None], layout.capacity), 0).astype(np.int64)


def check_balanced(mask: np.ndarray, layout: GroupLayout) -> None:
    """Postcondition of the count modes: raise PassError naming the first unbalanced group.

    Balanced means every active PE holds ``min(group max workload, its capacity)`` weights, so
    active PEs of equal capacity have equal workloads and no PE that could work more waits.
    """
    w = layout.workloads(mask)
    gmax = w.max(axis=1)
    want = np.where(layout.active, np.minimum(gmax[:, None], layout.capacity), 0)
    bad = np.flatnonzero((w != want).any(axis=1))
    if bad.size:
        g = int(bad[0])
        raise PassError(
            f"workloads unbalanced in group {g} of {layout.num_groups} (weight shape "
            f"{layout.shape}, {layout.grouping}, n={layout.n}): workloads {w[g].tolist()}, "
            f"capacities {layout.capacity[g].tolist()}"
        )


def balance_mask(
    mask: np.ndarray,
    layout: GroupLayout,
    mode: str,
    *,
    rng: np.random.Generator,
    scores: np.ndarray | None = None,
    cost: np.ndarray | None = None,
) -> np.ndarray:
    """Return a new balanced mask (see the module docstring for modes and guarantees).

    ``scores`` (e.g. trained weights, the weight shape) is required by ``magnitude`` and
    ``activity``; ``cost`` (positive, finite, broadcastable to the weight shape) by ``activity``.
    Unused arguments are ignored. Raises ConfigError for an unknown mode or missing/invalid
    scores or cost, PassError for a mask of the wrong shape.
    """
    if mode not in BALANCE_MODES:
        choices = ", ".join(BALANCE_MODES)
        raise ConfigError(f"unknown balance mode {mode!r}; expected one of {choices}")
    m = np.asarray(mask)
    if m.shape != layout.shape:
        raise PassError(f"mask shape {m.shape} does not match the weight shape {layout.shape}")
    flat = m.reshape(-1).astype(bool)  # always a fresh copy
    sflat = _scores_flat(scores, layout) if mode != "uticket" else None
    cflat = _cost(cost, layout) if mode == "activity" else None

    surv = np.flatnonzero(flat)
    if layout.n == 1 or surv.size == 0:
        return flat.reshape(layout.shape)
    w = np.bincount(layout.pe_of[surv], minlength=layout.num_slots).astype(np.int64)
    if cflat is not None and sflat is not None:
        drop, grow = _activity(flat, layout, surv, w, sflat, cflat, rng)
    else:
        delta = workload_targets(w.reshape(layout.num_groups, layout.n), layout).ravel() - w
        if np.any(delta > layout.capacity.ravel() - w):
            raise PassError("internal: a PE's target exceeds its capacity")  # unreachable
        if sflat is None:
            drop, grow = _random_moves(layout, surv, w, delta, rng)
        else:
            drop, grow = _magnitude_moves(flat, layout, surv, w, delta, sflat, rng)
    flat[drop] = False
    flat[grow] = True
    return flat.reshape(layout.shape)


# --- argument checks ------------------------------------------------------------------------


def _scores_flat(scores: np.ndarray | None, layout: GroupLayout) -> np.ndarray:
    if scores is None:
        raise ConfigError("this balance mode needs scores (e.g. the trained weights)")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != layout.shape:
        raise ConfigError(f"scores shape {s.shape} does not match the weight shape {layout.shape}")
    if not np.isfinite(s).all():
        raise ConfigError("scores must be finite")
    return s.reshape(-1)


def _cost(cost: np.ndarray | None, layout: GroupLayout) -> np.ndarray:
    if cost is None:
        raise ConfigError("balance mode 'activity' needs a per-position cost")
    c = np.asarray(cost, dtype=np.float64)
    if not (np.isfinite(c) & (c > 0)).all():
        raise ConfigError("cost must be positive and finite everywhere")
    try:
        return np.broadcast_to(c, layout.shape).reshape(-1)
    except ValueError as exc:
        raise ConfigError(
            f"cost of shape {c.shape} does not broadcast to the weight shape {layout.shape}"
        ) from exc


# --- vectorized selection primitives --------------------------------------------------------


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` over all pairs, without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return shift + np.arange(total, dtype=np.int64)


def _sample_subsets(
    rng: np.random.Generator, off: np.ndarray, size: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """Uniform random ``k[s]``-subsets of the disjoint ranges ``[off[s], off[s] + size[s])``.

    ``off`` must increase with ``s`` and ``0 <= k <= size``. Returns the sorted union. Work is
    O(sum k) expected (plus a lazily zeroed bitmap), never O(sum size): draws with replacement and
    keeps distinct values until
    each subset is full (uniform by symmetry); a subset over half its range is drawn as the
    complement of the one it leaves out, so each draw succeeds with probability >= 1/2.
    """
    keep = k > 0
    off, size, k = off[keep], size[keep], k[keep]
    if off.size == 0:
        return np.empty(0, dtype=np.int64)
    flip = 2 * k > size
    m = np.where(flip, size - k, k)
    taken = np.zeros(int(off[-1] + size[-1]), dtype=bool)  # lazily zeroed: touched sparsely
    found = []
    need = m
    while (total := int(need.sum())) > 0:
        seg = np.repeat(np.flatnonzero(need), need[need > 0])
        draws = np.unique(off[seg] + rng.integers(0, size[seg], size=total))
        new = draws[~taken[draws]]
        taken[new] = True
        found.append(new)
        need = need - np.bincount(np.searchsorted(off, new, side="right") - 1, minlength=off.size)
    chosen = np.concatenate([np.empty(0, dtype=np.int64), *found])
    if flip.any():
        in_flip = flip[np.searchsorted(off, chosen, side="right") - 1]
        full = _ranges(off[flip], size[flip])
        chosen = np.concatenate([chosen[~in_flip], full[~taken[full]]])
    return np.sort(chosen)


def _ranked_prefix(
    keys: np.ndarray, kmax: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """First ``kmax[r]`` columns of each row of ``keys`` in increasing key order.

    ``keys`` is ``[R, L]`` with ``+inf`` marking invalid entries; ``kmax[r]`` must not exceed the
    row's valid count. Ties are ordered uniformly at random. Returns ``(rows, cols)`` grouped by
    row, best first within a row. Costs a few O(R*L) passes (a row-wise partition, comparisons)
    and a sort of the selected entries only, never a sort of every candidate.
    """
    nrows, length = keys.shape
    kmax = np.asarray(kmax, dtype=np.int64)
    big_k = int(kmax.max(initial=0))
    if big_k == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    top = np.partition(keys, big_k - 1, axis=1)[:, :big_k] if big_k < length else keys
    topv = np.sort(top, axis=1)
    thresh = np.where(kmax > 0, topv[np.arange(nrows), np.maximum(kmax - 1, 0)], -np.inf)
    rows, cols = np.nonzero(keys <= thresh[:, None])
    vals = keys[rows, cols]
    tie = vals == thresh[rows]
    n_tie = np.bincount(rows[tie], minlength=nrows)
    want = kmax - np.bincount(rows[~tie], minlength=nrows)
    pick = np.flatnonzero(tie)[_sample_subsets(rng, np.cumsum(n_tie) - n_tie, n_tie, want)]
    keep = np.concatenate([np.flatnonzero(~tie), pick])
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    order = np.lexsort((rng.random(rows.size), vals, rows))
    return rows[order], cols[order]


def _row_blocks(nrows: int, length: int) -> Iterator[slice]:
    """Row slices whose padded blocks stay under ``_BLOCK_ELEMS`` elements (at least one row)."""
    step = max(1, _BLOCK_ELEMS // max(length, 1))
    for lo in range(0, nrows, step):
        yield slice(lo, min(lo + step, nrows))


def _within_row_cumsum(rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``x`` restarting at each row (``rows`` grouped, nondecreasing).

    Summed in a padded ``[rows, longest]`` block so that each row's sums are exact prefix sums of
    that row alone (no cancellation against a global running sum).
    """
    if rows.size == 0:
        return np.zeros(0, dtype=np.float64)
    counts = np.bincount(rows)
    col = np.arange(rows.size) - (np.cumsum(counts) - counts)[rows]
    block = np.zeros((counts.size, int(counts.max())), dtype=np.float64)
    block[rows, col] = x
    return np.cumsum(block, axis=1)[rows, col]


def _survivor_block(
    surv: np.ndarray,
    cw: np.ndarray,
    w: np.ndarray,
    slots: np.ndarray,
    sflat: np.ndarray,
    sign: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Padded ``[R, max w]`` survivor positions of ``slots`` and keys ``sign*|score|`` (inf pad)."""
    col = np.arange(int(w[slots].max(initial=0)))
    valid = col[None, :] < w[slots, None]
    pos = surv[np.where(valid, cw[slots, None] + col[None, :], 0)]
    return pos, np.where(valid, sign * np.abs(sflat[pos]), np.inf)


def _gather_runs(x: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """``[R, length]`` copy of ``x[start : start + length]`` per start (zero past the end).

    When every start is a multiple of ``length`` (equal capacities: always in sata) this is a
    row gather of a reshaped view; otherwise a gather of sliding windows of a padded copy.
    """
    if x.size % length == 0 and not np.any(starts % length):
        return x.reshape(-1, length)[starts // length]
    padded = np.concatenate([x, np.zeros(length, dtype=x.dtype)])
    return np.lib.stride_tricks.sliding_window_view(padded, length)[starts]


def _pruned_block(
    flat: np.ndarray, layout: GroupLayout, slots: np.ndarray, sflat: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Keys ``-|score|`` of ``slots``' runs (inf where not pruned), validity, run starts, length.

    Entry ``(r, c)`` is weight position ``starts[r] + c``.
    """
    starts = layout.start.ravel()[slots]
    cap = layout.capacity.ravel()[slots]
    length = max(int(cap.max(initial=0)), 1)
    valid = ~_gather_runs(flat, starts, length)
    if np.any(cap < length):
        valid &= np.arange(length)[None, :] < cap[:, None]
    keys = np.negative(np.abs(_gather_runs(sflat, starts, length)))
    keys[~valid] = np.inf
    return keys, valid, starts, length


# --- modes ----------------------------------------------------------------------------------


def _random_moves(
    layout: GroupLayout,
    surv: np.ndarray,
    w: np.ndarray,
    delta: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """u-Ticket: random survivors to drop and random pruned positions to regrow, per slot.

    Works in rank space: slot ``s``'s survivors are ``surv[cw[s] : cw[s] + w[s]]`` and its pruned
    positions have global pruned ranks ``start[s] - cw[s] ...``; a pruned rank ``R`` is position
    ``R + #{j : surv[j] - j <= R}``. So the cost is O(survivors + moves), not O(weights).
    """
    cw = np.cumsum(w) - w
    rem, add = delta < 0, delta > 0
    drop = surv[_sample_subsets(rng, cw[rem], w[rem], -delta[rem])]
    start = layout.start.ravel()
    cap = layout.capacity.ravel()
    ranks = _sample_subsets(rng, (start - cw)[add], (cap - w)[add], delta[add])
    gaps = surv - np.arange(surv.size)
    grow = ranks + np.searchsorted(gaps, ranks, side="right")
    return drop, grow


def _magnitude_moves(
    flat: np.ndarray,
    layout: GroupLayout,
    surv: np.ndarray,
    w: np.ndarray,
    delta: np.ndarray,
    sflat: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Drop the smallest-|score| survivors and regrow the largest-|score| pruned positions."""
    cw = np.cumsum(w) - w
    rem = np.flatnonzero(delta < 0)
    pos, key = _survivor_block(surv, cw, w, rem, sflat, 1.0)
    r, c = _ranked_prefix(key, -delta[rem], rng)
    drop = pos[r, c]
    add = np.flatnonzero(delta > 0)
    length = int(layout.capacity.ravel()[add].max(initial=0))
    grows = [np.empty(0, dtype=np.int64)]
    for blk in _row_blocks(add.size, length):
        key, _, starts, _ = _pruned_block(flat, layout, add[blk], sflat)
        r, c = _ranked_prefix(key, delta[add[blk]], rng)
        grows.append(starts[r] + c)
    return drop, np.concatenate(grows)


def _activity(
    flat: np.ndarray,
    layout: GroupLayout,
    surv: np.ndarray,
    w: np.ndarray,
    sflat: np.ndarray,
    cflat: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy load balancing: per PE, the longest |score|-ordered prefix that stays on its side.

    Regrowth ranks only a guessed prefix per PE (twice the count the mean candidate cost
    suggests) and widens it fourfold for the PEs that used all of it, so the work stays near the
    number of moves rather than the number of pruned positions.
    """
    load = np.bincount(layout.pe_of[surv], weights=cflat[surv], minlength=layout.num_slots)
    act = layout.active
    gl = load.reshape(layout.num_groups, layout.n)
    target = (np.where(act, gl, 0.0).sum(axis=1) / np.maximum(act.sum(axis=1), 1))[:, None]
    target = np.broadcast_to(target, act.shape).ravel()
    actf = act.ravel()
    cw = np.cumsum(w) - w

    above = np.flatnonzero(actf & (load > target))
    pos, key = _survivor_block(surv, cw, w, above, sflat, 1.0)
    r, c = _ranked_prefix(key, w[above], rng)
    p = pos[r, c]
    take = _within_row_cumsum(r, cflat[p]) <= (load - target)[above][r]
    drop = p[take]

    below = np.flatnonzero(actf & (load < target))
    length = int(layout.capacity.ravel()[below].max(initial=0))
    grows = [np.empty(0, dtype=np.int64)]
    for blk in _row_blocks(below.size, length):
        slots = below[blk]
        key, valid, starts, run_len = _pruned_block(flat, layout, slots, sflat)
        budget = (target - load)[slots]
        nvalid = valid.sum(axis=1)
        cblock = _gather_runs(cflat, starts, run_len)
        cmean = np.where(valid, cblock, 0.0).sum(axis=1) / np.maximum(nvalid, 1)
        guess = np.ceil(2.0 * budget / np.where(nvalid > 0, cmean, 1.0)) + 1.0
        kmax = np.minimum(nvalid, guess).astype(np.int64)
        rows = np.arange(slots.size)
        while rows.size:
            sub = key if rows.size == slots.size else key[rows]
            r, c = _ranked_prefix(sub, kmax[rows], rng)
            p = starts[rows[r]] + c
            take = _within_row_cumsum(r, cblock[rows[r], c]) <= budget[rows][r]
            ntake = np.bincount(r[take], minlength=rows.size)
            done = (ntake < kmax[rows]) | (kmax[rows] >= nvalid[rows])
            grows.append(p[take & done[r]])
            rows = rows[~done]
            kmax[rows] = np.minimum(nvalid[rows], 4 * kmax[rows])
    return drop, np.concatenate(grows)
