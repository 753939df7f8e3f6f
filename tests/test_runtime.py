"""The reference runtime: bit-exact against onnxruntime, and hand-computed cost cases."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest

from uticompile.grouping import group_layout
from uticompile.hardware import HardwareConfig
from uticompile.ir import NEURON_PRESETS, Graph
from uticompile.mapfile import decode_mapping, encode_mapping
from uticompile.metrics import eq2_latency
from uticompile.models.builder import GraphBuilder
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.onnx_export import serialize
from uticompile.passes.balance import balance_mask
from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping
from uticompile.runtime.cost import count_events
from uticompile.runtime.engine import Engine
from uticompile.runtime.inputs import quantize_input
from uticompile.runtime.reference import INPUT, reference_model


def _lively(g: Graph, seed: int) -> Graph:
    """Random BN statistics that keep every layer firing (random init alone goes silent)."""
    g = g.copy()
    rng = np.random.default_rng(seed)
    for name, v in g.params.items():
        if name.endswith("running_var"):
            g.params[name] = rng.uniform(0.02, 0.2, v.shape).astype(np.float32)
        elif name.startswith("bn") and name.endswith("bias"):
            g.params[name] = rng.uniform(0.0, 0.5, v.shape).astype(np.float32)
        elif name.startswith("fc") and name.endswith("bias"):  # the hidden LIF of ResNet-19's head
            g.params[name] = rng.uniform(0.0, 2.0, v.shape).astype(np.float32)
    return g


def _prune(g: Graph, keep: float, n: int, balance: bool, seed: int) -> Graph:
    g = g.copy()
    rng = np.random.default_rng(seed)
    for node in g.weight_nodes():
        w = g.params[node.inputs[1]]
        mask = np.abs(w) >= np.quantile(np.abs(w), 1 - keep)
        if balance:
            lay = group_layout(w.shape, n, "sata")  # ceil targets: every PE exactly equal
            mask = balance_mask(mask, lay, "uticket", rng=rng, targets="ceil")
        g.params[node.inputs[1]] = np.where(mask, w, 0).astype(np.float32)
    return g


CASES = [
    ("vgg_small", 1.0, "paper", "sata"),
    ("resnet_small", 1.0, "spikingjelly", "systolic"),
    ("vgg16", 0.25, "sata", "sata"),
    ("resnet19", 0.25, "paper", "sata"),
]


@pytest.mark.parametrize(("name", "width", "neuron", "grouping"), CASES)
@pytest.mark.parametrize("balance", [False, True])
def test_runtime_is_bit_exact_against_onnxruntime(
    name: str, width: float, neuron: str, grouping: str, balance: bool
) -> None:
    spec = ModelSpec((3, 32, 32), 10, width=width, neuron=NEURON_PRESETS[neuron], seed=1)
    g = _prune(_lively(build_model(name, spec), 2), 0.1, 16, balance, 3)
    hw = HardwareConfig()
    module = compile_graph(g, MapConfig(grouping=grouping), hw, 2.5)
    m = decode_mapping(encode_mapping(to_mapping(module)))
    x_q = quantize_input(np.random.default_rng(4).normal(0, 1, (6, 3, 32, 32)), 5, 8)
    run = Engine(m).run(x_q)
    model, lifs = reference_model(module)
    outs = ort.InferenceSession(serialize(model)).run(None, {INPUT: x_q.astype(np.float32)})
    np.testing.assert_array_equal(outs[0], run.logits)
    for j, i in enumerate(lifs):
        mine = run.outputs[i].values
        np.testing.assert_array_equal(outs[1 + j].reshape(mine.shape).astype(bool), mine)
        assert 0 < mine.mean() < 1, f"layer {i} is {'silent' if mine.mean() == 0 else 'saturated'}"
    assert sum(o.saturated for o in run.outputs) == 0


def _tiny(filter_nnz: list[list[int]], n: int, encoder_bias: float) -> tuple[Graph, HardwareConfig]:
    """ENCODE (1x1, 1 -> C) -> LIF -> CONV 1x1 C -> len(filter_nnz) -> LIF -> FC.

    With a zero input image, the encoder's output is its bias: above the threshold every neuron
    fires at every timestep, below it nothing fires. CONV filter f has weight 0.5 at the input
    channels listed in filter_nnz[f], zero elsewhere.
    """
    c, o = 4, len(filter_nnz)
    b = GraphBuilder("tiny", (1, 1, 1), 2, timesteps=1, neuron=NEURON_PRESETS["paper"], seed=0)
    x = b.lif(b.encode(b.conv("input", c, k=1, pad=0)))
    x = b.lif(b.conv(x, o, k=1, pad=0))
    g = b.build(b.linear(b.flatten(x), 2))
    g.params["conv1.weight"][:] = 0
    g.params["conv1.bias"][:] = encoder_bias
    w = np.zeros((o, c, 1, 1), np.float32)
    for f, channels in enumerate(filter_nnz):
        w[f, channels] = 0.5
    g.params["conv2.weight"] = w
    return g, HardwareConfig(num_pes=n)


def _conv_cost(filter_nnz: list[list[int]], n: int, encoder_bias: float = 4.0) -> object:
    g, hw = _tiny(filter_nnz, n, encoder_bias)
    m = decode_mapping(
        encode_mapping(
            to_mapping(compile_graph(g, MapConfig(pes=n, placement="contiguous"), hw, 1.0))
        )
    )
    report = count_events(m, Engine(m).run(np.zeros((1, 1, 1, 1), np.int64)), hw)
    return next(c for c in report.layers if c.name == "conv2")


def test_paper_fig3_imbalanced_against_balanced() -> None:
    # Fig. 3: four PEs with workloads 4, 1, 1, 2; every input spikes once (T=1, one position)
    imbalanced = _conv_cost([[0, 1, 2, 3], [0], [1], [2, 3]], n=4)
    assert (imbalanced.work, imbalanced.latency, imbalanced.idle) == (8, 4, 3 + 3 + 2)
    assert imbalanced.utilization == pytest.approx(1 - (4 - 2) / 4 * 4 / 3)
    assert imbalanced.static_utilization == pytest.approx(1 / 3)
    balanced = _conv_cost([[0, 1], [1, 2], [2, 3], [0, 3]], n=4)
    assert (balanced.work, balanced.latency, balanced.idle) == (8, 2, 0)
    assert balanced.utilization == 1.0


def test_single_pe() -> None:
    cost = _conv_cost([[0, 1, 2], [0]], n=1)
    assert (cost.work, cost.latency, cost.idle, cost.utilization) == (4, 4, 0, 1.0)


def test_a_group_without_work_is_skipped() -> None:
    # 8 filters on 4 PEs: the second group's filters are all zero
    cost = _conv_cost([[0, 1], [0], [1, 2], [3]] + [[]] * 4, n=4)
    assert cost.groups == 2
    assert cost.latency == 2
    expected = 1 - (2 - 1.5) / 2 * 4 / 3  # group 0 only
    assert cost.utilization == pytest.approx(expected)


def test_silent_input_costs_nothing() -> None:
    cost = _conv_cost([[0, 1, 2, 3], [0], [1], [2, 3]], n=4, encoder_bias=-1.0)
    assert (cost.work, cost.latency, cost.idle) == (0, 0, 0)
    assert cost.utilization is None
    assert cost.input_spike_sparsity == 1.0


def test_eq2_edge_cases() -> None:
    active = np.array([[True, True], [True, False], [True, True]])
    mu = eq2_latency(np.array([4, 3, 0]), np.array([[4, 2], [3, 0], [0, 0]]), active)
    assert mu[0] == pytest.approx(1 - (4 - 3) / 4 * 2)
    assert mu[1] == 1.0
    assert math.isnan(mu[2])


def test_energy_follows_eq3_with_the_configured_table() -> None:
    g, hw = _tiny([[0, 1, 2, 3], [0], [1], [2, 3]], 4, 4.0)
    m = decode_mapping(
        encode_mapping(
            to_mapping(compile_graph(g, MapConfig(pes=4, placement="contiguous"), hw, 1.0))
        )
    )
    r = count_events(m, Engine(m).run(np.zeros((1, 1, 1, 1), np.int64)), hw)
    pj = 1000 / hw.clock_mhz
    e_l = pj * (hw.mac_dynamic_ungated + hw.mac_leakage + hw.lif_dynamic_ungated + hw.lif_leakage
                + hw.scratchpad_dynamic_ungated + hw.scratchpad_leakage)  # fmt: skip
    e_d = pj * (hw.mac_dynamic + hw.scratchpad_dynamic)
    expected = r.work * (e_d + e_l) + r.idle * e_l + r.lif_updates * hw.lif_dynamic * pj
    assert r.energy_pj["total"] == pytest.approx(expected)
    assert r.idle_energy_pj == pytest.approx(r.idle * e_l)
    assert r.idle > 0


def test_per_pe_and_per_group_figures_are_reported() -> None:
    cost = _conv_cost([[0, 1], [0], [1, 2], [3]] + [[]] * 4, n=4)
    assert cost.pe_work == [[2, 1, 2, 1], [0, 0, 0, 0]]
    assert cost.group_utilization[0] == pytest.approx(1 - (2 - 1.5) / 2 * 4 / 3)
    assert cost.group_utilization[1] is None


def test_check_names_layer_sample_timestep_and_position_of_a_mismatch() -> None:
    from uticompile.runtime.check import Checker, CheckError

    g = _prune(_lively(build_model("vgg_small", ModelSpec((1, 16, 16), 10)), 2), 0.3, 16, False, 3)
    module = compile_graph(g, MapConfig(), HardwareConfig(), 2.5)
    m = decode_mapping(encode_mapping(to_mapping(module)))
    x_q = quantize_input(np.random.default_rng(4).normal(0, 1, (3, 1, 16, 16)), 5, 8)
    checker = Checker(module)
    run = Engine(m).run(x_q)
    checker.compare(x_q, run, m.layer_names, 0)
    assert checker.result.samples == 3
    lif = checker.lif_layers[1]
    run.outputs[lif].values[2, 1, 5, 3, 4] ^= True
    with pytest.raises(
        CheckError, match=rf"layer {lif} \(lif2\) at sample 1, timestep 2, position \(5, 3, 4\)"
    ):
        checker.compare(x_q, run, m.layer_names, 0)


def test_subtract_reset_is_bit_exact_against_onnxruntime() -> None:
    from uticompile.ir import LIFParams

    spec = ModelSpec((1, 16, 16), 10, neuron=LIFParams(leak=0.75, reset="subtract"))
    module = compile_graph(
        _lively(build_model("resnet_small", spec), 2), MapConfig(), HardwareConfig(), 2.5
    )
    m = decode_mapping(encode_mapping(to_mapping(module)))
    x_q = quantize_input(np.random.default_rng(0).normal(0, 1, (5, 1, 16, 16)), 5, 8)
    run = Engine(m).run(x_q)
    model, lifs = reference_model(module)
    outs = ort.InferenceSession(serialize(model)).run(None, {INPUT: x_q.astype(np.float32)})
    np.testing.assert_array_equal(outs[0], run.logits)
    for j, i in enumerate(lifs):
        mine = run.outputs[i].values
        np.testing.assert_array_equal(outs[1 + j].reshape(mine.shape).astype(bool), mine)
        assert 0 < mine.mean() < 1
