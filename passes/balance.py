"""Workload balancing of a pruning mask (u-Ticket Algorithm 1 step 3, plus two extensions).

Strategies are pure functions ``(mask, layout, scores, cost) -> mask`` on numpy arrays; the
caller rewinds regrown weights to their rewind-point values.

Count targets (``workload_targets``): ``iso`` (default) keeps each group's pruned nonzero count
``S`` and splits it over the active PEs as ``floor(S/n)`` or ``ceil(S/n)`` (water-filled under
capacities), so balancing never changes a layer's count and a balanced ticket is exactly as
sparse as the plain lottery ticket of the same round. ``ceil`` is the public code's
``min(ceil(mean), capacity)``, which regrows up to one weight per PE per group (``--paper-compat``).

Modes of ``balance_mask`` (which positions move to meet the targets):

* ``"uticket"`` (paper): an active PE below its target regrows uniformly random pruned
  positions of its own; one above loses uniformly random survivors of its own.
* ``"magnitude"``: regrows the pruned positions with the LARGEST ``|scores|`` and removes the
  survivors with the SMALLEST. Ties are broken uniformly at random with ``rng``, not by index:
  most pruned positions usually tie at ``|score| = 0`` (pruned in earlier rounds), and an index
  rule would crowd regrowth into the first input channels.
* ``"cycles"``: ``magnitude`` moves, then swaps inside each PE (one survivor out, one pruned
  position in: counts unchanged) until each PE's expected cycles (sum of ``cost`` over its
  nonzero positions) are as close as single swaps get to the group's mean expected cycles of the
  input mask. Bound (``check_cycles_balanced``): ``|load - mean| <=`` the PE's largest position
  cost, unless it holds its cheapest (above) or dearest (below) positions for its count.

Guarantees of the count moves: every active PE ends exactly at its target. ``iso``: each group
keeps its count and no active PE holds more than one weight above a PE that is not full
(``check_iso_balanced``). ``ceil``: each active PE ends at ``min(group max, capacity)``
(``check_balanced``).

Edge cases, all modes: ``n = 1`` and a layer with no survivor are unchanged; a group with no
survivor stays empty; a partial ``sata`` group is balanced over its active PEs; inactive slots
never receive weights. The input mask is never mutated, and the same inputs with the same rng
seed give the same output.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from uticompile.errors import ConfigError, PassError
from uticompile.grouping import GroupLayout

BALANCE_MODES: tuple[str, ...] = ("uticket", "magnitude", "cycles")
TARGET_RULES: tuple[str, ...] = ("iso", "ceil")
_MAX_SWAP_PASSES = 100_000  # never reached: every pass strictly lowers each moving PE's error

# Upper bound on the elements of one padded [rows, length] candidate block (memory bound for
# large linear layers; VGG-16 conv layers fit in one block).
_BLOCK_ELEMS = 1 << 22


def workload_targets(
    workloads: np.ndarray, layout: GroupLayout, *, rule: str = "iso"
) -> np.ndarray:
    """Per-slot target workloads of the count moves, int64 ``[num_groups, n]`` (0 if inactive).

    ``iso`` (default): the group's total ``S`` is water-filled over its active PEs: each gets
    ``min(capacity, lam)`` plus one more for the ``S - sum(min(capacity, lam))`` PEs of capacity
    above ``lam`` with the largest workloads (fewest moves; ties to the lower slot), where ``lam``
    is the largest level that does not overfill. With equal capacities that is ``floor(S/n)`` or
    ``ceil(S/n)`` each: the group keeps exactly ``S`` and its workloads differ by at most 1.

    ``ceil`` (``--paper-compat``, the public code): ``min(ceil(mean over active PEs),
    capacity)``, which regrows up to one weight per PE per group, so the layer gets denser.
    """
    if rule not in TARGET_RULES:
        raise ConfigError(
            f"unknown target rule {rule!r}; expected one of {', '.join(TARGET_RULES)}"
        )
    w = np.where(layout.active, np.asarray(workloads, dtype=np.int64), 0)
    act = layout.active
    cap = layout.capacity
    total = w.sum(axis=1)
    if rule == "ceil":
        avg = -(-total // np.maximum(act.sum(axis=1), 1))
        return np.where(act, np.minimum(avg[:, None], cap), 0).astype(np.int64)
    # largest lam with sum(min(cap, lam)) <= total, by bisection vectorized over groups
    lo = np.zeros(layout.num_groups, dtype=np.int64)
    hi = cap.max(axis=1, initial=0) + 1  # fill(hi) > total unless total == sum(cap)
    while np.any(hi - lo > 1):
        mid = (lo + hi) // 2
        ok = np.minimum(cap, mid[:, None]).sum(axis=1) <= total
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    base = np.minimum(cap, lo[:, None])
    extra = total - base.sum(axis=1)
    room = act & (cap > lo[:, None])
    key = np.where(room, -w, np.iinfo(np.int64).max)
    rank = np.argsort(np.argsort(key, axis=1, kind="stable"), axis=1, kind="stable")
    return np.where(act, base + (room & (rank < extra[:, None])), 0).astype(np.int64)


def check_balanced(mask: np.ndarray, layout: GroupLayout) -> None:
    """Postcondition of the ``ceil`` targets: raise PassError naming the first unbalanced group.

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


def check_iso_balanced(mask: np.ndarray, pruned: np.ndarray, layout: GroupLayout) -> None:
    """Postcondition of the ``iso`` targets: every group keeps its pruned count, spread <= 1.

    Spread: no active PE holds more than one weight above any active PE that is not full (a
    full PE, at its capacity, may hold fewer: only in ``systolic`` with a short last chunk).
    Raises PassError naming the first failing group.
    """
    w = layout.workloads(mask)
    w0 = layout.workloads(pruned)
    big = np.iinfo(np.int64).max
    act = layout.active
    hi = np.where(act, w, -1).max(axis=1, initial=-1)
    lo = np.where(act & (w < layout.capacity), w, big).min(axis=1, initial=big)
    bad = np.flatnonzero(
        (w.sum(axis=1) != w0.sum(axis=1)) | (hi - 1 > lo) | ((w != 0) & ~act).any(axis=1)
    )
    if bad.size:
        g = int(bad[0])
        raise PassError(
            f"group {g} of {layout.num_groups} not iso-balanced (weight shape {layout.shape}, "
            f"{layout.grouping}, n={layout.n}): workloads {w0[g].tolist()} -> {w[g].tolist()}, "
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
    targets: str = "iso",
) -> np.ndarray:
    """Return a new balanced mask (see the module docstring for modes and guarantees).

    ``scores`` (e.g. trained weights, the weight shape) is required by ``magnitude`` and
    ``cycles``; ``cost`` (nonnegative, finite, broadcastable to the weight shape: a weight
    position's expected cycles) by ``cycles``. ``targets`` is the count rule of
    ``workload_targets``. Unused arguments are ignored. Raises ConfigError for an unknown mode
    or rule, or missing/invalid scores or cost, PassError for a mask of the wrong shape.
    """
    if mode not in BALANCE_MODES:
        choices = ", ".join(BALANCE_MODES)
        raise ConfigError(f"unknown balance mode {mode!r}; expected one of {choices}")
    if targets not in TARGET_RULES:
        choices = ", ".join(TARGET_RULES)
        raise ConfigError(f"unknown target rule {targets!r}; expected one of {choices}")
    m = np.asarray(mask)
    if m.shape != layout.shape:
        raise PassError(f"mask shape {m.shape} does not match the weight shape {layout.shape}")
    flat = m.reshape(-1).astype(bool)  # always a fresh copy
    sflat = _scores_flat(scores, layout) if mode != "uticket" else None
    cflat = _cost(cost, layout) if mode == "cycles" else None

    surv = np.flatnonzero(flat)
    if layout.n == 1 or surv.size == 0:
        return flat.reshape(layout.shape)
    w = np.bincount(layout.pe_of[surv], minlength=layout.num_slots).astype(np.int64)
    goal = workload_targets(w.reshape(layout.num_groups, layout.n), layout, rule=targets)
    delta = goal.ravel() - w
    if np.any(delta > layout.capacity.ravel() - w):
        raise PassError("internal: a PE's target exceeds its capacity")  # unreachable
    if sflat is None:
        drop, grow = _random_moves(layout, surv, w, delta, rng)
    else:
        drop, grow = _magnitude_moves(flat, layout, surv, w, delta, sflat, rng)
    if cflat is not None:
        target = np.repeat(group_mean_loads(flat, layout, cflat), layout.n)
    flat[drop] = False
    flat[grow] = True
    if cflat is not None and sflat is not None:
        _cycle_swaps(flat, layout, sflat, cflat, target)
    return flat.reshape(layout.shape)


def group_mean_loads(flat: np.ndarray, layout: GroupLayout, cflat: np.ndarray) -> np.ndarray:
    """Mean expected cycles over each group's active PEs, float64 ``[num_groups]``."""
    nz = np.flatnonzero(flat)
    load = np.bincount(layout.pe_of[nz], weights=cflat[nz], minlength=layout.num_slots)
    act = layout.active
    lg = np.where(act, load.reshape(layout.num_groups, layout.n), 0.0)
    return np.asarray(lg.sum(axis=1) / np.maximum(act.sum(axis=1), 1), dtype=np.float64)


def check_cycles_balanced(
    mask: np.ndarray, pruned: np.ndarray, layout: GroupLayout, cost: np.ndarray
) -> None:
    """Postcondition of ``cycles``: every active PE's expected cycles are near the group's target.

    The target ``T`` of a group is the mean expected cycles of its active PEs in ``pruned`` (the
    mask before balancing). A PE with load ``L`` passes if ``|L - T| <= c`` (``c``: the largest
    cost among its positions), or if it cannot get closer with its weight count: above ``T`` it
    holds its cheapest positions, below ``T`` its dearest. Raises PassError naming the group.
    """
    cflat = _cost(cost, layout)
    flat, before = _flat(mask, layout), _flat(pruned, layout)
    target = np.repeat(group_mean_loads(before, layout, cflat), layout.n)
    nz = np.flatnonzero(flat)
    load = np.bincount(layout.pe_of[nz], weights=cflat[nz], minlength=layout.num_slots)
    act = np.flatnonzero(layout.active.ravel())
    starts = layout.start.ravel()[act]  # active runs tile the positions in slot order
    in_max = np.maximum.reduceat(np.where(flat, cflat, -np.inf), starts)
    in_min = np.minimum.reduceat(np.where(flat, cflat, np.inf), starts)
    out_max = np.maximum.reduceat(np.where(flat, -np.inf, cflat), starts)
    out_min = np.minimum.reduceat(np.where(flat, np.inf, cflat), starts)
    cmax = np.maximum.reduceat(cflat, starts)
    e = load[act] - target[act]
    tol = 1e-9 * (1.0 + np.abs(target[act]) + cmax)
    ok = (np.abs(e) <= cmax + tol) | ((e > 0) & (in_max <= out_min + tol))
    ok |= (e < 0) & (in_min + tol >= out_max)
    if not ok.all():
        s = int(act[np.flatnonzero(~ok)[0]])
        g, p = divmod(s, layout.n)
        raise PassError(
            f"expected cycles unbalanced in group {g} of {layout.num_groups} (weight shape "
            f"{layout.shape}, {layout.grouping}, n={layout.n}): PE {p} has {load[s]:.6g}, "
            f"target {target[s]:.6g}, largest position cost {cmax[np.searchsorted(act, s)]:.6g}"
        )


# --- argument checks ------------------------------------------------------------------------


def _flat(mask: np.ndarray, layout: GroupLayout) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != layout.shape:
        raise PassError(f"mask shape {m.shape} does not match the weight shape {layout.shape}")
    return m.reshape(-1).astype(bool, copy=False)


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
        raise ConfigError("balance mode 'cycles' needs a per-position cost (expected cycles)")
    c = np.asarray(cost, dtype=np.float64)
    if not (np.isfinite(c) & (c >= 0)).all():
        raise ConfigError("cost must be nonnegative and finite everywhere")
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


def _cycle_swaps(
    flat: np.ndarray,
    layout: GroupLayout,
    sflat: np.ndarray,
    cflat: np.ndarray,
    target: np.ndarray,
) -> None:
    """Equalize expected cycles in place by swaps inside each PE (counts are kept).

    Each pass gives every PE still improving its best single swap (one survivor out, one of its
    pruned positions in) toward its ``target``: the pair that brings the load closest to it;
    ties drop the lowest ``|score|`` survivor and regrow the highest ``|score|`` position. A PE
    stops when no swap gets strictly closer. Each PE's error shrinks at every swap, so this
    ends; at the end either ``|load - target| <=`` its largest cost, or it holds its cheapest
    (above) or dearest (below) positions for its count: the ``check_cycles_balanced`` bound.
    """
    slots = np.flatnonzero(layout.active.ravel())
    length = max(int(layout.capacity.max(initial=0)), 1)
    for blk in _row_blocks(slots.size, length):
        _swap_block(flat, layout, slots[blk], sflat, cflat, target)


def _swap_block(
    flat: np.ndarray,
    layout: GroupLayout,
    slots: np.ndarray,
    sflat: np.ndarray,
    cflat: np.ndarray,
    target: np.ndarray,
) -> None:
    """Swap passes over ``slots`` until none improves (see ``_cycle_swaps``), in place.

    Each row's positions are sorted once by (cost, -|score|); a pass then finds, per survivor,
    the nearest pruned positions to the cost that would zero the error with running
    next/previous-candidate indices over that fixed order, so a pass costs O(rows x length)
    without sorting.
    """
    starts = layout.start.ravel()[slots]
    cap = layout.capacity.ravel()[slots]
    length = max(int(cap.max(initial=0)), 1)
    nrows = slots.size
    col = np.arange(length)
    valid = col[None, :] < cap[:, None]
    cost = np.where(valid, _gather_runs(cflat, starts, length), np.inf)
    mag = np.abs(_gather_runs(sflat, starts, length))
    # by (cost, -|score|), invalid (inf) last: two stable single-key sorts beat one lexsort
    by_mag = np.argsort(-mag, axis=1, kind="stable")
    order = np.take_along_axis(
        by_mag,
        np.argsort(np.take_along_axis(cost, by_mag, axis=1), axis=1, kind="stable"),
        axis=1,
    )
    scost = np.take_along_axis(cost, order, axis=1)
    smag = np.take_along_axis(mag, order, axis=1)
    svalid = np.isfinite(scost)
    new_run = np.ones((nrows, length), dtype=bool)
    new_run[:, 1:] = scost[:, 1:] != scost[:, :-1]
    run_start = np.maximum.accumulate(np.where(new_run, col[None, :], 0), axis=1)
    hi = float(np.where(svalid, scost, 0.0).max(initial=0.0)) + 1.0
    off = 2.0 * hi + 2.0
    keys = (np.where(svalid, scost, hi) + off * np.arange(nrows)[:, None]).ravel()
    tgt = target[slots]
    rows = np.arange(nrows)
    for _ in range(_MAX_SWAP_PASSES):
        if rows.size == 0:
            return
        held = np.take_along_axis(_gather_runs(flat, starts[rows], length), order[rows], axis=1)
        held &= svalid[rows]
        c = np.where(held, scost[rows], 0.0)
        err = c.sum(axis=1) - tgt[rows]
        cand = svalid[rows] & ~held
        # next candidate at or after k (length if none), previous at or before k (-1 if none)
        nxt = np.full((rows.size, length + 1), length)
        nxt[:, :length] = np.where(cand, col[None, :], length)
        nxt = np.minimum.accumulate(nxt[:, ::-1], axis=1)[:, ::-1]
        prv = np.maximum.accumulate(np.where(cand, col[None, :], -1), axis=1)
        i, j = np.nonzero(held)  # i indexes rows, j the sorted column of a survivor
        if i.size == 0:
            return
        base = err[i] - scost[rows[i], j]  # the error once the survivor is out
        want = np.clip(-base, -1.0, hi - 0.5)
        k = np.searchsorted(keys, want + off * rows[i]) - rows[i] * length
        right = nxt[i, k]
        left = prv[i, np.maximum(k - 1, 0)]
        has_left = (k > 0) & (left >= 0)
        left = np.where(has_left, nxt[i, run_start[rows[i], np.maximum(left, 0)]], length)
        gap = np.full((i.size, 2), np.inf)
        ok_r = right < length
        gap[ok_r, 0] = np.abs(base[ok_r] + scost[rows[i[ok_r]], right[ok_r]])
        gap[has_left, 1] = np.abs(base[has_left] + scost[rows[i[has_left]], left[has_left]])
        pick = np.argmin(gap, axis=1)
        best = gap[np.arange(i.size), pick]
        into = np.where(pick == 0, right, left)
        # per row: the smallest gap, ties to the lowest-|score| survivor, then the better candidate
        first = np.lexsort((into, smag[rows[i], j], best, i))
        head = first[np.r_[True, i[first][1:] != i[first][:-1]]]
        r = i[head]
        tol = 1e-12 * (1.0 + np.abs(tgt[rows[r]]) + hi)
        go = best[head] < np.abs(err[r]) - tol
        r, head = r[go], head[go]
        flat[starts[rows[r]] + order[rows[r], j[head]]] = False
        flat[starts[rows[r]] + order[rows[r], into[head]]] = True
        rows = rows[r]
    raise PassError("internal: cycle balancing did not converge")  # each pass strictly improves
