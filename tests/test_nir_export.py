"""NIR export: every zoo model leaves as a NIR graph that runs as onnxruntime runs the model."""

from __future__ import annotations

import math
from pathlib import Path

import nir
import numpy as np
import pytest

from tests.nir_reference import NIREvaluator
from uticompile.errors import ModelFormatError
from uticompile.interop.nir_export import export_nir, graph_to_nir, nir_bytes
from uticompile.interop.nir_import import import_nir
from uticompile.ir import Graph, LIFParams
from uticompile.models.ort_eval import session
from uticompile.models.zoo import ZOO, ModelSpec, build_model
from uticompile.onnx_export import to_onnx
from uticompile.passes.fold_batchnorm import FoldBatchNorm

T = 4


def _lively(name: str) -> Graph:
    """A small-width zoo model, half its weights pruned, scaled so that every layer spikes."""
    g = build_model(name, ModelSpec((3, 32, 32), 10, width=0.125, timesteps=T, seed=1))
    rng = np.random.default_rng(0)
    for k, v in g.params.items():
        if k.endswith("running_var"):
            g.params[k] = rng.uniform(0.02, 0.2, v.shape).astype(np.float32)
    for n in g.weight_nodes():
        w = g.params[n.inputs[1]] * (50.0 if n.op == "Gemm" else 1.0)
        g.params[n.inputs[1]] = np.where(rng.random(w.shape) < 0.5, 0, w).astype(np.float32)
    return g


@pytest.fixture(scope="module", params=sorted(ZOO))
def zoo_case(request: pytest.FixtureRequest) -> dict:
    g = _lively(request.param)
    folded = FoldBatchNorm()(g).module
    x = np.random.default_rng(1).uniform(-2, 2, (2, 3, 32, 32)).astype(np.float32)
    sess = session(to_onnx(folded, spike_outputs=True))
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(names, {"input": x}), strict=True))
    return {"name": request.param, "graph": g, "folded": folded, "x": x, "ort": outs}


def test_export_runs_like_onnxruntime(zoo_case: dict) -> None:
    """The numpy NIR evaluator (float64, NIR's equations) gives onnxruntime's spikes everywhere."""
    folded, ort = zoo_case["folded"], zoo_case["ort"]
    out, spikes = NIREvaluator(graph_to_nir(zoo_case["folded"])).run(zoo_case["x"], T)
    lifs = list(folded.lif_nodes())
    assert ort[lifs[-1].output + ".spikes"].any()  # the deepest layer still fires
    for n in lifs:
        np.testing.assert_array_equal(spikes[n.name], ort[n.output + ".spikes"], err_msg=n.name)
    logits = ort["logits"]
    np.testing.assert_allclose(out, logits, rtol=0, atol=1e-5 * np.abs(logits).max())


def test_import_of_export_is_identical(zoo_case: dict, tmp_path: Path) -> None:
    path = tmp_path / "m.nir"
    export_nir(zoo_case["folded"], path)
    back = import_nir(path, timesteps=T)
    assert [n.op for n in back.nodes] == [
        n.op for n in zoo_case["folded"].nodes
    ]  # max-pools come back as max-pools
    folded = zoo_case["folded"]
    for n in folded.nodes:  # the same layers and parameters, bit for bit
        if n.op in ("DirectEncode", "Add"):  # implicit in NIR (an add is a sum of edges)
            continue
        other = back.node(n.name)
        for mine, theirs in zip(folded.param_names(n), back.param_names(other), strict=True):
            assert folded.params[mine].tobytes() == back.params[theirs].tobytes()
        if n.op == "LIF":
            a, b = n.lif(), other.lif()
            assert (a.leak, a.gain, a.threshold) == (b.leak, b.gain, b.threshold)
    out = session(to_onnx(back)).run(["logits"], {"input": zoo_case["x"]})[0]
    np.testing.assert_array_equal(out, zoo_case["ort"]["logits"])
    assert nir_bytes(graph_to_nir(back)) == path.read_bytes()  # stable, and the same file again


def test_spikingjelly_runs_the_export(zoo_case: dict, tmp_path: Path) -> None:
    """SpikingJelly's own NIR importer reproduces onnxruntime's spikes in every layer."""
    pytest.importorskip("nirtorch")
    torch = pytest.importorskip("torch")
    sj = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    path = tmp_path / "m.nir"
    export_nir(zoo_case["folded"], path)
    net = sj.import_from_nir(str(path), dt=1e-4)
    seen: dict[str, list] = {}
    for name, module in net.named_modules():
        if type(module).__name__ == "_NIRStatefulModule":
            module.register_forward_hook(
                lambda _m, _i, o, name=name: seen.setdefault(name, []).append(o[0].numpy())
            )
    classifier = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    fed: list = []
    classifier.register_forward_hook(lambda _m, i, _o: fed.append(i[0].numpy().copy()))
    state, logits = None, []
    with torch.no_grad():
        for _ in range(T):
            y, state = net(torch.from_numpy(zoo_case["x"]), state)
            logits.append(y.numpy())
    ort = zoo_case["ort"]
    lifs = list(zoo_case["folded"].lif_nodes())
    for n in lifs:
        key = next(k for k in seen if k.replace(".", "_") == n.name.replace(".", "_"))
        np.testing.assert_array_equal(np.stack(seen[key]), ort[n.output + ".spikes"])
    # identical spikes; the classifier's float32 sums differ in order (torch vs onnxruntime):
    # measured at most 2 ulps of the largest logit (< 1.7e-7 of it; README, NIR section)
    ref = ort["logits"]
    np.testing.assert_allclose(np.stack(logits), ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    # at float64 the order does not matter: float32 weights times 0/1 inputs sum exactly, so
    # SpikingJelly's own classifier in float64 gives the exact sum (math.fsum), bit for bit
    inputs = np.concatenate(fed).astype(np.float64)
    assert set(np.unique(inputs)) <= {0.0, 1.0}
    w, b = classifier.weight.detach().double(), classifier.bias.detach().double()
    with torch.no_grad():
        f64 = torch.nn.functional.linear(torch.from_numpy(inputs), w, b).numpy()
    terms = inputs[:, None, :] * w.numpy()[None]
    exact = [[math.fsum([*row, bias]) for row, bias in zip(rows, b.numpy(), strict=True)]
             for rows in terms]  # fmt: skip
    assert f64.tobytes() == np.array(exact).tobytes()


def test_neurons_are_float64_and_pruned_zeros_stay_zero() -> None:
    g = _lively("vgg_small")
    with pytest.raises(ModelFormatError, match="node 'bn1': NIR has no BatchNorm; fold it first"):
        graph_to_nir(g)
    ng = graph_to_nir(FoldBatchNorm()(g).module)
    lif = next(n for n in ng.nodes.values() if isinstance(n, nir.LIF))
    assert lif.tau.dtype == np.float64
    assert lif.r.dtype == np.float64
    np.testing.assert_array_equal(lif.tau, 2e-4)  # leak 0.5 at dt 1e-4
    folded = FoldBatchNorm()(g).module
    for n in folded.weight_nodes():
        w = ng.nodes[n.name].weight
        np.testing.assert_array_equal(w == 0, folded.params[n.inputs[1]] == 0)
    pool = ng.nodes["pool1"]  # a max-pool is AvgPool2d(2) + IF firing at half a spike's share
    assert isinstance(pool, nir.IF)
    assert isinstance(ng.nodes["pool1.avg"], nir.AvgPool2d)
    np.testing.assert_array_equal(pool.v_threshold, 0.125)


def test_subtract_reset_is_refused() -> None:
    g = build_model(
        "vgg_small", ModelSpec((1, 16, 16), 10, width=0.25, neuron=LIFParams(reset="subtract"))
    )
    with pytest.raises(ModelFormatError, match="node 'lif1': a subtract reset has no NIR form"):
        graph_to_nir(FoldBatchNorm()(g).module)


def test_float64_time_constants_give_back_every_float32_leak_and_gain() -> None:
    """Stored as float64, tau and r give the leak and gain back exactly (float32 would not)."""
    from uticompile.interop.nir_time import lif_constants, lif_step

    rng = np.random.default_rng(0)
    leak = rng.uniform(0, 1, 100_000).astype(np.float32)
    gain = rng.uniform(0.01, 4, 100_000).astype(np.float32)
    tau, r = lif_constants(leak.astype(np.float64), gain.astype(np.float64), 1e-4)
    back_leak, back_gain = lif_step(tau, r, 1e-4)
    np.testing.assert_array_equal(back_leak.astype(np.float32), leak)
    np.testing.assert_array_equal(back_gain.astype(np.float32), gain)
    lossy, _ = lif_step(tau.astype(np.float32).astype(np.float64), r, 1e-4)
    assert np.mean(lossy.astype(np.float32) == leak) < 0.8  # why the file holds float64
