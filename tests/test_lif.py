"""LIF dynamics and surrogate gradients, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from uticompile.errors import ModelFormatError
from uticompile.ir import NEURON_PRESETS, LIFParams
from uticompile.models.lif import LIF, surrogate_grad
from uticompile.models.lif_stepwise import stepwise_lif


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


@pytest.mark.parametrize("T", [1, 4])
@pytest.mark.parametrize("reset", ["hard", "subtract", "subtract-after-leak"])
@pytest.mark.parametrize("detach", [0, 1])
@pytest.mark.parametrize("surrogate", ["tanh", "atan"])
@pytest.mark.parametrize("gain", [1.0, 0.75])
def test_fused_lif_gradient_is_bitwise_the_step_by_step_one(
    T: int, reset: str, detach: int, surrogate: str, gain: float
) -> None:
    p = LIFParams(leak=0.5, gain=gain, reset=reset, detach_reset=detach, surrogate=surrogate)
    gen = torch.Generator().manual_seed(T)
    x = torch.randn(T * 6, 3, 5, 5, generator=gen) * 1.5
    w = torch.randn(x.shape, generator=gen)
    w[0] = -0.0  # zero upstream gradients must keep their sign exactly as autograd does
    grads, outs = [], []
    for fn in (lambda v: LIF(p, T)(v), lambda v: stepwise_lif(p, v, T)):
        xg = x.clone().requires_grad_(True)
        y = fn(xg)
        (y * w).sum().backward()
        outs.append(y.detach())
        grads.append(xg.grad)
    assert 0.05 < float(outs[0].mean()) < 0.95  # both spiking and silent neurons
    assert torch.equal(outs[0], outs[1])
    a, b = grads[0].numpy(), grads[1].numpy()
    assert a.tobytes() == b.tobytes()  # bitwise, signs of zeros included
