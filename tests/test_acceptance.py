"""The issue's acceptance run: a small zoo net trained for 5 epochs on digits through the CLI.

This is the one slow test (about a minute on 2 cores): it is the end-to-end claim of the README.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from uticompile.cli import cli


def test_vgg_small_reaches_90_percent_and_onnxruntime_agrees(tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    runner = CliRunner()
    trained = runner.invoke(
        cli,
        [
            "train",
            "--model",
            "vgg_small",
            "--dataset",
            "digits",
            "--epochs",
            "5",
            "-o",
            str(out),
            "--json",
        ],
        catch_exceptions=False,
    )
    assert trained.exit_code == 0, trained.output
    torch_accuracy = json.loads(trained.stdout)["test_accuracy"]
    assert torch_accuracy > 0.90
    evaluated = runner.invoke(cli, ["eval", str(out), "--json"], catch_exceptions=False)
    assert json.loads(evaluated.stdout)["accuracy"] == torch_accuracy
