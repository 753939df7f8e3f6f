"""import-nir / export-nir as a user meets them; an imported model through prune, map and run."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest

from uticompile.cli import main
from uticompile.ir import LIFParams
from uticompile.mapfile import read_mapping, window_sumpools
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.onnx_export import save_onnx
from uticompile.onnx_import import read_graph

FIXTURES = Path(__file__).with_name("fixtures") / "nir"


def _fails(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("uticompile: error: "), err
    assert message in err, err


def test_import_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    onnx_path, nir_path = tmp_path / "m.onnx", tmp_path / "m.nir"
    args = ["import-nir", str(FIXTURES / "snntorch_conv.nir"), "-o", str(onnx_path), "-T", "6"]
    assert main([*args, "--compare", "gt", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["neurons"], summary["outputs"], summary["timesteps"]) == (2, 5, 6)
    g = read_graph(onnx_path)
    assert g.timesteps == 6
    assert main(["export-nir", str(onnx_path), "-o", str(nir_path), "--dt", "1e-3"]) == 0
    lif = next(n for n in nir.read(nir_path).nodes.values() if isinstance(n, nir.LIF))
    np.testing.assert_allclose(lif.tau, 2e-3)  # beta 0.5 written at the dt asked for


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "junk.nir").write_bytes(b"junk")
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([3])),
            "gain": nir.Scale(np.ones(3)),
            "output": nir.Output(np.array([3])),
        },
        edges=[("input", "gain"), ("gain", "output")],
    )
    nir.write(tmp_path / "scale.nir", graph)
    subtract = build_model(
        "vgg_small", ModelSpec((1, 16, 16), 10, neuron=LIFParams(reset="subtract"))
    )
    save_onnx(subtract, tmp_path / "sub.onnx")
    out = str(tmp_path / "o")
    _fails(
        capsys,
        ["import-nir", str(tmp_path / "junk.nir"), "-o", out, "-T", "2"],
        "not a readable NIR",
    )
    _fails(
        capsys,
        ["import-nir", str(tmp_path / "scale.nir"), "-o", out, "-T", "2"],
        "node 'gain': NIR Scale is not supported",
    )
    _fails(
        capsys,
        ["export-nir", str(tmp_path / "sub.onnx"), "-o", out],
        "node 'lif1': a subtract reset has no NIR form",
    )
    _fails(
        capsys,
        ["import-nir", str(FIXTURES / "snntorch_subtract.nir"), "-o", out, "-T", "2",
         "--reset", "subtract"],
        "reset 'subtract' is snnTorch's neuron, which fires on v > threshold",
    )  # fmt: skip
    assert not list(tmp_path.glob("o*"))  # nothing half-written


def test_import_with_subtract_reset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    onnx_path = tmp_path / "m.onnx"
    args = ["import-nir", str(FIXTURES / "snntorch_subtract.nir"), "-o", str(onnx_path), "-T", "4"]
    assert main([*args, "--compare", "gt", "--reset", "subtract"]) == 0
    capsys.readouterr()
    assert {n.lif().reset for n in read_graph(onnx_path).lif_nodes()} == {"subtract-after-leak"}
    _fails(capsys, ["export-nir", str(onnx_path), "-o", str(tmp_path / "m.nir")], "no NIR form")


@pytest.mark.parametrize("fixture", ["sj_digits", "sj_digits_window"])
def test_imported_model_prunes_maps_and_runs(
    fixture: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SpikingJelly exports (global average pool, or AvgPool2d(2) windows; spiking classifier)
    through the pipeline: prune --rounds 2, map, run --check (bit-exact against onnxruntime)."""
    model, pruned, utm = tmp_path / "sj.onnx", tmp_path / "p.onnx", tmp_path / "p.utm"
    nir_file = str(FIXTURES / f"{fixture}.nir")
    assert main(["import-nir", nir_file, "-o", str(model), "-T", "4"]) == 0
    prune = [
        "prune",
        str(model),
        "-o",
        str(pruned),
        "--dataset",
        "digits",
        "--rounds",
        "2",
        "--epochs",
        "1",
        "--dense-epochs",
        "0",
        "--pes",
        "8",
    ]
    assert main(prune) == 0, capsys.readouterr().err
    g = read_graph(pruned)
    assert g.nodes[-1].op == "LIF"
    zeros = [float(np.mean(g.params[n.inputs[1]] == 0)) for n in g.weight_nodes()]
    assert max(zeros) > 0.3  # two rounds of 25% pruning
    assert main(["map", str(pruned), "--pes", "8", "--dataset", "digits", "-o", str(utm)]) == 0
    capsys.readouterr()
    m = read_mapping(utm)
    windows = [tuple(r["kernel"]) for r in m.layers[window_sumpools(m.layers)]]
    assert windows == ([(2, 2), (2, 2)] if fixture == "sj_digits_window" else [])
    assert utm.read_bytes()[8:12] == bytes([1, 0, 2 if windows else 1, 0])  # version 1.2 / 1.1
    run = ["run", str(utm), "--dataset", "digits", "--samples", "20", "--check", str(pruned)]
    assert main(run) == 0
    assert "identical to onnxruntime" in capsys.readouterr().out
