"""Lottery tickets from the initialization and the ET ticket's automatic search T, in the runner."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from uticompile.datasets import Dataset, load_dataset
from uticompile.errors import ConfigError
from uticompile.ir import Graph
from uticompile.onnx_import import read_graph
from uticompile.passes.lottery import PruneConfig, criterion_logits, run_lottery, search_method


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
    base: dict[str, Any] = {"rounds": 2, "epochs": 1, "batch_size": 32, "pes": 16}
    base.update(kw)
    return PruneConfig(**base)


def test_first_t_steps_are_the_t_step_network(
    small_graphs: dict[str, Graph], tiny: Dataset
) -> None:
    """Why the criterion may slice one run at T: inference is causal in time."""
    g = small_graphs["resnet_small"]
    z = criterion_logits(g, tiny, samples=32)
    assert z.shape == (4, 32, 10)
    for t in (1, 2, 3):
        zt = criterion_logits(g.with_timesteps(t), tiny, samples=32)
        np.testing.assert_array_equal(zt, z[:t])


def test_auto_search_records_its_choice_and_resumes_identically(
    tmp_path: Path, small_graphs: dict[str, Graph], tiny: Dataset
) -> None:
    g = small_graphs["vgg_small"]
    cfg = _config(search_timesteps="auto", dense_epochs=3)
    result = run_lottery(g, tiny, cfg, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "timesteps.json").read_text())
    assert record["after_epoch"] == 2
    assert record["full_timesteps"] == 4
    assert set(record["kl"]) == {"2", "3"}
    t = record["timesteps"]
    assert t in (2, 3, 4)
    assert result.search_timesteps == record
    # the dense round and the final round run at the full T, the search round at t
    assert [r["timesteps"] for r in result.reports] == [4, t, 4]
    assert result.graph.timesteps == 4
    secs = result.summary()["search_seconds"]
    assert secs["search"] == result.reports[1]["train_seconds"]
    assert secs["cpu"]["search"] == result.reports[1]["train_cpu_seconds"] > 0
    # the choice is re-read on resume, so a partly redone run ends with the same bytes
    final = (tmp_path / "run" / "round_02" / "trained.onnx").read_bytes()
    shutil.rmtree(tmp_path / "run" / "round_01")
    shutil.rmtree(tmp_path / "run" / "round_02")
    again = run_lottery(g, tiny, cfg, tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "round_02" / "trained.onnx").read_bytes() == final
    assert [r["timesteps"] for r in again.reports] == [4, t, 4]


def test_auto_with_a_short_dense_round_decides_on_its_model(
    tmp_path: Path, small_graphs: dict[str, Graph], tiny: Dataset
) -> None:
    cfg = _config(search_timesteps="auto", dense_epochs=0, rounds=1, search_candidates=(1, 2, 3))
    result = run_lottery(small_graphs["vgg_small"], tiny, cfg, tmp_path / "run")
    assert result.search_timesteps is not None
    assert result.search_timesteps["after_epoch"] == 0
    assert set(result.search_timesteps["kl"]) == {"1", "2", "3"}
    assert [r["timesteps"] for r in result.reports] == [4, 4]  # one round: it is the final one


def test_untrained_start_is_a_lottery_ticket_and_rewinds_to_init(
    tmp_path: Path, small_graphs: dict[str, Graph], tiny: Dataset
) -> None:
    g = small_graphs["vgg_small"]
    assert g.trained_epochs == 0
    result = run_lottery(g, tiny, _config(rounds=1, epochs=2), tmp_path / "run")
    assert result.method["kind"] == "lottery-ticket"
    rewind = read_graph(tmp_path / "run" / "rewind.onnx")
    assert rewind.equals(g)  # the rewind point is the initialization
    assert rewind.trained_epochs == 0
    dense = read_graph(tmp_path / "run" / "round_00" / "trained.onnx")
    assert dense.trained_epochs == 2
    assert not dense.equals(g)
    # late rewinding: the snapshot of epoch 1 of the dense round, and it says so
    late = run_lottery(g, tiny, _config(rounds=1, epochs=2, rewind_epoch=1), tmp_path / "late")
    assert late.method["kind"] == "lottery-ticket-late-rewind"
    assert read_graph(tmp_path / "late" / "rewind.onnx").trained_epochs == 1


@pytest.mark.parametrize(
    ("trained", "kw", "kind"),
    [
        (5, {}, "fine-tuning"),
        (None, {}, "fine-tuning"),
        (5, {"rewind_epoch": 1}, "lottery-ticket-late-rewind"),
        (0, {"dense_epochs": 0}, "pruning-at-init"),
        (0, {"rewind": "lr"}, "lr-rewinding"),
        (0, {}, "lottery-ticket"),
    ],
)
def test_search_method_labels(
    small_graphs: dict[str, Graph], trained: int | None, kw: dict[str, Any], kind: str
) -> None:
    g = small_graphs["vgg_small"].copy()
    g.trained_epochs = trained
    method = search_method(_config(epochs=2, **kw), g)
    assert method["kind"] == kind
    if kind == "fine-tuning":
        assert "not a lottery ticket" in method["text"]


@pytest.mark.parametrize(
    "kw",
    [
        {"search_timesteps": "sometimes"},
        {"search_timesteps": "auto", "search_threshold": 0.0},
        {"search_timesteps": "auto", "search_threshold": 1.5},
        {"search_timesteps": "auto", "search_candidates": ()},
        {"search_timesteps": "auto", "search_candidates": (0, 2)},
    ],
)
def test_bad_search_options(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        _config(**kw)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--search-timesteps", "sometimes"], "--search-timesteps takes an integer or 'auto'"),
        (["--search-candidates", "2,x"], "--search-candidates takes comma-separated integers"),
        (["--search-timesteps", "auto", "--search-threshold", "2"], "--search-threshold"),
    ],
)
def test_cli_rejects_bad_search_options_in_one_line(
    tmp_path: Path,
    small_graphs: dict[str, Graph],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    from uticompile.cli import main
    from uticompile.onnx_export import save_onnx

    save_onnx(small_graphs["vgg_small"], tmp_path / "m.onnx")
    code = main(["prune", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "p.onnx"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
