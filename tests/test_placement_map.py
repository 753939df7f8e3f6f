"""map --placement: lossless, never slower than the paper's placement, every PE of the classifier
working; run reports the floor and the nonzero counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from uticompile.cli import cli
from uticompile.hardware import default_hardware
from uticompile.ir import Graph
from uticompile.mapfile import decode_mapping, encode_mapping, read_mapping
from uticompile.mapstats import dense_weights
from uticompile.onnx_export import save_onnx
from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping
from uticompile.runtime.engine import Engine

SAMPLES = 24


def _pruned(g: Graph, density: float, seed: int) -> Graph:
    """Random lottery-like masks (unbalanced), with layers kept firing."""
    g = g.copy()
    rng = np.random.default_rng(seed)
    for node in g.weight_nodes():
        w = g.params[node.inputs[1]]
        g.params[node.inputs[1]] = np.where(rng.random(w.shape) < density, w, 0).astype(np.float32)
    for name, v in g.params.items():
        if name.endswith("running_var"):
            g.params[name] = rng.uniform(0.02, 0.2, v.shape).astype(np.float32)
    return g


def _invoke(*args: str) -> dict:
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out: dict = json.loads(result.stdout)
    return out


@pytest.fixture(scope="module")
def placed(tmp_path_factory: pytest.TempPathFactory, small_graphs: dict[str, Graph]) -> dict:
    tmp = tmp_path_factory.mktemp("placement")
    model = tmp / "lth.onnx"
    save_onnx(_pruned(small_graphs["vgg_small"], 0.15, 0), model)
    out: dict = {"dir": tmp, "model": model}
    for placement in ("contiguous", "auto"):
        utm = tmp / f"{placement}.utm"
        _invoke("map", str(model), "--pes", "16", "--placement", placement, "-o", str(utm))
        run = _invoke("run", str(utm), "--samples", str(SAMPLES), "--check", str(model))
        out[placement] = (utm, run)
    return out


def test_auto_gives_the_same_spikes_and_is_never_slower(placed: dict) -> None:
    (c_utm, contiguous), (a_utm, auto) = placed["contiguous"], placed["auto"]
    for run in (contiguous, auto):  # run --check: every spike and prediction as onnxruntime's
        assert run["check"]["samples"] == SAMPLES
        assert run["check"]["spikes_compared"] > 0
    assert auto["accuracy"] == contiguous["accuracy"]
    # the same spikes and logits, value for value
    x = np.random.default_rng(0).integers(-64, 64, size=(6, 1, 16, 16))
    a, c = Engine(read_mapping(a_utm)).run(x), Engine(read_mapping(c_utm)).run(x)
    for out_a, out_c in zip(a.outputs, c.outputs, strict=True):
        np.testing.assert_array_equal(out_a.values, out_c.values)
    np.testing.assert_array_equal(a.logits, c.logits)
    # never slower: in total, and per layer at most 1% (auto chose on training images)
    assert auto["latency"] <= contiguous["latency"]
    for la, lc in zip(auto["layers"], contiguous["layers"], strict=True):
        assert la["name"] == lc["name"]
        assert la["latency"] <= 1.01 * lc["latency"], la["name"]
        assert la["work"] == lc["work"]  # the same work, only spread differently
        assert la["nonzero"] == lc["nonzero"]
    assert any(la["placement"] != "contiguous" for la in auto["layers"])


def test_the_classifier_uses_every_pe_and_gets_faster(placed: dict) -> None:
    (c_utm, contiguous), (a_utm, auto) = placed["contiguous"], placed["auto"]
    rows = {r["name"]: r for r in _invoke("inspect", str(a_utm))["weight_layers"]}
    held = np.asarray([[v or 0 for v in g] for g in rows["fc1"]["workloads"]]).sum(axis=0)
    assert held.shape == (16,)
    assert (held > 0).all()  # all 16 PEs hold weights (10 outputs on 16 PEs)
    before = {r["name"]: r for r in _invoke("inspect", str(c_utm))["weight_layers"]}
    gated = np.asarray([[v is None for v in g] for g in before["fc1"]["workloads"]])
    assert (~gated).sum() == 10  # clock-gated slots (no filter) are null
    held_before = np.asarray([[v or 0 for v in g] for g in before["fc1"]["workloads"]])
    assert (held_before.sum(axis=0) > 0).sum() == 10
    fc_a = next(c for c in auto["layers"] if c["name"] == "fc1")
    fc_c = next(c for c in contiguous["layers"] if c["name"] == "fc1")
    assert fc_a["latency"] < fc_c["latency"]


def test_run_reports_the_floor_and_the_nonzero_counts(placed: dict) -> None:
    _, run = placed["auto"]
    inits = {
        i.name: onnx.numpy_helper.to_array(i)
        for i in onnx.load(str(placed["model"])).graph.initializer
    }
    for layer in run["layers"]:
        assert 0 < layer["floor"] <= layer["latency"]
        assert layer["latency_over_floor"] == pytest.approx(layer["latency"] / layer["floor"])
        assert layer["nonzero"] == int(np.count_nonzero(inits[f"{layer['name']}.weight"]))
    assert run["floor"] == sum(c["floor"] for c in run["layers"])
    assert run["latency_over_floor"] == pytest.approx(run["latency"] / run["floor"])
    utm, _ = placed["auto"]
    text = CliRunner().invoke(cli, ["run", str(utm), "--samples", "4"]).output
    assert "floor" in text
    assert "lat/floor" in text


def test_auto_mapping_is_deterministic(placed: dict) -> None:
    utm, _ = placed["auto"]
    again = placed["dir"] / "again.utm"
    _invoke("map", str(placed["model"]), "--pes", "16", "-o", str(again))
    assert again.read_bytes() == utm.read_bytes()


@settings(max_examples=6, deadline=None)
@given(
    st.floats(0.01, 0.5),
    st.sampled_from([3, 5, 16]),
    st.sampled_from(["sata", "systolic"]),
    st.integers(0, 2**16),
)
def test_placement_is_lossless_property(
    small_graphs: dict[str, Graph], density: float, pes: int, grouping: str, seed: int
) -> None:
    """Every placement stores the same weights and computes the same spikes and logits."""
    g = _pruned(small_graphs["vgg_small"], density, seed)
    maps = {
        p: decode_mapping(
            encode_mapping(
                to_mapping(
                    compile_graph(
                        g,
                        MapConfig(pes=pes, grouping=grouping, placement=p),
                        default_hardware(),
                        2.5,
                    )
                )
            )
        )
        for p in ("contiguous", "sorted", "auto")
    }
    x = np.random.default_rng(seed).integers(-64, 64, size=(3, 1, 16, 16))
    ref = maps["contiguous"]
    want = Engine(ref).run(x)
    for p, m in maps.items():
        for i in range(len(ref.layers)):
            if int(ref.layers[i]["tile_count"]):
                for a, b in zip(dense_weights(m, i), dense_weights(ref, i), strict=True):
                    np.testing.assert_array_equal(a, b, err_msg=f"{p} layer {i}")
        got = Engine(m).run(x)
        for out_a, out_b in zip(got.outputs, want.outputs, strict=True):
            np.testing.assert_array_equal(out_a.values, out_b.values)
        np.testing.assert_array_equal(got.logits, want.logits)


def test_placement_options_are_checked(placed: dict, tmp_path: Path) -> None:
    args = ["map", str(placed["model"]), "--placement", "best", "-o", str(tmp_path / "x.utm")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "--placement" in result.output
