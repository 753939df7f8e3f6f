"""The compact weight encoding (docs/mapping-format.md §2.5, version 1.2): bit layout by hand,
round trips as properties, every rule the reader enforces, and the mapper and runtime using it
(identical results and cycles to WSP, ``run --check`` exact)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import independent_reader
from uticompile.cli import cli
from uticompile.errors import MappingFormatError
from uticompile.ir import Graph
from uticompile.mapfile import decode_mapping, read_mapping, wsp_words
from uticompile.mapfile.compact import (
    MAX_RICE_K,
    best_rice_k,
    compact_decode,
    compact_encode,
    decode_compact,
    rice_cost,
    runs_of,
    tile_compact_words,
)
from uticompile.onnx_export import save_onnx

independent = independent_reader()


def test_the_worked_example_bit_by_bit() -> None:
    """Section 2.5's example: W_q[0] of section 7 (positions 0, 3, 17; values 5, -2, 7) at
    weight_bits 8."""
    values = np.zeros(20, np.int16)
    values[[0, 3, 17]] = [5, -2, 7]
    runs = runs_of([0, 3, 17])
    assert runs.tolist() == [0, 2, 13]
    assert [int(rice_cost(runs, k)) for k in range(6)] == [18, 13, 12, 13, 15, 18]
    blob, k = compact_encode(values, values != 0, 8)
    assert k == 2
    # values 05 fe 07 (bits 0..23); remainders 0, 2, 1 in 2 bits each (bits 24..29); quotients
    # 0, 0, 3 as 1 | 1 | 0001 (bits 30..35); then 12 zero bits to the third word
    assert blob == bytes.fromhex("05fe07d80800")
    mask, got = compact_decode(blob, 20, 3, 8, 2)
    assert np.flatnonzero(mask).tolist() == [0, 3, 17]
    assert got.tolist() == [5, -2, 7]
    assert independent.decode_compact(blob, 100, 20, 3, 8, 2) == ([100, 103, 117], [5, -2, 7])
    values = np.zeros(20, np.int16)
    values[[3, 10]] = [1, -1]
    assert compact_encode(values, values != 0, 8) == (bytes.fromhex("01ff5b00"), 2)


def test_an_empty_tile_is_zero_words() -> None:
    blob, k = compact_encode(np.zeros(40, np.int16), np.zeros(40, bool), 16)
    assert (blob, k) == (b"", 0)
    mask, values = compact_decode(b"", 40, 0, 16, 0)
    assert not mask.any()
    assert values.size == 0


def _check(values: np.ndarray, mask: np.ndarray, bits: int, k: int | None) -> None:
    blob, used_k = compact_encode(values, mask, bits, k)
    count, nnz = len(values), int(mask.sum())
    runs = runs_of(np.flatnonzero(mask))
    if k is None:
        assert used_k == best_rice_k(runs)
        assert rice_cost(runs, used_k) == rice_cost(runs, np.arange(MAX_RICE_K + 1)).min()
        # never more words than WSP's (k = 0 costs at most count bits for the positions)
        assert len(blob) // 2 <= int(wsp_words(count, nnz))
    stream = nnz * bits + int(rice_cost(runs, used_k))
    assert len(blob) == 2 * -(-stream // 16)  # padded to one 16-bit word, no more
    got_mask, got_values = compact_decode(blob, count, nnz, bits, used_k)
    np.testing.assert_array_equal(got_mask, mask)
    np.testing.assert_array_equal(got_values, values[mask])
    positions, plain = independent.decode_compact(blob, 0, count, nnz, bits, used_k)
    assert positions == np.flatnonzero(mask).tolist()
    assert plain == values[mask].tolist()


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 3000),
    st.floats(0.0, 1.0),
    st.integers(2, 16),
    st.one_of(st.none(), st.integers(0, MAX_RICE_K)),
    st.integers(0, 2**32 - 1),
)
def test_round_trip_property(
    count: int, density: float, bits: int, k: int | None, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    bound = 2 ** (bits - 1) - 1
    values = rng.integers(-bound, bound + 1, count)
    mask = rng.random(count) < density
    _check(values, mask, bits, k)
    extremes = np.where(rng.random(count) < 0.5, bound, -bound)  # the widest values
    _check(extremes, mask, bits, None)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.floats(0.0, 1.0)), min_size=1, max_size=12),
       st.integers(2, 16), st.integers(0, 2**32 - 1))  # fmt: skip
def test_many_tiles_decode_at_once(shapes: list[tuple[int, float]], bits: int, seed: int) -> None:
    """The vectorized multi-tile decoder, the per-tile one and the size model agree."""
    rng = np.random.default_rng(seed)
    bound = 2 ** (bits - 1) - 1
    blobs, ks, tiles, runs, want = [], [], [], [], []
    for t, (count, density) in enumerate(shapes):
        values = rng.integers(-bound, bound + 1, count)
        mask = rng.random(count) < density
        blob, k = compact_encode(values, mask, bits)
        blobs.append(blob)
        ks.append(k)
        pos = np.flatnonzero(mask)
        tiles.append(np.full(pos.size, t))
        runs.append(runs_of(pos))
        want.append((pos, values[mask]))
    sizes = np.array([len(b) for b in blobs])
    buf = np.frombuffer(b"".join(blobs), np.uint8)
    counts = [c for c, _ in shapes]
    nnz = [w[0].size for w in want]
    got = decode_compact(buf, np.cumsum(sizes) - sizes, sizes // 2, counts, nnz, bits, ks)
    for t, (pos, values) in enumerate(want):
        np.testing.assert_array_equal(got.position[got.tile == t], pos)
        np.testing.assert_array_equal(got.value[got.tile == t], values)
    words, best = tile_compact_words(np.concatenate(tiles), np.concatenate(runs), len(shapes), bits)
    assert words.tolist() == (sizes // 2).tolist()
    assert best.tolist() == ks


def test_a_98_percent_sparse_tile_is_near_the_entropy_bound() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random(200_000) < 0.02
    values = np.where(mask, 1, 0)
    blob, k = compact_encode(values, mask, 2)
    p = mask.mean()
    mask_entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p)) * mask.size
    index_bits = 8 * len(blob) - 2 * int(mask.sum())
    assert k == 5
    assert index_bits < 1.03 * mask_entropy  # Rice codes are near-optimal for geometric runs


@pytest.mark.parametrize(
    ("blob", "count", "nnz", "bits", "k", "message"),
    [
        ("05fe07d8", 20, 3, 8, 2, "2 quotients, nnz is 3"),  # truncated
        ("05fe07", 20, 3, 8, 2, "not whole 16-bit words"),
        ("05fe", 20, 3, 8, 2, "cannot hold 3 values"),
        ("05fe07d808000000", 20, 3, 8, 2, "is 4 words, its 36 bits need 3"),  # an extra word
        ("05fe07d80800", 20, 2, 8, 2, "5 quotients, nnz is 2"),
        ("05fe07d80800", 17, 3, 8, 2, "run to 17, past count 17"),
        ("05fe07d80800", 12, 3, 8, 2, "run past count 12"),  # a quotient alone is too large
        ("05fe07d80801", 20, 3, 8, 2, "4 quotients, nnz is 3"),  # a padding bit set
        ("058007d80800", 20, 3, 8, 2, "weight -128 does not fit 8-bit weights"),
        ("", 20, 1, 8, 0, "cannot hold 1 values"),
        ("0000", 20, 0, 8, 0, "is 1 words, its 0 bits need 0"),
    ],
)
def test_decode_errors(blob: str, count: int, nnz: int, bits: int, k: int, message: str) -> None:
    with pytest.raises(MappingFormatError, match=message):
        compact_decode(bytes.fromhex(blob), count, nnz, bits, k)


def test_encode_errors() -> None:
    with pytest.raises(ValueError, match="does not fit 8 bits"):
        compact_encode(np.array([128]), np.array([True]), 8)
    with pytest.raises(ValueError, match="does not fit 8 bits"):
        compact_encode(np.array([-128]), np.array([True]), 8)
    with pytest.raises(ValueError, match="k 32"):
        compact_encode(np.array([1]), np.array([True]), 8, 32)
    with pytest.raises(TypeError, match="bool"):
        compact_encode(np.array([1]), np.array([1]), 8)
    # values outside the range are fine where the mask drops them
    assert compact_encode(np.array([999, 3]), np.array([False, True]), 4)[0] == bytes.fromhex(
        "2300"  # 3 in bits 0..3; run 1 with k = 0: quotient 01 in bits 4..5
    )


# ---------------------------------------------------------------------------------------------
# the mapper and the runtime: identical results and cycles, run --check exact


def _model(g: Graph, path: Path) -> Path:
    g = g.copy()
    rng = np.random.default_rng(1)
    for node in g.weight_nodes():
        w = g.params[node.inputs[1]]
        g.params[node.inputs[1]] = np.where(rng.random(w.shape) < 0.1, w, 0).astype(np.float32)
    for name, v in g.params.items():  # keep the layers firing
        if name.endswith("running_var"):
            g.params[name] = rng.uniform(0.02, 0.2, v.shape).astype(np.float32)
    save_onnx(g, path)
    return path


def test_map_and_run_with_every_encoding(tmp_path: Path, small_graphs: dict[str, Graph]) -> None:
    from click.testing import CliRunner

    model = _model(small_graphs["vgg_small"], tmp_path / "m.onnx")
    runner = CliRunner()
    runs, sizes = {}, {}
    for enc in ("wsp", "compact", "auto"):
        utm = tmp_path / f"{enc}.utm"
        args = ["map", str(model), "--pes", "8", "--bits", "8", "--calibration", "0",
                "--weight-encoding", enc, "-o", str(utm)]  # fmt: skip
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        info = json.loads(runner.invoke(cli, ["inspect", str(utm), "--json"]).stdout)
        rows = info["weight_layers"]
        assert {r["encoding"] for r in rows} == {"compact" if enc != "wsp" else "wsp"}
        assert all(r["bytes"] == r["bytes_" + ("wsp" if enc == "wsp" else "compact")] for r in rows)
        sizes[enc] = info["sizes"]
        m = read_mapping(utm)
        assert m.version == ((1, 1) if enc == "wsp" else (1, 2))
        args = ["run", str(utm), "--samples", "6", "--check", str(model), "--json", "--details"]
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["check"]["spikes_compared"] > 0
        runs[enc] = report
    assert runs["compact"] == runs["wsp"] == runs["auto"]  # spikes, predictions, cycles, energy
    assert sizes["compact"]["bytes"] < sizes["wsp"]["bytes"]
    assert {k: v for k, v in sizes["wsp"].items() if k != "bytes"} == {
        k: v for k, v in sizes["compact"].items() if k != "bytes"
    }


def test_a_1_1_reader_always_rejects_a_compact_tile(tmp_path: Path) -> None:
    """What a 1.1 reader sees of a 1.2 compact tile: encoding and rice_k read as reserved zero,
    so a WSP tile with ``wsp_bytes`` 0, which section 2.3 of 1.1 rejects."""
    gen = _vectors()
    data = (gen / "vgg_compact.utm").read_bytes()
    m = decode_mapping(data)
    compact = np.flatnonzero(m.tiles["encoding"] == 1)
    assert compact.size
    m.tiles["encoding"] = 0
    m.tiles["rice_k"] = 0
    from uticompile.mapfile.validate import validate

    with pytest.raises(MappingFormatError, match=rf"TILE\[{compact[0]}\]: words \d+ is not"):
        validate(m.model, m.layers, m.tiles, m.wsp, len(m.bias), strict=True, what="m", minor=1)


def _vectors() -> Path:
    return Path(__file__).resolve().parents[1] / "docs" / "vectors"


def test_weight_encoding_option_is_checked() -> None:
    from uticompile.errors import ConfigError
    from uticompile.passes.pipeline import MapConfig, map_metadata

    with pytest.raises(ConfigError, match=r"^weight_encoding must be one of wsp, compact, auto"):
        MapConfig(weight_encoding="zip")
    # META leaves the default out (files stay byte-identical to 1.1 ones), records the others
    from uticompile.hardware import default_hardware

    hw = default_hardware()
    assert "weight_encoding" not in map_metadata(MapConfig(), hw, 1.0, b"")["map_config"]
    meta = map_metadata(MapConfig(weight_encoding="auto"), hw, 1.0, b"")["map_config"]
    assert MapConfig(**meta) == MapConfig(weight_encoding="auto")
