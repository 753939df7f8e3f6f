"""Reliability: options past the format's limits, outputs that cannot be files, empty and bad
inputs: each one line on stderr, exit 2, checked before the work, no file left behind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest

from uticompile.cli import main
from uticompile.container import read_container, write_container
from uticompile.limits import MAX_PES, MAX_TIMESTEPS
from uticompile.mapfile import MAGIC_UTM


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("limits")
    model, mapped = tmp / "m.onnx", tmp / "m.utm"
    argv = ["train", "--model", "vgg_small", "--epochs", "0", "--size", "8", "-o", str(model)]
    assert main(argv) == 0
    assert main(["map", str(model), "--calibration", "0", "-o", str(mapped)]) == 0
    return {"model": model, "mapped": mapped, "dir": tmp}


def _one_line(capsys: pytest.CaptureFixture[str], code: int, *words: str) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    assert all(w in err[0] for w in words), err
    return err[0]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--pes", str(MAX_PES + 1)], ["--pes", str(MAX_PES)]),
        (["--pes", "100000"], ["--pes", str(MAX_PES)]),
        (["--search-timesteps", "1000"], ["--search-timesteps", str(MAX_TIMESTEPS)]),
        (["--search-candidates", "2,1000"], ["--search-candidates", str(MAX_TIMESTEPS)]),
    ],
)
def test_prune_options_past_the_format_are_refused_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], words: list[str]
) -> None:
    model = tmp_path / "in.onnx"
    model.write_bytes(b"not read: the options are refused first")
    out = tmp_path / "p.onnx"
    _one_line(capsys, main(["prune", str(model), "-o", str(out), *extra]), *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]


def test_map_and_prune_share_the_pes_rule() -> None:
    from uticompile.errors import ConfigError
    from uticompile.passes.lottery_config import PruneConfig
    from uticompile.passes.pipeline import MapConfig

    for make in (MapConfig, PruneConfig):
        make(pes=MAX_PES)
        for bad in (0, MAX_PES + 1):
            with pytest.raises(ConfigError, match=r"^pes must be"):
                make(pes=bad)


@pytest.mark.parametrize("command", ["run", "encode-input"])
def test_samples_above_the_test_split_are_refused_not_clamped(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    argv = [command, str(files["mapped"]), "--samples", "100000"]
    if command == "encode-input":
        argv += ["-o", str(tmp_path / "x.uts")]
    _one_line(capsys, main(argv), "--samples 100000", "360 images", "test split")
    assert list(tmp_path.iterdir()) == []


def test_compare_samples_above_the_test_split_are_refused_before_training(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    argv = ["compare", str(files["model"]), "--samples", "5000", "-o", str(out)]
    _one_line(capsys, main(argv), "--samples 5000", "test split")
    assert not (out / "runs").exists()


@pytest.mark.parametrize(("name", "words"), [("e.utm", ["e.utm", "empty mapped binary"]),
                                             ("e.onnx", ["e.onnx", "empty file"])])  # fmt: skip
def test_show_of_an_empty_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, words: list[str]
) -> None:
    (tmp_path / name).write_bytes(b"")
    line = _one_line(capsys, main(["show", str(tmp_path / name)]), *words)
    assert "not an ONNX model" not in line


def _without_metadata(files: dict[str, Path], tmp_path: Path) -> Path:
    proto = onnx.load(str(files["model"]))
    del proto.metadata_props[:]
    bad = tmp_path / "nometa.onnx"
    onnx.save(proto, str(bad))
    return bad


@pytest.mark.parametrize(
    "argv",
    [["eval", "{bad}"], ["map", "{bad}", "-o", "{out}"], ["run", "{mapped}", "--check", "{bad}"]],
)
def test_errors_for_bad_models_name_the_file(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    bad = _without_metadata(files, tmp_path)
    out = tmp_path / "out.utm"
    args = [a.format(bad=bad, out=out, mapped=files["mapped"]) for a in argv]
    _one_line(capsys, main(args), str(bad), "not a uticompile model")
    assert not out.exists()


@pytest.mark.parametrize("target", ["dir", "/dev/null"])
@pytest.mark.parametrize("command", ["map", "encode-input", "export-nir"])
def test_output_that_is_a_directory_or_device_is_refused_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, target: str
) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"not read: the output is refused first")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "d" if target == "dir" else Path(target)
    if target == "dir":
        out.mkdir()
    line = _one_line(capsys, main([command, str(src), "-o", str(out)]), str(out))
    assert "cannot write" in line or "directory" in line
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest
    assert out.is_char_device() if target != "dir" else list(out.iterdir()) == []


def test_inspect_json_of_an_infinite_meta_value_stays_json(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = read_container(files["mapped"].read_bytes(), MAGIC_UTM, (), what="m")
    meta = b'{"a": 1e999, "b": [-1e999, 2.5]}'
    parts = [(t, meta if t == b"META" else bytes(b)) for t, b in c.sections.items()]
    hostile = tmp_path / "inf.utm"
    hostile.write_bytes(write_container(MAGIC_UTM, parts, version=c.version))
    capsys.readouterr()
    assert main(["inspect", str(hostile), "--json"]) == 0
    text = capsys.readouterr().out
    assert "Infinity" not in text
    assert json.loads(text)["meta"] == {"a": None, "b": [None, 2.5]}


def test_shrink_run_samples_above_the_test_split_are_refused_before_work(
    tmp_path: Path, small_graphs: dict
) -> None:
    from uticompile.datasets import load_dataset
    from uticompile.errors import ConfigError
    from uticompile.shrink import ShrinkConfig, run_shrink

    data = load_dataset("digits", size=16)
    config = ShrinkConfig(timesteps=(4, 2), variance=None, run_samples=361)
    with pytest.raises(ConfigError, match=r"^run_samples 361 is more than the 360 images"):
        run_shrink(small_graphs["vgg_small"], data, config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
