"""NIR import: SpikingJelly's and snnTorch's files run in onnxruntime as the libraries ran them.

The fixtures (tests/fixtures/nir, made by make_fixtures.py) hold each library's export and its own
output on a static input repeated T times, so these tests need neither library installed.
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

from tests.nir_reference import NIREvaluator
from uticompile.errors import ModelFormatError
from uticompile.interop.nir_import import import_nir, nir_to_graph
from uticompile.models.ort_eval import session
from uticompile.onnx_export import to_onnx
from uticompile.onnx_import import from_onnx

FIXTURES = Path(__file__).with_name("fixtures") / "nir"
NAMES = [
    "sj_conv_lif",
    "sj_if_reset",
    "sj_residual",
    "sj_cubalif",
    "sj_digits",
    "sj_digits_window",
    "snntorch_conv",
]
T = 4


def _ort(graph, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    return session(to_onnx(graph)).run(["logits"], {"input": x})[0]


def _agree(out: np.ndarray, ref: np.ndarray, spiking: bool) -> None:
    assert out.shape == ref.shape
    if spiking:
        assert set(np.unique(out)) <= {0.0, 1.0}
        np.testing.assert_array_equal(out, ref)
    else:
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("name", NAMES)
def test_library_export_runs_in_onnxruntime_as_the_library_ran_it(name: str) -> None:
    data = np.load(FIXTURES / f"{name}.npz")
    ref, spiking = data["out"], bool(data["spiking"])
    assert np.count_nonzero(ref) > 0  # the fixture exercises spikes, not silence
    graph = import_nir(FIXTURES / f"{name}.nir", timesteps=T, compare=str(data["compare"]))
    graph = from_onnx(to_onnx(graph))  # what import-nir writes is a normal uticompile file
    _agree(_ort(graph, data["x"]), ref, spiking)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_reference_reproduces_the_library(name: str) -> None:
    """The test-suite evaluator (NIR's equations, float64) agrees with the library that wrote it."""
    data = np.load(FIXTURES / f"{name}.npz")
    graph = nir.read(FIXTURES / f"{name}.nir")
    out, _ = NIREvaluator(graph, compare=str(data["compare"])).run(data["x"], T)
    _agree(out.astype(np.float32), data["out"], bool(data["spiking"]))


def test_fixtures_cover_what_the_issue_lists() -> None:
    ops = {
        name: [n.op for n in import_nir(FIXTURES / f"{name}.nir", timesteps=T).nodes]
        for name in NAMES
    }
    assert "Add" in ops["sj_residual"]
    assert "AveragePool" in ops["sj_conv_lif"]
    assert "AveragePool" in ops["snntorch_conv"]
    assert ops["sj_if_reset"][-1] == "LIF"
    assert ops["sj_conv_lif"][-1] == "Gemm"
    raw = nir.read(FIXTURES / "sj_if_reset.nir")
    resets = {
        float(np.asarray(n.v_reset).flat[0]) for n in raw.nodes.values() if hasattr(n, "v_reset")
    }
    assert len(resets - {0.0}) >= 2  # v_reset != 0, in an IF and in a LIF
    kinds = {
        type(n).__name__ for f in NAMES for n in nir.read(FIXTURES / f"{f}.nir").nodes.values()
    }
    assert {"IF", "LIF", "CubaLIF", "AvgPool2d", "Conv2d", "Affine", "Flatten"} <= kinds
    lifs = [
        n
        for n in nir.read(FIXTURES / "sj_conv_lif.nir").nodes.values()
        if type(n).__name__ == "LIF"
    ]
    ratios = {
        round(float(np.asarray(n.r).flat[0] * 1e-4 / np.asarray(n.tau).flat[0]), 6) for n in lifs
    }
    assert ratios == {round(1 / 2.0, 6), 1.0}  # decay_input=True (r = 1) and False (r = tau/dt)


def test_discretization_is_nirs_euler_step() -> None:
    lif = nir.LIF(
        tau=np.full(3, 4e-4),
        r=np.full(3, 2.0),
        v_leak=np.full(3, 0.3),
        v_threshold=np.full(3, 1.2),
        v_reset=np.full(3, 0.2),
    )
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([3])),
            "fc": nir.Affine(np.eye(3, dtype=np.float32), np.zeros(3, np.float32)),
            "lif": lif,
            "output": nir.Output(np.array([3])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
    graph = nir_to_graph(g, timesteps=6)
    p = next(graph.lif_nodes()).lif()
    assert (p.leak, p.gain, p.threshold, p.reset) == (0.75, 0.5, 1.0, "hard")
    bias = graph.params[graph.node("fc").inputs[2]]
    np.testing.assert_array_equal(bias, np.float32((0.3 - 0.2) / 2.0))  # (v_leak - v_reset)/r
    x = np.array([[0.1, 0.35, 0.9]], np.float32)
    ref, _ = NIREvaluator(g).run(x, 6)
    np.testing.assert_array_equal(_ort(graph, x.reshape(1, 3, 1, 1)), ref)


def _threshold_graph(v: float) -> nir.NIRGraph:
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([2])),
            "fc": nir.Linear(np.eye(2, dtype=np.float32)),
            "if": nir.IF(r=np.full(2, 1e4), v_threshold=np.full(2, v), v_reset=np.zeros(2)),
            "output": nir.Output(np.array([2])),
        },
        edges=[("input", "fc"), ("fc", "if"), ("if", "output")],
    )


def test_compare_gt_does_not_fire_at_the_threshold() -> None:
    g = _threshold_graph(0.5)
    x = np.array([[[[0.5]], [[0.25]]]], np.float32)
    ge = _ort(nir_to_graph(g, timesteps=2, compare="ge"), x)
    gt = _ort(nir_to_graph(g, timesteps=2, compare="gt"), x)
    np.testing.assert_array_equal(ge[:, 0], [[1, 0], [1, 1]])
    np.testing.assert_array_equal(gt[:, 0], [[0, 0], [1, 0]])
    for compare, out in (("ge", ge), ("gt", gt)):
        ref, _ = NIREvaluator(g, compare=compare).run(x.reshape(1, 2), 2)
        np.testing.assert_array_equal(out, ref)


def test_sum_pool_and_max_pool_pair() -> None:
    """SumPool2d sums windows; AvgPool2d + IF(0.5/k^2) over spikes becomes an exact MaxPool."""
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1.5, (3, 2, 3, 3)).astype(np.float32)
    nodes = {
        "input": nir.Input(np.array([2, 8, 8])),
        "conv": nir.Conv2d((8, 8), w, 1, 1, 1, 1, np.zeros(3, np.float32)),
        "lif": nir.LIF(
            np.full((3, 8, 8), 2e-4),
            np.full((3, 8, 8), 2.0),
            np.zeros((3, 8, 8)),
            np.full((3, 8, 8), 1.0),
            np.zeros((3, 8, 8)),
        ),
        "avg": nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "max": nir.IF(np.full((3, 4, 4), 1e4), np.full((3, 4, 4), 0.125), np.zeros((3, 4, 4))),
        "sum": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "flat": nir.Flatten({"input": np.array([3, 2, 2])}, 0, -1),
        "output": nir.Output(np.array([12])),
    }
    edges = [
        ("input", "conv"),
        ("conv", "lif"),
        ("lif", "avg"),
        ("avg", "max"),
        ("max", "sum"),
        ("sum", "flat"),
        ("flat", "output"),
    ]
    g = nir.NIRGraph(nodes=nodes, edges=edges)
    graph = nir_to_graph(g, timesteps=4)
    assert [n.op for n in graph.nodes] == [
        "Conv",
        "DirectEncode",
        "LIF",
        "MaxPool",
        "SumPool",
        "Flatten",
    ]
    x = rng.uniform(0, 1, (3, 2, 8, 8)).astype(np.float32)
    ref, _ = NIREvaluator(g).run(x, 4)
    out = _ort(from_onnx(to_onnx(graph)), x)
    assert out.max() > 1  # the sums count several spikes
    np.testing.assert_array_equal(out, ref)


def _one_node(node: object, shape: tuple[int, ...] = (4,)) -> nir.NIRGraph:
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array(shape)),
            "x": node,
            "output": nir.Output(np.array(shape)),
        },
        edges=[("input", "x"), ("x", "output")],
        type_check=False,
    )


def _cuba(tau_syn: float) -> object:
    f = lambda v: np.full(4, v)  # noqa: E731
    return nir.CubaLIF(f(tau_syn), f(2e-4), f(2.0), f(0.0), f(1.0), f(0.0), f(1.0))


def _lif(tau: np.ndarray) -> object:
    return nir.LIF(tau, np.ones(4), np.zeros(4), np.ones(4), np.zeros(4))


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (nir.Scale(np.ones(4)), "node 'x': NIR Scale is not supported"),
        (nir.Threshold(np.ones(4)), "node 'x': NIR Threshold is not supported"),
        (nir.Delay(np.ones(4)), "node 'x': NIR Delay is not supported"),
        (_cuba(5e-4), "node 'x': CubaLIF with tau_syn 0.0005 != dt 0.0001"),
        (_lif(np.array([2e-4, 2e-4, 3e-4, 2e-4])), "node 'x': per-neuron tau values differ"),
        (_lif(np.full(4, 5e-5)), "node 'x': tau 5e-05 is below dt 0.0001"),
    ],
)
def test_unsupported_content_is_refused_naming_the_node(node: object, message: str) -> None:
    with pytest.raises(ModelFormatError, match=message) as err:
        nir_to_graph(_one_node(node), timesteps=2)
    assert "\n" not in str(err.value)


def test_cubalif_with_tau_syn_equal_dt_is_a_lif() -> None:
    g = _one_node(_cuba(1e-4))
    graph = nir_to_graph(g, timesteps=5)
    p = next(graph.lif_nodes()).lif()
    assert (p.leak, p.gain) == (0.5, 1.0)
    x = np.array([[0.3, 0.6, 1.0, 2.0]], np.float32)
    ref, _ = NIREvaluator(g).run(x, 5)
    np.testing.assert_array_equal(_ort(graph, x.reshape(1, 4, 1, 1)), ref)


def test_bad_files_and_graphs(tmp_path: Path) -> None:
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    with pytest.raises(ModelFormatError, match=r"junk.nir: not a readable NIR file"):
        import_nir(tmp_path / "junk.nir", timesteps=2)
    with pytest.raises(ModelFormatError, match="no such file"):
        import_nir(tmp_path / "absent.nir", timesteps=2)
    loop = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([2])),
            "a": nir.Linear(np.eye(2, dtype=np.float32)),
            "b": nir.IF(np.full(2, 1e4), np.ones(2), np.zeros(2)),
            "output": nir.Output(np.array([2])),
        },
        edges=[("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")],
        type_check=False,
    )
    with pytest.raises(ModelFormatError, match="recurrent graphs are not supported"):
        nir_to_graph(loop, timesteps=2)


def test_map_takes_whole_map_and_window_pools_and_refuses_padded_ones() -> None:
    from uticompile.errors import PassError
    from uticompile.hardware import load_hardware
    from uticompile.passes.pipeline import MapConfig, compile_graph

    hw = load_hardware(None)
    whole = import_nir(FIXTURES / "sj_digits.nir", timesteps=T)
    module = compile_graph(whole, MapConfig(pes=4), hw, 2.0)
    assert [layer.kind for layer in module.layers][-4:] == ["SUMPOOL", "FLATTEN", "FC", "LIF"]
    window = import_nir(FIXTURES / "sj_conv_lif.nir", timesteps=T)
    module = compile_graph(window, MapConfig(pes=4), hw, 2.0)
    pool = next(layer for layer in module.layers if layer.kind == "SUMPOOL")
    assert (pool.kernel, pool.stride, pool.out_shape) == ((2, 2), (2, 2), (6, 4, 4))
    padded = window.copy()
    node = next(n for n in padded.nodes if n.op == "AveragePool")
    node.attrs = {"kernel_shape": (2, 2), "strides": (2, 2), "pads": (0, 0, 1, 1)}  # still 4x4
    with pytest.raises(PassError, match="padded AveragePool has no hardware form"):
        compile_graph(padded, MapConfig(pes=4), hw, 2.0)


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("sj_")])
def test_spikingjelly_runs_its_fixture_as_recorded(name: str) -> None:
    """Where SpikingJelly is installed: its own importer runs the committed file as recorded."""
    pytest.importorskip("nirtorch")
    torch = pytest.importorskip("torch")
    sj = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    data = np.load(FIXTURES / f"{name}.npz")
    net = sj.import_from_nir(str(FIXTURES / f"{name}.nir"), dt=1e-4)
    state, outs = None, []
    with torch.no_grad():
        for _ in range(T):
            y, state = net(torch.from_numpy(data["x"]), state)
            outs.append(y.numpy())
    _agree(np.stack(outs), data["out"], bool(data["spiking"]))


def test_leak_drive_needs_a_layer_of_its_own() -> None:
    """v_leak != v_reset becomes a bias; a layer that also feeds another node cannot take it."""
    f = lambda v: np.full(2, v)  # noqa: E731
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([2])),
            "fc": nir.Linear(np.eye(2, dtype=np.float32)),
            "lif": nir.LIF(f(2e-4), f(1.0), f(0.5), f(1.0), f(0.0)),
            "output": nir.Output(np.array([2])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("fc", "output"), ("lif", "output")],
    )
    with pytest.raises(ModelFormatError, match="node 'lif': v_leak != v_reset needs a conv"):
        nir_to_graph(g, timesteps=2)


def test_snntorch_subtract_reset_is_not_what_the_file_says() -> None:
    """snnTorch's default subtract reset is written as a reset to 0: imported as the file says
    (``reset="zero"``, the default) it differs from what snnTorch ran; ``reset="subtract"`` is
    the next test. (snnTorch subtracts after the decay, ``mem = beta*mem + x - s*theta``; the IR's
    ``subtract`` reset decays the reduced membrane, ``beta*(mem - theta) + x``, so the import
    uses the IR's ``subtract-after-leak`` reset for it.)
    """
    data = np.load(FIXTURES / "snntorch_subtract.npz")
    assert str(data["reset"]) == "subtract"
    graph = import_nir(FIXTURES / "snntorch_subtract.nir", timesteps=T, compare="gt")
    assert {n.lif().reset for n in graph.lif_nodes()} == {"hard"}
    assert np.any(_ort(graph, data["x"]) != data["out"])


def test_pytorch_interpreter_runs_imported_pools() -> None:
    """What prune trains (models.snn) computes what onnxruntime computes, window pools included."""
    torch = pytest.importorskip("torch")
    from uticompile.models.snn import SNN

    data = np.load(FIXTURES / "sj_conv_lif.npz")
    graph = import_nir(FIXTURES / "sj_conv_lif.nir", timesteps=T)
    window = graph.copy()  # the same net with its average pool as a sum pool, padded
    pool = next(n for n in window.nodes if n.op == "AveragePool")
    pool.op, pool.attrs = (
        "SumPool",
        {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)},
    )
    fc = next(n for n in window.nodes if n.op == "Gemm")
    window.params[fc.inputs[1]] = window.params[fc.inputs[1]] / 9
    for g in (graph, window):
        with torch.no_grad():
            ours = SNN(g)(torch.from_numpy(data["x"])).numpy()
        ref = _ort(g, data["x"])
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * np.abs(ref).max())


def test_average_pool_scale_folds_exactly_into_the_next_weights() -> None:
    """AvgPool2d(2) -> SUMPOOL counts; the 1/4 goes into the reading layer's weights with no
    rounding of its own: its integers are the unpooled weights' integers, 2 fraction bits up."""
    from uticompile.hardware import load_hardware
    from uticompile.passes.pipeline import MapConfig, compile_graph
    from uticompile.passes.quantize import frac_bits_for, quantize_weights

    graph = import_nir(FIXTURES / "sj_digits_window.nir", timesteps=T)
    module = compile_graph(graph, MapConfig(pes=4), load_hardware(None), 2.0)
    layers = module.layers
    folded = 0
    for layer in layers:
        src = layers[layer.inputs[0]] if layer.kind in ("CONV", "FC") else None
        while src is not None and src.kind == "FLATTEN":
            src = layers[src.inputs[0]]
        if src is None or src.kind != "SUMPOOL":
            continue
        w = graph.params[graph.node(layer.name).inputs[1]]
        s = frac_bits_for(float(np.abs(w).max()), 16)
        assert layer.weight_frac == s + 2
        assert layer.weight is not None
        np.testing.assert_array_equal(layer.weight, quantize_weights(w, s, 16))
        folded += 1
    assert folded == 2


def test_snntorch_subtract_reset_is_reproduced_with_reset_subtract() -> None:
    """``reset="subtract"``: snnTorch's spikes exactly, in onnxruntime and in the PyTorch model
    that prune trains; through map, the runtime agrees with the quantized reference."""
    from uticompile.hardware import load_hardware
    from uticompile.mapfile import RESET_SUBTRACT_AFTER_LEAK, decode_mapping, encode_mapping
    from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping
    from uticompile.runtime.check import Checker
    from uticompile.runtime.engine import Engine

    data = np.load(FIXTURES / "snntorch_subtract.npz")
    graph = import_nir(
        FIXTURES / "snntorch_subtract.nir", timesteps=T, compare="gt", reset="subtract"
    )
    assert {n.lif().reset for n in graph.lif_nodes()} == {"subtract-after-leak"}
    graph = from_onnx(to_onnx(graph))
    out = _ort(graph, data["x"])
    assert np.count_nonzero(out)
    assert not out.all()
    np.testing.assert_array_equal(out, data["out"])
    torch = pytest.importorskip("torch")
    from uticompile.models.snn import SNN

    with torch.no_grad():
        y = SNN(graph).eval()(torch.from_numpy(data["x"].copy())).numpy()
    np.testing.assert_array_equal(y.reshape(out.shape), out)
    module = compile_graph(graph, MapConfig(pes=4), load_hardware(None), 2.0)
    m = decode_mapping(encode_mapping(to_mapping(module)))
    assert set(m.layers["reset"][m.layers["kind"] == 4]) == {RESET_SUBTRACT_AFTER_LEAK}
    x_q = np.random.default_rng(0).integers(-128, 128, size=(6, 2, 8, 8))
    checker = Checker(module)
    checker.compare(x_q, Engine(m).run(x_q), m.layer_names, 0)  # raises on any mismatch
    assert checker.result.spikes_compared > 0


def test_snntorch_subtract_reset_live() -> None:
    """Where snnTorch is installed: a fresh net at T = 16, the spikes of both neuron layers."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(3)
    steps = 16
    lif1 = snn.Leaky(beta=torch.full((12,), 0.8), threshold=torch.full((12,), 0.7),
                     init_hidden=True)  # fmt: skip
    lif2 = snn.Leaky(beta=torch.full((5,), 0.6), threshold=torch.full((5,), 0.4),
                     init_hidden=True, output=True)  # fmt: skip
    assert lif1.reset_mechanism == "subtract"  # snnTorch's default
    net = torch.nn.Sequential(torch.nn.Linear(6, 12), lif1, torch.nn.Linear(12, 5), lif2)
    x = torch.rand(8, 6) * 1.5
    graph_nir = export_to_nir(net, x, ignore_dims=[0])
    utils.reset(net)
    hidden, outs = [], []
    lif1.register_forward_hook(lambda _m, _i, o: hidden.append(o.numpy().copy()))
    with torch.no_grad():
        for _ in range(steps):
            outs.append(net(x)[0].numpy())
    graph = nir_to_graph(graph_nir, timesteps=steps, compare="gt", reset="subtract")
    sess = session(to_onnx(graph, spike_outputs=True))
    first = next(graph.lif_nodes()).output + ".spikes"
    got_out, got_hidden = sess.run(["logits", first], {"input": x.numpy().reshape(8, 6, 1, 1)})
    ref_hidden = np.stack(hidden)
    assert 0.1 < ref_hidden.mean() < 0.9
    np.testing.assert_array_equal(got_hidden.reshape(ref_hidden.shape), ref_hidden)
    np.testing.assert_array_equal(got_out, np.stack(outs))
    zero = nir_to_graph(graph_nir, timesteps=steps, compare="gt")  # the file's own reset
    assert not np.array_equal(
        session(to_onnx(zero)).run(["logits"], {"input": x.numpy().reshape(8, 6, 1, 1)})[0], got_out
    )


def test_reset_subtract_needs_compare_gt() -> None:
    with pytest.raises(ModelFormatError, match="reset 'subtract' is snnTorch's neuron"):
        import_nir(FIXTURES / "snntorch_subtract.nir", timesteps=T, reset="subtract")
    with pytest.raises(ModelFormatError, match="reset must be one of"):
        import_nir(FIXTURES / "snntorch_subtract.nir", timesteps=T, reset="soft")
