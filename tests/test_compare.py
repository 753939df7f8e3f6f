"""``uticompile compare``: a tiny end-to-end comparison, its reuse, its options and its output."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from uticompile.cli import main
from uticompile.cli.options import flag_message
from uticompile.compare import CompareConfig, CompareEvent, run_compare
from uticompile.compare.tables import PLOTS_SKIPPED
from uticompile.errors import ConfigError
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.onnx_export import save_onnx

PNGS = ("fig6_layers.png", "fig7a_energy.png", "fig7b_energy_vs_sparsity.png", "table3_pes.png")
CONFIG = CompareConfig(
    dataset="digits",
    pes=(4, 16),
    balance=("none", "uticket"),
    rounds=2,
    epochs=1,
    samples=20,
    train_limit=128,
)


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One compare run and a second one on the same directory, with their event streams."""
    root = tmp_path_factory.mktemp("compare")
    model = root / "m.onnx"
    save_onnx(build_model("vgg_small", ModelSpec((1, 16, 16), 10)), model)
    first: list[CompareEvent] = []
    second: list[CompareEvent] = []
    out = root / "results"
    result = run_compare(model, CONFIG, out, on_event=first.append)
    md1 = (out / "results.md").read_text()
    json1 = (out / "results.json").read_text()
    run_compare(model, CONFIG, out, on_event=second.append)
    return {"root": root, "model": model, "out": out, "result": result, "first": first,
            "second": second, "md1": md1, "json1": json1}  # fmt: skip


def test_results_json_has_tables_and_energy_reduction(compared: dict[str, Any]) -> None:
    res = json.loads((compared["out"] / "results.json").read_text())
    assert set(res["variants"]) == {"none", "uticket", "none+auto", "uticket+auto"}
    for d in res["variants"].values():
        assert {"accuracy", "weight_sparsity", "spike_sparsity"} <= set(d["table1"])
        assert {"work", "idle", "latency", "utilization", "static_utilization"} <= set(d["table2"])
        assert len(d["layers"]) > 1
        assert len(d["pes_sweep"]) == 2
        assert d["pes_sweep"][0]["latency_norm"] == 1.0
    base = res["variants"]["none"]["energy_pj"]["total"]
    bal = res["variants"]["uticket"]["energy_pj"]["total"]
    assert res["variants"]["uticket"]["energy_reduction"] == pytest.approx((base - bal) / base)
    assert res["variants"]["none"]["energy_reduction"] == 0.0
    # iso-sparse balancing: LTH's exact sparsity, workloads within 1 of each other per group
    t1 = {v: res["variants"][v]["table1"] for v in ("none", "uticket")}
    assert t1["uticket"]["weight_sparsity"] == t1["none"]["weight_sparsity"]
    static = {v: res["variants"][v]["table2"]["static_utilization"] for v in ("none", "uticket")}
    assert static["uticket"] > static["none"]
    assert res["primary_pes"] == 4
    # the placement-only variant: the baseline's weights, another map; never slower
    lth, placed = res["variants"]["none"], res["variants"]["none+auto"]
    assert (placed["balance"], placed["placement"]) == ("none", "auto")
    assert placed["nonzero"] == lth["nonzero"]
    assert placed["counts_differ"] is False
    assert placed["table2"]["work"] == lth["table2"]["work"]
    assert placed["table2"]["latency"] <= lth["table2"]["latency"]
    for d in res["variants"].values():
        t = d["table2"]
        assert t["floor"] <= t["latency"]
        assert t["latency_over_floor"] == pytest.approx(t["latency"] / t["floor"])
        assert d["counts_differ"] == (d["nonzero"] != lth["nonzero"])
        assert sum(c["floor"] for c in d["layers"]) == t["floor"]
    assert [s["round"] for s in res["sparsity_sweep"]] == [0, 1, 2]


def test_markdown_names_every_table(compared: dict[str, Any]) -> None:
    md = (compared["out"] / "results.md").read_text()
    titles = ("Table I analog", "Table II analog", "Fig. 7a analog", "Table III analog",
              "Fig. 7b analog", "Fig. 6 analog", "balanced the workloads for 4 PEs",
              "Fair comparison: nonzero weights per layer", "latency / floor")  # fmt: skip
    for title in titles:
        assert title in md
    assert PLOTS_SKIPPED not in md


def test_pngs_are_real_images(compared: dict[str, Any]) -> None:
    from matplotlib.image import imread

    for name in PNGS:
        img = imread(compared["out"] / name)
        assert img.ndim == 3
        assert min(img.shape[:2]) > 100
        assert img.std() > 0  # not a blank canvas


def test_second_invocation_reuses_everything(compared: dict[str, Any]) -> None:
    first, second = compared["first"], compared["second"]
    assert any(e.kind == "round0_shared" for e in first)
    assert any(e.kind == "prune" and e.lottery and e.lottery.kind == "step" for e in first)
    assert not any(e.kind == "run" and e.reused for e in first)
    ends = [e for e in second if e.kind == "prune" and e.lottery and e.lottery.kind == "round_end"]
    assert len(ends) == 2 * (CONFIG.rounds + 1)
    assert all(e.reused for e in ends)
    assert not any(e.kind == "prune" and e.lottery and e.lottery.kind == "step" for e in second)
    jobs = [e for e in second if e.kind in ("map", "run")]
    assert jobs
    assert all(e.reused for e in jobs)
    # deterministic: the same inputs give the same JSON and markdown
    assert (compared["out"] / "results.json").read_text() == compared["json1"]
    assert (compared["out"] / "results.md").read_text() == compared["md1"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"balance": ("uticket",)}, "must include 'none'"),
        ({"pes": (0,)}, "--pes"),
        ({"balance": ("none", "bogus")}, "--balance has unknown variants bogus"),
        ({"pes": ()}, "--pes"),
        ({"samples": 0}, "--samples"),
        ({"rounds": -1}, "--rounds"),
        ({"placement": ("auto",)}, "must list 'contiguous'"),
        ({"placement": ("contiguous", "best")}, "--placement has unknown values best"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        CompareConfig(**options)
    assert message in flag_message(info.value)  # the CLI names the flag
    assert "--" not in str(info.value)  # the library names the option as Python spells it


def test_cli_bad_option_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", str(tmp_path / "m.onnx"), "--pes", "0", "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "--pes" in err


def test_without_matplotlib_tables_and_note(
    compared: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = compared["root"] / "no_mpl"
    shutil.copytree(compared["out"], out)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    argv = ["compare", str(compared["model"]), "--pes", "4,16", "--balance", "none,uticket",
            "--rounds", "2", "--epochs", "1", "--samples", "20", "--train-limit", "128",
            "-o", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["plots_skipped"] is True
    assert summary["files"] == ["results.json", "results.md"]
    md = (out / "results.md").read_text()
    assert PLOTS_SKIPPED in md
    assert "Table II analog" in md
    assert not any((out / name).exists() for name in PNGS)
    assert (out / "results.json").read_text() == compared["json1"]


def test_planned_jobs_in_any_order_give_the_serial_results(
    compared: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--plan`` lines run separately (reversed order), then ``compare`` collects: same JSON."""
    import shlex

    out = compared["root"] / "planned"
    argv = ["compare", str(compared["model"]), "--dataset", "digits", "--pes", "4,16",
            "--balance", "none,uticket", "--rounds", "2", "--epochs", "1", "--samples", "20",
            "--train-limit", "128", "-o", str(out)]  # fmt: skip
    capsys.readouterr()
    assert main([*argv, "--plan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("uticompile prune ") for line in lines)
    assert not out.exists()  # planning runs nothing
    for line in reversed(lines):
        assert main(shlex.split(line)[1:]) == 0
    trained = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/round_*/trained.onnx")}
    assert len(trained) == 2 * (CONFIG.rounds + 1)
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in trained} == trained  # collected, not retrained
    capsys.readouterr()
    assert (out / "results.json").read_text() == compared["json1"]
    script = compared["root"] / "jobs.sh"
    assert main([*argv, "--plan", str(script), "--nproc-per-node", "8"]) == 0
    jobs = [x for x in script.read_text().splitlines() if not x.startswith("#")]
    assert [j.split(" -m uticompile ")[1] for j in jobs] == [
        x.split("uticompile ")[1] for x in lines
    ]
    assert all(j.startswith("torchrun --standalone --nproc-per-node=8 ") for j in jobs)


def test_lottery_ticket_from_init_with_auto_search_t(tmp_path: Path) -> None:
    """An untrained MODEL is a lottery ticket; the ET choice reaches every variant's run dir."""
    model = tmp_path / "init.onnx"
    save_onnx(build_model("vgg_small", ModelSpec((1, 16, 16), 10)), model)
    cfg = CompareConfig(
        pes=(4,), rounds=2, epochs=1, dense_epochs=2, samples=10, train_limit=96,
        search_timesteps="auto",
    )  # fmt: skip
    res = run_compare(model, cfg, tmp_path / "out").results
    assert res["method_kind"] == "lottery-ticket"
    assert (
        "rewinds the survivors to the initialization"
        in (tmp_path / "out" / "results.md").read_text()
    )
    choice = res["search_timesteps"]
    assert choice["after_epoch"] == 2
    for v in ("none", "uticket"):
        run = tmp_path / "out" / res["variants"][v]["run_dir"]
        assert json.loads((run / "timesteps.json").read_text()) == choice
    # the same file after training is fine-tuning, and says so; --rewind-epoch makes it a ticket
    trained = build_model("vgg_small", ModelSpec((1, 16, 16), 10))
    trained.trained_epochs = 3
    save_onnx(trained, model)
    cfg = CompareConfig(pes=(4,), rounds=1, epochs=2, samples=10, train_limit=96)
    assert run_compare(model, cfg, tmp_path / "ft").results["method_kind"] == "fine-tuning"
    late = CompareConfig(pes=(4,), rounds=1, epochs=2, rewind_epoch=1, samples=10, train_limit=96)
    kind = run_compare(model, late, tmp_path / "late").results["method_kind"]
    assert kind == "lottery-ticket-late-rewind"


def test_match_layer_counts_makes_every_variant_iso_sparse_per_layer(tmp_path: Path) -> None:
    """With the baseline's per-layer budgets no variant is flagged; the plan refuses the option."""
    model = tmp_path / "init.onnx"
    save_onnx(build_model("vgg_small", ModelSpec((1, 16, 16), 10)), model)
    cfg = CompareConfig(
        pes=(4,), rounds=2, epochs=1, rate=0.5, samples=10, train_limit=96,
        balance=("none", "uticket", "cycles"), cycle_rates="previous", match_layer_counts=True,
    )  # fmt: skip
    res = run_compare(model, cfg, tmp_path / "out").results
    assert not any(v["counts_differ"] for v in res["variants"].values())
    base = res["variants"]["none"]["nonzero"]
    assert all(v["nonzero"] == base for v in res["variants"].values())
    run = json.loads(
        (tmp_path / "out" / res["variants"]["cycles"]["run_dir"] / "config.json").read_text()
    )
    assert run["config"]["cycle_rates"] == "previous"
    assert len(run["config"]["layer_budgets"]) == 2
    from uticompile.compare.plan import plan_compare

    with pytest.raises(ConfigError, match="baseline's finished rounds"):
        plan_compare(model, cfg, tmp_path / "plan")
