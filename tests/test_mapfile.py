"""The mapped binary (docs/mapping-format.md, section 2): records, WSP, validation and fuzzing.

The networks here are built by hand (dense integer weights, placed and tiled by a small loop that
follows section 2.3 literally), so the tests do not depend on the compiler passes.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import independent_reader, seal_crcs
from uticompile.container import read_container, write_container
from uticompile.errors import MappingFormatError
from uticompile.mapfile import (
    GROUPING_SATA,
    GROUPING_SYSTOLIC,
    KIND_ADD,
    KIND_CODES,
    KIND_CONV,
    KIND_ENCODE,
    KIND_FC,
    KIND_FLATTEN,
    KIND_LIF,
    KIND_MAXPOOL,
    KIND_NAMES,
    KIND_SUMPOOL,
    LAYR_DTYPE,
    MAGIC_UTM,
    MODL_DTYPE,
    TILE_DTYPE,
    Mapping,
    decode_mapping,
    dense_from_wsp,
    encode_mapping,
    read_mapping,
    required_version,
    window_sumpools,
    write_mapping,
    wsp_decode,
    wsp_encode,
)
from uticompile.mapfile.compact import compact_encode

independent = independent_reader()

# The document's tables, copied by hand: (offset, field).
DOC_MODL = [
    (0, "name"), (4, "timesteps"), (8, "num_classes"), (12, "input_shape"),
    (24, "input_frac_bits"), (28, "input_bits"), (32, "num_pes"), (36, "scratchpad_words"),
    (40, "word_bits"), (44, "acc_bits"), (48, "accumulators"), (52, "grouping"),
    (56, "layer_count"), (60, "tile_count"),
]  # fmt: skip
DOC_LAYR = [
    (0, "kind"), (2, "flags"), (4, "name"), (8, "input0"), (12, "input1"), (16, "in_shape"),
    (28, "out_shape"), (40, "kernel"), (44, "stride"), (48, "pads"), (56, "frac_bits"),
    (60, "weight_bits"), (64, "bias_index"), (72, "tile_first"), (76, "tile_count"),
    (80, "threshold"), (84, "leak_mult"), (88, "leak_shift"), (92, "reset"), (96, "shift0"),
    (100, "shift1"), (104, "groups"), (108, "spatial_tiles"), (112, "placement"),
    (113, "reserved"),
]  # fmt: skip
DOC_TILE = [
    (0, "layer"), (4, "group"), (8, "pe"), (10, "tile"), (12, "filter"), (16, "position"),
    (20, "count"), (24, "nnz"), (28, "words"), (32, "wsp_offset"), (40, "wsp_bytes"),
    (44, "encoding"), (45, "rice_k"), (46, "reserved"),
]  # fmt: skip

SCRATCH = 20  # words per PE: small, so filters split into several tiles


# ---------------------------------------------------------------------------------------------
# a hand-made network


def _sparse_ints(rng: np.random.Generator, shape: tuple[int, int], bound: int) -> np.ndarray:
    w = rng.integers(-bound, bound + 1, shape)
    w[rng.random(shape) < 0.45] = 0
    return w.astype(np.int16)


#: version 1.1 placements of the sata network's layers (section 2.3): (group, pe, filter,
#: first channel, channels) per PE slot, and the code; conv2 splits filters, fc7 sorts them
PLACED = {
    2: (2, [(0, 0, 2, 0, 2), (0, 1, 2, 2, 2), (0, 2, 0, 0, 4), (0, 3, 3, 0, 4),
            (1, 0, 1, 0, 1), (1, 1, 1, 1, 1), (1, 2, 1, 2, 1), (1, 3, 1, 3, 1)]),
    7: (1, [(r // 4, r % 4, 9 - r, 0, 64) for r in range(10)]),
}  # fmt: skip


def _place(
    li: int,
    w: np.ndarray,
    kk: int,
    n: int,
    sata: bool,
    blobs: list[bytes],
    placed: list[tuple[int, ...]] | None = None,
    compact_bits: int = 0,
) -> list[tuple[int, ...]]:
    """Tile records of one weight layer, following section 2.3 word by word.

    ``compact_bits``: the layer's weight_bits, to store every other tile in the compact
    encoding (version 1.2, section 2.5); 0 = all WSP.
    """
    c_out, flen = w.shape
    c_in = flen // kk
    if placed is not None:
        slots = [(g, p, f, lo * kk, (lo + k) * kk) for g, p, f, lo, k in placed]
    elif sata:
        slots = [(f // n, f % n, f, 0, flen) for f in range(c_out)]
    else:
        chunk = -(-c_in // n)
        slots = [
            (f, p, f, p * chunk * kk, min((p + 1) * chunk, c_in) * kk)
            for f in range(c_out)
            for p in range(n)
            if p * chunk < c_in
        ]

    def words(a: int, b: int, f: int) -> int:
        return -(-(b - a) // 16) + int(np.count_nonzero(w[f, a:b]))

    rows: list[tuple[int, ...]] = []
    for g, p, f, lo, hi in slots:
        start, t = lo, 0
        while start < hi:
            end = start + kk
            while end < hi and words(start, end + kk, f) <= SCRATCH:
                end += kk
            assert words(start, end, f) <= SCRATCH
            values = w[f, start:end]
            offset = sum(len(b) for b in blobs)
            count, nnz = end - start, int(np.count_nonzero(values))
            if compact_bits and (len(rows) + li) % 2 == 0:
                blob, k = compact_encode(values, values != 0, compact_bits)
                wd = len(blob) // 2
                rows.append((li, g, p, t, f, start, count, nnz, wd, offset, 0, 1, k, 0))
            else:
                blob = wsp_encode(values, values != 0)
                wd = -(-count // 16) + nnz
                rows.append((li, g, p, t, f, start, count, nnz, wd, offset, len(blob), 0, 0, 0))
            blobs.append(blob)
            start, t = end, t + 1
    return rows


def build(
    grouping: int = GROUPING_SATA, seed: int = 0, placed: bool = False, compact: bool = False
) -> tuple[Mapping, dict[int, np.ndarray]]:
    """A small mapped network and its dense weights per weight layer ([C_out, positions]).

    ``placed``: the sata network with the 1.1 placements of ``PLACED``; ``compact``: every other
    tile in the 1.2 compact encoding.
    """
    rng = np.random.default_rng(seed)
    sata = grouping == GROUPING_SATA
    n = 4 if sata else 3
    specs: list[dict] = [
        dict(kind=KIND_ENCODE, name="encode", input0=-1, in_shape=(1, 8, 8), out_shape=(4, 8, 8),
             kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), frac_bits=5, weight_bits=8,
             shift0=3),
        dict(kind=KIND_LIF, name="lif1", input0=0, in_shape=(4, 8, 8), out_shape=(4, 8, 8),
             threshold=100, leak_mult=3, leak_shift=2, reset=0),
        dict(kind=KIND_CONV, name="conv2", input0=1, in_shape=(4, 8, 8), out_shape=(4, 8, 8),
             kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), frac_bits=6, weight_bits=16),
        dict(kind=KIND_ADD, name="add3", input0=2, input1=1, in_shape=(4, 8, 8),
             out_shape=(4, 8, 8), frac_bits=6, shift0=0, shift1=6),
        dict(kind=KIND_LIF, name="lif4", input0=3, in_shape=(4, 8, 8), out_shape=(4, 8, 8),
             threshold=-7, leak_mult=1, leak_shift=1, reset=1),
    ]  # fmt: skip
    if sata:
        specs += [
            dict(kind=KIND_MAXPOOL, name="pool5", input0=4, in_shape=(4, 8, 8),
                 out_shape=(4, 4, 4), kernel=(2, 2), stride=(2, 2)),
            dict(kind=KIND_FLATTEN, name="flatten6", input0=5, in_shape=(4, 4, 4),
                 out_shape=(64, 1, 1)),
            dict(kind=KIND_FC, name="fc7", input0=6, in_shape=(64, 1, 1), out_shape=(10, 1, 1),
                 frac_bits=9, weight_bits=12),
        ]  # fmt: skip
    else:
        specs += [
            dict(kind=KIND_SUMPOOL, name="sum5", input0=4, in_shape=(4, 8, 8),
                 out_shape=(4, 1, 1), kernel=(8, 8), stride=(8, 8)),
            dict(kind=KIND_FC, name="fc6", input0=5, in_shape=(4, 1, 1), out_shape=(10, 1, 1),
                 frac_bits=9, weight_bits=12),
        ]  # fmt: skip
    layers = np.zeros(len(specs), LAYR_DTYPE)
    layers["input1"] = -1
    dense: dict[int, np.ndarray] = {}
    blobs: list[bytes] = []
    tile_rows: list[tuple[int, ...]] = []
    biases: list[np.ndarray] = []
    for i, spec in enumerate(specs):
        rec = layers[i]
        for key, value in spec.items():
            if key != "name":
                rec[key] = value
        kind = spec["kind"]
        if kind in (KIND_ENCODE, KIND_CONV, KIND_FC):
            c_out = spec["out_shape"][0]
            if kind == KIND_FC:
                kk, flen = 1, int(np.prod(spec["in_shape"]))
            else:
                kk = spec["kernel"][0] * spec["kernel"][1]
                flen = spec["in_shape"][0] * kk
            bound = 2 ** (spec["weight_bits"] - 1) - 1
            w = _sparse_ints(rng, (c_out, flen), bound)
            if kind == KIND_FC:
                w[-1] = 0  # an all-pruned filter: tiles with nnz 0
                w[0, :] = rng.integers(1, bound, flen)  # a dense one
            dense[i] = w
            code, slots = PLACED.get(i, (0, None)) if placed else (0, None)
            bits = spec["weight_bits"] if compact else 0
            rows = _place(i, w, kk, n, sata, blobs, slots, bits)
            rec["tile_first"], rec["tile_count"] = len(tile_rows), len(rows)
            tile_rows += rows
            rec["groups"] = -(-c_out // n) if sata else c_out
            if slots is not None:
                rec["placement"], rec["groups"] = code, max(sl[0] for sl in slots) + 1
            rec["spatial_tiles"] = -(-(spec["out_shape"][1] * spec["out_shape"][2]) // 256)
            rec["flags"] = 1
            rec["bias_index"] = sum(len(b) for b in biases)
            biases.append(rng.integers(-(2**31), 2**31, c_out).astype(np.int32))
    model = np.zeros((), MODL_DTYPE)
    model["timesteps"] = 4
    model["num_classes"] = 10
    model["input_shape"] = (1, 8, 8)
    model["input_frac_bits"] = 7
    model["input_bits"] = 8
    model["num_pes"] = n
    model["scratchpad_words"] = SCRATCH
    model["word_bits"] = 16
    model["acc_bits"] = 24
    model["accumulators"] = 256
    model["grouping"] = grouping
    m = Mapping(
        name="tiny-net ü",
        model=model,
        layers=layers,
        layer_names=[s["name"] for s in specs],
        tiles=np.array(tile_rows, dtype=TILE_DTYPE),
        wsp=np.frombuffer(b"".join(blobs), np.uint8).copy(),
        bias=np.concatenate(biases),
        meta={"producer": "tests", "report": {"conv2": {"err": 0.5, "ok": True}}, "n": "ünï"},
    )
    return m, dense


@pytest.fixture(scope="module")
def sata() -> tuple[Mapping, dict[int, np.ndarray], bytes]:
    m, dense = build(GROUPING_SATA)
    return m, dense, encode_mapping(m)


@pytest.fixture(scope="module")
def systolic() -> tuple[Mapping, dict[int, np.ndarray], bytes]:
    m, dense = build(GROUPING_SYSTOLIC, seed=1)
    return m, dense, encode_mapping(m)


@pytest.fixture(scope="module")
def placed() -> tuple[Mapping, dict[int, np.ndarray], bytes]:
    m, dense = build(GROUPING_SATA, seed=2, placed=True)
    return m, dense, encode_mapping(m)


@pytest.fixture(scope="module")
def compact() -> tuple[Mapping, dict[int, np.ndarray], bytes]:
    m, dense = build(GROUPING_SATA, seed=3, compact=True)
    return m, dense, encode_mapping(m)


# ---------------------------------------------------------------------------------------------
# layout and round trips


def _names(dtype: np.dtype) -> tuple[str, ...]:
    assert dtype.names is not None
    return dtype.names


@pytest.mark.parametrize(
    ("dtype", "doc", "size"),
    [(MODL_DTYPE, DOC_MODL, 64), (LAYR_DTYPE, DOC_LAYR, 128), (TILE_DTYPE, DOC_TILE, 48)],
)
def test_record_layouts_match_the_document(
    dtype: np.dtype, doc: list[tuple[int, str]], size: int
) -> None:
    assert dtype.itemsize == size
    fields = dtype.fields
    assert fields is not None
    assert [(fields[name][1], name) for name in _names(dtype)] == doc
    for name in _names(dtype):  # explicit little-endian fields
        base = fields[name][0].base
        assert base.byteorder in ("<", "|") or (base.byteorder == "=" and np.little_endian)


def test_independent_reader_layouts() -> None:
    assert independent.HEADER.size == 64
    assert independent.ENTRY.size == 32
    assert independent.MODL.size == 64
    assert independent.LAYR.size == 128
    assert independent.TILE.size == 48


def test_constants() -> None:
    assert KIND_NAMES == {1: "ENCODE", 2: "CONV", 3: "FC", 4: "LIF", 5: "MAXPOOL", 6: "SUMPOOL",
                          7: "ADD", 8: "FLATTEN"}  # fmt: skip
    assert all(KIND_CODES[name] == code for code, name in KIND_NAMES.items())
    assert bytes.fromhex("55544d4150000d0a") == MAGIC_UTM


@pytest.mark.parametrize("which", ["sata", "systolic", "placed", "compact"])
def test_round_trip(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    m, _, data = request.getfixturevalue(which)
    assert len(data) < 8192
    assert encode_mapping(m) == data  # deterministic
    back = decode_mapping(data, what="m.utm")
    assert back.equals(m)
    assert m.equals(back)
    assert encode_mapping(back) == data  # byte-identical re-encode
    assert back.name == "tiny-net ü"
    assert back.layer_names == m.layer_names
    assert back.meta == m.meta
    assert int(back.model["layer_count"]) == len(m.layers)
    assert int(back.model["tile_count"]) == len(m.tiles)
    assert back.bias.dtype == np.int32
    assert back.wsp.flags.writeable  # owned copies, not views into the file
    assert back.layers.flags.writeable
    path = tmp_path / "m.utm"
    write_mapping(m, path)
    assert path.read_bytes() == data
    assert read_mapping(path).equals(m)
    with pytest.raises(MappingFormatError, match=r"absent\.utm: no such file$"):
        read_mapping(tmp_path / "absent.utm")


def test_strings_are_stored_once_in_first_use_order(sata: tuple) -> None:
    m, _, _ = sata
    layers = m.layers.copy()
    names = ["x", "y", "x", "tiny-net ü", "z", "y", "w", "v"]
    again = Mapping(m.name, m.model, layers, names, m.tiles, m.wsp, m.bias, {})
    data = encode_mapping(again)
    strs = bytes(read_container(data, MAGIC_UTM, (), what="m").sections[b"STRS"])
    assert strs == "tiny-net ü\0x\0y\0z\0w\0v\0".encode()
    back = decode_mapping(data)
    assert back.layer_names == names
    assert back.layers["name"].tolist() == [12, 14, 12, 0, 16, 14, 18, 20]
    assert bytes(read_container(data, MAGIC_UTM, (), what="m").sections[b"META"]) == b"{}"


def test_equals_sees_every_difference(sata: tuple) -> None:
    m, _, _ = sata

    def changed(**kw: object) -> Mapping:
        parts = {k: getattr(m, k) for k in Mapping.__dataclass_fields__}
        parts.update(kw)
        return Mapping(**parts)

    tiles = m.tiles.copy()
    tiles[3]["reserved"] = 1
    layers = m.layers.copy()
    layers[2]["threshold"] = 5
    wsp = m.wsp.copy()
    wsp[-1] ^= 1
    model = m.model.copy()
    model["acc_bits"] = 23
    for other in (
        changed(name="other"),
        changed(layer_names=[*m.layer_names[:-1], "fc"]),
        changed(tiles=tiles),
        changed(layers=layers),
        changed(wsp=wsp),
        changed(model=model),
        changed(bias=m.bias[:-1]),
        changed(bias=m.bias.astype(np.int64)),
        changed(meta={**m.meta, "n": "x"}),
        changed(meta={**m.meta, "report": {"conv2": {"err": 0.5, "ok": 1}}}),  # True vs 1
    ):
        assert not m.equals(other)
    assert not m.equals("not a mapping")
    # the derived storage fields are ignored: they are rewritten on encode
    model = m.model.copy()
    model["layer_count"], model["name"] = 99, 5
    layers = m.layers.copy()
    layers["name"] = 7
    same = changed(model=model, layers=layers)
    assert m.equals(same)
    assert encode_mapping(same) == encode_mapping(m)


def test_encode_refuses_bad_input(sata: tuple) -> None:
    m, _, _ = sata

    def changed(**kw: object) -> Mapping:
        parts = {k: getattr(m, k) for k in Mapping.__dataclass_fields__}
        parts.update(kw)
        return Mapping(**parts)

    with pytest.raises(TypeError, match="LAYR_DTYPE"):
        encode_mapping(changed(layers=np.zeros(8, [("kind", "<u2")])))
    with pytest.raises(TypeError, match="wsp"):
        encode_mapping(changed(wsp=m.wsp.astype(np.int16)))
    with pytest.raises(TypeError, match="bias"):
        encode_mapping(changed(bias=m.bias.astype(np.int64)))
    with pytest.raises(ValueError, match="layer names"):
        encode_mapping(changed(layer_names=m.layer_names[:-1]))
    with pytest.raises(ValueError, match="zero byte"):
        encode_mapping(changed(name="a\0b"))
    with pytest.raises(ValueError, match="JSON"):
        encode_mapping(changed(meta={"x": float("nan")}))
    layers = m.layers.copy()
    layers[3]["input0"] = 5
    with pytest.raises(
        MappingFormatError, match=r"^mapping 'tiny-net ü': LAYR\[3\]: input0 5 is not"
    ):
        encode_mapping(changed(layers=layers))


# ---------------------------------------------------------------------------------------------
# the independent reader agrees with the Mapping and with the dense weights


@pytest.mark.parametrize("which", ["sata", "systolic", "placed", "compact"])
def test_independent_reader_reads_every_field_and_weight(
    which: str, request: pytest.FixtureRequest
) -> None:
    m, dense, data = request.getfixturevalue(which)
    back = decode_mapping(data)
    doc = independent.read_utm(data)
    assert doc["version"] == ((1, 2) if which == "compact" else (1, 1))
    assert doc["model_name"] == m.name
    for name in _names(MODL_DTYPE):
        assert np.asarray(back.model[name]).tolist() == doc["model"][name], name
    assert doc["model"]["layer_count"] == len(m.layers)
    assert doc["model"]["tile_count"] == len(m.tiles)
    assert [rec["name_str"] for rec in doc["layers"]] == m.layer_names
    for i, rec in enumerate(doc["layers"]):
        for name in _names(LAYR_DTYPE):
            if name == "reserved":
                assert rec[name] == bytes(15)
            elif name != "name":
                assert np.asarray(m.layers[i][name]).tolist() == rec[name], (i, name)
    assert len(doc["tiles"]) == len(m.tiles)
    for i, rec in enumerate(doc["tiles"]):
        for name in _names(TILE_DTYPE):
            assert int(m.tiles[i][name]) == rec[name], (i, name)
    assert doc["bias"] == m.bias.tolist()
    assert doc["meta"] == m.meta
    # every weight, from the independent decode, equals the hand-made dense weights
    for li, w in dense.items():
        rebuilt = np.zeros(w.shape, np.int64)
        seen = np.zeros(w.shape, bool)
        for rec in doc["tiles"]:
            if rec["layer"] != li:
                continue
            span = slice(rec["position"], rec["position"] + rec["count"])
            assert not seen[rec["filter"], span].any()  # tiles never overlap
            seen[rec["filter"], span] = True
            rebuilt[rec["filter"], rec["positions"]] = rec["values"]
        assert seen.all()  # and cover every position of every filter
        np.testing.assert_array_equal(rebuilt, w)
        # and the Mapping's own decoder agrees
        for t in np.flatnonzero(m.tiles["layer"] == li):
            rec = m.tiles[t]
            start = int(rec["position"])
            got = back.tile_dense(int(t))
            np.testing.assert_array_equal(got, w[int(rec["filter"]), start : start + len(got)])


def test_several_tiles_per_pe_and_empty_tiles(sata: tuple) -> None:
    m, _, _ = sata
    assert (m.tiles["tile"] > 0).any()
    assert (m.tiles["nnz"] == 0).any()
    assert (m.tiles["count"] % 16 != 0).any()


# ---------------------------------------------------------------------------------------------
# WSP


def test_wsp_bit_order_by_hand() -> None:
    values = np.zeros(20, np.int16)
    values[[0, 3, 17]] = [5, -2, 300]
    blob = wsp_encode(values, values != 0)
    # bits 0 and 3 in byte 0, bit 17 = bit 1 of byte 2; two 16-bit mask words; then the values
    assert blob == bytes.fromhex("090002000500feff2c01")
    mask, got = wsp_decode(blob, 20, 3)
    assert np.flatnonzero(mask).tolist() == [0, 3, 17]
    assert got.tolist() == [5, -2, 300]
    assert got.dtype == np.int16
    np.testing.assert_array_equal(dense_from_wsp(memoryview(blob), 20, 3), values)
    assert independent.decode_wsp(blob, 100, 20, 3) == ([100, 103, 117], [5, -2, 300])


def test_wsp_stores_every_set_bit_even_a_zero_value() -> None:
    values = np.array([0, 7, 0], np.int16)
    mask = np.array([True, True, False])
    blob = wsp_encode(values, mask)
    assert blob == bytes.fromhex("030000000700")
    assert dense_from_wsp(blob, 3, 2).tolist() == [0, 7, 0]


def test_wsp_errors() -> None:
    blob = wsp_encode(np.array([1, 0, 2], np.int16), np.array([True, False, True]))
    with pytest.raises(MappingFormatError, match="need 4"):
        wsp_decode(blob, 3, 1)
    with pytest.raises(MappingFormatError, match="past count 1"):
        wsp_decode(blob[:2] + b"\0\0", 1, 1)
    with pytest.raises(MappingFormatError, match="2 set bits, nnz is 1"):
        wsp_decode(blob[:4], 3, 1)
    with pytest.raises(ValueError, match="int16"):
        wsp_encode(np.array([40000]), np.array([True]))
    with pytest.raises(TypeError, match="bool"):
        wsp_encode(np.array([1]), np.array([1]))
    with pytest.raises(ValueError, match="one length"):
        wsp_encode(np.array([1, 2]), np.array([True]))
    # values outside int16 are fine where the mask drops them; wider dtypes are accepted
    assert wsp_encode(np.array([40000, 3], np.int64), np.array([False, True])) == bytes.fromhex(
        "02000300"
    )


def _check_wsp(values: np.ndarray, mask: np.ndarray) -> None:
    blob = wsp_encode(values, mask)
    count, nnz = len(values), int(mask.sum())
    assert len(blob) == 2 * (-(-count // 16) + nnz)
    got_mask, got_values = wsp_decode(blob, count, nnz)
    np.testing.assert_array_equal(got_mask, mask)
    np.testing.assert_array_equal(got_values, values[mask])
    np.testing.assert_array_equal(dense_from_wsp(blob, count, nnz), np.where(mask, values, 0))
    positions, plain = independent.decode_wsp(blob, 0, count, nnz)
    assert positions == np.flatnonzero(mask).tolist()
    assert plain == values[mask].tolist()


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(np.int16, st.integers(1, 5000)),
    st.integers(0, 2**32 - 1),
    st.floats(0.0, 1.0),
)
def test_wsp_round_trip_property(values: np.ndarray, seed: int, density: float) -> None:
    mask = np.random.default_rng(seed).random(values.shape) < density
    _check_wsp(values, mask)
    _check_wsp(values, values != 0)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.integers(0, 2**32 - 1))
def test_wsp_round_trip_random_dense_data(count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(-32768, 32768, count).astype(np.int16)
    _check_wsp(values, rng.random(count) < rng.random())


# ---------------------------------------------------------------------------------------------
# semantic validation: one doctored record at a time, with valid CRCs


def _rebuild(base: bytes, sections: dict[str, bytes], drop: tuple[str, ...] = ()) -> bytes:
    """``base`` with some sections replaced (and CRCs right): what a buggy writer would make."""
    c = read_container(base, MAGIC_UTM, (), what="x")
    parts = [
        (tag, sections.get(tag.decode(), bytes(body)))
        for tag, body in c.sections.items()
        if tag.decode() not in drop
    ]
    return write_container(MAGIC_UTM, parts, version=c.version)


def _records(m: Mapping) -> dict[str, bytes]:
    return {
        "MODL": m.model.tobytes(),
        "LAYR": m.layers.tobytes(),
        "TILE": m.tiles.tobytes(),
        "WSPW": m.wsp.tobytes(),
        "BIAS": m.bias.astype("<i4").tobytes(),
    }


def _fix_tile_ranges(m: Mapping) -> Mapping:
    counts = np.bincount(m.tiles["layer"].astype(np.int64), minlength=len(m.layers))
    m.layers["tile_count"] = counts
    m.layers["tile_first"] = np.cumsum(counts) - counts
    m.model["tile_count"] = len(m.tiles)
    return m


def _set(array: np.ndarray, index: int | tuple | slice, name: str, value: object) -> np.ndarray:
    array[index][name] = value
    return array


def _wsp_value(m: Mapping, tile: int, k: int, value: int) -> None:
    t = m.tiles[tile]
    start = int(t["wsp_offset"]) + 2 * -(-int(t["count"]) // 16) + 2 * k
    m.wsp[start : start + 2] = np.frombuffer(struct.pack("<h", value), np.uint8)


def _mask_bit(m: Mapping, tile: int, bit: int) -> None:
    t = m.tiles[tile]
    m.wsp[int(t["wsp_offset"]) + bit // 8] ^= 1 << (bit % 8)


def _swap_tiles(m: Mapping) -> None:
    m.tiles[[4, 5]] = m.tiles[[5, 4]]


def _first_zero_bit(m: Mapping, tile: int) -> int:
    mask, _ = wsp_decode(m.tile_wsp(tile), int(m.tiles[tile]["count"]), int(m.tiles[tile]["nnz"]))
    return int(np.flatnonzero(~mask)[0])


def _first_tile(m: Mapping, layer: int) -> int:
    return int(np.flatnonzero((m.tiles["layer"] == layer) & (m.tiles["nnz"] > 0))[0])


def _without_tile(m: Mapping, index: int) -> Mapping:
    m.tiles = np.delete(m.tiles, index)
    return m


def _drop_tile(m: Mapping, which: str) -> Mapping:
    """Drop the first or the second tile of the first PE whose weights span two tiles."""
    second = int(np.flatnonzero(m.tiles["tile"] == 1)[0])
    return _fix_tile_ranges(_without_tile(m, second - 1 if which == "first" else second))


Mutation = Callable[[Mapping], object]
SATA_BIAS = build(GROUPING_SATA)[0].bias
SATA_CASES: list[tuple[str, Mutation, str | None]] = [
    (
        "timesteps",
        lambda m: _set(m.model, (), "timesteps", 0),
        "MODL: timesteps 0 is out of range 1..64",
    ),
    (
        "timesteps65",
        lambda m: _set(m.model, (), "timesteps", 65),
        "MODL: timesteps 65 is out of range",
    ),
    (
        "pes",
        lambda m: _set(m.model, (), "num_pes", 5000),
        "MODL: num_pes 5000 is out of range 1..4096",
    ),
    (
        "grouping",
        lambda m: _set(m.model, (), "grouping", 2),
        "MODL: grouping 2 is out of range 0..1",
    ),
    (
        "scratch",
        lambda m: _set(m.model, (), "scratchpad_words", 2**24 + 1),
        "MODL: scratchpad_words 16777217",
    ),
    (
        "input",
        lambda m: _set(m.model, (), "input_shape", (0, 8, 8)),
        "MODL: input_shape (0, 8, 8) is out of range 1..65535",
    ),
    (
        "classes",
        lambda m: _set(m.model, (), "num_classes", 0),
        "MODL: num_classes 0 is out of range",
    ),
    ("kind", lambda m: _set(m.layers, 5, "kind", 9), "LAYR[5]: unknown kind 9"),
    ("kind0", lambda m: _set(m.layers, 5, "kind", 0), "LAYR[5]: unknown kind 0"),
    (
        "input0",
        lambda m: _set(m.layers, 3, "input0", 5),
        "LAYR[3]: input0 5 is not an earlier layer",
    ),
    (
        "input0self",
        lambda m: _set(m.layers, 3, "input0", 3),
        "LAYR[3]: input0 3 is not an earlier layer",
    ),
    (
        "input0neg",
        lambda m: _set(m.layers, 3, "input0", -1),
        "LAYR[3]: input0 -1 is not an earlier layer",
    ),
    (
        "encode-in",
        lambda m: _set(m.layers, 0, "input0", 0),
        "LAYR[0]: ENCODE must read the input (-1), not 0",
    ),
    (
        "input1",
        lambda m: _set(m.layers, 3, "input1", -1),
        "LAYR[3]: input1 -1 is not an earlier layer",
    ),
    (
        "input1-lif",
        lambda m: _set(m.layers, 1, "input1", 0),
        "LAYR[1]: input1 is 0, must be -1 for LIF",
    ),
    (
        "shape",
        lambda m: _set(m.layers, 5, "in_shape", (4, 8, 70000)),
        "LAYR[5]: in_shape (4, 8, 70000) is out of range 1..65535",
    ),
    (
        "outshape0",
        lambda m: _set(m.layers, 1, "out_shape", (0, 8, 8)),
        "LAYR[1]: out_shape (0, 8, 8) is out of range",
    ),
    (
        "chain",
        lambda m: _set(m.layers, 1, "in_shape", (4, 8, 7)),
        "LAYR[1]: in_shape (4, 8, 7) does not match layer 0's output (4, 8, 8)",
    ),
    (
        "encode-shape",
        lambda m: _set(m.layers, 0, "in_shape", (2, 8, 8)),
        "LAYR[0]: in_shape (2, 8, 8) does not match the network input (1, 8, 8)",
    ),
    (
        "fc-in",
        lambda m: _set(m.layers, 7, "in_shape", (32, 2, 1)),
        "LAYR[7]: FC in_shape (32, 2, 1) is not (64, 1, 1)",
    ),
    (
        "add-operands",
        lambda m: _set(m.layers, 3, "input1", 0),
        None,
    ),  # 0 is an ENCODE (4,8,8): fine
    (
        "conv-out",
        lambda m: _set(m.layers, 2, "stride", (2, 2)),
        "LAYR[2]: out_shape (4, 8, 8) does not follow from in_shape, kernel, stride and pads "
        "(H, W = 4, 4)",
    ),
    (
        "kernel0",
        lambda m: _set(m.layers, 2, "kernel", (0, 3)),
        "LAYR[2]: kernel (0, 3) and stride (1, 1) must be >= 1",
    ),
    (
        "stride0",
        lambda m: _set(m.layers, 5, "stride", (2, 0)),
        "LAYR[5]: kernel (2, 2) and stride (2, 0) must be >= 1",
    ),
    (
        "bigkernel",
        lambda m: _set(m.layers, 5, "kernel", (9, 2)),
        "LAYR[5]: kernel (9, 2) is larger than the padded input",
    ),
    (
        "maxpool-pad",
        lambda m: _set(m.layers, 5, "pads", (1, 0, 0, 0)),
        "LAYR[5]: MAXPOOL has no padding",
    ),
    (
        "maxpool-ch",
        lambda m: (
            _set(m.layers, 5, "out_shape", (3, 4, 4)),
            _set(m.layers, 6, "in_shape", (3, 4, 4)),
        ),
        "LAYR[5]: MAXPOOL out_shape (3, 4, 4) should be (4, 4, 4)",
    ),
    (
        "flatten",
        lambda m: (
            _set(m.layers, 6, "out_shape", (63, 1, 1)),
            _set(m.layers, 7, "in_shape", (63, 1, 1)),
        ),
        "LAYR[6]: FLATTEN out_shape (63, 1, 1) should be (64, 1, 1)",
    ),
    (
        "lif-out",
        lambda m: (
            _set(m.layers, 4, "out_shape", (4, 8, 9)),
            _set(m.layers, 5, "in_shape", (4, 8, 9)),
        ),
        "LAYR[4]: LIF out_shape (4, 8, 9) should be (4, 8, 8)",
    ),
    (
        "fc-out",
        lambda m: _set(m.layers, 7, "out_shape", (10, 1, 2)),
        "LAYR[7]: FC out_shape (10, 1, 2) is not (features, 1, 1)",
    ),
    (
        "classes-out",
        lambda m: _set(m.layers, 7, "out_shape", (9, 1, 1)),
        "LAYR[7]: the last layer must be the FC producing the 10 logits, not FC (9, 1, 1)",
    ),
    (
        "lif-src",
        lambda m: _set(m.layers, 4, "input0", 1),
        "LAYR[4]: LIF reads layer 1, a LIF; it must read ENCODE, CONV, FC or ADD",
    ),
    ("leak", lambda m: _set(m.layers, 1, "leak_shift", 32), "LAYR[1]: leak_shift 32 exceeds 31"),
    (
        "add-shift-negative",
        lambda m: _set(m.layers, 3, "shift1", -1),
        "LAYR[3]: ADD shifts 0, -1 are out of range (ADD 0..31, ENCODE 0..62)",
    ),
    (
        "add-shift-wide",
        lambda m: _set(m.layers, 3, "shift0", 32),
        "LAYR[3]: ADD shifts 32, 6 are out of range (ADD 0..31, ENCODE 0..62)",
    ),
    (
        "encode-shift-negative",
        lambda m: _set(m.layers, 0, "shift0", -2),
        "LAYR[0]: ENCODE shifts -2, 0 are out of range (ADD 0..31, ENCODE 0..62)",
    ),
    ("reset", lambda m: _set(m.layers, 4, "reset", 2), "LAYR[4]: reset 2 is neither 0 nor 1"),
    (
        "reserved",
        lambda m: _set(m.layers, 2, "reserved", [0] * 14 + [1]),
        "LAYR[2]: reserved bytes are not zero",
    ),
    ("flags", lambda m: _set(m.layers, 2, "flags", 3), "LAYR[2]: unknown flags 0x3"),
    ("bias-flag", lambda m: _set(m.layers, 1, "flags", 1), "LAYR[1]: LIF cannot have a bias"),
    (
        "bias-huge",
        lambda m: _set(m.layers, 2, "bias_index", 2**64 - 1),
        "LAYR[2]: bias 18446744073709551615..",
    ),
    (
        "bias-end",
        lambda m: _set(m.layers, 7, "bias_index", len(m.bias) - 9),
        f"LAYR[7]: bias {len(SATA_BIAS) - 9}..{len(SATA_BIAS)} is outside BIAS",
    ),
    (
        "ew",
        lambda m: _set(m.layers, 0, "weight_bits", 9),
        "LAYR[0]: ENCODE weight_bits 9 is out of range 2..8",
    ),
    (
        "cw",
        lambda m: _set(m.layers, 2, "weight_bits", 17),
        "LAYR[2]: weight_bits 17 is out of range 2..16",
    ),
    (
        "cw1",
        lambda m: _set(m.layers, 2, "weight_bits", 1),
        "LAYR[2]: weight_bits 1 is out of range 2..16",
    ),
    (
        "tiles-range",
        lambda m: _set(m.layers, 2, "tile_first", 10**9),
        "LAYR[2]: tiles 1000000000..",
    ),
    (
        "tiles-nonweight",
        lambda m: _set(m.layers, 5, "tile_count", 1),
        "LAYR[5]: MAXPOOL has no weights but tile_count 1",
    ),
    (
        "tile-count",
        lambda m: _set(m.layers, 0, "tile_count", 3),
        "LAYR[0]: tile_count 3, but TILE has 4 records of it",
    ),
    (
        "tile-first",
        lambda m: _set(m.layers, 2, "tile_first", 3),
        "LAYR[2]: tile_first 3, but its first TILE record is 4",
    ),
    (
        "groups",
        lambda m: _set(m.layers, 2, "groups", 2),
        "LAYR[2]: groups 2, sata grouping of 4 filters on 4 PEs needs 1",
    ),
    (
        "spatial",
        lambda m: _set(m.layers, 2, "spatial_tiles", 2),
        "LAYR[2]: spatial_tiles 2 is not ceil(out H*W / accumulators) = 1",
    ),
    ("t-layer", lambda m: _set(m.tiles, 0, "layer", 99), "TILE[0]: layer 99 is not a layer index"),
    (
        "t-nonweight",
        lambda m: _set(m.tiles, 0, "layer", 1),
        "TILE[0]: layer 1 is a LIF, without weights",
    ),
    (
        "t-reserved",
        lambda m: _set(m.tiles, 3, "reserved", 1),
        "TILE[3]: reserved field is not zero",
    ),
    ("t-group", lambda m: _set(m.tiles, 0, "group", 5), "TILE[0]: group 5 is not below 1 groups"),
    ("t-pe", lambda m: _set(m.tiles, 0, "pe", 4), "TILE[0]: pe 4 is not below num_pes 4"),
    ("t-order", _swap_tiles, "TILE[5]: not sorted by (layer, group, pe, tile) after TILE[4]"),
    (
        "t-number",
        lambda m: _set(m.tiles, 0, "tile", 1),
        "TILE[0]: tile 1 breaks the numbering 0, 1, ...",
    ),
    ("t-count", lambda m: _set(m.tiles, 0, "count", 0), "TILE[0]: count is 0"),
    ("t-nnz", lambda m: _set(m.tiles, 0, "nnz", 10), "TILE[0]: nnz 10 exceeds count 9"),
    (
        "t-words",
        lambda m: _set(m.tiles, 0, "words", 0),
        "TILE[0]: words 0 is not ceil(count / 16) + nnz",
    ),
    ("t-scratch", lambda m: _set(m.model, (), "scratchpad_words", 5), "exceed scratchpad_words 5"),
    (
        "t-bytes",
        lambda m: _set(m.tiles, 0, "wsp_bytes", 0),
        "TILE[0]: wsp_bytes 0 is not 2 * words",
    ),
    (
        "t-odd",
        lambda m: _set(m.tiles, 1, "wsp_offset", int(m.tiles[1]["wsp_offset"]) + 1),
        "TILE[1]: wsp_offset",
    ),
    ("t-far", lambda m: _set(m.tiles, 1, "wsp_offset", 2**64 - 2), "TILE[1]: WSP blob of"),
    (
        "t-end",
        lambda m: _set(m.tiles, len(m.tiles) - 1, "wsp_offset", len(m.wsp)),
        "is outside WSPW",
    ),
    (
        "t-filter",
        lambda m: _set(m.tiles, 1, "filter", 2),
        "TILE[1]: filter 2 is not group * num_pes + pe = 1 (sata)",
    ),
    (
        "t-position",
        lambda m: _set(m.tiles, 1, "position", 9),
        "TILE[1]: position 9 is not 0, the start of PE 1's weights",
    ),
    (
        "t-overlap",
        lambda m: _set(m.tiles, 1, "wsp_offset", int(m.tiles[0]["wsp_offset"])),
        "TILE[1]: WSP blob overlaps TILE[0]'s",
    ),
    ("t-popcount", lambda m: _mask_bit(m, 0, _first_zero_bit(m, 0)), "TILE[0]: bitmask has"),
    ("t-padding", lambda m: _mask_bit(m, 0, 12), "TILE[0]: bitmask has bits set past count 9"),
    (
        "t-value8",
        lambda m: _wsp_value(m, 0, 0, 128),
        "TILE[0]: weight 128 does not fit layer 0's 8-bit weights",
    ),
    ("t-value8neg", lambda m: _wsp_value(m, 0, 0, -129), "TILE[0]: weight -129 does not fit"),
    ("t-value8ok", lambda m: _wsp_value(m, 0, 0, -128), None),
    (
        "t-value12",
        lambda m: _wsp_value(m, _first_tile(m, 7), 0, 2048),
        "weight 2048 does not fit layer 7's 12-bit weights",
    ),
    (
        "drop-slot",
        lambda m: _fix_tile_ranges(_without_tile(m, 0)),
        "LAYR[0]: tiles fill 3 (group, pe) slots, the grouping has 4",
    ),
    ("drop-first", lambda m: _drop_tile(m, "first"), "breaks the numbering"),
    ("drop-second", lambda m: _drop_tile(m, "second"), "end at position"),
    (
        "name-offset",
        lambda m: _set(m.layers, 3, "name", 10**6),
        "LAYR[3]: name offset 1000000 is not a terminated string in STRS",
    ),
    ("model-name", lambda m: _set(m.model, (), "name", 2**32 - 1), "MODL: name offset 4294967295"),
    ("suffix-name", lambda m: _set(m.layers, 3, "name", 1), None),  # a suffix is a string too
]


@pytest.mark.parametrize(("label", "mutate", "message"), SATA_CASES, ids=[c[0] for c in SATA_CASES])
def test_semantic_errors(sata: tuple, label: str, mutate: Mutation, message: str | None) -> None:
    _, _, data = sata
    m = decode_mapping(data)
    mutate(m)
    doctored = _rebuild(data, _records(m))
    if message is None:
        decode_mapping(doctored)
        return
    with pytest.raises(MappingFormatError) as info:
        decode_mapping(doctored, what="m.utm")
    text = str(info.value)
    assert text.startswith("m.utm: ")
    assert message in text, text
    assert "\n" not in text


SYSTOLIC_CASES: list[tuple[str, Mutation, str | None]] = [
    (
        "filter",
        lambda m: _set(m.tiles, 1, "filter", 0),
        "TILE[1]: filter 0 is not group 1 (systolic)",
    ),
    (
        "groups",
        lambda m: _set(m.layers, 2, "groups", 2),
        "LAYR[2]: groups 2, systolic grouping of 4 filters on 3 PEs needs 4",
    ),
    (
        "start",
        lambda m: _set(m.tiles, 0, "pe", 1),
        "TILE[0]: position 0 is not 9, the start of PE 1's weights",
    ),
    ("chunk", lambda m: _set(m.model, (), "num_pes", 4), "TILE["),
    ("empty-pe", lambda m: _set(m.tiles, _first_tile(m, 2) + 1, "pe", 2), "TILE["),
    (
        "sum-kernel",
        lambda m: _set(m.layers, 5, "kernel", (8, 7)),
        "LAYR[5]: SUMPOOL kernel (8, 7) is not the input's H, W",
    ),
    (
        "sum-out",
        lambda m: (
            _set(m.layers, 5, "out_shape", (4, 2, 1)),
            _set(m.layers, 6, "in_shape", (8, 1, 1)),
        ),
        "LAYR[5]: SUMPOOL out_shape (4, 2, 1) should be (4, 1, 1)",
    ),
]


@pytest.mark.parametrize(
    ("label", "mutate", "message"), SYSTOLIC_CASES, ids=[c[0] for c in SYSTOLIC_CASES]
)
def test_semantic_errors_systolic(
    systolic: tuple, label: str, mutate: Mutation, message: str | None
) -> None:
    _, _, data = systolic
    m = decode_mapping(data)
    mutate(m)
    with pytest.raises(MappingFormatError) as info:
        decode_mapping(_rebuild(data, _records(m)), what="m.utm")
    if message is not None:
        assert str(info.value).startswith(f"m.utm: {message}"), str(info.value)


PLACED_CASES: list[tuple[str, Mutation, str | None]] = [
    ("code", lambda m: _set(m.layers, 2, "placement", 3), "LAYR[2]: placement 3 is not 0, 1 or 2"),
    ("no-weights", lambda m: _set(m.layers, 1, "placement", 1), "LAYR[1]: LIF has no weights"),
    (
        "groups",
        lambda m: _set(m.layers, 2, "groups", 5),
        "LAYR[2]: groups 5 is not in 1..4 (one filter or more per group)",
    ),
    (
        "twice",
        lambda m: _set(m.tiles, _first_tile(m, 2), "filter", 1),
        "TILE[5]: filter 2 of layer 2: starts at position 18, so positions 0..17 are on no PE",
    ),
    ("uncovered", lambda m: _set(m.tiles, _first_tile(m, 2) + 1, "filter", 0), "filter 0 of"),
    (
        "sorted-part",
        lambda m: _set(m.layers, 2, "placement", 1),
        "a sorted (1) layer's PE holds a whole filter, not a part of it",
    ),
    (
        "idle-group",
        lambda m: _set(m.layers, 7, "groups", 4),
        "LAYR[7]: only 3 of its 4 groups hold a filter",
    ),
    ("contiguous-again", lambda m: _set(m.layers, 7, "placement", 0), "TILE["),
]


@pytest.mark.parametrize(
    ("label", "mutate", "message"), PLACED_CASES, ids=[c[0] for c in PLACED_CASES]
)
def test_semantic_errors_placed(
    placed: tuple, label: str, mutate: Mutation, message: str | None
) -> None:
    _, _, data = placed
    m = decode_mapping(data)
    mutate(m)
    with pytest.raises(MappingFormatError) as info:
        decode_mapping(_rebuild(data, _records(m)), what="m.utm")
    assert message is not None
    assert message in str(info.value), str(info.value)


def test_a_1_0_file_has_no_placement(placed: tuple) -> None:
    """1.0 readers' files stay valid; a 1.0 file with the (then reserved) byte set is not."""
    _, _, data = placed
    m = decode_mapping(data)
    parts = [(tag.encode(), body) for tag, body in _records(m).items()]
    c = read_container(data, MAGIC_UTM, (), what="x")
    rest = [(t, bytes(v)) for t, v in c.sections.items() if t not in dict(parts)]
    old = write_container(MAGIC_UTM, [*parts, *rest], version=(1, 0))
    with pytest.raises(MappingFormatError, match=r"LAYR\[2\]: reserved bytes are not zero"):
        decode_mapping(old)


@pytest.mark.parametrize(
    ("sections", "drop", "message"),
    [
        ({"MODL": bytes(60)}, (), "MODL: section is 60 bytes, expected 64"),
        ({"BIAS": bytes(7)}, (), "BIAS: section is 7 bytes, not a multiple of 4"),
        ({}, ("WSPW",), "missing required section WSPW"),
        ({"STRS": b""}, (), "MODL: name offset 0 is not a terminated string in STRS (0 bytes)"),
        ({"STRS": b"tiny"}, (), "MODL: name offset 0 is not a terminated string in STRS (4 bytes)"),
        ({"STRS": b"\xff\xfe\0" * 40}, (), "MODL: name at STRS offset 0 is not valid UTF-8"),
        ({"META": b"{"}, (), "META: not valid JSON (Expecting property name"),
        ({"META": b"[1, 2]"}, (), "META: not a JSON object"),
        ({"META": b'{"a": NaN}'}, (), "META: not valid JSON (NaN is not JSON)"),
        ({"META": b'{"a": -Infinity}'}, (), "META: not valid JSON (-Infinity is not JSON)"),
        ({"META": b"\xff{}"}, (), "META: not valid UTF-8"),
        ({"META": b"[" * 200000 + b"]" * 200000}, (), "META: not valid JSON"),
        ({"META": b'{"a": ' + b"9" * 5000 + b"}"}, (), "META: not valid JSON"),
    ],
)
def test_section_errors(
    sata: tuple, sections: dict[str, bytes], drop: tuple[str, ...], message: str
) -> None:
    _, _, data = sata
    with pytest.raises(MappingFormatError) as info:
        decode_mapping(_rebuild(data, sections, drop), what="m.utm")
    assert str(info.value).startswith(f"m.utm: {message}"), str(info.value)
    assert "\n" not in str(info.value)


def test_meta_is_optional(sata: tuple) -> None:
    _, _, data = sata
    assert decode_mapping(_rebuild(data, {}, ("META",))).meta == {}


def test_later_minor_version_ignores_reserved_fields(sata: tuple) -> None:
    m, _, data = sata
    back = decode_mapping(data)
    back.layers["reserved"][:, 3] = 7
    back.layers["flags"] |= 0x8000
    back.tiles["reserved"] = 9
    parts = [(tag.encode(), body) for tag, body in _records(back).items()]
    c = read_container(data, MAGIC_UTM, (), what="x")
    rest = [(t, bytes(v)) for t, v in c.sections.items() if t not in dict(parts)]
    newer = write_container(MAGIC_UTM, [*parts, *rest, (b"NEW1", b"future")], version=(1, 4))
    got = decode_mapping(newer)
    assert got.equals(m)  # what this reader does not know is dropped
    with pytest.raises(MappingFormatError, match=r"format version 2\.0 is not supported"):
        decode_mapping(write_container(MAGIC_UTM, [*parts, *rest], version=(2, 0)))


# ---------------------------------------------------------------------------------------------
# fuzzing: every damaged file fails with MappingFormatError, or decodes to the original


def _layout(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """(offset, length) of every section, and where the table ends."""
    count = struct.unpack_from("<I", data, 16)[0]
    spans = [struct.unpack_from("<QQ", data, 64 + 32 * i + 8) for i in range(count)]
    return [(int(o), int(n)) for o, n in spans], 64 + 32 * count


def _outcome(data: bytes, case: str) -> Mapping | None:
    """The decoded Mapping, or None after a clean MappingFormatError; anything else fails."""
    try:
        return decode_mapping(data, what="f.utm")
    except MappingFormatError as exc:
        text = str(exc)
        assert text.startswith("f.utm: "), (case, text)
        assert "\n" not in text, (case, text)
        return None
    except Exception as exc:  # the bug this test exists to find
        pytest.fail(f"{case}: {type(exc).__name__}: {exc}")


def _consistent(got: Mapping, case: str) -> None:
    """A doctored file that decodes is a valid mapping: it re-encodes and reads back the same."""
    try:
        again = decode_mapping(encode_mapping(got))
    except Exception as exc:
        pytest.fail(f"{case}: decoded but does not re-encode: {type(exc).__name__}: {exc}")
    assert again.equals(got), case


@pytest.mark.parametrize("which", ["sata", "systolic", "placed", "compact"])
def test_fuzz_every_byte_flipped(which: str, request: pytest.FixtureRequest) -> None:
    m, _, data = request.getfixturevalue(which)
    rng = np.random.default_rng(7)
    spans, table_end = _layout(data)
    covered = np.zeros(len(data), bool)  # bytes a CRC protects
    covered[:table_end] = True
    for offset, length in spans:
        covered[offset : offset + length] = True
    xor = rng.integers(1, 256, len(data))
    accepted = 0
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= int(xor[pos])
        got = _outcome(bytes(bad), f"flip {pos}")
        if got is not None:
            assert not covered[pos], f"flip at {pos} was accepted"
            assert got.equals(m), f"flip at {pos}"
            accepted += 1
    assert accepted == int((~covered).sum())  # exactly the zero gaps between sections


@pytest.mark.parametrize("which", ["sata", "systolic", "placed", "compact"])
def test_fuzz_truncated_and_extended(which: str, request: pytest.FixtureRequest) -> None:
    _, _, data = request.getfixturevalue(which)
    assert len(data) > 1000
    for size in range(len(data)):  # every length, 0..100 included
        assert _outcome(data[:size], f"truncate {size}") is None
    for extra in (b"\0", b"\0" * 64, b"junk"):
        assert _outcome(data + extra, "extended") is None


@pytest.mark.parametrize("which", ["sata", "systolic", "placed", "compact"])
def test_fuzz_multi_byte_damage(which: str, request: pytest.FixtureRequest) -> None:
    m, _, data = request.getfixturevalue(which)
    rng = np.random.default_rng(11)
    for case in range(400):
        bad = bytearray(data)
        if case % 2:
            for pos in rng.integers(0, len(data), rng.integers(2, 33)):
                bad[pos] = int(rng.integers(0, 256))
        else:
            start = int(rng.integers(0, len(data)))
            run = rng.integers(0, 256, int(rng.integers(2, 65)), dtype=np.uint8).tobytes()
            bad[start : start + len(run)] = run[: len(data) - start]
        got = _outcome(bytes(bad), f"damage {case}")
        if got is not None:
            assert got.equals(m), f"damage {case}"


_INTERESTING = [0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 63, 64, 255, 256, 65535, 65536,
                2**31 - 1, 2**31, 2**32 - 1]  # fmt: skip


@pytest.mark.parametrize("which", ["sata", "systolic", "placed", "compact"])
def test_fuzz_with_valid_crcs(which: str, request: pytest.FixtureRequest) -> None:
    """Damage the records and re-seal the CRCs: the semantic checks alone must catch it."""
    _, _, data = request.getfixturevalue(which)
    rng = np.random.default_rng(13)
    spans, _ = _layout(data)
    inside = np.concatenate([np.arange(o, o + n) for o, n in spans])
    positions = inside if len(inside) <= 2500 else rng.choice(inside, 2500, replace=False)
    accepted = rejected = 0
    cases: list[tuple[str, bytes]] = []
    for pos in positions:  # every byte of every section, flipped
        bad = bytearray(data)
        bad[pos] ^= int(rng.integers(1, 256))
        cases.append((f"sealed flip {pos}", seal_crcs(bad)))
    for k in range(1000):  # whole little-endian fields set to boundary values
        pos = int(rng.choice(inside))
        pos -= pos % 4
        width = 8 if k % 5 == 0 else 4 if k % 5 < 4 else 2
        value = int(rng.choice(_INTERESTING)) + int(rng.integers(-1, 2))
        bad = bytearray(data)
        bad[pos : pos + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")[
            : len(data) - pos
        ]
        cases.append((f"sealed field {pos}={value}", seal_crcs(bad)))
    for pos in range(0, _layout(data)[1]):  # header and table fields, CRCs recomputed
        bad = bytearray(data)
        bad[pos] ^= int(rng.integers(1, 256))
        cases.append((f"sealed header flip {pos}", seal_crcs(bad)))
    for case, bad_data in cases:
        got = _outcome(bad_data, case)
        if got is None:
            rejected += 1
        else:
            accepted += 1
            _consistent(got, case)
    assert rejected > 0.5 * len(cases)


# ---------------------------------------------------------------------------------------------
# hostile files: clean errors, fast, no allocation a file's size does not justify


def _hostile(data: bytes) -> list[tuple[str, bytes]]:
    m = decode_mapping(data)
    out: list[tuple[str, bytes]] = []
    header = bytearray(data)
    header[16:20] = (2**31).to_bytes(4, "little")
    out.append(("section_count 2^31", seal_crcs(header)))
    table = bytearray(data)
    table[64 + 8 : 64 + 16] = (2**62).to_bytes(8, "little")
    out.append(("offset past the end", seal_crcs(table)))
    table = bytearray(data)
    table[64 + 16 : 64 + 24] = (2**63).to_bytes(8, "little")
    out.append(("length 2^63", seal_crcs(table)))
    for field, value in (("tile_count", 2**32 - 1), ("layer_count", 2**32 - 1)):
        model = m.model.copy()
        model[field] = value
        out.append((f"{field} {value}", _rebuild(data, {"MODL": model.tobytes()})))
    out.append(("256 tiles of 2 MiB sharing one blob", _giant_tiles()))
    layers = m.layers.copy()
    layers[2]["bias_index"] = 2**64 - 1
    out.append(("bias_index 2^64-1", _rebuild(data, {"LAYR": layers.tobytes()})))
    tiles = m.tiles.copy()
    tiles[0]["wsp_offset"] = 2**64 - 2
    out.append(("wsp_offset 2^64-2", _rebuild(data, {"TILE": tiles.tobytes()})))
    return out


def _giant_tiles() -> bytes:
    """Structurally valid tiles over a 65535 x 65535 kernel whose 2 MiB blobs all overlap.

    Gathering every tile's bitmask would touch 512 MiB; the overlap check must refuse first.
    """
    model = np.zeros((), MODL_DTYPE)
    for key, value in dict(timesteps=1, num_classes=1, input_shape=(1, 65535, 65535),
                           input_bits=8, num_pes=1, scratchpad_words=2**24, word_bits=16,
                           acc_bits=24, accumulators=256, layer_count=2).items():  # fmt: skip
        model[key] = value
    layers = np.zeros(2, LAYR_DTYPE)
    layers["input1"] = -1
    layers["groups"] = 1
    layers["weight_bits"] = (8, 16)
    layers[0]["kind"], layers[0]["input0"] = KIND_ENCODE, -1
    layers[0]["in_shape"], layers[0]["out_shape"] = (1, 65535, 65535), (1, 1, 1)
    layers[0]["kernel"], layers[0]["stride"] = (65535, 65535), (1, 1)
    layers[1]["kind"], layers[1]["input0"], layers[1]["spatial_tiles"] = KIND_FC, 0, 1
    layers[1]["in_shape"], layers[1]["out_shape"] = (1, 1, 1), (1, 1, 1)
    flen = 65535 * 65535
    counts = [2**24] * (flen // 2**24) + [flen % 2**24]
    tiles = np.zeros(len(counts) + 1, TILE_DTYPE)
    tiles["tile"][:-1] = np.arange(len(counts))
    tiles["position"][:-1] = np.cumsum(counts) - counts
    tiles["count"] = [*counts, 1]
    tiles["words"] = -(-tiles["count"].astype(np.int64) // 16)
    tiles["wsp_bytes"] = 2 * tiles["words"]
    tiles["layer"][-1] = 1
    layers["tile_first"], layers["tile_count"] = (0, len(counts)), (len(counts), 1)
    model["tile_count"] = len(tiles)
    sections = [
        (b"MODL", model.tobytes()),
        (b"LAYR", layers.tobytes()),
        (b"TILE", tiles.tobytes()),
        (b"WSPW", bytes(2 * 2**20)),
        (b"BIAS", b""),
        (b"STRS", b"x\0"),
    ]
    return write_container(MAGIC_UTM, sections)


def test_giant_tiles_are_valid_but_for_the_overlap() -> None:
    with pytest.raises(MappingFormatError, match=r"^m: TILE\[1\]: WSP blob overlaps TILE\[0\]'s$"):
        decode_mapping(_giant_tiles(), what="m")


def _hostile_compact(data: bytes) -> list[tuple[str, bytes]]:
    """A compact tile whose 2 MiB stream is all one bits: refused on its quotient count, without
    expanding the stream's bits."""
    m = decode_mapping(data)
    t = _first_compact(m)
    size = 2 << 20
    m.tiles[t]["wsp_offset"] = len(m.wsp)
    m.tiles[t]["words"] = size // 2
    m.model["scratchpad_words"] = size // 2
    wsp = np.concatenate([m.wsp, np.full(size, 0xFF, np.uint8)])
    records = {**_records(m), "WSPW": wsp.tobytes()}
    return [("compact stream of 2 MiB ones", _rebuild(data, records))]


def test_hostile_files(sata: tuple, compact: tuple) -> None:
    _, _, data = sata
    for case, hostile in [*_hostile(data), *_hostile_compact(compact[2])]:
        tracemalloc.start()
        try:
            assert _outcome(hostile, case) is None, case
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert peak < 8 * len(hostile) + (4 << 20), (case, peak)


# ---------------------------------------------------------------------------------------------
# version 1.2: the compact encoding's TILE fields


def _first_compact(m: Mapping) -> int:
    return int(np.flatnonzero(m.tiles["encoding"] == 1)[0])


COMPACT_CASES: list[tuple[str, Mutation, str]] = [
    ("encoding-2", lambda m: _set(m.tiles, 0, "encoding", 2), "TILE[0]: encoding 2 is not 0"),
    ("rice_k-32", lambda m: _set(m.tiles, _first_compact(m), "rice_k", 32), "out of range 0..31"),
    ("wsp-rice_k", lambda m: _set(m.tiles, 1, "rice_k", 3), "TILE[1]: rice_k 3 of a WSP tile"),
    (
        "compact-wsp_bytes",
        lambda m: _set(m.tiles, _first_compact(m), "wsp_bytes", 2),
        "wsp_bytes 2 of a compact tile is not 0",
    ),
    ("compact-words", lambda m: _set(m.tiles, _first_compact(m), "words", 1), "cannot hold 5"),
    ("compact-nnz", lambda m: _set(m.tiles, _first_compact(m), "nnz", 1), "quotients, nnz is 1"),
    ("reserved", lambda m: _set(m.tiles, 2, "reserved", 1), "TILE[2]: reserved field is not zero"),
]


@pytest.mark.parametrize(
    ("label", "mutate", "message"), COMPACT_CASES, ids=[c[0] for c in COMPACT_CASES]
)
def test_semantic_errors_compact(
    compact: tuple, label: str, mutate: Mutation, message: str
) -> None:
    _, _, data = compact
    m = decode_mapping(data)
    assert m.tiles["encoding"][0] == 1
    assert m.tiles["encoding"][1] == 0
    mutate(m)
    with pytest.raises(MappingFormatError) as info:
        decode_mapping(_rebuild(data, _records(m)), what="m.utm")
    assert message in str(info.value), str(info.value)


def test_compact_tiles_need_version_1_2(compact: tuple) -> None:
    """A 1.1 file's encoding and rice_k bytes were reserved: compact tiles there are rejected."""
    m, _, data = compact
    c = read_container(data, MAGIC_UTM, (), what="x")
    assert c.version == m.version == (1, 2)
    sections = [(t, bytes(v)) for t, v in c.sections.items()]
    older = write_container(MAGIC_UTM, sections, version=(1, 1))
    with pytest.raises(MappingFormatError, match=r"TILE\[0\]: reserved field is not zero"):
        decode_mapping(older)
    m2, _ = build(GROUPING_SATA, seed=3)  # the same network, WSP only: written as 1.1
    assert m2.version == (1, 1)
    assert read_container(encode_mapping(m2), MAGIC_UTM, (), what="x").version == (1, 1)


# version 1.2: SUMPOOL windows (the golden vector vgg_avgpool holds two)

AVGPOOL_VECTOR = Path(__file__).resolve().parents[1] / "docs" / "vectors" / "vgg_avgpool.utm"


def _avgpool() -> tuple[bytes, Mapping, int]:
    data = AVGPOOL_VECTOR.read_bytes()
    m = decode_mapping(data)
    return data, m, int(np.flatnonzero(window_sumpools(m.layers))[0])


def test_window_sumpools_are_version_1_2_and_whole_map_ones_stay_1_1(sata: tuple) -> None:
    data, m, i = _avgpool()
    assert read_container(data, MAGIC_UTM, (), what="x").version == (1, 2)
    assert encode_mapping(m) == data
    assert tuple(m.layers[i]["kernel"]) == tuple(m.layers[i]["stride"]) == (2, 2)
    assert required_version(decode_mapping(sata[2]).layers) == (1, 1)
    assert read_container(sata[2], MAGIC_UTM, (), what="x").version == (1, 1)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("as-1.1", "SUMPOOL kernel (2, 2) is not the input's H, W (window sums need format"),
        ("pads", "SUMPOOL has no padding"),
        ("stride", "kernel (2, 2) and stride (0, 2) must be >= 1"),
        ("out", "out_shape (4, 7, 7) does not follow from in_shape, kernel, stride and pads"),
    ],
)
def test_window_sumpool_errors(label: str, message: str) -> None:
    data, m, i = _avgpool()
    version = (1, 1) if label == "as-1.1" else (1, 2)
    if label == "pads":
        _set(m.layers, i, "pads", (0, 0, 1, 1))
    elif label == "stride":
        _set(m.layers, i, "stride", (0, 2))
    elif label == "out":
        _set(m.layers, i, "out_shape", (4, 7, 7))
        _set(m.layers, i + 1, "in_shape", (4, 7, 7))
    c = read_container(data, MAGIC_UTM, (), what="x")
    parts = [(tag.encode(), body) for tag, body in _records(m).items()]
    rest = [(t, bytes(v)) for t, v in c.sections.items() if t not in dict(parts)]
    with pytest.raises(MappingFormatError) as info:
        decode_mapping(write_container(MAGIC_UTM, [*parts, *rest], version=version), what="m")
    assert str(info.value).startswith(f"m: LAYR[{i}]: {message}"), str(info.value)


def test_reset_2_is_version_1_2() -> None:
    """LIF reset 2 (subtract after the leak, golden vector vgg_after_leak) needs version 1.2."""
    path = AVGPOOL_VECTOR.with_name("vgg_after_leak.utm")
    data = path.read_bytes()
    assert read_container(data, MAGIC_UTM, (), what="x").version == (1, 2)
    m = decode_mapping(data)
    i = int(np.flatnonzero(m.layers["reset"] == 2)[0])
    c = read_container(data, MAGIC_UTM, (), what="x")
    parts = [(tag.encode(), body) for tag, body in _records(m).items()]
    rest = [(t, bytes(v)) for t, v in c.sections.items() if t not in dict(parts)]
    with pytest.raises(MappingFormatError, match=rf"LAYR\[{i}\]: reset 2 is neither 0 nor 1"):
        decode_mapping(write_container(MAGIC_UTM, [*parts, *rest], version=(1, 1)))
    _set(m.layers, i, "reset", 3)
    parts = [(tag.encode(), body) for tag, body in _records(m).items()]
    with pytest.raises(MappingFormatError, match=rf"LAYR\[{i}\]: reset 3 is not 0, 1 or 2"):
        decode_mapping(write_container(MAGIC_UTM, [*parts, *rest], version=(1, 2)))
