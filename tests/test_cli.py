"""The command line as a user meets it: real processes, one-line errors, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from uticompile.cli import cli, main
from uticompile.onnx_import import read_graph


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uticompile", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_version_and_help() -> None:
    runner = CliRunner()
    assert "uticompile, version" in runner.invoke(cli, ["--version"]).output
    for command in ([], ["train"], ["eval"]):
        result = runner.invoke(cli, [*command, "--help"])
        assert result.exit_code == 0
        assert "Usage:" in result.output


BAD = [
    (["eval", "{tmp}/not.onnx"], "not an ONNX model"),
    (["eval", "{tmp}/absent.onnx"], "no such file"),
    (["eval", "{tmp}/unknown_op.onnx"], "node 'pool1': unsupported op LpPool"),
    (["train", "--model", "alexnet", "-o", "{tmp}/out.onnx"], "unknown model 'alexnet'"),
    (["train", "--model", "vgg_small", "--epochs", "-1", "-o", "{tmp}/out.onnx"], "--epochs"),
    (
        ["train", "--model", "vgg_small", "--dataset", "cifar10", "--data-dir", "{tmp}/nodata",
         "-o", "{tmp}/out.onnx"],
        "cifar10: missing directory",
    ),
    (["train", "--model", "vgg_small", "--dataset", "imagenet", "-o", "{tmp}/o.onnx"], "imagenet"),
]  # fmt: skip


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, small_graphs: dict) -> Path:
    from uticompile.onnx_export import serialize, to_onnx

    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "not.onnx").write_bytes(b"\x08\x07garbage that is not a model" * 3)
    model = to_onnx(small_graphs["vgg_small"])
    next(n for n in model.graph.node if n.op_type == "MaxPool").op_type = "LpPool"
    (tmp / "unknown_op.onnx").write_bytes(serialize(model))
    return tmp


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_is_one_line_without_traceback(
    bad_files: Path, args: list[str], message: str
) -> None:
    before = set(bad_files.iterdir())
    proc = _run(*(a.format(tmp=bad_files) for a in args), cwd=bad_files)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("uticompile: error:")
    assert message in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert set(bad_files.iterdir()) == before  # no output or temporary file left behind


def test_untrained_models_are_written_and_evaluated(tmp_path: Path) -> None:
    out = tmp_path / "v.onnx"
    assert (
        main(["train", "--model", "vgg_small", "--epochs", "0", "--size", "16", "-o", str(out)])
        == 0
    )
    graph = read_graph(out)
    assert graph.input_shape == (1, 16, 16)
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", str(out), "--json"], standalone_mode=False)
    payload = json.loads(result.output)
    assert payload["samples"] == 360
    assert set(payload["spike_sparsity"]) == {"lif1", "lif2", "lif3", "lif4"}
    assert 0.0 <= payload["accuracy"] <= 1.0


def test_internal_invariant_failure_is_exit_70_not_a_user_error(
    tmp_path: Path,
    small_graphs: dict,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """A broken postcondition is a bug: one "internal error" line, exit 70 (never 2)."""
    from uticompile.errors import InvariantError
    from uticompile.onnx_export import save_onnx
    from uticompile.passes.fold_batchnorm import FoldBatchNorm

    def broken(self: FoldBatchNorm, module: object) -> None:
        raise InvariantError("a BatchNorm survived folding")

    monkeypatch.setattr(FoldBatchNorm, "__call__", broken)
    save_onnx(small_graphs["vgg_small"], tmp_path / "m.onnx")
    code = main(["map", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.utm")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 70
    assert len(err) == 1
    assert err[0].startswith("uticompile: internal error")
    assert "pass fold-batchnorm: a BatchNorm survived folding" in err[0]
    assert not (tmp_path / "m.utm").exists()
