"""Expected cycles per weight position: what a 0/1 mask's matched operations average to."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uticompile.datasets import Dataset, load_dataset
from uticompile.ir import Graph
from uticompile.models.batches import iterate_batches
from uticompile.models.snn import SNN
from uticompile.passes.firing_rates import expected_cycles


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    d = load_dataset("digits", size=16)
    return dataclasses.replace(d, x_train=d.x_train[:40], y_train=d.y_train[:40])


def _hot(graph: Graph) -> Graph:
    """Scale weights up so that deep layers fire (an untrained net at this size barely does)."""
    g = graph.copy()
    for node in g.weight_nodes():
        g.params[node.inputs[1]] = g.params[node.inputs[1]] * np.float32(3.0)
    return g


@torch.no_grad()
def _layer_inputs(graph: Graph, data: Dataset, layers: list[str]) -> dict[str, torch.Tensor]:
    """What every weight layer reads, [rows, ...] over all training samples and timesteps."""
    net = SNN(graph).eval()
    wl = net.weight_layers()
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in layers}

    def keep(name: str) -> Any:
        return lambda _m, a: seen[name].append(a[0].double())

    handles = [wl[n].register_forward_pre_hook(keep(n)) for n in layers]
    for x, _ in iterate_batches(data, "train", 64, shuffle=False, augment=False, generator=None):
        net(x)
    for h in handles:
        h.remove()
    return {n: torch.cat(v) for n, v in seen.items()}


@torch.no_grad()
def test_expected_cycles_equal_mean_matched_operations(
    small_graphs: dict[str, Graph], tiny: Dataset
) -> None:
    """For any 0/1 mask, sum(mask * cost) = mean over (sample, timestep) of the matched
    (weight, spike) pairs, counted independently as the output sum of a conv with the mask."""
    for model in ("vgg_small", "resnet_small"):
        graph = _hot(small_graphs[model])
        layers = [n.name for n in graph.weight_nodes()]
        cost = expected_cycles(graph, tiny, layers, samples=40)
        inputs = _layer_inputs(graph, tiny, layers)
        rng = np.random.default_rng(0)
        direct = {n.name for n in graph.weight_nodes() if n.inputs[0] == graph.input_name}
        fired = 0
        for node in graph.weight_nodes():
            w = graph.params[node.inputs[1]]
            c = cost[node.name]
            if node.name in direct:
                np.testing.assert_array_equal(c, np.ones((1,) * w.ndim))
                continue
            assert c.shape == (1, *w.shape[1:])
            assert (c >= 0).all()
            mask = rng.random(w.shape) < 0.3
            x = inputs[node.name]
            m = torch.from_numpy(mask.astype(np.float64))
            if node.op == "Conv":
                pt, pl, _, _ = node.ints("pads")
                y = F.conv2d(x, m, stride=tuple(node.ints("strides")), padding=(pt, pl))
                matched = y.sum(dim=(1, 2, 3)).mean().item()
            else:
                matched = (x @ m.T).sum(dim=1).mean().item()
            assert float((mask * c).sum()) == pytest.approx(matched, rel=1e-9, abs=1e-9)
            fired += matched > 0
        assert fired >= 2  # the check compared real activity, not zeros


def test_expected_cycles_deterministic(small_graphs: dict[str, Graph], tiny: Dataset) -> None:
    graph = _hot(small_graphs["vgg_small"])
    layers = [n.name for n in graph.weight_nodes()]
    a = expected_cycles(graph, tiny, layers, samples=24)
    b = expected_cycles(graph, tiny, layers, samples=24)
    for name in layers:
        np.testing.assert_array_equal(a[name], b[name])
