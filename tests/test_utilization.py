"""Eq. 2 and the static figures against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uticompile.errors import ConfigError
from uticompile.grouping import group_layout
from uticompile.metrics import eq2
from uticompile.passes.utilization import (
    StaticStats,
    layer_stats,
    network_utilization,
    static_stats,
)

ALL4 = np.ones(4, dtype=bool)


def test_paper_fig3_example() -> None:
    # T_max 4, T_avg 2: mu = 1 - (2/4) * (4/3) = 1/3
    assert eq2(np.array([4, 1, 1, 2]), ALL4) == pytest.approx(1 / 3)
    assert eq2(np.array([2, 2, 2, 2]), ALL4) == pytest.approx(1.0)


def test_single_pe_and_empty_group() -> None:
    assert eq2(np.array([7]), np.array([True])) == 1.0
    # one active PE among four slots counts as n = 1
    assert eq2(np.array([5, 0, 0, 0]), np.array([True, False, False, False])) == 1.0
    assert math.isnan(float(eq2(np.array([0, 0, 0, 0]), ALL4)))
    assert math.isnan(float(eq2(np.array([0]), np.array([True]))))  # no work wins over n = 1
    assert math.isnan(float(eq2(np.array([3, 3]), np.array([False, False]))))


def test_only_active_pes_count() -> None:
    # partial group: active workloads 4, 2 -> n = 2, avg 3, mu = 1 - (1/4) * 2 = 0.5
    t = np.array([4, 2, 0, 0])
    act = np.array([True, True, False, False])
    assert eq2(t, act) == pytest.approx(0.5)
    # the same workloads with all four slots active would count the zeros
    assert eq2(t, ALL4) == pytest.approx(1 - (2.5 / 4) * (4 / 3))


def test_ceil_avg() -> None:
    t = np.array([4, 1, 1, 1])  # mean 1.75, ceil 2
    assert eq2(t, ALL4) == pytest.approx(1 - (2.25 / 4) * (4 / 3))
    assert eq2(t, ALL4, ceil_avg=True) == pytest.approx(1 / 3)
    # float times go through np.ceil; nothing is clipped
    assert eq2(np.array([1.5, 1.5]), np.ones(2, bool), ceil_avg=True) == pytest.approx(5 / 3)


def test_vectorized_over_leading_axes() -> None:
    t = np.array([[[4, 1, 1, 2], [2, 2, 2, 2]], [[0, 0, 0, 0], [3, 1, 0, 0]]])
    act = np.array([[True] * 4, [True, True, True, False]])  # broadcast over axis 0
    mu = eq2(t, act)
    assert mu.shape == (2, 2)
    assert mu[0, 0] == pytest.approx(1 / 3)
    assert mu[0, 1] == pytest.approx(1.0)
    assert math.isnan(mu[1, 0])
    # active 3, 1, 0: max 3, avg 4/3, n 3
    assert mu[1, 1] == pytest.approx(1 - ((3 - 4 / 3) / 3) * 1.5)


def test_static_stats_by_hand() -> None:
    w = np.array([[4, 1, 1, 2], [2, 2, 2, 2], [0, 0, 0, 0]])
    st = static_stats(w, np.ones_like(w, dtype=bool), params=123)
    assert st.work == 16
    assert st.idle == (0 + 3 + 3 + 2) + 0 + 0
    assert st.latency == 4 + 2 + 0
    assert st.params == 123
    np.testing.assert_allclose(st.group_utilization[:2], [1 / 3, 1.0])
    assert math.isnan(st.group_utilization[2])
    assert st.utilization == pytest.approx((1 / 3 + 1.0) / 2)


def test_static_stats_partial_group_and_no_work() -> None:
    w = np.array([[3, 1], [2, 0]])
    act = np.array([[True, True], [True, False]])
    st = static_stats(w, act, params=10)
    assert st.idle == 2  # inactive slot is not idle
    assert st.latency == 5
    np.testing.assert_allclose(st.group_utilization, [1 - (1 / 3) * 2, 1.0])
    empty = static_stats(np.zeros((2, 2), dtype=np.int64), act, params=10)
    assert empty.utilization is None
    assert (empty.work, empty.idle, empty.latency) == (0, 0, 0)
    with pytest.raises(ConfigError, match="integer"):
        static_stats(w.astype(float), act, params=10)


def test_layer_stats_from_layout() -> None:
    lay = group_layout((3, 4), 2, "sata")
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    st = layer_stats(mask, lay)
    assert st.params == 12
    assert (st.work, st.idle, st.latency) == (7, 2, 5)
    np.testing.assert_allclose(st.group_utilization, [0.5, 1.0])


def _stats(util: float | None, params: int) -> StaticStats:
    return StaticStats(
        work=0, idle=0, latency=0, group_utilization=np.empty(0), utilization=util, params=params
    )


def test_network_weighted_vs_unweighted() -> None:
    layers = [_stats(2 / 3, 100), _stats(0.5, 300), _stats(None, 50)]
    weighted, unweighted = network_utilization(layers)
    assert weighted == pytest.approx((2 / 3 * 100 + 0.5 * 300) / 400)
    assert unweighted == pytest.approx((2 / 3 + 0.5) / 2)
    assert network_utilization([_stats(None, 10)]) == (None, None)
    assert network_utilization([]) == (None, None)
