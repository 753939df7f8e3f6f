"""Reliability: a damaged run directory is salvaged (the round runs again) or refused in one line.

A finished ``prune`` run is copied, one file of the copy damaged, and the run resumed: it must
end with exit 0 and the byte-identical model (the damaged round ran again), or exit 2 with one
line naming the file; never a traceback, never "aborted".
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from uticompile.cli import main
from uticompile.cli.app import cli
from uticompile.datasets import load_dataset
from uticompile.ir import Graph
from uticompile.rundir import damaged_files, file_sha256, remove_stale_tmp, write_done
from uticompile.shrink import ShrinkConfig, ShrinkEvent, run_shrink

PRUNE = ["--dataset", "digits", "--rounds", "1", "--epochs", "1", "--batch-size", "128",
         "--train-limit", "128", "--pes", "4", "--seed", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(model, a finished run directory, its output)."""
    tmp = tmp_path_factory.mktemp("rundir")
    model = tmp / "m.onnx"
    argv = ["train", "--model", "vgg_small", "--epochs", "0", "--size", "8", "-o", str(model)]
    assert main(argv) == 0
    out = tmp / "p.onnx"
    assert main(["prune", str(model), "-o", str(out), *PRUNE]) == 0
    return model, tmp / "p.run", out


def _resume(
    finished: tuple[Path, Path, Path],
    tmp_path: Path,
    damage: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, list[str], Path]:
    model, run, _ = finished
    copy = tmp_path / "p.run"
    shutil.copytree(run, copy)
    damage(copy)
    capsys.readouterr()
    out = tmp_path / "p.onnx"
    code = main(["prune", str(model), "-o", str(out), "--run-dir", str(copy), "--resume",
                 "--json", *PRUNE])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line or "aborted" in line for line in err), err
    return code, err, out


def _zero(name: str) -> Callable[[Path], None]:
    return lambda run: (run / name).write_bytes(b"")


def _garbage(name: str) -> Callable[[Path], None]:
    return lambda run: (run / name).write_bytes(b"\x00garbage\xff" * 7)


def _delete(name: str) -> Callable[[Path], None]:
    return lambda run: (run / name).unlink()


@pytest.mark.parametrize(
    ("damage", "names"),
    [
        (_zero("round_00/masks.npz"), "round_00/masks.npz"),
        (_garbage("round_01/masks.npz"), "round_01/masks.npz"),
        (_delete("round_01/masks.npz"), "round_01/masks.npz"),
        (_garbage("round_01/trained.onnx"), "round_01/trained.onnx"),
        (_garbage("round_00/report.json"), "round_00/report.json"),
        (_garbage("round_01/done"), "round_01/done"),
        (_zero("round_01/done"), None),  # the marker of older runs: trusted, files read back
    ],
)
def test_damaged_finished_round_runs_again_to_the_same_bytes(
    finished: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
    names: str | None,
) -> None:
    code, err, out = _resume(finished, tmp_path, damage, capsys)
    assert code == 0, err
    assert out.read_bytes() == finished[2].read_bytes()
    if names is not None:
        assert len(err) == 1, err
        assert names in err[0]
        assert "running it again" in err[0]
    else:
        assert err == []
    for done in (tmp_path / "p.run").glob("round_*/done"):
        assert damaged_files(done, tmp_path / "p.run") == []  # every marker checks again


def test_damaged_rewind_point_is_made_again(
    finished: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, out = _resume(finished, tmp_path, _garbage("rewind.onnx"), capsys)
    assert code == 0, err
    assert out.read_bytes() == finished[2].read_bytes()
    assert (tmp_path / "p.run/rewind.onnx").read_bytes() == (
        finished[1] / "rewind.onnx"
    ).read_bytes()


def _unfinish(extra: Callable[[Path], None]) -> Callable[[Path], None]:
    """Round 1 as kill -9 leaves it mid-training, then ``extra`` damage."""

    def damage(run: Path) -> None:
        for name in ("done", "trained.onnx", "report.json"):
            (run / "round_01" / name).unlink()
        extra(run)

    return damage


@pytest.mark.parametrize(
    "extra",
    [
        _zero("round_01/train.ckpt"),
        _garbage("round_01/train.ckpt"),
        _zero("round_01/masks.npz"),
        _garbage("round_01/masks.npz"),
    ],
)
def test_damaged_state_of_an_unfinished_round_is_made_again(
    finished: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: Callable[[Path], None],
) -> None:
    code, err, out = _resume(finished, tmp_path, _unfinish(extra), capsys)
    assert code == 0, err
    assert out.read_bytes() == finished[2].read_bytes()
    assert not (tmp_path / "p.run/round_01/train.ckpt").exists()


def test_stale_tmp_files_are_removed_on_resume(
    finished: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def damage(run: Path) -> None:
        _unfinish(lambda _r: None)(run)
        (run / "round_01" / ".trained.onnx.k2x9q1.tmp").write_bytes(b"half a model")
        (run / ".report.jsonl.a8d7f0.tmp").write_bytes(b"")

    code, err, _ = _resume(finished, tmp_path, damage, capsys)
    assert code == 0, err
    assert list((tmp_path / "p.run").rglob("*.tmp")) == []


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (_delete("config.json"), ["config.json", "missing"]),
        (_garbage("config.json"), ["config.json", "damaged"]),
        (_zero("config.json"), ["config.json", "damaged"]),
        (lambda run: (run / "config.json").write_text('{"config": 1}'), ["other options"]),
    ],
)
def test_bad_config_json_is_one_line_naming_it(
    finished: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
    words: list[str],
) -> None:
    code, err, out = _resume(finished, tmp_path, damage, capsys)
    assert code == 2
    assert len(err) == 1, err
    assert all(w in err[0] for w in words), err
    if "missing" in words:
        assert "other options" not in err[0]
    assert not out.exists()


def test_hostile_done_marker_touches_nothing_outside(tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.write_bytes(b"keep")
    run = tmp_path / "run"
    (run / "round_00").mkdir(parents=True)
    (run / "round_00" / "a").write_bytes(b"a")
    done = run / "round_00" / "done"
    write_done(done, run, [run / "round_00" / "a"])
    assert damaged_files(done, run) == []
    record = json.loads(done.read_text())
    for name in ("../precious", "/etc/passwd", "round_00/../../precious", ""):
        record["sha256"] = {name: file_sha256(outside)}
        done.write_text(json.dumps(record))
        assert damaged_files(done, run) == [done]
    (run / "round_00" / "a").write_bytes(b"b")
    write_done(done, run, [run / "round_00" / "a"])
    (run / "round_00" / "a").write_bytes(b"c")
    assert damaged_files(done, run) == [run / "round_00" / "a"]
    (run / "round_00" / ".a.x1y2z3.tmp").write_bytes(b"")
    (run / "round_00" / ".keep.tmp").write_bytes(b"")  # not a name atomic writes use
    assert remove_stale_tmp(run) == [run / "round_00" / ".a.x1y2z3.tmp"]
    assert outside.read_bytes() == b"keep"


def test_eof_error_is_an_error_not_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    @click.command("eof-probe")
    def probe() -> None:
        raise EOFError("No data left in file")

    cli.add_command(probe)
    try:
        assert main(["eof-probe"]) == 2
    finally:
        cli.commands.pop("eof-probe")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "ended unexpectedly" in err[0]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_shrink_stage_damaged_runs_again_to_the_same_bytes(
    tmp_path: Path, small_graphs: dict[str, Graph]
) -> None:
    d = load_dataset("digits", size=16)
    tiny = dataclasses.replace(d, x_train=d.x_train[:64], y_train=d.y_train[:64],
                               x_test=d.x_test[:16], y_test=d.y_test[:16])  # fmt: skip
    config = ShrinkConfig(epochs=1, samples=32, timesteps=(4, 2), run_samples=4, batch_size=32)
    graph = small_graphs["vgg_small"]
    ref = tmp_path / "ref"
    run_shrink(graph, tiny, config, ref)
    run = tmp_path / "run"
    shutil.copytree(ref, run)
    (run / "T2" / "trained.onnx").write_bytes(b"")
    (run / "original" / "report.json").write_text("{not json")
    (run / "T4" / ".trained.onnx.q8w7e6.tmp").write_bytes(b"half")
    events: list[ShrinkEvent] = []
    run_shrink(graph, tiny, config, run, resume=True, on_event=events.append)
    redone = {e.stage: e.damaged for e in events if e.kind == "redo"}
    assert set(redone) == {"original", "T2"}
    assert redone["T2"] == (str(run / "T2" / "trained.onnx"),)
    assert _tree(run) == _tree(ref)
    shutil.rmtree(run / "T2")  # killed while training T=2 with a checkpoint cut to 0 bytes
    (run / "T2").mkdir()
    (run / "T2" / "train.ckpt").write_bytes(b"")
    run_shrink(graph, tiny, config, run, resume=True)
    assert _tree(run) == _tree(ref)
