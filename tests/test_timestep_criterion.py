"""The ET ticket's timestep criterion: known logits give a known choice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uticompile.passes.timestep_criterion import choose_from_kl, choose_timesteps, mean_kl


def _softmax(row: list[float]) -> list[float]:
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def test_hand_computed_logits_pick_three() -> None:
    # T = 4, one sample, two classes: step 0 is undecided, steps 1..3 favour class 0.
    z = np.array([[[0.0, 0.0]], [[2.0, 0.0]], [[2.0, 0.0]], [[2.0, 0.0]]])
    full = _softmax([1.5, 0.0])
    kl2 = _kl(full, _softmax([1.0, 0.0]))
    kl3 = _kl(full, _softmax([4 / 3, 0.0]))
    choice = choose_timesteps(z)
    assert choice.full_timesteps == 4
    assert set(choice.kl) == {2, 3}  # candidate 4 is not below T = 4
    assert choice.kl[2] == pytest.approx(kl2, rel=1e-12)
    assert choice.kl[3] == pytest.approx(kl3, rel=1e-12)
    assert choice.normalized_kl == pytest.approx({2: 1.0, 3: kl3 / kl2})
    assert kl3 / kl2 == pytest.approx(0.10395, abs=1e-5)
    assert choice.timesteps == 3
    # a stricter threshold than 0.104 rejects t = 3 as well: the full T is kept
    assert choose_timesteps(z, threshold=0.1).timesteps == 4


def test_smallest_t_below_threshold_wins() -> None:
    # normalized: 2 -> 1.0, 3 -> 0.5, 4 -> 0.125: 3 and 4 qualify, the smaller wins
    assert choose_from_kl({2: 0.8, 3: 0.4, 4: 0.1}, 5, 0.6).timesteps == 3
    assert choose_from_kl({2: 0.8, 3: 0.5, 4: 0.1}, 5, 0.6).timesteps == 4  # 0.625 is not < 0.6
    assert choose_from_kl({2: 0.8, 3: 0.5, 4: 0.1}, 5, 0.7).timesteps == 3


def test_no_candidate_below_threshold_keeps_full_t() -> None:
    assert choose_from_kl({2: 1.0, 3: 0.9}, 4, 0.6).timesteps == 4
    # one candidate normalizes to 1.0 by construction: the full T
    assert choose_from_kl({2: 0.001}, 3, 0.6).timesteps == 3
    assert choose_from_kl({}, 1, 0.6).timesteps == 1


def test_time_constant_logits_pick_the_smallest_candidate() -> None:
    z = np.tile(np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]]), (5, 1, 1))
    choice = choose_timesteps(z, candidates=(4, 2, 3))
    assert choice.kl == {2: 0.0, 3: 0.0, 4: 0.0}
    assert choice.timesteps == 2


def test_candidates_are_options() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(8, 16, 10))
    choice = choose_timesteps(z, candidates=(2, 6, 8, 9))
    assert set(choice.kl) == {2, 6}  # t >= T is not a candidate
    assert choice.to_json()["kl"] == {"2": choice.kl[2], "6": choice.kl[6]}


def test_mean_kl_is_a_batch_mean_and_zero_on_equal_inputs() -> None:
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[0.0, 0.0], [0.0, 0.0]])
    each = [_kl(_softmax(list(r)), [0.5, 0.5]) for r in a]
    assert mean_kl(a, b) == pytest.approx(sum(each) / 2, rel=1e-12)
    assert mean_kl(a, a) == 0.0


def test_bad_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="T, N, classes"):
        choose_timesteps(np.zeros((4, 10)))
