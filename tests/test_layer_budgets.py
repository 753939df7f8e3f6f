"""Per-layer iso-sparsity: variants pruned to a baseline's per-layer counts, and cycle rates."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from uticompile.datasets import Dataset, load_dataset
from uticompile.errors import ConfigError
from uticompile.grouping import group_layout
from uticompile.ir import Graph
from uticompile.onnx_export import save_onnx
from uticompile.passes.balance import check_iso_balanced
from uticompile.passes.lottery import (
    PruneConfig,
    budgets_from_reports,
    load_masks,
    read_budgets,
    run_lottery,
)
from uticompile.passes.magnitude_prune import layer_magnitude_prune


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    d = load_dataset("digits", size=16)
    return dataclasses.replace(
        d,
        x_train=d.x_train[:96],
        y_train=d.y_train[:96],
        x_test=d.x_test[:64],
        y_test=d.y_test[:64],
    )


def _config(**kw: Any) -> PruneConfig:
    base: dict[str, Any] = {"rounds": 2, "epochs": 1, "batch_size": 32, "pes": 16, "rate": 0.5}
    return PruneConfig(**{**base, **kw})


def test_layer_prune_keeps_the_largest_survivors_to_the_exact_count() -> None:
    rng = np.random.default_rng(1)
    weights = {"a": rng.normal(size=(8, 4, 3, 3)), "b": rng.normal(size=(10, 20)), "c": np.ones(5)}
    masks = {k: rng.random(w.shape) < 0.6 for k, w in weights.items()}
    before = {k: m.copy() for k, m in masks.items()}
    counts = {"a": 17, "b": 0}
    out = layer_magnitude_prune(weights, masks, counts)
    assert int(out["a"].sum()) == 17
    assert int(out["b"].sum()) == 0
    np.testing.assert_array_equal(out["c"], masks["c"])  # no budget: survivors kept
    for k in weights:
        assert not (out[k] & ~masks[k]).any()  # nothing revived
        np.testing.assert_array_equal(masks[k], before[k])
    a = np.abs(weights["a"])
    assert a[masks["a"] & ~out["a"]].max() <= a[out["a"]].min()
    with pytest.raises(ConfigError, match="layer a"):
        layer_magnitude_prune(weights, masks, {"a": int(masks["a"].sum()) + 1})
    with pytest.raises(ConfigError, match="layer b"):
        layer_magnitude_prune(weights, masks, {"b": -1})


def test_budgets_are_validated() -> None:
    with pytest.raises(ConfigError, match="rounds"):
        _config(layer_budgets=((("x", 1),),))
    with pytest.raises(ConfigError, match="negative"):
        _config(layer_budgets=((("x", 1),), (("x", -1),)))
    with pytest.raises(ConfigError, match="cycle_rates"):
        _config(cycle_rates="oracle")


@pytest.mark.parametrize(("balance", "rates"), [("uticket", "rewind"), ("cycles", "previous")])
def test_variant_holds_the_baselines_count_in_every_layer_and_round(
    tmp_path: Path, small_graphs: dict[str, Graph], tiny: Dataset, balance: str, rates: str
) -> None:
    vgg = small_graphs["vgg_small"]
    base = run_lottery(vgg, tiny, _config(balance="none"), tmp_path / "none")
    budgets = budgets_from_reports(base.reports)
    assert budgets == read_budgets(tmp_path / "none", 2)
    free = run_lottery(vgg, tiny, _config(balance=balance, cycle_rates=rates), tmp_path / "free")
    cfg = _config(balance=balance, cycle_rates=rates, layer_budgets=budgets)
    matched = run_lottery(vgg, tiny, cfg, tmp_path / "matched")
    for r in (1, 2):
        want = base.reports[r]["layer_counts"]
        got = matched.reports[r]["layer_counts"]
        assert {n: c["balanced"] for n, c in got.items()} == {
            n: c["balanced"] for n, c in want.items()
        }
        assert all(c["pruned"] == c["balanced"] for c in got.values())
        masks, pruned = load_masks(tmp_path / "matched" / f"round_{r:02d}" / "masks.npz")
        for node in vgg.weight_nodes():
            shape = vgg.params[node.inputs[1]].shape
            check_iso_balanced(masks[node.name], pruned[node.name], group_layout(shape, 16, "sata"))
    # global pruning alone keeps only the total equal (the same total, other layer split)
    totals = [sum(c["balanced"] for c in rep["layer_counts"].values()) for rep in free.reports]
    assert totals == [
        sum(c["balanced"] for c in rep["layer_counts"].values()) for rep in base.reports
    ]


def test_read_budgets_refuses_an_unfinished_baseline(tmp_path: Path) -> None:
    (tmp_path / "run" / "round_00").mkdir(parents=True)
    with pytest.raises(ConfigError, match="round 0 of the baseline is not finished"):
        read_budgets(tmp_path / "run", 2)


def test_cli_layer_counts_from(
    tmp_path: Path, small_graphs: dict[str, Graph], tiny: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uticompile.datasets as datasets
    from uticompile.cli import cli

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: tiny)
    save_onnx(small_graphs["vgg_small"], tmp_path / "m.onnx")
    common = ["--rounds", "1", "--epochs", "1", "--batch-size", "32", "--rate", "0.5", "--json"]
    run = CliRunner().invoke(
        cli, ["prune", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "b.onnx"), "--balance",
              "none", *common])  # fmt: skip
    assert run.exit_code == 0, run.output
    args = ["prune", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "u.onnx"), "--balance",
            "cycles", "--cycle-rates", "previous", "--layer-counts-from", str(tmp_path / "b.run"),
            *common]  # fmt: skip
    matched = CliRunner().invoke(cli, args)
    assert matched.exit_code == 0, matched.output
    got = json.loads(matched.output)["rounds"][1]["layer_counts"]
    want = json.loads(run.output)["rounds"][1]["layer_counts"]
    assert {n: c["balanced"] for n, c in got.items()} == {n: c["balanced"] for n, c in want.items()}
    bad = CliRunner().invoke(
        cli,
        [*args[: -len(common)], "--rounds", "3", "--epochs", "1", "-o", str(tmp_path / "x.onnx")],
    )
    assert isinstance(bad.exception, ConfigError)  # the entry point makes it exit 2, one line
    assert "round 2 of the baseline is not finished" in str(bad.exception)
