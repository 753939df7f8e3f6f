"""Global magnitude pruning: one threshold over all layers, stable ties, never revives."""

from __future__ import annotations

import numpy as np
import pytest

from uticompile.errors import ConfigError
from uticompile.passes.magnitude_prune import global_magnitude_prune


def test_prunes_smallest_globally_not_per_layer() -> None:
    weights = {
        "a": np.array([[0.1, -5.0], [0.2, 3.0]], dtype=np.float32),
        "b": np.array([4.0, -0.05, 6.0, 0.3], dtype=np.float32),
    }
    out = global_magnitude_prune(weights, {}, 0.5)
    assert out["a"].tolist() == [[False, True], [False, True]]
    assert out["b"].tolist() == [True, False, True, False]
    assert out["a"].dtype == bool


def test_only_survivors_count_and_nothing_revives() -> None:
    rng = np.random.default_rng(0)
    weights = {"a": rng.normal(size=(8, 4, 3, 3)), "b": rng.normal(size=(10, 20))}
    masks = {k: rng.random(w.shape) < 0.6 for k, w in weights.items()}
    before = {k: m.copy() for k, m in masks.items()}
    survivors = sum(int(m.sum()) for m in masks.values())
    out = global_magnitude_prune(weights, masks, 0.25)
    assert sum(int(m.sum()) for m in out.values()) == survivors - round(0.25 * survivors)
    for k in weights:
        assert not (out[k] & ~masks[k]).any()
        np.testing.assert_array_equal(masks[k], before[k])  # inputs untouched
    # Every removed survivor is no larger than every kept one.
    removed = np.concatenate([np.abs(weights[k])[masks[k] & ~out[k]] for k in weights])
    kept = np.concatenate([np.abs(weights[k])[out[k]] for k in weights])
    assert removed.max() <= kept.min()


def test_ties_break_by_layer_then_index() -> None:
    weights = {"a": np.ones(4), "b": np.ones(4)}
    out = global_magnitude_prune(weights, {}, 0.375)
    assert out["a"].tolist() == [False, False, False, True]
    assert out["b"].all()


def test_zero_weights_that_survive_are_pruned_first_and_rate_checks() -> None:
    weights = {"a": np.array([0.0, 1.0, 2.0, 3.0])}
    assert global_magnitude_prune(weights, {}, 0.25)["a"].tolist() == [False, True, True, True]
    with pytest.raises(ConfigError):
        global_magnitude_prune(weights, {}, 1.5)
    with pytest.raises(ConfigError):
        global_magnitude_prune(weights, {"a": np.ones(3, dtype=bool)}, 0.5)
