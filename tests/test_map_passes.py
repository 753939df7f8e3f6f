"""The map pipeline's passes: BN folding, lowering, quantization and PE placement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uticompile.errors import PassError
from uticompile.grouping import group_layout
from uticompile.hardware import HardwareConfig
from uticompile.hwir import HwModule
from uticompile.ir import NEURON_PRESETS, Graph
from uticompile.models.snn import SNN
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.passes.base import PassManager
from uticompile.passes.fold_batchnorm import FoldBatchNorm
from uticompile.passes.lower_to_hardware import LowerToHardware
from uticompile.passes.place_on_pes import PlaceOnPEs
from uticompile.passes.quantize import Quantize, frac_bits_for, leak_fixed_point, quantize_weights


def _random_bn(g: Graph, seed: int = 0) -> Graph:
    g = g.copy()
    rng = np.random.default_rng(seed)
    for name, value in g.params.items():
        if name.endswith("running_var"):
            g.params[name] = rng.uniform(0.5, 2.0, value.shape).astype(np.float32)
        elif name.endswith("running_mean"):
            g.params[name] = rng.normal(0, 0.3, value.shape).astype(np.float32)
        elif name.startswith("bn") and name.endswith("weight"):
            g.params[name] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
    return g


def _pruned(g: Graph, keep: float, seed: int = 0) -> Graph:
    g = g.copy()
    rng = np.random.default_rng(seed)
    for node in g.weight_nodes():
        w = g.params[node.inputs[1]]
        g.params[node.inputs[1]] = np.where(rng.random(w.shape) < keep, w, 0).astype(np.float32)
    return g


@pytest.mark.parametrize("name", ["vgg_small", "resnet_small"])
def test_folding_batchnorm_keeps_the_function_and_the_zeros(name: str) -> None:
    g = _pruned(_random_bn(build_model(name, ModelSpec((1, 16, 16), 10))), 0.3)
    result = FoldBatchNorm()(g)
    folded = result.module
    assert result.changed
    assert not any(n.op == "BatchNormalization" for n in folded.nodes)
    for node in folded.weight_nodes():
        before = g.params[g.node(node.name).inputs[1]]
        assert np.array_equal(folded.params[node.inputs[1]] != 0, before != 0)
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        a = SNN(g).eval()(x)
        b = SNN(folded).eval()(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert not FoldBatchNorm()(folded).changed


def test_lowering_folds_gain_into_threshold_and_gap_into_fc() -> None:
    spec = ModelSpec((1, 32, 32), 10, width=0.25, neuron=NEURON_PRESETS["spikingjelly"])
    g = FoldBatchNorm()(build_model("resnet19", spec)).module
    m = LowerToHardware(HardwareConfig(), input_bound=2.0)(g).module
    kinds = [layer.kind for layer in m.layers]
    assert kinds[:2] == ["ENCODE", "LIF"]
    assert kinds.count("SUMPOOL") == 1
    lif = m.layers[1]
    assert lif.threshold == pytest.approx(1.0 / 0.75)
    fc = m.layers[kinds.index("SUMPOOL") + 2]
    gap_hw = 4 * 4
    assert np.allclose(fc.weight, g.params["fc1.weight"] / gap_hw)


def test_quantization_helpers() -> None:
    assert frac_bits_for(1.0, 16) == 14
    assert frac_bits_for(0.49, 8) == 8
    assert leak_fixed_point(0.5) == (1, 1)
    assert leak_fixed_point(0.25) == (1, 2)
    assert leak_fixed_point(0.9375) == (15, 4)
    w = np.array([0.0, 1e-9, -1e-9, 0.5, -1.0], np.float32)
    q = quantize_weights(w, 14, 16)
    assert q.tolist() == [0, 1, -1, 8192, -16384]


def _compiled(name: str, n: int, grouping: str, keep: float) -> tuple[Graph, HwModule]:
    g = _pruned(_random_bn(build_model(name, ModelSpec((3, 32, 32), 10))), keep)
    hw = HardwareConfig(num_pes=n)
    passes = [FoldBatchNorm(), LowerToHardware(hw, grouping, 2.5), Quantize(), PlaceOnPEs()]
    return g, PassManager(passes).run(g)


@pytest.mark.parametrize(("n", "grouping"), [(16, "sata"), (4, "systolic"), (1, "sata")])
def test_placement_covers_every_weight_with_the_pruned_workloads(n: int, grouping: str) -> None:
    _g, m = _compiled("resnet_small", n, grouping, 0.2)
    for layer in m.weight_layers():
        assert layer.tiles is not None
        assert layer.weight is not None
        w = layer.weight
        layout = group_layout(tuple(w.shape), n, grouping)
        expected = layout.workloads(w != 0)
        got = np.zeros(layout.num_groups * n, np.int64)
        np.add.at(got, layer.tiles[:, 0] * n + layer.tiles[:, 1], layer.tiles[:, 6])
        assert np.array_equal(got.reshape(layout.num_groups, n), expected), layer.name
        words = -(-layer.tiles[:, 5] // 16) + layer.tiles[:, 6]
        assert words.max() <= m.hw.scratchpad_words


def test_dense_layers_are_tiled_into_the_scratchpad() -> None:
    _, m = _compiled("vgg_small", 16, "sata", 1.0)
    fc = m.layers[-1]
    assert fc.tiles is not None
    assert fc.tiles[:, 2].max() >= 1  # 1024 dense inputs do not fit one 1024-word scratchpad
    per_filter = np.zeros(10, np.int64)
    np.add.at(per_filter, fc.tiles[:, 3], fc.tiles[:, 5])
    assert np.all(per_filter == 1024)


def test_nonzero_weights_survive_quantization() -> None:
    _, m = _compiled("vgg_small", 16, "sata", 0.05)
    for layer in m.weight_layers():
        assert layer.weight is not None
        assert layer.report["nonzero"] == int(np.count_nonzero(layer.weight))


def test_a_lone_batchnorm_cannot_be_folded() -> None:
    g = build_model("vgg_small", ModelSpec((1, 16, 16), 10))
    conv = g.node("conv2")
    # make conv2's output feed a second consumer besides its BatchNorm
    g.nodes.append(type(conv)("extra", "Add", (conv.output, conv.output), "extra_out", {}))
    with pytest.raises(PassError, match="feeds more than its BatchNorm"):
        FoldBatchNorm()(g)
