"""`uticompile prune`: the lottery-ticket runner with workload balancing, on tiny data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from uticompile.datasets import Dataset, load_dataset
from uticompile.errors import ConfigError
from uticompile.grouping import group_layout
from uticompile.ir import Graph
from uticompile.onnx_export import save_onnx
from uticompile.passes.balance import check_iso_balanced
from uticompile.passes.balance_layers import balance_masks
from uticompile.passes.lottery import LotteryEvent, PruneConfig, load_masks, run_lottery
from uticompile.passes.utilization import layer_stats, network_utilization


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


@pytest.fixture(scope="module")
def vgg(small_graphs: dict[str, Graph]) -> Graph:
    return small_graphs["vgg_small"]


def _config(**kw: Any) -> PruneConfig:
    base: dict[str, Any] = {"rounds": 1, "epochs": 1, "batch_size": 32, "pes": 16}
    base.update(kw)
    return PruneConfig(**base)


UTICKET = {"rounds": 2, "epochs": 2, "balance": "uticket"}


@pytest.fixture(scope="module")
def uticket_run(
    tmp_path_factory: pytest.TempPathFactory, vgg: Graph, tiny: Dataset
) -> tuple[Path, Path, Any]:
    tmp = tmp_path_factory.mktemp("uticket")
    result = run_lottery(vgg, tiny, _config(**UTICKET), tmp / "run")
    save_onnx(result.graph, tmp / "out.onnx")
    return tmp / "run", tmp / "out.onnx", result


def _initializers(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.fixture(scope="module")
def lth_out(tmp_path_factory: pytest.TempPathFactory, vgg: Graph, tiny: Dataset) -> Path:
    """The plain lottery ticket of the same seed and rounds as ``uticket_run``."""
    tmp = tmp_path_factory.mktemp("lth")
    result = run_lottery(vgg, tiny, _config(**{**UTICKET, "balance": "none"}), tmp / "run")
    save_onnx(result.graph, tmp / "out.onnx")
    return tmp / "out.onnx"


def test_uticket_balanced_in_output_initializers(
    uticket_run: tuple[Path, Path, Any], lth_out: Path
) -> None:
    """Iso-sparse from the ONNX initializers alone: spread <= 1 per group, LTH's counts."""
    _, out, result = uticket_run
    weights = {
        k: v for k, v in _initializers(out).items() if k.endswith(".weight") and v.ndim in (2, 4)
    }
    lth = {k: v for k, v in _initializers(lth_out).items() if k in weights}
    convs = [k for k, v in weights.items() if v.ndim == 4]
    assert len(convs) == 4
    for name, w in weights.items():
        per_filter = np.count_nonzero(w.reshape(w.shape[0], -1), axis=1)
        for g in range(0, w.shape[0], 16):
            block = per_filter[g : g + 16]
            assert block.max() - block.min() <= 1, (name, g, block)
        assert per_filter.sum() < w.size  # really pruned
        layer = name.removesuffix(".weight")
        assert per_filter.sum() == result.reports[-1]["layer_counts"][layer]["pruned"]
    # global magnitude pruning splits the same total over layers by each model's magnitudes
    total = sum(np.count_nonzero(w) for w in weights.values())
    assert total == sum(np.count_nonzero(w) for w in lth.values())
    for rep in result.reports:
        for counts in rep["layer_counts"].values():
            assert counts["pruned"] == counts["balanced"]
    final = result.reports[-1]
    assert final["round"] == 2
    assert final["utilization_weighted"] > 0.95


def test_ceil_targets_balance_exactly(uticket_run: tuple[Path, Path, Any], vgg: Graph) -> None:
    """The public code's ceil(mean) targets on the same pruned masks: every PE equal."""
    run, _, _ = uticket_run
    _, pruned = load_masks(run / "round_02" / "masks.npz")
    masks, _ = balance_masks(
        vgg,
        pruned,
        mode="uticket",
        n=16,
        grouping="sata",
        rng=np.random.default_rng(0),
        scope=list(pruned),
        targets="ceil",
    )
    stats = []
    for name, m in masks.items():
        per_filter = np.count_nonzero(m.reshape(m.shape[0], -1), axis=1)
        for g in range(0, m.shape[0], 16):
            block = per_filter[g : g + 16]
            assert (block == block[0]).all(), (name, g, block)
        assert per_filter.sum() >= np.count_nonzero(pruned[name])  # ceil only regrows
        stats.append(layer_stats(m, group_layout(m.shape, 16, "sata")))
        assert stats[-1].utilization == pytest.approx(1.0)
    weighted, unweighted = network_utilization(stats)
    assert weighted == pytest.approx(1.0)
    assert unweighted == pytest.approx(1.0)


def test_masks_shrink_except_balance_regrowth(uticket_run: tuple[Path, Path, Any]) -> None:
    run, _, result = uticket_run
    prev, _ = load_masks(run / "round_00" / "masks.npz")
    assert all(m.all() for m in prev.values())
    regrown_total = 0
    for r in (1, 2):
        masks, pruned = load_masks(run / f"round_{r:02d}" / "masks.npz")
        for name, m in masks.items():
            assert not (pruned[name] & ~prev[name]).any()  # magnitude pruning never revives
            revived = m & ~prev[name]
            added_by_balance = m & ~pruned[name]
            assert not (revived & ~added_by_balance).any()
            assert result.reports[r]["balance"][name]["regrown"] == int(added_by_balance.sum())
            regrown_total += int(revived.sum())
        prev = masks
    lines = (run / "report.jsonl").read_text().splitlines()
    assert [json.loads(x)["round"] for x in lines] == [0, 1, 2]
    assert all(
        (run / f"round_{r:02d}" / n).exists()
        for r in range(3)
        for n in ("done", "trained.onnx", "report.json")
    )


class _Kill(Exception):
    pass


def test_interrupted_run_resumes_to_identical_file(
    tmp_path: Path, uticket_run: tuple[Path, Path, Any], vgg: Graph, tiny: Dataset
) -> None:
    run = tmp_path / "run"

    def killer(e: LotteryEvent) -> None:
        if e.kind == "step" and e.round == 2 and e.step is not None and e.step.epoch == 2:
            raise _Kill

    with pytest.raises(_Kill):
        run_lottery(vgg, tiny, _config(**UTICKET), run, on_event=killer)
    assert (run / "round_02" / "train.ckpt").exists()  # mid-round state
    assert not (run / "round_02" / "done").exists()
    with pytest.raises(ConfigError, match="--resume"):
        run_lottery(vgg, tiny, _config(**UTICKET), run)
    with pytest.raises(ConfigError, match="other options"):
        run_lottery(vgg, tiny, _config(**{**UTICKET, "rate": 0.5}), run, resume=True)
    events: list[LotteryEvent] = []
    result = run_lottery(vgg, tiny, _config(**UTICKET), run, resume=True, on_event=events.append)
    save_onnx(result.graph, tmp_path / "out.onnx")
    assert (tmp_path / "out.onnx").read_bytes() == uticket_run[1].read_bytes()
    assert [e.resumed for e in events if e.kind == "round_end"] == [True, True, False]
    assert len((run / "report.jsonl").read_text().splitlines()) == 3


def test_lth_sparsity_schedule_and_same_seed_identical(
    tmp_path: Path, vgg: Graph, tiny: Dataset
) -> None:
    cfg = _config(rounds=3, balance="none")
    outs = []
    for i in range(2):
        result = run_lottery(vgg, tiny, cfg, tmp_path / f"run{i}")
        save_onnx(result.graph, tmp_path / f"out{i}.onnx")
        outs.append((tmp_path / f"out{i}.onnx").read_bytes())
        for k, rep in enumerate(result.reports):
            assert rep["sparsity"] == pytest.approx(1 - 0.75**k, abs=0.01)
            assert rep["balance"] == {}
    assert outs[0] == outs[1]
    w = _initializers(tmp_path / "out0.onnx")
    total = sum(v.size for k, v in w.items() if k.endswith(".weight") and v.ndim in (2, 4))
    nz = sum(
        np.count_nonzero(v) for k, v in w.items() if k.endswith(".weight") and v.ndim in (2, 4)
    )
    assert 1 - nz / total == pytest.approx(1 - 0.75**3, abs=0.01)


def test_paper_compat_scope_and_et_ticket(tmp_path: Path, vgg: Graph, tiny: Dataset) -> None:
    cfg = _config(balance="uticket", pes=4, paper_compat=True, search_timesteps=2)
    result = run_lottery(vgg, tiny, cfg, tmp_path / "run")
    final = result.reports[-1]
    assert set(final["utilization"]) == {"conv2", "conv3", "conv4"}
    assert set(final["balance"]) == {"conv2", "conv3", "conv4"}
    assert final["utilization_network"] == final["utilization_unweighted"]
    masks, pruned = load_masks(tmp_path / "run" / "round_01" / "masks.npz")
    for name in ("conv1", "fc1"):
        np.testing.assert_array_equal(masks[name], pruned[name])
    assert [r["timesteps"] for r in result.reports] == [2, 4]
    assert result.graph.timesteps == 4
    assert result.timing is not None
    assert result.timing["measured_ratio"] > 0
    assert "estimate" in result.timing["note"]


@pytest.mark.parametrize(
    ("mode", "extra"),
    [
        ("cycles", {"rewind": "lr", "grouping": "systolic"}),
        ("cycles", {}),
        ("magnitude", {"epochs": 2, "rewind_epoch": 1, "pes": 8}),
    ],
)
def test_other_balance_modes_run(
    tmp_path: Path, vgg: Graph, tiny: Dataset, mode: str, extra: dict[str, Any]
) -> None:
    cfg = _config(balance=mode, **extra)
    result = run_lottery(vgg, tiny, cfg, tmp_path / "run")
    assert (tmp_path / "run" / "rewind.onnx").exists()
    masks, pruned = load_masks(tmp_path / "run" / "round_01" / "masks.npz")
    g = result.graph
    for node in g.weight_nodes():
        w = g.params[node.inputs[1]]
        assert not (w[~masks[node.name]] != 0).any()  # pruned weights exactly zero
        layout = group_layout(w.shape, cfg.pes, cfg.grouping)
        check_iso_balanced(masks[node.name], pruned[node.name], layout)
        counts = result.reports[-1]["layer_counts"][node.name]
        assert counts["pruned"] == counts["balanced"] == int(masks[node.name].sum())
    assert 0.2 < result.reports[-1]["sparsity"] < 0.3


@pytest.mark.parametrize(
    "kw",
    [
        {"rate": 0.0},
        {"rate": 1.0},
        {"rounds": -1},
        {"pes": 0},
        {"epochs": 2, "rewind_epoch": 3},
        {"epochs": 2, "dense_epochs": 0, "rewind_epoch": 1},
        {"balance": "greedy"},
        {"grouping": "diagonal"},
        {"rewind": "init"},
        {"search_timesteps": 0},
        {"batch_size": 0},
        {"seed": -1},
    ],
)
def test_impossible_options(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        _config(**kw)


def test_cli_prune_json(
    tmp_path: Path, vgg: Graph, tiny: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uticompile.datasets as datasets
    from uticompile.cli import cli

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: tiny)
    save_onnx(vgg, tmp_path / "m.onnx")
    args = ["prune", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "p.onnx"), "--rounds", "1",
            "--epochs", "1", "--batch-size", "32", "--pes", "8", "--dense-epochs", "0",
            "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [r["round"] for r in payload["rounds"]] == [0, 1]
    assert payload["rounds"][0]["epochs"] == 0
    # iso targets: spread <= 1 weight per group (exactly 1.0 needs ceil targets: --paper-compat)
    assert payload["rounds"][1]["utilization_weighted"] > 0.99
    for counts in payload["rounds"][1]["layer_counts"].values():
        assert counts["pruned"] == counts["balanced"]
    assert (tmp_path / "p.run" / "report.jsonl").exists()
    assert (tmp_path / "p.onnx").exists()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0
    assert "--resume" in str(again.exception)
    text = CliRunner().invoke(cli, [*args[:-1], "--resume"])
    assert text.exit_code == 0, text.output
    assert "sparsity" in text.output
    assert "wrote" in text.output
