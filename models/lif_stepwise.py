"""The step-by-step autograd LIF that the fused node in ``lif.py`` replaced.

Kept as the reference the fused node's gradients are tested against bit for bit, and as the
"before" row of ``bench/bench_train_step.py``; training never uses it.
"""

from __future__ import annotations

import torch

from uticompile.ir import SUBTRACT_AFTER_LEAK, LIFParams
from uticompile.models.lif import surrogate_grad


class _StepSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, surrogate, alpha, strict):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(v)
        ctx.surrogate, ctx.alpha = surrogate, alpha
        return (v > 0 if strict else v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (v,) = ctx.saved_tensors
        return grad * surrogate_grad(v, ctx.surrogate, ctx.alpha), None, None, None


def stepwise_lif(p: LIFParams, x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """LIF over time-folded ``x`` ([T*N, ...]) with one autograd op per operation and step."""
    xt = x.reshape(timesteps, -1, *x.shape[1:])
    u = torch.zeros_like(xt[0])
    out = []
    after_leak = p.reset == SUBTRACT_AFTER_LEAK
    r = None
    for t in range(timesteps):
        u = p.leak * u + p.gain * xt[t]
        if after_leak and r is not None:  # snnTorch's order: decay, input, then the subtraction
            u = u - r * p.threshold
        s = _StepSpike.apply(u - p.threshold, p.surrogate, p.alpha, after_leak)
        r = s.detach() if p.detach_reset else s
        if not after_leak:
            u = u * (1 - r) if p.reset == "hard" else u - r * p.threshold
        out.append(s)
    return torch.stack(out).reshape(x.shape)
