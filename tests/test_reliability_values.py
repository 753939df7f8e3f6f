"""Reliability: NaN, infinities and absurd sizes are refused at the boundary, naming the field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from uticompile.cli import main
from uticompile.cli.options import emit, json_safe
from uticompile.errors import ConfigError
from uticompile.hardware import load_hardware


@pytest.mark.parametrize(
    ("section", "line", "field"),
    [
        ("power_mw", "mac_dynamic = nan", "mac_dynamic"),
        ("power_mw", "mac_dynamic = inf", "mac_dynamic"),
        ("power_mw", "mac_dynamic = -0.5", "mac_dynamic"),
        ("pe", "clock_mhz = inf", "clock_mhz"),
        ("pe", "clock_mhz = 0.0", "clock_mhz"),
        ("pe", "clock_mhz = nan", "clock_mhz"),
    ],
)
def test_hardware_table_refuses_non_finite_and_negative(
    tmp_path: Path, section: str, line: str, field: str
) -> None:
    path = tmp_path / "hw.toml"
    path.write_text(f"[{section}]\n{line}\n")
    with pytest.raises(ConfigError, match=field):
        load_hardware(path)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--width", "nan"),
        ("--width", "inf"),
        ("--width", "1000"),
        ("--size", "100000"),
        ("-T", "1000"),
        ("--lr", "1e30"),
        ("--lr", "nan"),
        ("--weight-decay", "nan"),
        ("--seed", "-1"),
    ],
)
def test_train_options_out_of_range_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    out = tmp_path / "v.onnx"
    argv = ["train", "--model", "vgg_small", "--epochs", "0", option, value, "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert option in err[0]
    assert not out.exists()


def test_json_output_has_no_nan_or_infinity(capsys: pytest.CaptureFixture[str]) -> None:
    payload = {"a": math.nan, "b": [math.inf, 1.5], "c": {"d": -math.inf}}
    emit(True, payload, "")
    text = capsys.readouterr().out
    assert "NaN" not in text
    assert "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, 1.5], "c": {"d": None}}
    assert json_safe((1, 2.0)) == [1, 2.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 3e38])
def test_onnx_import_refuses_non_finite_and_absurd_weights(
    small_graphs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: float
) -> None:
    import numpy as np
    from onnx import numpy_helper

    from uticompile.onnx_export import to_onnx

    model = to_onnx(next(iter(small_graphs.values())))
    init = model.graph.initializer[0]
    values = numpy_helper.to_array(init).copy()
    values.flat[0] = np.float32(bad)
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    path = tmp_path / "bad.onnx"
    path.write_bytes(model.SerializeToString())
    assert main(["map", str(path), "--pes", "4", "-o", str(tmp_path / "m.utm")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert repr(init.name) in err[0]
    assert not (tmp_path / "m.utm").exists()


def test_diverging_training_stops_with_one_line_and_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uticompile.models.train as training

    real = training.timestep_loss
    monkeypatch.setattr(training, "timestep_loss", lambda *a: real(*a) * math.nan)
    out = tmp_path / "v.onnx"
    argv = ["train", "--model", "vgg_small", "--epochs", "1", "--size", "16", "--width", "0.25"]
    assert main([*argv, "--batch-size", "256", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "diverged" in err[0]
    assert not out.exists()
