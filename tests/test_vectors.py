"""The golden test vectors (docs/vectors) are what the generator makes, and what `run` reports.

A change of the mapper, the runtime or the cost model that moves any byte or figure fails here:
either it is a bug, or the format version is bumped and the vectors regenerated
(``python docs/vectors/generate.py``) in the same change.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from click.testing import CliRunner

from uticompile.cli import cli

VECTORS = Path(__file__).resolve().parents[1] / "docs" / "vectors"


def _generator() -> ModuleType:  # docs/vectors is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location("generate_vectors", VECTORS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_vectors_regenerate_byte_for_byte(tmp_path: Path) -> None:
    written = _generator().generate(tmp_path)
    stored = sorted(p.name for p in VECTORS.iterdir() if p.suffix in (".utm", ".uts", ".json"))
    assert sorted(p.name for p in written) == stored
    for path in written:
        want = (VECTORS / path.name).read_bytes()
        if path.read_bytes() != want:
            old = json.loads((VECTORS / path.with_suffix(".json").name).read_text())
            new = json.loads(path.with_suffix(".json").read_text())  # the version written now
            same = old["format_version"] == new["format_version"]
            hint = "bump the format version" if same else "commit"
            pytest.fail(f"{path.name} drifted: {hint} and regenerate docs/vectors")


def test_vectors_cover_what_the_spec_promises() -> None:
    from uticompile.mapfile import (
        KIND_CODES,
        KIND_NAMES,
        PLACEMENT_NAMES,
        read_mapping,
        window_sumpools,
    )

    kinds, placements, groupings, encodings = set(), set(), set(), set()
    spatial = passes = empty = saturations = windows = 0
    resets = set()
    for utm in VECTORS.glob("*.utm"):
        m = read_mapping(utm)
        kinds |= {KIND_NAMES[int(k)] for k in m.layers["kind"]}
        placements |= {PLACEMENT_NAMES[int(p)] for p in m.layers["placement"]}
        groupings.add(int(m.model["grouping"]))
        encodings |= {int(e) for e in m.tiles["encoding"]}
        spatial = max(spatial, int(m.layers["spatial_tiles"].max()))
        passes += int((m.tiles["tile"] > 0).sum())
        empty += int((m.tiles["nnz"] == 0).sum())
        saturations += json.loads(utm.with_suffix(".json").read_text())["run"]["saturations"]
        windows += int(window_sumpools(m.layers).sum())
        resets |= {int(r) for r in m.layers["reset"][m.layers["kind"] == KIND_CODES["LIF"]]}
    assert kinds == set(KIND_NAMES.values())
    assert {"contiguous", "split"} <= placements
    assert groupings == {0, 1}
    assert encodings == {0, 1}  # WSP and compact tiles
    assert spatial > 1
    assert passes > 0
    assert empty > 0
    assert saturations > 0
    assert windows > 0  # version 1.2
    assert resets >= {0, 2}  # hard, and subtract after the leak (1.2)


@pytest.mark.parametrize(
    "case",
    ["vgg_sata", "resnet_sata", "vgg_saturate", "vgg_avgpool", "vgg_after_leak", "vgg_compact"],
)
def test_run_reports_the_vectors_figures(case: str) -> None:
    utm, uts = VECTORS / f"{case}.utm", VECTORS / f"{case}.uts"
    args = ["run", str(utm), "--spikes", str(uts), "--json", "--details"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    got = json.loads(result.stdout)
    want = json.loads((VECTORS / f"{case}.json").read_text())
    assert got["predictions"] == want["predictions"]
    assert got["accuracy"] == want["accuracy"]
    del got["predictions"], got["accuracy"]
    assert got == want["run"]


def test_the_compact_vector_runs_exactly_as_its_wsp_mapping() -> None:
    """Same network, WSP tiles only: the same spikes, logits, cycles and energy; only the
    weight bytes and the version differ."""
    from dataclasses import replace

    from uticompile.mapfile import decode_mapping

    gen = _generator()
    case = next(c for c in gen.CASES if c.name == "vgg_compact")
    utm, uts, want = gen.build_case(case)
    wsp_utm, wsp_uts, got = gen.build_case(replace(case, weight_encoding="wsp"))
    compact, wsp = decode_mapping(utm), decode_mapping(wsp_utm)
    assert compact.version == (1, 2)
    assert wsp.version == (1, 1)
    assert len(utm) < len(wsp_utm)
    assert uts == wsp_uts
    assert got.pop("format_version") == "1.1"
    assert want.pop("format_version") == "1.2"
    assert got == want
    for i in range(len(wsp.tiles)):
        np.testing.assert_array_equal(compact.tile_dense(i), wsp.tile_dense(i))
