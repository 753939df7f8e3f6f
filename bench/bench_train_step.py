"""Benchmark: one training step of the zoo's VGG-16 against a plain PyTorch reimplementation.

The zoo runs every layer once over all timesteps folded into the batch (tick-batched) and loops
over time only inside the LIF; the plain version is how SNN research code is often written: a
Python loop over timesteps around the whole network, each layer called T times with a stateful
LIF. Same architecture, width, batch, T and surrogate; both timed side by side in this run.

Run: python bench/bench_train_step.py [--width 0.5] [--batch 32] [--steps 3]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from uticompile.models.snn import SNN
from uticompile.models.train import timestep_loss
from uticompile.models.zoo import VGG16_CFG, ModelSpec, build_model


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(v)
        return (v >= 0).float()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (v,) = ctx.saved_tensors
        t = torch.tanh(2.0 * v)
        return grad * (1 - t * t)


class PlainVGG16(nn.Module):
    """VGG-16 SNN with a Python loop over timesteps and per-layer membrane state."""

    def __init__(self, width: float, in_ch: int, classes: int, timesteps: int) -> None:
        super().__init__()
        self.T = timesteps
        layers: list[nn.Module] = []
        c = in_ch
        for item in VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out = max(1, round(int(item) * width))
                layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.Identity()]
                c = out
        self.features = nn.ModuleList(layers)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.features[1](self.features[0](x))  # direct encoding: first conv + BN once
        membranes: dict[int, torch.Tensor] = {}
        outs = []
        for _ in range(self.T):
            h = enc
            for i, layer in enumerate(self.features):
                if i < 2:
                    continue
                if isinstance(layer, nn.Identity):  # LIF step
                    u = 0.5 * membranes.get(i, torch.zeros_like(h)) + h
                    s = _Spike.apply(u - 1.0)
                    membranes[i] = u * (1 - s.detach())
                    h = s
                else:
                    h = layer(h)
            outs.append(self.fc(h.flatten(1)))
        return torch.stack(outs)


def _step_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = timestep_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    zoo = SNN(build_model("vgg16", ModelSpec((3, 32, 32), 10, width=args.width,
                                             timesteps=args.timesteps))).train()  # fmt: skip
    plain = PlainVGG16(args.width, 3, 10, args.timesteps).train()
    n_zoo = sum(p.numel() for p in zoo.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    assert n_zoo == n_plain, (n_zoo, n_plain)
    t_zoo = _step_time(zoo, x, y, args.steps)
    t_plain = _step_time(plain, x, y, args.steps)
    print(
        f"VGG-16 width {args.width} ({n_zoo:,} parameters), batch {args.batch}, "
        f"T={args.timesteps}, median of {args.steps} steps"
    )
    print(f"zoo (time folded into the batch): {t_zoo:7.3f} s per training step")
    print(f"plain (Python loop over timesteps): {t_plain:7.3f} s per training step")
    print(
        f"ratio zoo / plain: {t_zoo / t_plain:.2f}x ({'faster' if t_zoo < t_plain else 'slower'})"
    )
    assert math.isfinite(t_zoo)


if __name__ == "__main__":
    main()
