"""Workload balancing: postconditions of every mode, edge cases, and hand cases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uticompile.errors import ConfigError, PassError
from uticompile.grouping import GROUPINGS, GroupLayout, group_layout
from uticompile.passes import balance as balance_mod
from uticompile.passes.balance import (
    balance_mask,
    check_balanced,
    check_cycles_balanced,
    check_iso_balanced,
    workload_targets,
)

COUNT_MODES = ("uticket", "magnitude")


@dataclass
class Case:
    layout: GroupLayout
    mask: np.ndarray
    scores: np.ndarray
    cost: np.ndarray
    seed: int


@st.composite
def cases(draw: st.DrawFn) -> Case:
    c_out = draw(st.integers(1, 12))
    c_in = draw(st.integers(1, 10))
    k = draw(st.sampled_from([None, (1, 1), (3, 3), (2, 1)]))
    shape = (c_out, c_in) if k is None else (c_out, c_in, *k)
    n = draw(st.sampled_from([1, 2, 3, 4, 16]))
    grouping = draw(st.sampled_from(GROUPINGS))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # per-filter densities give strongly imbalanced workloads; 0 and 1 hit the edges
    dens = rng.choice([0.0, 0.02, 0.1, 0.3, 0.6, 0.9, 1.0], size=(c_out,) + (1,) * (len(shape) - 1))
    mask = rng.random(shape) < dens
    scores = rng.standard_normal(shape)
    if draw(st.booleans()):
        cshape = (1, c_in) + (1,) * (len(shape) - 2)  # per input channel (firing rate)
        cost = rng.random(cshape) + 0.05
    else:
        cost = rng.lognormal(0.0, 1.5, shape) + 1e-3  # very uneven: exercises the retries
    return Case(group_layout(shape, n, grouping), mask, scores, cost, seed)


def _run(case: Case, mode: str, targets: str = "iso") -> np.ndarray:
    before = case.mask.copy()
    out = balance_mask(
        case.mask,
        case.layout,
        mode,
        rng=np.random.default_rng(case.seed),
        scores=case.scores,
        cost=case.cost,
        targets=targets,
    )
    np.testing.assert_array_equal(case.mask, before)  # input not mutated
    assert out is not case.mask
    assert not np.shares_memory(out, case.mask)
    assert out.dtype == bool
    assert out.shape == case.mask.shape
    again = balance_mask(
        case.mask,
        case.layout,
        mode,
        rng=np.random.default_rng(case.seed),
        scores=case.scores,
        cost=case.cost,
        targets=targets,
    )
    np.testing.assert_array_equal(out, again)  # deterministic with the seed
    return out


def _per_slot(lay: GroupLayout, positions: np.ndarray) -> np.ndarray:
    return np.bincount(lay.pe_of[positions], minlength=lay.num_slots)


@settings(max_examples=120, deadline=None)
@given(case=cases(), mode=st.sampled_from(COUNT_MODES))
def test_count_modes_postconditions(case: Case, mode: str) -> None:
    """The public code's ceil(mean) targets (--paper-compat)."""
    lay = case.layout
    w0 = lay.workloads(case.mask)
    target = workload_targets(w0, lay, rule="ceil")
    out = _run(case, mode, "ceil")
    w1 = lay.workloads(out)

    np.testing.assert_array_equal(w1, target)
    assert not w1[~lay.active].any()
    check_balanced(out, lay)

    n_act = lay.active.sum(axis=1)
    avg = -(-w0.sum(axis=1) // n_act)
    np.testing.assert_array_equal(
        target, np.where(lay.active, np.minimum(avg[:, None], lay.capacity), 0)
    )
    big = np.iinfo(np.int64).max
    cap_lo = np.where(lay.active, lay.capacity, big).min(axis=1)
    cap_hi = np.where(lay.active, lay.capacity, -1).max(axis=1)
    eq = cap_lo == cap_hi
    # equal capacities: every active PE ends exactly at avg
    assert np.all(np.where(lay.active[eq], w1[eq] == avg[eq, None], True))
    if lay.grouping == "sata":
        # too few pruned positions to regrow cannot happen: avg <= max workload <= capacity
        assert np.all(avg <= w0.max(axis=1))
        assert np.all(np.where(lay.active, avg[:, None] <= lay.capacity, True))

    flat0, flat1 = case.mask.ravel(), out.ravel()
    grown = np.flatnonzero(flat1 & ~flat0)
    removed = np.flatnonzero(flat0 & ~flat1)
    delta = (target - w0).ravel()
    # regrown positions were pruned and sit in the PE that needed them; removed were survivors
    np.testing.assert_array_equal(_per_slot(lay, grown), np.maximum(delta, 0))
    np.testing.assert_array_equal(_per_slot(lay, removed), np.maximum(-delta, 0))


@settings(max_examples=150, deadline=None)
@given(case=cases(), mode=st.sampled_from(("uticket", "magnitude", "cycles")))
def test_iso_targets_keep_counts_and_spread(case: Case, mode: str) -> None:
    """Default targets, every mode, both groupings: each group keeps its count, spread <= 1."""
    lay = case.layout
    w0 = lay.workloads(case.mask)
    out = _run(case, mode)
    w1 = lay.workloads(out)
    check_iso_balanced(out, case.mask, lay)
    np.testing.assert_array_equal(w1.sum(axis=1), w0.sum(axis=1))  # iso-sparse per group
    assert int(out.sum()) == int(case.mask.sum())
    assert not w1[~lay.active].any()
    if lay.n > 1:
        np.testing.assert_array_equal(w1, workload_targets(w0, lay))
    for g in range(lay.num_groups):  # spread <= 1 among PEs that are not full
        act = lay.active[g]
        room = act & (w1[g] < lay.capacity[g])
        if room.any() and act.any():
            assert w1[g][act].max() <= w1[g][room].min() + 1
    big = np.iinfo(np.int64).max
    eq = np.where(lay.active, lay.capacity, big).min(axis=1) == np.where(
        lay.active, lay.capacity, -1
    ).max(axis=1)
    n_act = lay.active.sum(axis=1)
    for g in np.flatnonzero(eq & (n_act > 0)):  # equal capacities: floor(S/n) or ceil(S/n)
        s_g = int(w0[g].sum())
        got = sorted(w1[g][lay.active[g]].tolist())
        want = [s_g // n_act[g]] * (n_act[g] - s_g % n_act[g]) + [-(-s_g // n_act[g])] * (
            s_g % n_act[g]
        )
        assert got == sorted(want)


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_magnitude_matches_brute_force(case: Case) -> None:
    lay = case.layout
    out = _run(case, "magnitude")
    flat0, flat1 = case.mask.ravel(), out.ravel()
    mag = np.abs(case.scores.ravel())
    delta = (workload_targets(lay.workloads(case.mask), lay) - lay.workloads(case.mask)).ravel()
    assert not delta.sum()  # iso: moves within the layer only
    for s in np.flatnonzero(delta):
        pos = np.flatnonzero(lay.pe_of == s)
        if delta[s] > 0:
            cand = pos[~flat0[pos]]
            want = cand[np.argsort(-mag[cand], kind="stable")[: delta[s]]]
            got = pos[flat1[pos] & ~flat0[pos]]
        else:
            cand = pos[flat0[pos]]
            want = cand[np.argsort(mag[cand], kind="stable")[: -delta[s]]]
            got = pos[flat0[pos] & ~flat1[pos]]
        assert set(got.tolist()) == set(want.tolist())


@pytest.mark.parametrize(("targets", "grow"), [("ceil", 13), ("iso", 12)])
def test_magnitude_ties_are_random_not_by_index(targets: str, grow: int) -> None:
    # one filter full, the others with one survivor each: ceil: avg = ceil(53/4) = 14 for all;
    # iso: 14 for PE 0 (the heaviest gets the extra one), 13 for the others
    lay = group_layout((4, 50), 4, "sata")
    mask = np.zeros((4, 50), dtype=bool)
    mask[0] = True
    mask[1:, 0] = True
    scores = np.zeros((4, 50))
    scores[0] = np.arange(1, 51)
    scores[1, 10] = 5.0  # the only pruned position with a nonzero score in PE 1
    picks = set()
    for seed in range(20):
        out = balance_mask(
            mask, lay, "magnitude", rng=np.random.default_rng(seed), scores=scores, targets=targets
        )
        assert out[1, 10]
        grown = np.flatnonzero(out[1] & ~mask[1])
        assert grown.size == grow
        picks.add(tuple(grown.tolist()))
        # PE 0 keeps its 14 largest-|score| weights
        np.testing.assert_array_equal(np.flatnonzero(out[0]), np.arange(36, 50))
    assert len(picks) > 1


@pytest.mark.parametrize(("targets", "regrow"), [("ceil", 2), ("iso", 1)])
def test_uticket_choices_are_uniform(targets: str, regrow: int) -> None:
    # PE 0: w = 4 must lose 1 of 4; PE 1: w = 1 must regrow 2 (ceil: complement path) or 1
    # (iso) of its 3 pruned
    lay = group_layout((2, 4), 2, "sata")
    mask = np.array([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)
    trials = 2000
    removed = np.zeros(4)
    grown = np.zeros(4)
    for seed in range(trials):
        out = balance_mask(mask, lay, "uticket", rng=np.random.default_rng(seed), targets=targets)
        removed += mask[0] & ~out[0]
        grown += out[1] & ~mask[1]
    np.testing.assert_allclose(removed / trials, 0.25, atol=0.05)
    np.testing.assert_allclose(grown[1:] / trials, regrow / 3, atol=0.05)
    assert grown[0] == 0


def _group_mean_loads(lay: GroupLayout, mask: np.ndarray, cost: np.ndarray) -> np.ndarray:
    loads = lay.loads(mask, cost)
    mean = np.where(lay.active, loads, 0).sum(axis=1) / np.maximum(lay.active.sum(axis=1), 1)
    return np.repeat(mean, lay.n)


@settings(max_examples=120, deadline=None)
@given(case=cases())
def test_cycles_guarantee(case: Case) -> None:
    """Counts as iso; each PE's expected cycles are a local optimum of single swaps, hence
    within its largest position cost of the target unless no swap can move it closer."""
    lay = case.layout
    out = _run(case, "cycles")
    w0, w1 = lay.workloads(case.mask), lay.workloads(out)
    if lay.n > 1:
        np.testing.assert_array_equal(w1, workload_targets(w0, lay))
    check_iso_balanced(out, case.mask, lay)
    check_cycles_balanced(out, case.mask, lay, case.cost)
    if lay.n == 1 or not case.mask.any():
        return
    cost = np.broadcast_to(case.cost, lay.shape).ravel()
    target = _group_mean_loads(lay, case.mask, case.cost)
    load = lay.loads(out, case.cost).ravel()
    flat = out.ravel()
    for s in np.flatnonzero(lay.active.ravel()):
        pos = np.flatnonzero(lay.pe_of == s)
        held, free = pos[flat[pos]], pos[~flat[pos]]
        e = load[s] - target[s]
        tol = 1e-9 * (1 + abs(target[s]) + cost[pos].max())
        if held.size and free.size:  # brute force: no swap gets strictly closer
            swapped = np.abs(e - cost[held][:, None] + cost[free][None, :])
            assert swapped.min() >= abs(e) - tol
        if abs(e) > cost[pos].max() + tol:
            if e > 0:
                assert not free.size or cost[held].max() <= cost[free].min() + tol
            elif held.size:
                assert not free.size or cost[held].min() + tol >= cost[free].max()


def test_cycles_hand_case() -> None:
    lay = group_layout((2, 4), 2, "sata")
    cost = np.array([[1.0, 1.0, 2.0, 4.0]])  # expected cycles of each input position
    mask = np.array([[1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)  # loads 8 and 0: target 4
    scores = np.array([[0.1, 0.2, 0.3, 0.4], [0.9, 0.5, 0.8, 0.1]])
    out = balance_mask(mask, lay, "cycles", rng=np.random.default_rng(0), scores=scores, cost=cost)
    # iso: 2 weights each. magnitude keeps 0.3 (2) + 0.4 (4) = 6 in PE 0 and regrows 0.9 (1) +
    # 0.8 (2) = 3 in PE 1; no 2-subset of {1, 1, 2, 4} sums to 4, so swaps stop at 5 and 3 (or 3)
    np.testing.assert_array_equal(lay.workloads(out), [[2, 2]])
    loads = lay.loads(out, cost)[0]
    np.testing.assert_allclose(np.abs(loads - 4.0), [1.0, 1.0])
    # PE 0: dropping 0.3 (2) or 0.4 (4) for a cost-1 position tie at |error| 1: the tie drops
    # the lower |score| (0.3) and regrows the higher-|score| cost-1 position (0.2)
    np.testing.assert_array_equal(out[0], [0, 1, 0, 1])
    # a reachable target is met exactly: costs 1, 3 -> loads 4 and 4 after one swap each
    cost2 = np.array([[1.0, 3.0, 1.0, 3.0]])
    mask2 = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool)
    mask2[0] = [0, 1, 0, 1]  # load 6
    mask2[1] = [1, 0, 1, 0]  # load 2
    out2 = balance_mask(
        mask2, lay, "cycles", rng=np.random.default_rng(0), scores=scores, cost=cost2
    )
    np.testing.assert_allclose(lay.loads(out2, cost2), [[4.0, 4.0]])


@pytest.mark.parametrize("mode", ["uticket", "magnitude", "cycles"])
def test_single_pe_and_empty_layer_unchanged(mode: str) -> None:
    rng = np.random.default_rng(3)
    shape = (6, 5, 3, 3)
    mask = rng.random(shape) < 0.3
    kwargs = {"scores": rng.standard_normal(shape), "cost": rng.random(shape) + 0.1}
    for grouping in GROUPINGS:
        one = group_layout(shape, 1, grouping)
        out = balance_mask(mask, one, mode, rng=rng, **kwargs)
        np.testing.assert_array_equal(out, mask)
        lay = group_layout(shape, 4, grouping)
        empty = np.zeros(shape, dtype=bool)
        np.testing.assert_array_equal(balance_mask(empty, lay, mode, rng=rng, **kwargs), empty)


@pytest.mark.parametrize("targets", ["ceil", "iso"])
@pytest.mark.parametrize("mode", ["uticket", "magnitude", "cycles"])
def test_empty_group_stays_empty_and_partial_group(mode: str, targets: str) -> None:
    rng = np.random.default_rng(5)
    shape = (6, 3, 3, 3)  # sata, n = 4: group 1 is partial (2 active PEs)
    lay = group_layout(shape, 4, "sata")
    mask = np.zeros(shape, dtype=bool)
    mask[4] = rng.random((3, 3, 3)) < 0.8
    mask[5, 0, 0, 0] = True
    out = balance_mask(
        mask,
        lay,
        mode,
        rng=rng,
        scores=rng.standard_normal(shape),
        cost=np.ones((1, 3, 1, 1)),
        targets=targets,
    )
    assert not out[:4].any()  # group 0 had no survivor: target 0
    w = lay.workloads(out)
    total = int(mask[4].sum()) + 1
    if targets == "ceil":
        assert w[1, 0] == w[1, 1] == -(-total // 2)
    else:
        assert sorted(w[1, :2].tolist()) == [total // 2, -(-total // 2)]
    assert w[1, 2] == w[1, 3] == 0


def test_systolic_capacity_limited_pe() -> None:
    # C_in = 7, n = 4: chunks 2, 2, 2, 1; workloads 2, 2, 2, 0 -> avg 2, short PE target 1
    lay = group_layout((1, 7), 4, "systolic")
    mask = np.array([[1, 1, 1, 1, 1, 1, 0]], dtype=bool)
    out = balance_mask(mask, lay, "uticket", rng=np.random.default_rng(0), targets="ceil")
    np.testing.assert_array_equal(out, np.ones((1, 7), dtype=bool))
    # iso: 6 weights water-filled over capacities 2, 2, 2, 1 -> 2, 2, 1, 1 (ties to low slots)
    np.testing.assert_array_equal(workload_targets(lay.workloads(mask), lay), [[2, 2, 1, 1]])
    out = balance_mask(mask, lay, "uticket", rng=np.random.default_rng(0))
    np.testing.assert_array_equal(lay.workloads(out), [[2, 2, 1, 1]])
    check_iso_balanced(out, mask, lay)
    # C_in = 5, n = 2: chunks 3, 2; workloads 3, 2 -> avg 3 exceeds the short PE: stays full
    lay2 = group_layout((1, 5), 2, "systolic")
    full = np.ones((1, 5), dtype=bool)
    np.testing.assert_array_equal(
        workload_targets(lay2.workloads(full), lay2, rule="ceil"), [[3, 2]]
    )
    np.testing.assert_array_equal(workload_targets(lay2.workloads(full), lay2), [[3, 2]])
    for targets in ("ceil", "iso"):
        np.testing.assert_array_equal(
            balance_mask(full, lay2, "uticket", rng=np.random.default_rng(0), targets=targets),
            full,
        )
    check_balanced(full, lay2)
    check_iso_balanced(full, full, lay2)


@pytest.mark.parametrize("mode", ["magnitude", "cycles"])
def test_blocked_regrowth_matches_postconditions(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(balance_mod, "_BLOCK_ELEMS", 64)  # force many row blocks
    rng = np.random.default_rng(11)
    shape = (40, 20, 3, 3)
    lay = group_layout(shape, 4, "sata")
    mask = rng.random(shape) < rng.choice([0.02, 0.2, 0.5], size=(40, 1, 1, 1))
    scores = rng.standard_normal(shape)
    cost = rng.random((1, 20, 1, 1)) + 0.1
    out = balance_mask(mask, lay, mode, rng=rng, scores=scores, cost=cost)
    check_iso_balanced(out, mask, lay)
    if mode == "magnitude":
        ceil = balance_mask(
            mask, lay, mode, rng=np.random.default_rng(0), scores=scores, targets="ceil"
        )
        check_balanced(ceil, lay)
    else:
        check_cycles_balanced(out, mask, lay, cost)
        load1 = lay.loads(out, cost)
        target = lay.loads(mask, cost).mean(axis=1, keepdims=True)
        assert np.all(np.abs(load1 - target) < cost.max() + 1e-9)


def test_check_balanced_names_group() -> None:
    lay = group_layout((8, 4), 4, "sata")
    mask = np.zeros((8, 4), dtype=bool)
    mask[:4, :2] = True
    mask[4:, 0] = True
    check_balanced(mask, lay)
    mask[6, 1] = True
    with pytest.raises(PassError, match="group 1 "):
        check_balanced(mask, lay)


def test_argument_errors() -> None:
    lay = group_layout((4, 4), 2, "sata")
    mask = np.ones((4, 4), dtype=bool)
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="mode"):
        balance_mask(mask, lay, "greedy", rng=rng)
    with pytest.raises(ConfigError, match="scores"):
        balance_mask(mask, lay, "magnitude", rng=rng)
    with pytest.raises(ConfigError, match="scores shape"):
        balance_mask(mask, lay, "magnitude", rng=rng, scores=np.ones((4, 3)))
    with pytest.raises(ConfigError, match="finite"):
        balance_mask(mask, lay, "magnitude", rng=rng, scores=np.full((4, 4), np.nan))
    with pytest.raises(ConfigError, match="cost"):
        balance_mask(mask, lay, "cycles", rng=rng, scores=np.ones((4, 4)))
    with pytest.raises(ConfigError, match="nonnegative"):
        balance_mask(mask, lay, "cycles", rng=rng, scores=np.ones((4, 4)), cost=-np.ones(4))
    with pytest.raises(ConfigError, match="broadcast"):
        balance_mask(mask, lay, "cycles", rng=rng, scores=np.ones((4, 4)), cost=np.ones(3))
    with pytest.raises(ConfigError, match="target rule"):
        balance_mask(mask, lay, "uticket", rng=rng, targets="mean")
    with pytest.raises(PassError, match="shape"):
        balance_mask(np.ones((2, 8), dtype=bool), lay, "uticket", rng=rng)
