"""Measured activity for cycle-aware balancing: expected cycles of every weight position.

A weight's work on the accelerator is one cycle per (weight, input spike) pair it meets (the
cost model in ``runtime/cost.py``): for a conv weight at kernel offset ``(i, j)`` of input
channel ``c``, the spikes of channel ``c`` at the input positions that offset reads over all
output positions (borders read padding, strides skip positions); for a linear weight, the
spikes of its input feature. Its expectation per timestep is therefore the window sum of the
channel's mean spike map: the channel's firing rate times the number of output positions the
weight serves, resolved per position (digits' empty borders fire less than its centre).

Measured with forward hooks on the first ``samples`` training images, in order, without
augmentation, accumulated in float64: the same graph and data give the same costs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from uticompile.datasets import Dataset
from uticompile.ir import Graph
from uticompile.models.batches import iterate_batches
from uticompile.models.snn import SNN

RATE_SAMPLES = 256  # training images the rates are measured on


@torch.no_grad()
def expected_cycles(
    graph: Graph, data: Dataset, layers: list[str], *, samples: int = RATE_SAMPLES
) -> dict[str, np.ndarray]:
    """Expected matched operations per timestep and sample of each weight position of ``layers``.

    Conv layers get ``[1, C_in, kh, kw]``, linear layers ``[1, in]`` (both broadcast to the
    weight). A layer reading the analog image (the direct encoder, run once on the host) gets
    uniform cost 1: spikes do not drive it. Costs are nonnegative; a silent input costs 0.
    """
    net = SNN(graph).eval()
    wl = net.weight_layers()
    direct = {n.name for n in graph.weight_nodes() if n.inputs[0] == graph.input_name}
    sums: dict[str, torch.Tensor] = {}
    rows: dict[str, int] = {}

    def hook_for(name: str) -> Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(_mod: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].double()
            s = x.sum(dim=0)
            sums[name] = sums[name] + s if name in sums else s
            rows[name] = rows.get(name, 0) + int(x.shape[0])

        return hook

    handles = [
        wl[name].register_forward_pre_hook(hook_for(name)) for name in layers if name not in direct
    ]
    try:
        seen = 0
        for x, _ in iterate_batches(
            data, "train", 64, shuffle=False, augment=False, generator=None
        ):
            net(x[: samples - seen])
            seen += min(len(x), samples - seen)
            if seen >= samples:
                break
    finally:
        for h in handles:
            h.remove()
    out: dict[str, np.ndarray] = {}
    for name in layers:
        w = graph.params[graph.node(name).inputs[1]]
        if name in direct or name not in sums:
            out[name] = np.ones((1,) * w.ndim)
            continue
        mean = sums[name] / rows[name]
        node = graph.node(name)
        if node.op == "Conv":
            pt, pl, _, _ = node.ints("pads")  # symmetric (the SNN module rejects others)
            stride = (node.ints("strides")[0], node.ints("strides")[1])
            kernel = (int(w.shape[2]), int(w.shape[3]))
            out[name] = _window_sums(mean, kernel, stride, (pt, pl)).numpy()[None]
        else:
            out[name] = mean.numpy()[None]
    return out


def _window_sums(
    mean: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int]
) -> torch.Tensor:
    """``[C, kh, kw]``: sum over output positions of the mean map at what each offset reads."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    c, h, w = mean.shape
    padded = F.pad(mean, (pw, pw, ph, ph))
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    out = torch.empty((c, kh, kw), dtype=torch.float64)
    for i in range(kh):  # a loop over kernel offsets, not over weights or spikes
        for j in range(kw):
            win = padded[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
            out[:, i, j] = win.sum(dim=(1, 2))
    return out
