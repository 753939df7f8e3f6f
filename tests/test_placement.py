"""Placement: optimality against brute force, validity, never slower than the paper."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uticompile.errors import ConfigError
from uticompile.grouping import group_layout
from uticompile.placement import (
    CONTIGUOUS,
    SORTED,
    SPLIT,
    LayerLoad,
    apportion,
    candidates,
    choose,
    contiguous,
    group_latency,
    latency,
    place,
    sorted_and_filled,
    sorted_filters,
    split_filters,
    step_floor,
)


def _brute_force_sum_of_maxima(cost: list[int], n: int) -> int:
    """The least sum of group maxima over every assignment of filters to groups of <= n."""
    o = len(cost)
    best = None
    for assign in itertools.product(range(o), repeat=o):
        counts = np.bincount(assign, minlength=o)
        if counts.max() > n:
            continue
        maxima = [max(c for c, g in zip(cost, assign, strict=True) if g == k) for k in set(assign)]
        total = sum(maxima)
        best = total if best is None else min(best, total)
    assert best is not None
    return best


def _mask(rng: np.random.Generator, o: int, c: int, k: int, density: float) -> np.ndarray:
    return rng.random((o, c, k)) < density


def _base(o: int, c: int, k: int, n: int, grouping: str = "sata") -> object:
    shape = (o, c, 1, k) if k > 1 else (o, c)
    return contiguous(group_layout(shape, n, grouping), k)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 20), min_size=1, max_size=6),
    st.integers(1, 4),
)
def test_sorted_is_optimal_against_brute_force(cost: list[int], n: int) -> None:
    p = sorted_filters(np.array(cost), n, c_in=1)
    maxima = [max(cost[f] for f in p.filter[p.group == g]) for g in range(p.groups)]
    assert sum(maxima) == _brute_force_sum_of_maxima(cost, n)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_static_latency_of_sorted_is_brute_force_optimum(o: int, n: int, seed: int) -> None:
    """On a real mask: the static latency of ``sorted`` is the least over all assignments."""
    rng = np.random.default_rng(seed)
    mask = _mask(rng, o, 3, 2, 0.4)
    load = LayerLoad(mask)
    p = sorted_filters(load.channel_cost().sum(axis=1), n, 3)
    p.check(o, 3)
    nnz = mask.reshape(o, -1).sum(axis=1).tolist()
    assert latency(load, p) == _brute_force_sum_of_maxima(nnz, n)
    assert latency(load, p) <= latency(load, _base(o, 3, 2, n))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 12),
    st.sampled_from([1, 3]),
    st.integers(1, 17),
    st.sampled_from(["sata", "systolic"]),
    st.integers(0, 2**32 - 1),
)
def test_every_candidate_is_a_valid_placement_and_choose_is_never_slower(
    o: int, c: int, k: int, n: int, grouping: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    mask = _mask(rng, o, c, k, rng.uniform(0.02, 0.5))
    base = _base(o, c, k, n, grouping)
    steps = rng.integers(0, 4, size=(5, c, k))
    for load in (LayerLoad(mask), LayerLoad(mask, steps)):
        for p in candidates(load, n, base):
            p.check(o, c)
            # the work is conserved: every nonzero weight counted once per step
            assert load.slot_work(p).sum() == load.slot_work(base).sum()
        chosen = choose(load, n, base)
        chosen.check(o, c)
        assert latency(load, chosen) <= latency(load, base)


def test_slot_work_matches_a_direct_count() -> None:
    rng = np.random.default_rng(3)
    mask = _mask(rng, 5, 4, 3, 0.5)
    hits = rng.integers(0, 5, size=(7, 4, 3))
    p = split_filters(LayerLoad(mask).channel_cost(), 4, 2)
    work = LayerLoad(mask, hits).slot_work(p)
    for g, pe, f, first, count in zip(p.group, p.pe, p.filter, p.first, p.channels, strict=True):
        m = mask[f, first : first + count]
        want = (hits[:, first : first + count] * m).sum(axis=(1, 2))
        np.testing.assert_array_equal(work[:, g, pe], want)
    held = np.zeros((p.groups, 4), bool)
    held[p.group, p.pe] = True
    assert not work[:, ~held].any()


def test_classifier_fill_uses_every_pe_and_beats_contiguous() -> None:
    """10 filters on 16 PEs: sata leaves 6 idle; filling splits the heaviest filters."""
    rng = np.random.default_rng(0)
    mask = _mask(rng, 10, 64, 1, 0.3)
    load = LayerLoad(mask)
    base = _base(10, 64, 1, 16)
    p = sorted_and_filled(load.channel_cost(), 16)
    p.check(10, 64)
    assert p.code == SPLIT
    assert p.groups == 1
    assert sorted(p.pe.tolist()) == list(range(16))
    assert latency(load, p) < latency(load, base)
    chosen = choose(load, 16, base)
    assert chosen.code != CONTIGUOUS
    assert latency(load, chosen) < latency(load, base)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=4), st.integers(1, 8))
def test_apportion_minimizes_the_max_cost_per_pe(cost: list[int], spare: int) -> None:
    pes = len(cost) + spare
    share = apportion(np.array(cost, np.float64), pes, np.full(len(cost), 5))
    assert share.sum() <= pes
    assert share.min() >= 1
    assert share.max() <= 5
    best = min(
        max(c / s for c, s in zip(cost, shares, strict=True))
        for shares in itertools.product(range(1, 6), repeat=len(cost))
        if sum(shares) <= pes
    )
    assert max(c / s for c, s in zip(cost, share, strict=True)) == pytest.approx(best)


def test_contiguous_reproduces_the_paper_grouping() -> None:
    sata = _base(20, 3, 9, 16)
    assert sata.groups == 2
    assert sata.filter.tolist() == list(range(20))
    assert (sata.group * 16 + sata.pe).tolist() == list(range(20))
    systolic = _base(4, 10, 1, 4, "systolic")
    assert systolic.groups == 4
    assert systolic.first.tolist()[:4] == [0, 3, 6, 9]
    assert systolic.channels.tolist()[:4] == [3, 3, 3, 1]


def test_place_by_name() -> None:
    rng = np.random.default_rng(1)
    mask = _mask(rng, 12, 5, 1, 0.4)
    load, base = LayerLoad(mask), _base(12, 5, 1, 4)
    assert place("contiguous", load, 4, base) is base
    assert place("sorted", load, 4, base).code == SORTED
    systolic = _base(12, 5, 1, 4, "systolic")
    assert place("sorted", load, 4, systolic) is systolic  # one filter per group: nothing to sort
    with pytest.raises(ConfigError):
        place("fastest", load, 4, base)
    with pytest.raises(ConfigError):
        split_filters(load.channel_cost(), 4, 6)


def test_floor_is_below_latency() -> None:
    rng = np.random.default_rng(2)
    work = rng.integers(0, 9, size=(3, 6, 2, 4))
    assert step_floor(work, 4) <= group_latency(work).sum()
    assert step_floor(np.full((1, 1, 4), 3), 4) == group_latency(np.full((1, 1, 4), 3)).sum() == 3
    assert step_floor(np.array([[[1, 0, 0, 0]]]), 4) == 1  # one cycle cannot be split


def test_margin_keeps_the_paper_placement_on_a_small_gain() -> None:
    mask = np.zeros((3, 4, 1), bool)
    mask[0, :, 0] = True
    mask[1:, 0, 0] = True  # 4, 1 and 1 weights on 4 PEs: sata costs 4, splitting filter 0 costs 2
    load, base = LayerLoad(mask), _base(3, 4, 1, 4)
    assert latency(load, choose(load, 4, base)) == 2 < latency(load, base) == 4
    assert choose(load, 4, base, margin=0.6) is base
