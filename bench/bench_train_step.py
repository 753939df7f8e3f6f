"""Benchmark: one training step of the zoo's VGG-16 against a plain PyTorch reimplementation.

The zoo runs every layer once over all timesteps folded into the batch (tick-batched) and loops
over time only inside its fused LIF node; the plain version is how SNN research code is often
written: a Python loop over timesteps around the whole network, each layer called T times with a
stateful LIF. Same architecture, width, batch, T and surrogate; all timed side by side in this run.
If SpikingJelly is importable, its multi-step mode (torch backend) runs the same VGG-16 too;
``--compile`` adds ``torch.compile`` of the zoo and of the plain network (minutes to compile).

Run: python bench/bench_train_step.py [--width 0.5] [--batch 32] [--steps 3] [--compile]
"""

from __future__ import annotations

import argparse
import math
import time
import types

import torch
from torch import nn

from uticompile.models.lif import LIF
from uticompile.models.lif_stepwise import stepwise_lif
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


def _stepwise_lif(self: LIF, x: torch.Tensor) -> torch.Tensor:
    """The zoo's LIF before the fused node: one autograd op per operation and step."""
    return stepwise_lif(self.params, x, self.timesteps)


def stepwise_zoo(spec: ModelSpec) -> nn.Module:
    """The zoo network with the step-by-step autograd LIF (what the fused node replaced)."""
    net = SNN(build_model("vgg16", spec))
    for layer in net.layers.values():
        if isinstance(layer, LIF):
            layer.forward = types.MethodType(_stepwise_lif, layer)  # type: ignore[method-assign]
    return net


def spikingjelly_vgg16(width: float, in_ch: int, classes: int, timesteps: int) -> nn.Module | None:
    """The same VGG-16 in SpikingJelly's multi-step mode, or None when it is not installed."""
    try:
        from spikingjelly.activation_based import functional, layer, neuron, surrogate
    except ImportError:
        return None

    class SJ(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.T = timesteps
            layers: list[nn.Module] = []
            c = in_ch
            for item in VGG16_CFG:
                if item == "M":
                    layers.append(layer.MaxPool2d(2))
                    continue
                out = max(1, round(int(item) * width))
                layers += [layer.Conv2d(c, out, 3, padding=1), layer.BatchNorm2d(out)]
                # u = 0.5 u + x, threshold 1, hard reset to 0, detached reset: the paper's LIF.
                layers.append(neuron.LIFNode(tau=2.0, decay_input=False, detach_reset=True,
                                             surrogate_function=surrogate.ATan()))  # fmt: skip
                c = out
            self.net = nn.Sequential(*layers)
            self.fc = layer.Linear(c, classes)
            functional.set_step_mode(self, "m")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            functional.reset_net(self)
            # direct encoding as in the other two: the first conv + BN once, then T copies
            enc = self.net[1](self.net[0](x.unsqueeze(0)))
            h = self.net[2:](enc.repeat(self.T, 1, 1, 1, 1))
            return self.fc(h.flatten(2))

    return SJ()


def _step_times(
    models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, steps: int
) -> dict[str, float]:
    """Median seconds per training step of each model, the models taking turns step by step
    (so a change of machine load hits all of them alike); two warm-up steps each first
    (compilation happens in the first)."""
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    for i in range(steps + 2):
        for name, model in models.items():
            t0 = time.perf_counter()
            loss = timestep_loss(model(x), y)
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
            if i >= 2:
                times[name].append(time.perf_counter() - t0)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    spec = ModelSpec((3, 32, 32), 10, width=args.width, timesteps=args.timesteps)
    models: dict[str, nn.Module] = {
        "plain (Python loop over timesteps)": PlainVGG16(args.width, 3, 10, args.timesteps),
        "zoo (time folded into the batch)": SNN(build_model("vgg16", spec)),
        "zoo, step-by-step autograd LIF (before)": stepwise_zoo(spec),
    }
    sj = spikingjelly_vgg16(args.width, 3, 10, args.timesteps)
    if sj is not None:
        models["SpikingJelly multi-step (torch backend)"] = sj
    if args.compile:
        models["plain + torch.compile"] = torch.compile(
            PlainVGG16(args.width, 3, 10, args.timesteps)
        )
        models["zoo + torch.compile"] = torch.compile(SNN(build_model("vgg16", spec)))
    sizes = {sum(p.numel() for p in m.parameters()) for m in models.values()}
    assert len(sizes) == 1, sizes  # the same network everywhere
    print(
        f"VGG-16 width {args.width} ({sizes.pop():,} parameters), batch {args.batch}, "
        f"T={args.timesteps}, median of {args.steps} interleaved steps, "
        f"{torch.get_num_threads()} threads"
        + ("" if sj is not None else "; SpikingJelly not installed")
    )
    times = _step_times({name: m.train() for name, m in models.items()}, x, y, args.steps)
    plain = times["plain (Python loop over timesteps)"]
    for name, t in times.items():
        print(f"{name:<42}{t:8.3f} s per step   {plain / t:5.2f}x the plain loop's speed")
    assert all(math.isfinite(t) for t in times.values())


if __name__ == "__main__":
    main()
