"""Reliability: an output that is an input (by any name) is refused before any work starts."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from uticompile.cli import main
from uticompile.errors import OutputError
from uticompile.fileio import check_outputs_distinct


def _alias(kind: str) -> Callable[[Path], Path]:
    def make(src: Path) -> Path:
        if kind == "same":
            return src
        alias = src.with_name("alias" + src.suffix)
        (os.symlink if kind == "symlink" else os.link)(src, alias)
        return alias

    return make


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink"])
@pytest.mark.parametrize(
    ("argv", "suffix"),
    [
        (["map", "{src}", "-o", "{out}"], ".onnx"),
        (["encode-input", "{src}", "-o", "{out}"], ".utm"),
        (["prune", "{src}", "-o", "{out}"], ".onnx"),
    ],
)
def test_output_equal_to_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, argv: list[str], suffix: str
) -> None:
    src = tmp_path / ("in" + suffix)
    src.write_bytes(b"precious bytes")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = _alias(kind)(src)
    before = sorted(tmp_path.iterdir())
    assert main([a.format(src=src, out=out) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "same file" in err[0]
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest
    assert sorted(tmp_path.iterdir()) == before


def test_run_dir_equal_to_output_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.onnx"
    src.write_bytes(b"not read: refused first")
    out = tmp_path / "p.onnx"
    assert main(["prune", str(src), "-o", str(out), "--run-dir", str(out)]) == 2
    assert "--run-dir" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]


def test_distinct_paths_pass(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    check_outputs_distinct(
        {"-o": tmp_path / "b", "--run-dir": tmp_path / "c"}, {"IN": tmp_path / "a"}
    )
    with pytest.raises(OutputError):
        check_outputs_distinct({"-o": tmp_path / "x/../a"}, {"IN": tmp_path / "a"})
