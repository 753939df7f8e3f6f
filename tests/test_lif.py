"""LIF dynamics and surrogate gradients, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from uticompile.errors import ModelFormatError
from uticompile.ir import NEURON_PRESETS, LIFParams
from uticompile.models.lif import LIF, surrogate_grad


def _run(params: LIFParams, xs: list[float]) -> list[float]:
    x = torch.tensor(xs, dtype=torch.float32).reshape(len(xs), 1)
    return LIF(params, len(xs))(x).flatten().tolist()


def test_hard_reset_and_leak() -> None:
    # u: 0.6 -> 0.3+0.6=0.9 -> 0.45+0.6=1.05 (spike, reset 0) -> 0.6
    assert _run(LIFParams(leak=0.5), [0.6, 0.6, 0.6, 0.6]) == [0, 0, 1, 0]


def test_subtract_reset() -> None:
    # u: 1.5 spike -> 0.5 ; 0.25 + 0.8 = 1.05 spike -> 0.05 ; 0.025 + 0 = 0.025
    assert _run(LIFParams(leak=0.5, reset="subtract"), [1.5, 0.8, 0.0]) == [1, 1, 0]


def test_threshold_is_reached_inclusive() -> None:
    assert _run(LIFParams(leak=0.0, threshold=0.5), [0.5, 0.49]) == [1, 0]


def test_spikingjelly_neuron_is_exact() -> None:
    p = NEURON_PRESETS["spikingjelly"]
    assert (p.leak, p.gain, p.threshold, p.reset, p.surrogate) == (0.25, 0.75, 1.0, "hard", "atan")
    # u = 0.25 u + 0.75 x: x = 1.2 -> 0.9 ; 0.225 + 0.9 = 1.125 spike
    assert _run(p, [1.2, 1.2]) == [0, 1]


def test_surrogate_gradients() -> None:
    v = torch.tensor([0.0, 0.3, -0.5])
    atan = surrogate_grad(v, "atan", 2.0)
    expected = [1 / (1 + (math.pi * x) ** 2) for x in v.tolist()]
    assert atan.tolist() == pytest.approx(expected, rel=1e-6)
    tanh = surrogate_grad(v, "tanh", 2.0)
    assert tanh.tolist() == pytest.approx([1 - math.tanh(2 * x) ** 2 for x in v.tolist()], rel=1e-6)


def test_gradient_flows_through_the_surrogate() -> None:
    x = torch.tensor([[0.9]], requires_grad=True)
    s = LIF(LIFParams(leak=0.5, surrogate="atan", alpha=2.0), 1)(x)
    s.sum().backward()
    assert x.grad is not None
    assert x.grad.item() == pytest.approx(1 / (1 + (math.pi * 0.1) ** 2), rel=1e-5)


def test_invalid_parameters() -> None:
    with pytest.raises(ModelFormatError):
        LIFParams(reset="none")
    with pytest.raises(ModelFormatError):
        LIFParams(threshold=0.0)
    with pytest.raises(ModelFormatError):
        LIFParams(leak=1.5)
