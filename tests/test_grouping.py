"""PE grouping: hand-made layouts for both groupings and structural properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uticompile.errors import ConfigError, PassError
from uticompile.grouping import GROUPINGS, GroupLayout, group_layout


def test_sata_partial_group_by_hand() -> None:
    lay = group_layout((5, 2, 1, 2), 2, "sata")
    assert lay.num_groups == 3
    np.testing.assert_array_equal(lay.pe_of, np.repeat(np.arange(5), 4))
    np.testing.assert_array_equal(lay.active, [[True, True], [True, True], [True, False]])
    np.testing.assert_array_equal(lay.capacity, [[4, 4], [4, 4], [4, 0]])
    np.testing.assert_array_equal(lay.start, [[0, 4], [8, 12], [16, 20]])
    assert lay.pe_of.dtype == np.int64
    assert lay.capacity.dtype == np.int64


def test_systolic_short_last_chunk_by_hand() -> None:
    lay = group_layout((2, 5, 1, 1), 2, "systolic")
    assert lay.num_groups == 2
    np.testing.assert_array_equal(lay.pe_of, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    np.testing.assert_array_equal(lay.capacity, [[3, 2], [3, 2]])
    assert lay.active.all()
    np.testing.assert_array_equal(lay.start, [[0, 3], [5, 8]])


def test_systolic_empty_chunk_is_inactive() -> None:
    # C_in = 5, n = 4: chunks of 2 -> [0,2), [2,4), [4,5), empty.
    lay = group_layout((1, 5, 1, 2), 4, "systolic")
    np.testing.assert_array_equal(lay.pe_of, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(lay.capacity, [[4, 4, 2, 0]])
    np.testing.assert_array_equal(lay.active, [[True, True, True, False]])


def test_linear_is_out_in_1_1() -> None:
    lay = group_layout((3, 4), 2, "sata")
    assert lay.shape == (3, 4)
    np.testing.assert_array_equal(lay.pe_of, np.repeat(np.arange(3), 4))
    sys = group_layout((2, 4), 2, "systolic")
    np.testing.assert_array_equal(sys.pe_of, [0, 0, 1, 1, 2, 2, 3, 3])


def test_workloads_and_loads_by_hand() -> None:
    lay = group_layout((3, 4), 2, "sata")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=bool)
    np.testing.assert_array_equal(lay.workloads(mask), [[2, 4], [1, 0]])
    cost = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(lay.loads(mask, cost), [[3.0, 10.0], [4.0, 0.0]])
    np.testing.assert_allclose(lay.loads(mask, 0.5), [[1.0, 2.0], [0.5, 0.0]])


def test_errors() -> None:
    with pytest.raises(ConfigError, match="PEs"):
        group_layout((4, 4), 0, "sata")
    with pytest.raises(ConfigError, match="grouping"):
        group_layout((4, 4), 2, "rowwise")
    with pytest.raises(ConfigError, match="rank"):
        group_layout((4, 4, 3), 2, "sata")
    with pytest.raises(ConfigError, match="zero-size"):
        group_layout((0, 4), 2, "sata")
    lay = group_layout((3, 4), 2, "sata")
    with pytest.raises(PassError, match="shape"):
        lay.workloads(np.ones((4, 3), dtype=bool))
    with pytest.raises(ConfigError, match="broadcast"):
        lay.loads(np.ones((3, 4), dtype=bool), np.ones(3))


def test_cached_and_read_only() -> None:
    a = group_layout((8, 4, 3, 3), 4, "systolic")
    b = group_layout([8, 4, 3, 3], np.int64(4), "systolic")  # type: ignore[arg-type]
    assert a is b
    for arr in (a.pe_of, a.active, a.capacity, a.start):
        assert not arr.flags.writeable


def _check_structure(lay: GroupLayout) -> None:
    size = int(np.prod(lay.shape))
    assert lay.pe_of.shape == (size,)
    assert lay.active.shape == lay.capacity.shape == lay.start.shape == (lay.num_groups, lay.n)
    assert int(lay.capacity.sum()) == size
    np.testing.assert_array_equal(
        np.bincount(lay.pe_of, minlength=lay.num_slots), lay.capacity.ravel()
    )
    np.testing.assert_array_equal(lay.active, lay.capacity > 0)
    assert np.all(np.diff(lay.pe_of) >= 0)
    # every slot holds exactly its contiguous run start .. start + capacity
    expect = np.repeat(np.arange(lay.num_slots), lay.capacity.ravel())
    np.testing.assert_array_equal(lay.pe_of, expect)
    act = lay.active.ravel()
    np.testing.assert_array_equal(lay.pe_of[lay.start.ravel()[act]], np.flatnonzero(act))


@settings(max_examples=150, deadline=None)
@given(
    c_out=st.integers(1, 20),
    c_in=st.integers(1, 20),
    k=st.sampled_from([None, (1, 1), (3, 3), (1, 3)]),
    n=st.sampled_from([1, 2, 3, 4, 16]),
    grouping=st.sampled_from(GROUPINGS),
)
def test_structure_properties(
    c_out: int, c_in: int, k: tuple[int, int] | None, n: int, grouping: str
) -> None:
    shape = (c_out, c_in) if k is None else (c_out, c_in, *k)
    lay = group_layout(shape, n, grouping)
    _check_structure(lay)
    kk = 1 if k is None else k[0] * k[1]
    if grouping == "sata":
        assert lay.num_groups == -(-c_out // n)
        assert int(lay.active.sum()) == c_out
        np.testing.assert_array_equal(lay.pe_of, np.repeat(np.arange(c_out), c_in * kk))
    else:
        assert lay.num_groups == c_out
        chunk = -(-c_in // n)
        cin_of = (np.arange(lay.pe_of.size) // kk) % c_in
        out_of = np.arange(lay.pe_of.size) // (c_in * kk)
        np.testing.assert_array_equal(lay.pe_of, out_of * n + cin_of // chunk)


def test_full_width_vgg_layer_is_cheap() -> None:
    lay = group_layout((512, 512, 3, 3), 16, "sata")
    assert lay.num_groups == 32
    assert lay.capacity[0, 0] == 4608
    sys = group_layout((512, 512, 3, 3), 16, "systolic")
    assert sys.capacity[0, 0] == 32 * 9
