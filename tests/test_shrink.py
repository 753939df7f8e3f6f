"""``uticompile shrink``: stages, resume, costs, each pass alone, and what follows (prune, map)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from uticompile.cli import main
from uticompile.cli.options import flag_message
from uticompile.datasets import Dataset, load_dataset
from uticompile.errors import ConfigError
from uticompile.grouping import group_layout
from uticompile.ir import Graph
from uticompile.onnx_export import save_onnx
from uticompile.onnx_import import read_graph
from uticompile.passes.lottery import PruneConfig, run_lottery
from uticompile.passes.timestep_schedule import stage_stop
from uticompile.shrink import ShrinkConfig, ShrinkEvent, ShrinkPaths, run_shrink
from uticompile.shrink import runner as shrink_runner


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    d = load_dataset("digits", size=16)
    return dataclasses.replace(
        d, x_train=d.x_train[:96], y_train=d.y_train[:96], x_test=d.x_test[:32],
        y_test=d.y_test[:32],
    )  # fmt: skip


def _config(**kw: Any) -> ShrinkConfig:
    base: dict[str, Any] = {"epochs": 2, "samples": 32, "timesteps": (4, 2, 1),
                            "run_samples": 8, "batch_size": 32, "variance": 0.99,
                            "max_stage_epochs": 3, "max_drop": 0.0}  # fmt: skip
    base.update(kw)
    return ShrinkConfig(**base)


@pytest.fixture(scope="module")
def full_run(
    tmp_path_factory: pytest.TempPathFactory, small_graphs: dict[str, Graph], tiny: Dataset
) -> tuple[Path, Any]:
    run = tmp_path_factory.mktemp("shrink") / "run"
    return run, run_shrink(small_graphs["vgg_small"], tiny, _config(), run)


@pytest.fixture(scope="module")
def capped_run(
    tmp_path_factory: pytest.TempPathFactory, small_graphs: dict[str, Graph], tiny: Dataset
) -> tuple[Path, Any]:
    """Every timestep stage trains to its cap (the stop rule never fires): the tiny spatial
    model's accuracy is so low that stages recover at once, and resuming a stage from a
    mid-stage checkpoint needs a stage with more than one epoch."""
    run = tmp_path_factory.mktemp("shrink-capped") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(shrink_runner, "stage_stop", lambda *a: None)
        return run, run_shrink(small_graphs["vgg_small"], tiny, _config(), run)


def _tree(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


def test_report_has_spectrum_widths_accuracy_per_t_and_costs(full_run: tuple[Path, Any]) -> None:
    run, result = full_run
    s = result.summary
    layers = s["spatial"]["layers"]
    assert [x["layer"] for x in layers] == ["lif1", "lif2", "lif3", "lif4"]
    for x in layers:
        assert len(x["cumulative"]) == x["channels"]
        assert x["cumulative"][-1] == 1.0
        assert 1 <= x["width"] <= x["channels"]
        assert x["cumulative"][x["width"] - 1] >= 0.99
        assert x["width"] == 1 or x["cumulative"][x["width"] - 2] < 0.99
    spatial = s["spatial"]["report"]
    assert spatial["widths"]["conv2"] == layers[1]["width"]
    assert [r["timesteps"] for r in s["temporal"]["stages"]] == [4, 2, 1]
    assert s["temporal"]["stages"][0]["epochs"] == 0  # T=4 is the model's own T: nothing to train
    assert result.graph.timesteps == s["temporal"]["chosen"] == s["final"]["timesteps"]
    assert result.timesteps == result.graph.timesteps
    assert result.accuracy == s["final"]["accuracy"]
    assert result.compression == s["final"]["compression"] > 1.0
    assert result.widths == spatial["widths"]
    assert s["final"]["compression"] == s["original"]["parameters"] / spatial["parameters"]
    assert json.loads((run / "report.json").read_text()) == json.loads(json.dumps(s))


def test_latency_at_each_t_is_t_times_the_cycles_per_step_run_measures(
    full_run: tuple[Path, Any], tiny: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uticompile.datasets as datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: tiny)
    run, result = full_run
    for stage in result.summary["temporal"]["stages"]:
        T, cost = stage["timesteps"], stage["cost"]
        mapped = tmp_path / f"T{T}.map"
        model = ShrinkPaths(run).temporal(T).model
        args = ["map", str(model), "--pes", "16", "--placement", "contiguous", "-o", str(mapped)]
        assert main(args) == 0
        out = CliRunner().invoke(main_cli(), ["run", str(mapped), "--samples", "8", "--json"])
        assert out.exit_code == 0, out.output
        measured = json.loads(out.output[out.output.index("{") :])
        per_step = measured["latency"] / measured["samples"] / T  # what run measures per step
        assert cost["latency"] == pytest.approx(T * per_step, rel=1e-12)
        assert cost["cycles_per_step"] == pytest.approx(per_step, rel=1e-12)
        assert cost["latency_floor"] <= cost["latency"]


def main_cli() -> Any:
    from uticompile.cli import cli

    return cli


class Kill(Exception):
    pass


def killer(stage: str, epoch: int | None = None, kind: str = "step") -> Any:
    """Raise in ``stage`` at the first event of ``kind`` (a step: in its ``epoch``)."""

    def on_event(e: ShrinkEvent) -> None:
        at = kind != "step" or (e.step is not None and e.step.epoch == epoch)
        if e.kind == kind and e.stage == stage and at:
            raise Kill

    return on_event


def test_interrupted_run_resumes_to_identical_files(
    tmp_path: Path,
    capped_run: tuple[Path, Any],
    small_graphs: dict[str, Graph],
    tiny: Dataset,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shrink_runner, "stage_stop", lambda *a: None)  # as capped_run
    run = tmp_path / "run"
    with pytest.raises(Kill):  # mid-training of the spatial stage, before any checkpoint
        run_shrink(small_graphs["vgg_small"], tiny, _config(), run, on_event=killer("spatial", 1))
    with pytest.raises(ConfigError, match="resume") as refused:
        run_shrink(small_graphs["vgg_small"], tiny, _config(), run)
    assert refused.value.option == "resume"  # the CLI names it --resume
    with pytest.raises(Kill):  # in T=2's second epoch: resumes from its epoch-1 checkpoint
        run_shrink(small_graphs["vgg_small"], tiny, _config(), run, resume=True,
                   on_event=killer("T2", 2))  # fmt: skip
    assert (run / "T2" / "train.ckpt").exists()
    assert len(json.loads((run / "T2" / "curve.json").read_text())) == 1
    events: list[ShrinkEvent] = []
    result = run_shrink(small_graphs["vgg_small"], tiny, _config(), run, resume=True,
                        on_event=events.append)  # fmt: skip
    reused = {e.stage for e in events if e.kind == "stage_end" and e.resumed}
    assert reused == {"original", "spatial", "T4"}
    ref_run, ref = capped_run
    assert ref.summary["temporal"]["stages"][1]["epochs"] == 3  # T2 trained to its cap
    assert _tree(run) == _tree(ref_run)  # models, spectra, reports: byte for byte
    assert result.graph.equals(ref.graph)
    with pytest.raises(ConfigError, match="other options"):
        run_shrink(small_graphs["vgg_small"], tiny, _config(epochs=1), run, resume=True)


def test_a_stage_interrupted_after_it_stopped_early_resumes_to_identical_files(
    tmp_path: Path, full_run: tuple[Path, Any], small_graphs: dict[str, Graph], tiny: Dataset
) -> None:
    """A stopping epoch writes no checkpoint: the resumed stage redoes it and stops again."""
    ref_run, ref = full_run
    t2 = ref.summary["temporal"]["stages"][1]
    assert t2["stage"] == "T2"
    assert t2["epochs"] < t2["max_epochs"]  # it did stop early
    run = tmp_path / "run"
    with pytest.raises(Kill):  # costing T2: trained and saved, its report not yet written
        run_shrink(
            small_graphs["vgg_small"], tiny, _config(), run, on_event=killer("T2", kind="cost")
        )
    assert (run / "T2" / "curve.json").exists()
    assert not (run / "T2" / "done").exists()
    result = run_shrink(small_graphs["vgg_small"], tiny, _config(), run, resume=True)
    assert _tree(run) == _tree(ref_run)
    assert result.graph.equals(ref.graph)


def test_timestep_stages_train_until_recovered_and_keep_their_best_epoch(
    full_run: tuple[Path, Any], capped_run: tuple[Path, Any]
) -> None:
    for (_, result), how in ((full_run, "rule"), (capped_run, "cap")):
        t = result.summary["temporal"]
        assert t["validation_images"] == round(0.1 * 96)
        ref = t["reference_validation_accuracy"]
        assert ref == result.summary["spatial"]["report"]["validation_accuracy"]
        for stage in t["stages"][1:]:  # T=4 is the model's own T: not trained
            curve = stage["curve"]
            assert stage["max_epochs"] == 3
            assert len(curve) == stage["epochs"] <= 3
            assert [c["epoch"] for c in curve] == list(range(1, stage["epochs"] + 1))
            val = [c["validation_accuracy"] for c in curve]
            best = stage["best_epoch"]
            assert val[best - 1] == max(val)
            assert max(val) not in val[: best - 1]
            # the kept weights are the best epoch's: the saved model measures the same
            assert stage["validation_accuracy"] == val[best - 1]
            if how == "cap":
                assert (stage["epochs"], stage["stopped"]) == (3, "epoch cap")
            else:  # max_drop 0: the rule stops at the first epoch as good as the reference
                assert stage["stopped"] == (stage_stop(val, ref, 0.0, 2) or "epoch cap")
                assert all(stage_stop(val[:k], ref, 0.0, 2) is None for k in range(1, len(val)))
        assert t["stages"][0]["epochs"] == 0
        assert "curve" not in t["stages"][0]


def test_each_pass_alone(tmp_path: Path, small_graphs: dict[str, Graph], tiny: Dataset) -> None:
    g = small_graphs["vgg_small"]
    spatial = run_shrink(g, tiny, _config(timesteps=None, epochs=1), tmp_path / "s")
    assert spatial.summary["temporal"] is None
    assert spatial.graph.timesteps == g.timesteps
    assert not (tmp_path / "s" / "T4").exists()
    temporal = run_shrink(g, tiny, _config(variance=None, timesteps=(2,), epochs=1), tmp_path / "t")
    assert temporal.summary["spatial"] is None
    assert temporal.graph.timesteps == 2
    assert temporal.summary["final"]["compression"] == 1.0
    assert [n.name for n in temporal.graph.nodes] == [n.name for n in g.nodes]
    assert all(temporal.graph.params[k].shape == v.shape for k, v in g.params.items())


def test_shrunk_model_is_pruned_by_uticket_and_mapped_with_its_own_t(
    tmp_path: Path, full_run: tuple[Path, Any], tiny: Dataset
) -> None:
    _, result = full_run
    prune = PruneConfig(rounds=1, epochs=1, batch_size=32, dense_epochs=0, balance="uticket")
    pruned = run_lottery(result.graph, tiny, prune, tmp_path / "prune")
    assert pruned.graph.timesteps == result.graph.timesteps
    for name, w in pruned.graph.params.items():  # iso-sparse u-Ticket: spread <= 1 per group
        if name.endswith(".weight") and w.ndim in (2, 4):
            layout = group_layout(w.shape, prune.pes, prune.grouping)
            loads = np.where(layout.active, layout.workloads(w != 0), -1)
            lo = np.where(layout.active, loads, np.iinfo(np.int64).max).min(axis=1)
            assert (loads.max(axis=1) - lo <= 1).all(), name
    assert pruned.reports[-1]["sparsity"] > 0.2
    save_onnx(pruned.graph, tmp_path / "p.onnx")
    assert read_graph(tmp_path / "p.onnx").timesteps == result.graph.timesteps


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variance", "0"], "--variance must be in (0, 1]"),
        (["--variance", "1.5"], "--variance must be in (0, 1]"),
        (["--timesteps", "2,3"], "strictly decreasing"),
        (["--timesteps", "3,0"], ">= 1"),
        (["--timesteps", "8,4"], "above the model's T=4"),
        (["--max-drop", "-1"], "--max-drop"),
        (["--epochs", "0"], "--epochs"),
        (["--samples", "1"], "--samples"),
        (["--max-stage-epochs", "0"], "--max-stage-epochs must be >= 1"),
        (["--patience", "0"], "--patience must be >= 1"),
        (["--validation-fraction", "0.9"], "--validation-fraction must be in (0, 0.5]"),
    ],
)
def test_impossible_options_are_one_line_errors(
    tmp_path: Path, small_graphs: dict[str, Graph], capsys: pytest.CaptureFixture[str],
    args: list[str], message: str,
) -> None:  # fmt: skip
    save_onnx(small_graphs["vgg_small"], tmp_path / "m.onnx")
    code = main(["shrink", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "s.onnx"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "s.run").exists()  # refused before any work


def test_cli_shrink_json_and_resume(
    tmp_path: Path, small_graphs: dict[str, Graph], tiny: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uticompile.shrink.api as api

    monkeypatch.setattr(api, "load_dataset_for", lambda *a, **k: tiny)
    save_onnx(small_graphs["vgg_small"], tmp_path / "m.onnx")
    args = ["shrink", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "s.onnx"), "--timesteps",
            "4,2", "--epochs", "1", "--samples", "16", "--run-samples", "4", "--batch-size",
            "32"]  # fmt: skip
    out = CliRunner().invoke(main_cli(), [*args, "--json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["spatial"] is None  # only --timesteps given: the temporal pass alone
    assert payload["run_dir"] == str(tmp_path / "s.run")
    again = CliRunner().invoke(main_cli(), args)
    assert again.exit_code != 0
    assert "--resume" in flag_message(again.exception)
    text = CliRunner().invoke(main_cli(), [*args, "--resume"])
    assert text.exit_code == 0, text.output
    assert "kept T=" in text.output
    assert "(reused)" in text.output


def test_results_generator_renders_a_shrink_report(
    full_run: tuple[Path, Any], tmp_path: Path
) -> None:
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "docs" / "results" / "spatio_temporal.py"
    spec = importlib.util.spec_from_file_location("spatio_temporal", script)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, result = full_run
    (tmp_path / "tiny.shrunk.json").write_text(json.dumps(result.summary))
    md = module.render(tmp_path, ["tiny", "absent"])
    assert "## tiny on digits" in md
    assert "| lif1 |" in md
    assert "| T1 | 1 |" in md
    assert "### How the timestep stages trained" in md  # epochs used, why stopped, the curve
    t2 = result.summary["temporal"]["stages"][1]
    assert f"| T2 | {t2['epochs']} of 3 | {t2['stopped']} | {t2['best_epoch']} |" in md
    old = json.loads(json.dumps(result.summary))  # a report from before stages recovered
    del old["temporal"]["reference_validation_accuracy"]
    (tmp_path / "old.shrunk.json").write_text(json.dumps(old))
    assert "were made before stages trained until accuracy recovered" in module.render(
        tmp_path, ["old"]
    )
    assert "Not measured (no shrink report" in md  # the absent model
    assert "10-14x" in md


def test_residual_net_shrinks_end_to_end(
    tmp_path: Path, small_graphs: dict[str, Graph], tiny: Dataset
) -> None:
    g = small_graphs["resnet_small"]
    result = run_shrink(g, tiny, _config(timesteps=None, epochs=1, variance=0.9), tmp_path / "r")
    small = result.graph
    shapes = small.shapes()
    add = next(n for n in small.nodes if n.op == "Add")
    assert shapes[add.inputs[0]] == shapes[add.inputs[1]]  # joined channels share one width
    assert result.compression > 1.0
    save_onnx(small, tmp_path / "r.onnx")
    assert read_graph(tmp_path / "r.onnx").equals(small)
