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
from uticompile.passes.balance import balance_mask, check_balanced, workload_targets

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


def _run(case: Case, mode: str) -> np.ndarray:
    before = case.mask.copy()
    out = balance_mask(
        case.mask,
        case.layout,
        mode,
        rng=np.random.default_rng(case.seed),
        scores=case.scores,
        cost=case.cost,
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
    )
    np.testing.assert_array_equal(out, again)  # deterministic with the seed
    return out


def _per_slot(lay: GroupLayout, positions: np.ndarray) -> np.ndarray:
    return np.bincount(lay.pe_of[positions], minlength=lay.num_slots)


@settings(max_examples=120, deadline=None)
@given(case=cases(), mode=st.sampled_from(COUNT_MODES))
def test_count_modes_postconditions(case: Case, mode: str) -> None:
    lay = case.layout
    w0 = lay.workloads(case.mask)
    target = workload_targets(w0, lay)
    out = _run(case, mode)
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


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_magnitude_matches_brute_force(case: Case) -> None:
    lay = case.layout
    out = _run(case, "magnitude")
    flat0, flat1 = case.mask.ravel(), out.ravel()
    mag = np.abs(case.scores.ravel())
    delta = (workload_targets(lay.workloads(case.mask), lay) - lay.workloads(case.mask)).ravel()
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


def test_magnitude_ties_are_random_not_by_index() -> None:
    # one filter full, the others with one survivor each: avg = ceil(53/4) = 14
    lay = group_layout((4, 50), 4, "sata")
    mask = np.zeros((4, 50), dtype=bool)
    mask[0] = True
    mask[1:, 0] = True
    scores = np.zeros((4, 50))
    scores[0] = np.arange(1, 51)
    scores[1, 10] = 5.0  # the only pruned position with a nonzero score in PE 1
    picks = set()
    for seed in range(20):
        out = balance_mask(mask, lay, "magnitude", rng=np.random.default_rng(seed), scores=scores)
        assert out[1, 10]
        grown = np.flatnonzero(out[1] & ~mask[1])
        assert grown.size == 13
        picks.add(tuple(grown.tolist()))
        # PE 0 keeps its 14 largest-|score| weights
        np.testing.assert_array_equal(np.flatnonzero(out[0]), np.arange(36, 50))
    assert len(picks) > 1


def test_uticket_choices_are_uniform() -> None:
    # PE 0: w = 4 must lose 1 of 4; PE 1: w = 1 must regrow 2 of its 3 pruned (complement path)
    lay = group_layout((2, 4), 2, "sata")
    mask = np.array([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)
    trials = 2000
    removed = np.zeros(4)
    grown = np.zeros(4)
    for seed in range(trials):
        out = balance_mask(mask, lay, "uticket", rng=np.random.default_rng(seed))
        removed += mask[0] & ~out[0]
        grown += out[1] & ~mask[1]
    np.testing.assert_allclose(removed / trials, 0.25, atol=0.05)
    np.testing.assert_allclose(grown[1:] / trials, 2 / 3, atol=0.05)
    assert grown[0] == 0


@settings(max_examples=120, deadline=None)
@given(case=cases())
def test_activity_guarantee(case: Case) -> None:
    lay = case.layout
    out = _run(case, "activity")
    cost = np.broadcast_to(case.cost, lay.shape).ravel()
    load0 = lay.loads(case.mask, case.cost).ravel()
    load1 = lay.loads(out, case.cost).ravel()
    act = lay.active
    target = np.where(act, lay.loads(case.mask, case.cost), 0).sum(axis=1) / act.sum(axis=1)
    target = np.repeat(target, lay.n)
    actf = act.ravel()
    above = actf & (load0 > target)
    below = actf & (load0 < target)
    flat0, flat1 = case.mask.ravel(), out.ravel()
    mag = np.abs(case.scores.ravel())
    grown = np.flatnonzero(flat1 & ~flat0)
    removed = np.flatnonzero(flat0 & ~flat1)
    assert above[lay.pe_of[removed]].all()
    assert below[lay.pe_of[grown]].all()
    np.testing.assert_array_equal(load1[~above & ~below], load0[~above & ~below])
    cmax = np.zeros(lay.num_slots)
    np.maximum.at(cmax, lay.pe_of, cost)
    eps = 1e-9 * (1.0 + target)
    # the documented bound: T <= L' < T + c above, T - c < L' <= T below (or saturated)
    assert np.all(load1[above] >= target[above] - eps[above])
    assert np.all(load1[above] < target[above] + cmax[above] + eps[above])
    assert np.all(load1[below] <= target[below] + eps[below])
    full = np.bincount(lay.pe_of[np.flatnonzero(flat1)], minlength=lay.num_slots) == (
        lay.capacity.ravel()
    )
    ok_below = (load1 > target - cmax - eps) | full
    assert np.all(ok_below[below])
    # exact greedy: a |score|-ordered prefix, and the next candidate would cross the target
    for s in np.flatnonzero(above | below):
        pos = np.flatnonzero(lay.pe_of == s)
        if above[s]:
            gone, kept = pos[flat0[pos] & ~flat1[pos]], pos[flat1[pos]]
            if gone.size and kept.size:
                assert mag[gone].max() <= mag[kept].min()
            if kept.size:
                nxt = kept[np.argmin(mag[kept])]
                assert load1[s] - cost[nxt] < target[s] + eps[s]
        else:
            new, still = pos[flat1[pos] & ~flat0[pos]], pos[~flat1[pos]]
            if new.size and still.size:
                assert mag[new].min() >= mag[still].max()
            if still.size:
                nxt = still[np.argmax(mag[still])]
                assert load1[s] + cost[nxt] > target[s] - eps[s]


def test_activity_hand_case() -> None:
    lay = group_layout((2, 4), 2, "sata")
    cost = np.array([[1.0, 1.0, 2.0, 4.0]])  # firing rate of each input channel
    mask = np.array([[1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)  # loads 8 and 0: target 4
    scores = np.array([[0.1, 0.2, 0.3, 0.4], [0.9, 0.5, 0.8, 0.1]])
    out = balance_mask(
        mask, lay, "activity", rng=np.random.default_rng(0), scores=scores, cost=cost
    )
    # PE 0 drops 0.1 (1), 0.2 (1), 0.3 (2) -> load 4; PE 1 regrows 0.9 (1), 0.8 (2), 0.5 (1) -> 4
    np.testing.assert_array_equal(out, [[0, 0, 0, 1], [1, 1, 1, 0]])
    # highest score first, stopping before the next would overshoot: only the 4-cost weight fits
    scores[1] = [0.1, 0.5, 0.8, 0.9]
    out = balance_mask(
        mask, lay, "activity", rng=np.random.default_rng(0), scores=scores, cost=cost
    )
    np.testing.assert_array_equal(out[1], [0, 0, 0, 1])


@pytest.mark.parametrize("mode", ["uticket", "magnitude", "activity"])
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


@pytest.mark.parametrize("mode", ["uticket", "magnitude", "activity"])
def test_empty_group_stays_empty_and_partial_group(mode: str) -> None:
    rng = np.random.default_rng(5)
    shape = (6, 3, 3, 3)  # sata, n = 4: group 1 is partial (2 active PEs)
    lay = group_layout(shape, 4, "sata")
    mask = np.zeros(shape, dtype=bool)
    mask[4] = rng.random((3, 3, 3)) < 0.8
    mask[5, 0, 0, 0] = True
    out = balance_mask(
        mask, lay, mode, rng=rng, scores=rng.standard_normal(shape), cost=np.ones((1, 3, 1, 1))
    )
    assert not out[:4].any()  # group 0 had no survivor: target 0
    w = lay.workloads(out)
    assert w[1, 0] == w[1, 1] == -(-(int(mask[4].sum()) + 1) // 2)
    assert w[1, 2] == w[1, 3] == 0


def test_systolic_capacity_limited_pe() -> None:
    # C_in = 7, n = 4: chunks 2, 2, 2, 1; workloads 2, 2, 2, 0 -> avg 2, short PE target 1
    lay = group_layout((1, 7), 4, "systolic")
    mask = np.array([[1, 1, 1, 1, 1, 1, 0]], dtype=bool)
    out = balance_mask(mask, lay, "uticket", rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out, np.ones((1, 7), dtype=bool))
    # C_in = 5, n = 2: chunks 3, 2; workloads 3, 2 -> avg 3 exceeds the short PE: stays full
    lay2 = group_layout((1, 5), 2, "systolic")
    full = np.ones((1, 5), dtype=bool)
    np.testing.assert_array_equal(workload_targets(lay2.workloads(full), lay2), [[3, 2]])
    np.testing.assert_array_equal(
        balance_mask(full, lay2, "uticket", rng=np.random.default_rng(0)), full
    )
    check_balanced(full, lay2)


@pytest.mark.parametrize("mode", ["magnitude", "activity"])
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
    if mode == "magnitude":
        check_balanced(out, lay)
    else:
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
        balance_mask(mask, lay, "activity", rng=rng, scores=np.ones((4, 4)))
    with pytest.raises(ConfigError, match="positive"):
        balance_mask(mask, lay, "activity", rng=rng, scores=np.ones((4, 4)), cost=np.zeros(4))
    with pytest.raises(ConfigError, match="broadcast"):
        balance_mask(mask, lay, "activity", rng=rng, scores=np.ones((4, 4)), cost=np.ones(3))
    with pytest.raises(PassError, match="shape"):
        balance_mask(np.ones((2, 8), dtype=bool), lay, "uticket", rng=rng)
