"""map / inspect / encode-input / run through the CLI, on a pruned and balanced small model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from tests.conftest import independent_reader
from uticompile.cli import cli
from uticompile.grouping import group_layout
from uticompile.ir import Graph
from uticompile.mapfile import read_mapping
from uticompile.mapstats import dense_weights
from uticompile.onnx_export import save_onnx
from uticompile.passes.balance import balance_mask


def _prepare(g: Graph, path: Path, balanced: bool) -> Path:
    g = g.copy()
    rng = np.random.default_rng(0)
    for node in g.weight_nodes():
        w = g.params[node.inputs[1]]
        mask = rng.random(w.shape) < 0.3
        if balanced:
            lay = group_layout(w.shape, 16, "sata")  # ceil targets: every PE exactly equal
            mask = balance_mask(mask, lay, "uticket", rng=rng, targets="ceil")
        g.params[node.inputs[1]] = np.where(mask, w, 0).astype(np.float32)
    for name, v in g.params.items():  # keep the layers firing
        if name.endswith("running_var"):
            g.params[name] = rng.uniform(0.02, 0.2, v.shape).astype(np.float32)
    save_onnx(g, path)
    return path


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory, small_graphs: dict[str, Graph]) -> dict:
    tmp = tmp_path_factory.mktemp("hw")
    runner = CliRunner()
    out = {"dir": tmp}
    for balanced in (False, True):
        key = "uticket" if balanced else "none"
        model = _prepare(small_graphs["vgg_small"], tmp / f"{key}.onnx", balanced)
        utm = tmp / f"{key}.utm"
        # the paper's placement: these tests check the grouping pruning balanced against
        result = runner.invoke(cli, ["map", str(model), "--pes", "16", "--placement", "contiguous",
                                     "-o", str(utm), "--json"], catch_exceptions=False)  # fmt: skip
        assert result.exit_code == 0, result.output
        out[key] = (model, utm, json.loads(result.stdout))
    return out


def test_map_is_deterministic(mapped: dict) -> None:
    model, utm, _ = mapped["uticket"]
    again = mapped["dir"] / "again.utm"
    args = ["map", str(model), "--placement", "contiguous", "-o", str(again)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert again.read_bytes() == utm.read_bytes()


def test_inspect_workloads_agree_with_the_onnx_nonzeros(mapped: dict) -> None:
    model, utm, _ = mapped["uticket"]
    result = CliRunner().invoke(cli, ["inspect", str(utm), "--json"], catch_exceptions=False)
    info = json.loads(result.stdout)
    assert info["checksums"] == "ok"
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(model)).graph.initializer}
    conv_rows = [r for r in info["weight_layers"] if r["name"].startswith("conv")]
    assert len(conv_rows) == 4
    for row in conv_rows:
        w = inits[f"{row['name']}.weight"]
        per_filter = (w != 0).reshape(len(w), -1).sum(axis=1)
        padded: list[int | None] = [None] * (row["groups"] * 16)  # clock-gated slots: null
        padded[: len(per_filter)] = per_filter.tolist()
        assert [v for g in row["workloads"] for v in g] == padded, row["name"]
        held = [
            v for v in [v for g in row["workloads"] for v in g] if v is not None
        ]  # PE slots with a filter
        assert held == per_filter.tolist()
        assert (row["workload_min"], row["workload_max"]) == (min(held), max(held))
        if row["name"] != "conv1":  # the analog encoder is mapped but not on the balanced PEs
            assert row["static_utilization"] == 1.0


def test_independent_reader_reads_a_real_mapping(mapped: dict) -> None:
    _, utm, _ = mapped["none"]
    reader = independent_reader()
    parsed = reader.read_utm(utm.read_bytes())
    m = read_mapping(utm)
    assert parsed["model"]["num_pes"] == 16
    assert [layer["name_str"] for layer in parsed["layers"]] == m.layer_names
    for i, layer in enumerate(parsed["layers"]):
        if layer["kind"] not in (1, 2, 3):
            continue
        values, mask = dense_weights(m, i)
        for tile in parsed["tiles"]:
            if tile["layer"] != i:
                continue
            for pos, value in zip(tile["positions"], tile["values"], strict=True):
                assert mask[tile["filter"], pos]
                assert values[tile["filter"], pos] == value


def test_run_checks_against_onnxruntime_and_balancing_pays(mapped: dict) -> None:
    runner = CliRunner()
    reports = {}
    for key in ("none", "uticket"):
        model, utm, _ = mapped[key]
        args = ["run", str(utm), "--samples", "24", "--check", str(model), "--json"]
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        reports[key] = json.loads(result.stdout)
        assert reports[key]["check"]["samples"] == 24
        assert reports[key]["check"]["spikes_compared"] > 0
    assert (
        reports["uticket"]["static_utilization_weighted"]
        > reports["none"]["static_utilization_weighted"]
    )


def test_encode_input_then_run_from_spikes(mapped: dict) -> None:
    _, utm, _ = mapped["none"]
    spikes = mapped["dir"] / "in.uts"
    runner = CliRunner()
    enc = runner.invoke(cli, ["encode-input", str(utm), "--samples", "10", "-o", str(spikes)])
    assert enc.exit_code == 0, enc.output
    a = json.loads(runner.invoke(cli, ["run", str(utm), "--spikes", str(spikes), "--json"]).stdout)
    b = json.loads(runner.invoke(cli, ["run", str(utm), "--samples", "10", "--json"]).stdout)
    assert a["work"] == b["work"]
    assert a["latency"] == b["latency"]
    assert a["accuracy"] == b["accuracy"]
    assert "predictions" not in b  # only with --details
    assert "layer_sums" not in b
    args = ["run", str(utm), "--samples", "10", "--json", "--details"]
    d = json.loads(runner.invoke(cli, args).stdout)
    args = ["run", str(utm), "--spikes", str(spikes), "--json", "--details"]
    e = json.loads(runner.invoke(cli, args).stdout)
    assert d["work"] == b["work"]
    assert len(d["predictions"]) == 10
    assert d["predictions"] == e["predictions"]
    layer = json.loads(runner.invoke(cli, ["inspect", str(utm), "--json"]).stdout)["layers"]
    assert len(d["layer_sums"]) == len(layer)
    lifs = [i for i, rec in enumerate(layer) if rec["kind"] == "LIF"]
    assert all(d["layer_sums"][i] > 0 for i in lifs)  # every LIF layer spikes
    first = lifs[0]  # the trace's layer: from there on both runs execute the same
    assert d["layer_sums"][first:] == e["layer_sums"][first:]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uticompile", *args], capture_output=True,
                          text=True, check=False)  # fmt: skip


def test_bad_mappings_give_one_line_errors(mapped: dict) -> None:
    tmp: Path = mapped["dir"]
    model_none, utm, _ = mapped["none"]
    model_bal, _, _ = mapped["uticket"]
    data = bytearray(utm.read_bytes())
    data[len(data) // 2] ^= 0x40  # inside the WSP weights
    (tmp / "flipped.utm").write_bytes(bytes(data))
    (tmp / "short.utm").write_bytes(bytes(data[:100]))
    cases = [
        (["inspect", str(tmp / "flipped.utm")], "CRC"),
        (["run", str(tmp / "short.utm")], "truncated"),
        (["inspect", str(model_none)], "bad magic"),
        (["run", str(utm), "--samples", "2", "--check", str(model_bal)], "does not map"),
        (["map", str(utm), "-o", str(tmp / "x.utm")], "not an ONNX model"),
        (["map", str(model_none), "--pes", "0", "-o", str(tmp / "x.utm")], "--pes"),
    ]
    for args, message in cases:
        proc = _cli(*args)
        assert proc.returncode != 0, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert message in lines[0], lines[0]
        assert "Traceback" not in proc.stderr
    assert not (tmp / "x.utm").exists()


def test_show_prints_the_ir_and_the_mapping(mapped: dict) -> None:
    model, utm, _ = mapped["none"]
    runner = CliRunner()
    ir = runner.invoke(cli, ["show", str(model)], catch_exceptions=False).output
    assert ir.startswith("graph vgg_small input %input[1,16,16] T=4")
    assert "= LIF(" in ir
    text = runner.invoke(cli, ["show", str(utm)], catch_exceptions=False).output
    assert text.startswith("mapping vgg_small")
    assert " ENCODE " in text
