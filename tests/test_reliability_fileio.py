"""Reliability: every write fails as one line naming the path and the reason, never a traceback."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from uticompile import fileio
from uticompile.cli import main
from uticompile.errors import OutputError

TRAIN = ["train", "--model", "vgg_small", "--epochs", "0", "--size", "16"]


def _fail_with(code: int):
    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


def _no_temporaries(directory: Path) -> None:
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only"), (errno.EACCES, "permission")],
)
def test_write_failure_names_path_and_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, reason: str
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    monkeypatch.setattr(fileio.os, "replace", _fail_with(code))
    with pytest.raises(OutputError, match=reason) as info:
        fileio.atomic_write_bytes(target, b"new")
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"old"  # the previous file survives whole
    _no_temporaries(tmp_path)


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(OutputError, match="not a directory"):
        fileio.atomic_write_bytes(tmp_path / "f" / "out.bin", b"x")


def test_empty_path_is_refused() -> None:
    with pytest.raises(OutputError, match="empty"):
        fileio.atomic_write_bytes("", b"x")


def test_directory_and_device_targets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="directory"):
        fileio.atomic_write_bytes(tmp_path, b"x")
    before = os.stat("/dev/null")
    with pytest.raises(OutputError, match="not a regular file"):
        fileio.atomic_write_bytes("/dev/null", b"x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert os.stat("/dev/null").st_rdev == before.st_rdev


def test_files_get_the_process_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fileio.atomic_write_bytes(tmp_path / "a", b"x")
        os.umask(0o077)
        fileio.atomic_write_bytes(tmp_path / "b", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "b").st_mode) == 0o600


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("uticompile: error:")
    return err[0]


def test_cli_full_disk_is_exit_2_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fileio.os, "fsync", _fail_with(errno.ENOSPC))
    out = tmp_path / "v.onnx"
    assert main([*TRAIN, "-o", str(out)]) == 2
    line = _one_line_error(capsys)
    assert "no space left" in line
    assert not out.exists()
    _no_temporaries(tmp_path)


@pytest.mark.parametrize(
    ("make_output", "message"),
    [
        (lambda d: str(d / "file" / "v.onnx"), "not a directory"),
        (lambda d: "", "empty"),
        (lambda d: str(d / "dir"), "directory"),
    ],
)
def test_cli_bad_output_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_output, message: str
) -> None:
    (tmp_path / "file").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    assert main([*TRAIN, "-o", make_output(tmp_path)]) == 2
    assert message in _one_line_error(capsys)


def test_checkpoint_path_that_is_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "v.onnx.ckpt").mkdir()
    assert main([*TRAIN[:3], "--epochs", "1", "--size", "16", "-o", str(tmp_path / "v.onnx")]) == 2
    assert "v.onnx.ckpt" in _one_line_error(capsys)
    assert not (tmp_path / "v.onnx").exists()


def test_checkpoint_write_failure_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's own zip writer is bypassed: a full disk at a checkpoint is an OutputError too."""
    import torch

    from uticompile.models.train import _save_checkpoint

    monkeypatch.setattr(fileio.os, "replace", _fail_with(errno.ENOSPC))
    with pytest.raises(OutputError, match="no space left"):
        _save_checkpoint(tmp_path / "x.ckpt", {"w": torch.zeros(2)})
    _no_temporaries(tmp_path)
