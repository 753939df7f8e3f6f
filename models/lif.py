"""Multi-step LIF neurons with surrogate gradients (PyTorch).

The forward pass computes exactly what the ONNX LIF function computes, operation by operation in
float32 (leak*u + gain*x, compare with >=, reset), so the two engines agree bit for bit on the
spikes whenever they agree on the membrane inputs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from uticompile.ir import LIFParams


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


class LIF(nn.Module):
    """Runs the membrane recurrence over the outer (time) axis of a time-folded tensor."""

    def __init__(self, params: LIFParams, timesteps: int) -> None:
        super().__init__()
        self.params = params
        self.timesteps = timesteps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        # The membrane stays float32 under autocast (a no-op otherwise): bfloat16 would move
        # threshold crossings away from what the exported float32 model computes.
        xt = x.float().reshape(self.timesteps, -1, *x.shape[1:])
        u = torch.zeros_like(xt[0])
        out = []
        for t in range(self.timesteps):
            u = p.leak * u + p.gain * xt[t]
            s = _Spike.apply(u - p.threshold, p.surrogate, p.alpha)
            r = s.detach() if p.detach_reset else s
            u = u * (1 - r) if p.reset == "hard" else u - r * p.threshold
            out.append(s)
        return torch.stack(out).reshape(x.shape)

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"leak={p.leak}, threshold={p.threshold}, gain={p.gain}, reset={p.reset}, "
            f"surrogate={p.surrogate}(alpha={p.alpha}), T={self.timesteps}"
        )
