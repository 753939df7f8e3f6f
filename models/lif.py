"""Multi-step LIF neurons with surrogate gradients (PyTorch).

The forward pass computes exactly what the ONNX LIF function computes, operation by operation in
float32 (leak*u + gain*x, compare with >=, reset; for ``subtract-after-leak``: leak*u + gain*x,
minus the threshold where the previous step fired, compare with >), so the two engines agree bit
for bit on the spikes whenever they agree on the membrane inputs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from uticompile.ir import SUBTRACT_AFTER_LEAK, LIFParams


class _Spike(torch.autograd.Function):
    """Heaviside forward; the surrogate's derivative backward."""

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, surrogate: str, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(v)
        ctx.surrogate = surrogate
        ctx.alpha = alpha
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (v,) = ctx.saved_tensors
        return grad * surrogate_grad(v, ctx.surrogate, ctx.alpha), None, None


def surrogate_grad(v: torch.Tensor, surrogate: str, alpha: float) -> torch.Tensor:
    """d spike / d v for v = u - threshold.

    tanh (paper): sigma(v) = (1 + tanh(alpha v)) / 2, so sigma' = alpha/2 * (1 - tanh(alpha v)^2).
    atan (public code, SpikingJelly ATan): sigma' = alpha/2 / (1 + (pi/2 * alpha * v)^2), which for
    alpha = 2 is 1 / (1 + (pi v)^2).
    """
    if surrogate == "tanh":
        t = torch.tanh(alpha * v)
        return alpha / 2 * (1 - t * t)
    return alpha / 2 / (1 + (math.pi / 2 * alpha * v) ** 2)


def integrate(xt: torch.Tensor, p: LIFParams) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence over the T steps of ``xt`` [T, ...]: spikes, and each step's membrane
    after integration and before the reset (the backward needs it; spatial pruning's PCA too)."""
    u = torch.zeros_like(xt[0])
    spikes = torch.empty_like(xt)
    membranes = torch.empty_like(xt)
    after_leak = p.reset == SUBTRACT_AFTER_LEAK
    for t in range(xt.shape[0]):
        # x * 1.0 == x bit for bit, so the common gain of 1 skips a pass.
        u = torch.add(p.leak * u, xt[t] if p.gain == 1.0 else p.gain * xt[t], out=membranes[t])
        s = spikes[t]
        if after_leak:  # the previous spike's threshold comes off after the decay; fires on >
            if t:
                u.sub_(spikes[t - 1] * p.threshold)
            s.copy_(u - p.threshold > 0)
            continue
        s.copy_(u - p.threshold >= 0)
        u = u * (1 - s) if p.reset == "hard" else u - s * p.threshold
    return spikes, membranes


class _MultiStepLIF(torch.autograd.Function):
    """All T steps of the recurrence as one autograd node, with the gradient written out.

    Why: as separate autograd ops, every step records ~8 nodes, and indexing ``x[t]`` makes the
    backward fill and add a zero tensor of the whole [T, ...] input per step (O(T^2) traffic).
    The backward below performs exactly the operations autograd performs for the step-by-step
    graph, in the same order, so gradients (and hence trained weights) are bit-identical to it
    (tests/test_lif.py compares them bitwise for every reset, detach and surrogate setting).
    """

    @staticmethod
    def forward(ctx: Any, xt: torch.Tensor, p: LIFParams) -> torch.Tensor:
        spikes, membranes = integrate(xt, p)
        ctx.save_for_backward(membranes, spikes)
        ctx.params = p
        return spikes

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        membranes, spikes = ctx.saved_tensors
        p: LIFParams = ctx.params
        T = membranes.shape[0]
        grad_x = torch.empty_like(membranes)
        grad_h: torch.Tensor | None = None  # d loss / d (membrane after step t's reset)
        grad_next: torch.Tensor | None = None  # d loss / d u_{t+1}
        for t in reversed(range(T)):
            u, s, grad_s = membranes[t], spikes[t], grad_out[t]
            grad_u_reset: torch.Tensor | None = None
            if grad_next is not None and p.reset == SUBTRACT_AFTER_LEAK:
                # u_{t+1} = leak * u_t + gain * x - r_t * threshold
                grad_u_reset = grad_h
                if not p.detach_reset:
                    grad_s = grad_s + -grad_next * p.threshold
            elif grad_h is not None:
                if p.reset == "hard":  # h = u * (1 - r)
                    grad_u_reset = grad_h * (1 - s)
                    if not p.detach_reset:
                        grad_s = grad_s + -(grad_h * u)
                else:  # h = u - r * threshold
                    grad_u_reset = grad_h
                    if not p.detach_reset:
                        grad_s = grad_s + -grad_h * p.threshold
            grad_u = grad_s * surrogate_grad(u - p.threshold, p.surrogate, p.alpha)
            if grad_u_reset is not None:
                grad_u = grad_u + grad_u_reset
            if p.gain == 1.0:
                grad_x[t] = grad_u
            else:
                grad_x[t] = grad_u * p.gain
            grad_h = grad_u * p.leak
            grad_next = grad_u
        # Autograd sums the T per-step gradients of x[t] into zero tensors, turning -0.0 into
        # +0.0; adding +0.0 does the same and changes nothing else.
        return (grad_x + 0.0 if T > 1 else grad_x), None


class LIF(nn.Module):
    """Runs the membrane recurrence over the outer (time) axis of a time-folded tensor."""

    def __init__(self, params: LIFParams, timesteps: int) -> None:
        super().__init__()
        self.params = params
        self.timesteps = timesteps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The membrane stays float32 under autocast (a no-op otherwise): bfloat16 would move
        # threshold crossings away from what the exported float32 model computes.
        xt = x.float().reshape(self.timesteps, -1, *x.shape[1:])
        return _MultiStepLIF.apply(xt, self.params).reshape(x.shape)

    @torch.no_grad()
    def mean_membrane(self, x: torch.Tensor) -> torch.Tensor:
        """Membrane potential after integration and before reset, averaged over T: [B, ...]."""
        xt = x.float().reshape(self.timesteps, -1, *x.shape[1:])
        return integrate(xt, self.params)[1].mean(0)

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"leak={p.leak}, threshold={p.threshold}, gain={p.gain}, reset={p.reset}, "
            f"surrogate={p.surrogate}(alpha={p.alpha}), T={self.timesteps}"
        )
