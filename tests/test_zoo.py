"""The zoo matches the reference architectures and the reference initialization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uticompile.errors import ConfigError
from uticompile.ir import Graph
from uticompile.models.snn import SNN
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.passes.fold_batchnorm import FoldBatchNorm


def _convs(g: Graph) -> list[tuple[int, ...]]:
    return [g.params[n.inputs[1]].shape for n in g.nodes if n.op == "Conv"]


def _linears(g: Graph) -> list[tuple[int, ...]]:
    return [g.params[n.inputs[1]].shape for n in g.nodes if n.op == "Gemm"]


def test_vgg16_structure() -> None:
    g = build_model("vgg16", ModelSpec((3, 32, 32), 10))
    outs = [s[0] for s in _convs(g)]
    assert outs == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert all(s[2:] == (3, 3) for s in _convs(g))
    assert sum(n.op == "MaxPool" for n in g.nodes) == 5
    assert sum(n.op == "LIF" for n in g.nodes) == 13
    assert sum(n.op == "BatchNormalization" for n in g.nodes) == 13
    assert all(len(n.inputs) == 3 for n in g.nodes if n.op == "Conv")  # every conv has a bias
    assert _linears(g) == [(10, 512)]
    # the classifier reads the last pool directly: no output neuron
    assert g.producer(g.output_name).op == "Gemm"  # type: ignore[union-attr]
    order = [n.op for n in g.nodes[:4]]
    assert order == ["Conv", "BatchNormalization", "DirectEncode", "LIF"]


def test_resnet19_structure() -> None:
    g = build_model("resnet19", ModelSpec((3, 32, 32), 10))
    convs = _convs(g)
    assert convs[0] == (64, 3, 3, 3)
    assert all(len(n.inputs) == 2 for n in g.nodes if n.op == "Conv")  # no conv bias
    three = [s for s in convs if s[2:] == (3, 3)]
    ones = [s for s in convs if s[2:] == (1, 1)]
    assert len(three) == 1 + 2 * (3 + 3 + 2)
    assert [s[0] for s in ones] == [128, 256, 512]  # a projection where each stage starts
    assert sum(n.op == "Add" for n in g.nodes) == 8
    strided = [n for n in g.nodes if n.op == "Conv" and n.attrs["strides"] == (2, 2)]
    assert len(strided) == 6  # first conv and shortcut of each stage
    assert _linears(g) == [(256, 512), (10, 256)]
    assert g.shapes()["gap1"] == (512, 1, 1)
    assert sum(n.op == "LIF" for n in g.nodes) == 1 + 2 * 8 + 1


def test_resnet19_bnhead_is_the_reference_plus_one_head_batchnorm() -> None:
    spec = ModelSpec((3, 32, 32), 10, width=0.25)
    ref, bn = build_model("resnet19", spec), build_model("resnet19_bnhead", spec)
    extra = [n for n in bn.nodes if n.name not in {m.name for m in ref.nodes}]
    assert [n.op for n in extra] == ["BatchNormalization"]
    assert bn.producer(extra[0].inputs[0]).op == "Gemm"  # type: ignore[union-attr]
    assert bn.consumers(extra[0].output)[0].op == "LIF"
    assert _convs(bn) == _convs(ref)
    assert _linears(bn) == _linears(ref)
    folded = FoldBatchNorm()(bn).module
    assert sum(n.op == "BatchNormalization" for n in folded.nodes) == 0


def test_resnet19_head_fires_at_init_only_with_its_batchnorm() -> None:
    """The reason resnet19_bnhead exists: the reference head LIF is silent in training at init."""
    spec = ModelSpec((3, 32, 32), 10, width=0.25, seed=0)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(32, 3, 32, 32)).astype(np.float32))
    rates = {}
    for name in ("resnet19", "resnet19_bnhead"):
        spikes: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            SNN(build_model(name, spec)).train()(x, spikes)
        rates[name] = float(spikes[list(spikes)[-1]].mean())
    assert rates["resnet19"] == 0.0
    assert rates["resnet19_bnhead"] > 0.05


def test_width_multiplier_and_dataset_shape() -> None:
    g = build_model("vgg16", ModelSpec((1, 32, 32), 7, width=0.25))
    assert [s[0] for s in _convs(g)][:3] == [16, 16, 32]
    assert _convs(g)[0][1] == 1
    assert _linears(g) == [(7, 128)]


def test_reference_initialization() -> None:
    g = build_model("vgg16", ModelSpec((3, 32, 32), 10, seed=5))
    w = g.params["conv8.weight"]  # 512 x 256 x 3 x 3: kaiming normal, fan_out = 512 * 9
    assert w.std() == pytest.approx(np.sqrt(2 / (512 * 9)), rel=0.01)
    assert np.all(g.params["conv8.bias"] == 0)
    assert np.all(g.params["bn3.weight"] == 1)
    assert np.all(g.params["bn3.bias"] == 0)
    assert g.params["fc1.weight"].std() == pytest.approx(0.01, rel=0.1)
    same = build_model("vgg16", ModelSpec((3, 32, 32), 10, seed=5))
    assert same.equals(g)
    assert not build_model("vgg16", ModelSpec((3, 32, 32), 10, seed=6)).equals(g)


def test_impossible_specs() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("alexnet", ModelSpec((3, 32, 32), 10))
    with pytest.raises(ConfigError, match="too small"):
        build_model("vgg16", ModelSpec((3, 16, 16), 10))
    with pytest.raises(ConfigError, match="width"):
        build_model("vgg16", ModelSpec((3, 32, 32), 10, width=0))
