"""``compare --spatio-temporal``: LTH, u-Ticket, spatio-temporal and both combined in one table."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from uticompile.cli import main
from uticompile.compare import CompareConfig, CompareEvent, run_compare
from uticompile.errors import ConfigError
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.onnx_export import save_onnx

CONFIG = CompareConfig(
    dataset="digits",
    pes=(16,),
    rounds=1,
    epochs=1,
    samples=8,
    train_limit=96,
    spatio_temporal=True,
    variance=0.99,
    timesteps=(4, 2),
    pca_samples=32,
)
COLUMNS = {"parameters", "nonzeros", "timesteps", "accuracy", "latency", "latency_floor",
           "energy_pj"}  # fmt: skip


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One comparison with the spatio-temporal variants, run in this process."""
    root = tmp_path_factory.mktemp("st-compare")
    model = root / "m.onnx"
    save_onnx(build_model("vgg_small", ModelSpec((1, 16, 16), 10)), model)
    events: list[CompareEvent] = []
    result = run_compare(model, CONFIG, root / "out", on_event=events.append)
    json1 = (root / "out" / "results.json").read_text()
    return {"root": root, "model": model, "result": result, "events": events, "json1": json1}


def test_combined_table_has_every_variant(serial: dict[str, Any]) -> None:
    tmp_path, model, result, events = (serial[k] for k in ("root", "model", "result", "events"))
    table = result.results["combined"]
    assert set(table) == {"none", "uticket", "spatio-temporal", "spatio-temporal+uticket"}
    for row in table.values():
        assert set(row) >= COLUMNS
        assert 0 < row["latency_floor"] <= row["latency"]
    st, stu, lth = table["spatio-temporal"], table["spatio-temporal+uticket"], table["none"]
    assert st["parameters"] < lth["parameters"]  # PCA widths at 0.99 drop channels
    assert st["nonzeros"] == st["parameters"]
    assert stu["parameters"] == st["parameters"]
    assert stu["nonzeros"] < st["nonzeros"]  # then pruned unstructured
    assert stu["timesteps"] == st["timesteps"] in (4, 2)
    assert lth["timesteps"] == 4
    assert any(e.kind == "shrink" for e in events)
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Spatio-temporal pruning with and without u-Ticket" in md
    assert "| spatio-temporal+uticket |" in md
    summary = result.summary()
    assert summary["combined"] == table
    again: list[CompareEvent] = []
    run_compare(model, CONFIG, tmp_path / "out", on_event=again.append)  # everything reused
    assert not any(e.kind == "shrink" and e.shrink and e.shrink.kind == "step" for e in again)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["combined"] == table


@pytest.mark.parametrize(
    "kw",
    [
        {"variance": 0.0},
        {"timesteps": (2, 4)},
        {"timesteps": (0,)},
        {"max_drop": -1.0},
        {"pca_samples": 1},
    ],
)
def test_spatio_temporal_options_are_checked(kw: dict) -> None:
    base = {"spatio_temporal": True}
    with pytest.raises(ConfigError):
        CompareConfig(**base, **kw)
    CompareConfig(**kw)  # without the variant they are not used


def test_cli_refuses_an_increasing_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.onnx"
    save_onnx(build_model("vgg_small", ModelSpec((1, 16, 16), 10)), model)
    code = main(["compare", str(model), "--spatio-temporal", "--timesteps", "2,3", "-o",
                 str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "strictly decreasing" in err
    assert err.count("\n") == 1


def test_planned_jobs_in_any_order_give_the_serial_results(
    serial: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--plan`` with ``--spatio-temporal``: the prune jobs and one shrink-then-u-Ticket job,
    run separately in reverse order, then ``compare`` collects: the same results.json."""
    out = serial["root"] / "planned"
    argv = ["compare", str(serial["model"]), "--dataset", "digits", "--pes", "16", "--rounds",
            "1", "--epochs", "1", "--samples", "8", "--train-limit", "96", "--spatio-temporal",
            "--variance", "0.99", "--timesteps", "4,2", "--pca-samples", "32",
            "-o", str(out)]  # fmt: skip
    capsys.readouterr()
    assert main([*argv, "--plan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("uticompile prune ") for line in lines[:2])
    shrink, prune = lines[2].split(" && ")
    assert shrink.startswith("uticompile shrink ")
    assert prune.startswith("uticompile prune ")
    assert not out.exists()  # planning runs nothing
    for line in reversed(lines):
        for job in line.split(" && "):
            assert main(shlex.split(job)[1:]) == 0
    capsys.readouterr()
    trained = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/trained.onnx")}
    assert any("spatio-temporal+uticket" in p.as_posix() for p in trained)
    assert any("/T2/" in p.as_posix() for p in trained)
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in trained} == trained  # collected, not retrained
    assert (out / "results.json").read_text() == serial["json1"]
