"""The mapped binary (``.utm``): records, WSP blobs and their file (docs/mapping-format.md, §2).

The records are numpy structured arrays whose dtypes are the documented byte layouts, so a
``Mapping`` is written and read without per-record Python code, and checked vectorized: a file is
a runtime's only description of the network, so decoding refuses anything inconsistent (one line
naming the record) instead of letting a simulator index out of bounds later. Encoding runs the
same checks, so no invalid file is ever written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from uticompile.container import read_container, read_file_bytes, write_container
from uticompile.errors import MappingFormatError
from uticompile.fileio import atomic_write_bytes
from uticompile.grouping import active_slot_count, group_count, slot_filter, slot_span

MAGIC_UTM = b"UTMAP\x00\r\n"
VERSION = (1, 0)
"""Format version written."""

MODL_DTYPE = np.dtype(
    [
        ("name", "<u4"),
        ("timesteps", "<u4"),
        ("num_classes", "<u4"),
        ("input_shape", "<u4", (3,)),
        ("input_frac_bits", "<i4"),
        ("input_bits", "<u4"),
        ("num_pes", "<u4"),
        ("scratchpad_words", "<u4"),
        ("word_bits", "<u4"),
        ("acc_bits", "<u4"),
        ("accumulators", "<u4"),
        ("grouping", "<u4"),
        ("layer_count", "<u4"),
        ("tile_count", "<u4"),
    ]
)
LAYR_DTYPE = np.dtype(
    [
        ("kind", "<u2"),
        ("flags", "<u2"),
        ("name", "<u4"),
        ("input0", "<i4"),
        ("input1", "<i4"),
        ("in_shape", "<u4", (3,)),
        ("out_shape", "<u4", (3,)),
        ("kernel", "<u2", (2,)),
        ("stride", "<u2", (2,)),
        ("pads", "<u2", (4,)),
        ("frac_bits", "<i4"),
        ("weight_bits", "<u4"),
        ("bias_index", "<u8"),
        ("tile_first", "<u4"),
        ("tile_count", "<u4"),
        ("threshold", "<i4"),
        ("leak_mult", "<u4"),
        ("leak_shift", "<u4"),
        ("reset", "<u4"),
        ("shift0", "<i4"),
        ("shift1", "<i4"),
        ("groups", "<u4"),
        ("spatial_tiles", "<u4"),
        ("reserved", "u1", (16,)),
    ]
)
TILE_DTYPE = np.dtype(
    [
        ("layer", "<u4"),
        ("group", "<u4"),
        ("pe", "<u2"),
        ("tile", "<u2"),
        ("filter", "<u4"),
        ("position", "<u4"),
        ("count", "<u4"),
        ("nnz", "<u4"),
        ("words", "<u4"),
        ("wsp_offset", "<u8"),
        ("wsp_bytes", "<u4"),
        ("reserved", "<u4"),
    ]
)

KIND_ENCODE = 1
KIND_CONV = 2
KIND_FC = 3
KIND_LIF = 4
KIND_MAXPOOL = 5
KIND_SUMPOOL = 6
KIND_ADD = 7
KIND_FLATTEN = 8
KIND_NAMES: dict[int, str] = {
    KIND_ENCODE: "ENCODE",
    KIND_CONV: "CONV",
    KIND_FC: "FC",
    KIND_LIF: "LIF",
    KIND_MAXPOOL: "MAXPOOL",
    KIND_SUMPOOL: "SUMPOOL",
    KIND_ADD: "ADD",
    KIND_FLATTEN: "FLATTEN",
}
KIND_CODES: dict[str, int] = {name: code for code, name in KIND_NAMES.items()}
WEIGHT_KINDS = frozenset({KIND_ENCODE, KIND_CONV, KIND_FC})

LAYER_FLAG_BIAS = 1
GROUPING_SATA = 0
GROUPING_SYSTOLIC = 1
GROUPING_NAMES: dict[int, str] = {GROUPING_SATA: "sata", GROUPING_SYSTOLIC: "systolic"}
GROUPING_CODES: dict[str, int] = {name: code for code, name in GROUPING_NAMES.items()}
RESET_HARD = 0
RESET_SUBTRACT = 1

SECTION_TAGS = (b"MODL", b"LAYR", b"TILE", b"WSPW", b"BIAS", b"STRS", b"META")
"""Sections in the order written; all but META are required."""
REQUIRED_SECTIONS = SECTION_TAGS[:-1]

MAX_TIMESTEPS = 64
MAX_DIM = 65535
MAX_PES = 4096
MAX_SCRATCHPAD_WORDS = 1 << 24

#: MODL fields and their accepted ranges. The document gives input_bits 8, word_bits 16,
#: acc_bits 24 and accumulators 256 (the paper's accelerator); the hardware config admits other
#: values, so the reader accepts the ranges a mapping can represent (weights are stored as i16).
MODL_RANGES: dict[str, tuple[int, int]] = {
    "timesteps": (1, MAX_TIMESTEPS),
    "num_classes": (1, MAX_DIM),
    "input_bits": (2, 8),
    "num_pes": (1, MAX_PES),
    "scratchpad_words": (1, MAX_SCRATCHPAD_WORDS),
    "word_bits": (2, 16),
    "acc_bits": (8, 32),
    "accumulators": (1, 1 << 20),
    "grouping": (0, 1),
}

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
_GATHER_BUDGET = 1 << 22  # bytes of WSPW gathered at once while checking blobs


@dataclass(eq=False)
class Mapping:
    """One mapped network: the records of a ``.utm`` file, with names resolved.

    ``model`` is one ``MODL_DTYPE`` record (shape ``()``), ``layers`` ``LAYR_DTYPE [L]``,
    ``tiles`` ``TILE_DTYPE [N]``, ``wsp`` the WSPW bytes (uint8), ``bias`` the BIAS int32 array.
    The string offsets (``name`` fields) and MODL ``layer_count``/``tile_count`` are storage
    details derived on write from ``name``, ``layer_names`` and the array lengths; their values
    here are ignored by ``encode_mapping`` and by ``equals``.
    """

    name: str
    model: np.ndarray
    layers: np.ndarray
    layer_names: list[str]
    tiles: np.ndarray
    wsp: np.ndarray
    bias: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def equals(self, other: object) -> bool:
        """Exact equality of every field and byte (derived storage fields excepted, see above)."""
        if not isinstance(other, Mapping):
            return False
        if self.name != other.name or list(self.layer_names) != list(other.layer_names):
            return False
        for a, b in zip(_comparable(self), _comparable(other), strict=True):
            if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
                return False
        try:
            return _meta_text(self.meta) == _meta_text(other.meta)
        except (TypeError, ValueError):
            return bool(self.meta == other.meta)

    def tile_wsp(self, index: int) -> bytes:
        """The WSP blob of tile ``index``."""
        t = self.tiles[index]
        start = int(t["wsp_offset"])
        return bytes(self.wsp[start : start + int(t["wsp_bytes"])])

    def tile_dense(self, index: int) -> np.ndarray:
        """Tile ``index``'s weights at its ``count`` positions (int16, pruned ones 0)."""
        t = self.tiles[index]
        return dense_from_wsp(self.tile_wsp(index), int(t["count"]), int(t["nnz"]))


def _comparable(m: Mapping) -> list[np.ndarray]:
    """The arrays ``equals`` compares, with the derived storage fields zeroed."""
    model = np.array(m.model, copy=True)
    layers = np.array(m.layers, copy=True)
    if model.dtype == MODL_DTYPE:
        model["name"] = model["layer_count"] = model["tile_count"] = 0
    if layers.dtype == LAYR_DTYPE:
        layers["name"] = 0
    return [model, layers, np.asarray(m.tiles), np.asarray(m.wsp), np.asarray(m.bias)]


# ---------------------------------------------------------------------------------------------
# WSP blobs (section 2.4)


def _mask_bytes(count: int) -> int:
    return 2 * -(-count // 16)


def wsp_encode(values: np.ndarray, mask: np.ndarray) -> bytes:
    """The WSP blob of one tile: ``mask`` as 16-bit bitmask words, then ``values[mask]`` (i16).

    ``values`` are the tile's weights at its ``count`` positions (integers fitting int16),
    ``mask`` a bool array of the same length; every set bit stores its value, whatever it is.
    """
    v = np.asarray(values)
    m = np.asarray(mask)
    if v.ndim != 1 or m.shape != v.shape:
        raise ValueError(f"values {v.shape} and mask {m.shape} must be 1-D of one length")
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be bool, got {m.dtype}")
    if v.dtype.kind not in "iu":
        raise TypeError(f"values must be integers, got {v.dtype}")
    kept = v[m]
    if kept.size and (int(kept.min()) < -32768 or int(kept.max()) > 32767):
        raise ValueError("a stored weight does not fit int16")
    bits = np.zeros(_mask_bytes(v.size) * 8, dtype=bool)
    bits[: v.size] = m
    return np.packbits(bits, bitorder="little").tobytes() + kept.astype("<i2").tobytes()


def wsp_decode(
    blob: bytes | bytearray | memoryview, count: int, nnz: int
) -> tuple[np.ndarray, np.ndarray]:
    """(mask bool [count], values int16 [nnz]) of one tile's blob, checked against the bitmask."""
    if count < 0 or nnz < 0:
        raise ValueError(f"count {count} and nnz {nnz} must be >= 0")
    raw = np.frombuffer(blob, dtype=np.uint8)
    mbytes = _mask_bytes(count)
    if raw.size != mbytes + 2 * nnz:
        raise MappingFormatError(
            f"WSP blob is {raw.size} bytes; count {count} and nnz {nnz} need {mbytes + 2 * nnz}"
        )
    bits = np.unpackbits(raw[:mbytes], bitorder="little").view(bool)
    if bits[count:].any():
        raise MappingFormatError(f"WSP blob has bitmask bits set past count {count}")
    mask = bits[:count].copy()
    ones = int(np.count_nonzero(mask))
    if ones != nnz:
        raise MappingFormatError(f"WSP bitmask has {ones} set bits, nnz is {nnz}")
    values = np.frombuffer(raw, dtype="<i2", count=nnz, offset=mbytes).astype(np.int16)
    return mask, values


def dense_from_wsp(blob: bytes | bytearray | memoryview, count: int, nnz: int) -> np.ndarray:
    """The tile's ``count`` weights (int16) from its blob, pruned positions 0."""
    mask, values = wsp_decode(blob, count, nnz)
    dense = np.zeros(count, dtype=np.int16)
    dense[mask] = values
    return dense


# ---------------------------------------------------------------------------------------------
# encoding


def _meta_text(meta: dict[str, Any]) -> str:
    """Canonical META text; NaN and infinities are refused, as JSON has none."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _string_table(names: list[str]) -> tuple[bytes, list[int]]:
    """STRS bytes (first-use order, each distinct string once) and each name's offset."""
    table = bytearray()
    where: dict[str, int] = {}
    offsets = []
    for s in names:
        if s not in where:
            raw = s.encode("utf-8")
            if b"\x00" in raw:
                raise ValueError(f"name {s!r} contains a zero byte")
            where[s] = len(table)
            table += raw + b"\x00"
        offsets.append(where[s])
    if len(table) > 0xFFFFFFFF:
        raise ValueError("the string table does not fit u32 offsets")
    return bytes(table), offsets


def _records(a: np.ndarray, dtype: np.dtype, what: str, ndim: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype != dtype:
        names = {MODL_DTYPE: "MODL_DTYPE", LAYR_DTYPE: "LAYR_DTYPE", TILE_DTYPE: "TILE_DTYPE"}
        raise TypeError(f"Mapping.{what} must have dtype {names[dtype]}, got {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"Mapping.{what} must be {ndim}-D, got shape {arr.shape}")
    return arr.copy()


def encode_mapping(m: Mapping) -> bytes:
    """The ``.utm`` bytes of ``m``: deterministic, and valid (``MappingFormatError`` if not).

    Strings are stored in first-use order (model name, then layer names) and META as canonical
    JSON. Raises TypeError/ValueError for arrays of the wrong dtype or shape.
    """
    model = _records(m.model, MODL_DTYPE, "model", 0)
    layers = _records(m.layers, LAYR_DTYPE, "layers", 1)
    tiles = _records(m.tiles, TILE_DTYPE, "tiles", 1)
    wsp = np.asarray(m.wsp)
    bias = np.asarray(m.bias)
    if wsp.dtype != np.uint8 or wsp.ndim != 1:
        raise TypeError(f"Mapping.wsp must be 1-D uint8, got {wsp.dtype} {wsp.shape}")
    if not np.can_cast(bias.dtype, np.int32, "safe") or bias.ndim != 1:
        raise TypeError(f"Mapping.bias must be 1-D int32, got {bias.dtype} {bias.shape}")
    if len(m.layer_names) != len(layers):
        raise ValueError(f"{len(m.layer_names)} layer names for {len(layers)} layers")
    strs, offsets = _string_table([m.name, *m.layer_names])
    model["name"] = offsets[0]
    model["layer_count"] = len(layers)
    model["tile_count"] = len(tiles)
    layers["name"] = offsets[1:]
    if not isinstance(m.meta, dict):
        raise TypeError(f"Mapping.meta must be a dict, got {type(m.meta).__name__}")
    meta = _meta_text(m.meta)
    _validate(model, layers, tiles, wsp, len(bias), strict=True, what=f"mapping {m.name!r}")
    sections = [
        (b"MODL", model.tobytes()),
        (b"LAYR", layers.tobytes()),
        (b"TILE", tiles.tobytes()),
        (b"WSPW", wsp.tobytes()),
        (b"BIAS", bias.astype("<i4").tobytes()),
        (b"STRS", strs),
        (b"META", meta.encode("utf-8")),
    ]
    return write_container(MAGIC_UTM, sections, version=VERSION)


def write_mapping(m: Mapping, path: str | os.PathLike[str]) -> None:
    """Write ``m`` to ``path`` atomically: a mapping appears whole or not at all."""
    atomic_write_bytes(path, encode_mapping(m))


# ---------------------------------------------------------------------------------------------
# decoding


def decode_mapping(data: bytes | bytearray | memoryview, *, what: str = "mapping") -> Mapping:
    """Parse and fully validate ``.utm`` bytes; ``what`` prefixes every error message."""
    container = read_container(data, MAGIC_UTM, REQUIRED_SECTIONS, what=what)
    strict = container.version[1] == 0
    sec = container.sections

    def fail(msg: str) -> NoReturn:
        raise MappingFormatError(f"{what}: {msg}")

    if len(sec[b"MODL"]) != MODL_DTYPE.itemsize:
        fail(f"MODL: section is {len(sec[b'MODL'])} bytes, expected {MODL_DTYPE.itemsize}")
    model = np.frombuffer(sec[b"MODL"], MODL_DTYPE).reshape(())
    for tag, dtype, count_field in (
        (b"LAYR", LAYR_DTYPE, "layer_count"),
        (b"TILE", TILE_DTYPE, "tile_count"),
    ):
        records = int(model[count_field])
        if len(sec[tag]) != records * dtype.itemsize:  # before anything is sized by the count
            fail(
                f"{tag.decode()}: section is {len(sec[tag])} bytes, "
                f"MODL {count_field} {records} needs {records * dtype.itemsize}"
            )
    if len(sec[b"BIAS"]) % 4:
        fail(f"BIAS: section is {len(sec[b'BIAS'])} bytes, not a multiple of 4")
    layers = np.frombuffer(sec[b"LAYR"], LAYR_DTYPE)
    tiles = np.frombuffer(sec[b"TILE"], TILE_DTYPE)
    wsp = np.frombuffer(sec[b"WSPW"], np.uint8)
    bias = np.frombuffer(sec[b"BIAS"], "<i4")
    _validate(model, layers, tiles, wsp, len(bias), strict=strict, what=what)
    strs = np.frombuffer(sec[b"STRS"], np.uint8)
    name_offsets = np.concatenate([[int(model["name"])], layers["name"].astype(np.int64)])
    names = _resolve_strings(strs, name_offsets, what)
    meta = _parse_meta(sec[b"META"], what) if b"META" in sec else {}
    layers = layers.copy()
    tiles = tiles.copy()
    if not strict:  # a later minor version: what this reader does not know is ignored
        layers["reserved"] = 0
        layers["flags"] &= LAYER_FLAG_BIAS
        tiles["reserved"] = 0
    return Mapping(
        name=names[0],
        model=model.copy(),
        layers=layers,
        layer_names=names[1:],
        tiles=tiles,
        wsp=wsp.copy(),
        bias=bias.astype(np.int32),
        meta=meta,
    )


def read_mapping(path: str | os.PathLike[str]) -> Mapping:
    """Read and fully validate the ``.utm`` file at ``path``."""
    name = os.fspath(path)
    return decode_mapping(read_file_bytes(path, what=name), what=name)


def _resolve_strings(strs: np.ndarray, offsets: np.ndarray, what: str) -> list[str]:
    """The string at each offset (MODL's first, then each layer's)."""

    def owner(i: int) -> str:
        return "MODL" if i == 0 else f"LAYR[{i - 1}]"

    zeros = np.flatnonzero(strs == 0)
    ends = np.searchsorted(zeros, offsets)  # the first zero byte at or after each offset
    bad = np.flatnonzero((offsets >= strs.size) | (ends >= zeros.size))
    if bad.size:
        i = int(bad[0])
        raise MappingFormatError(
            f"{what}: {owner(i)}: name offset {int(offsets[i])} is not a terminated string "
            f"in STRS ({strs.size} bytes)"
        )
    cache: dict[int, str] = {}
    names = []
    for i, (start, end) in enumerate(zip(offsets.tolist(), zeros[ends].tolist(), strict=True)):
        if start not in cache:
            try:
                cache[start] = strs[start:end].tobytes().decode("utf-8")
            except UnicodeDecodeError:
                raise MappingFormatError(
                    f"{what}: {owner(i)}: name at STRS offset {start} is not valid UTF-8"
                ) from None
        names.append(cache[start])
    return names


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _parse_meta(raw: memoryview, what: str) -> dict[str, Any]:
    try:
        value = json.loads(bytes(raw).decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise MappingFormatError(f"{what}: META: not valid UTF-8") from None
    except (ValueError, RecursionError) as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise MappingFormatError(f"{what}: META: not valid JSON ({first_line})") from None
    if not isinstance(value, dict):
        raise MappingFormatError(f"{what}: META: not a JSON object")
    return value


# ---------------------------------------------------------------------------------------------
# semantic validation (vectorized: one numpy expression per rule, over all records at once)


def _shape(row: np.ndarray) -> tuple[int, ...]:
    return tuple(int(x) for x in row)


def _chunks(lengths: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """Ranges of records whose lengths sum to about ``budget`` (or one longer record)."""
    cum = np.cumsum(lengths)
    start = 0
    while start < lengths.size:
        base = int(cum[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cum, base + budget, side="right")), start + 1)
        yield start, stop
        start = stop


def _gather(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of ``buf[s : s + n]`` for every (s, n), without a Python loop."""
    seg = np.cumsum(lengths) - lengths
    idx = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - seg, lengths)
    return buf[idx]


def _validate(
    model: np.ndarray,
    layers: np.ndarray,
    tiles: np.ndarray,
    wsp: np.ndarray,
    nbias: int,
    *,
    strict: bool,
    what: str,
) -> None:
    """Every rule of section 2 a consumer relies on; raises on the first record breaking one.

    ``layers``/``tiles`` hold exactly MODL's layer_count/tile_count records. ``strict``: the
    file is a x.0 file, whose reserved fields must be zero.
    """

    def fail(msg: str) -> NoReturn:
        raise MappingFormatError(f"{what}: {msg}")

    def first(bad: npt.ArrayLike, rec: str, msg: Callable[[int], str]) -> None:
        hits = np.flatnonzero(bad)
        if hits.size:
            i = int(hits[0])
            fail(f"{rec}[{i}]: {msg(i)}")

    # -- MODL
    for name, (lo, hi) in MODL_RANGES.items():
        v = int(model[name])
        if not lo <= v <= hi:
            fail(f"MODL: {name} {v} is out of range {lo}..{hi}")
    input_shape = model["input_shape"].astype(np.int64)
    if ((input_shape < 1) | (input_shape > MAX_DIM)).any():
        fail(f"MODL: input_shape {_shape(input_shape)} is out of range 1..{MAX_DIM}")
    n_layers, n_tiles = len(layers), len(tiles)
    if n_layers == 0:
        fail("MODL: layer_count is 0; a network has at least one layer")
    n = int(model["num_pes"])
    word_bits = int(model["word_bits"])
    input_bits = int(model["input_bits"])
    sata = int(model["grouping"]) == GROUPING_SATA

    # -- LAYR: kinds, inputs, shapes
    idx = np.arange(n_layers)
    kind = layers["kind"].astype(np.int64)

    def kname(i: int) -> str:
        return KIND_NAMES.get(int(kind[i]), str(int(kind[i])))

    first(~np.isin(kind, list(KIND_NAMES)), "LAYR", lambda i: f"unknown kind {kind[i]}")
    flags = layers["flags"].astype(np.int64)
    if strict:
        first(flags & ~LAYER_FLAG_BIAS != 0, "LAYR", lambda i: f"unknown flags 0x{flags[i]:x}")
        first(layers["reserved"].any(axis=1), "LAYR", lambda i: "reserved bytes are not zero")
    is_enc, is_conv, is_fc = kind == KIND_ENCODE, kind == KIND_CONV, kind == KIND_FC
    is_lif, is_max, is_sum = kind == KIND_LIF, kind == KIND_MAXPOOL, kind == KIND_SUMPOOL
    is_add, is_flat = kind == KIND_ADD, kind == KIND_FLATTEN
    is_w = is_enc | is_conv | is_fc
    in0 = layers["input0"].astype(np.int64)
    in1 = layers["input1"].astype(np.int64)
    first(is_enc & (in0 != -1), "LAYR", lambda i: f"ENCODE must read the input (-1), not {in0[i]}")
    first(
        ~is_enc & ((in0 < 0) | (in0 >= idx)),
        "LAYR",
        lambda i: f"input0 {in0[i]} is not an earlier layer",
    )
    first(
        is_add & ((in1 < 0) | (in1 >= idx)),
        "LAYR",
        lambda i: f"input1 {in1[i]} is not an earlier layer",
    )
    first(~is_add & (in1 != -1), "LAYR", lambda i: f"input1 is {in1[i]}, must be -1 for {kname(i)}")
    ins = layers["in_shape"].astype(np.int64)
    outs = layers["out_shape"].astype(np.int64)
    first(
        ((ins < 1) | (ins > MAX_DIM)).any(axis=1),
        "LAYR",
        lambda i: f"in_shape {_shape(ins[i])} is out of range 1..{MAX_DIM}",
    )
    first(
        ((outs < 1) | (outs > MAX_DIM)).any(axis=1),
        "LAYR",
        lambda i: f"out_shape {_shape(outs[i])} is out of range 1..{MAX_DIM}",
    )
    src = outs[np.maximum(in0, 0)]
    src[is_enc] = input_shape

    def source(i: int) -> str:
        return "the network input" if in0[i] < 0 else f"layer {in0[i]}'s output"

    first(
        ~is_fc & (ins != src).any(axis=1),
        "LAYR",
        lambda i: f"in_shape {_shape(ins[i])} does not match {source(i)} {_shape(src[i])}",
    )
    flat_src = src.prod(axis=1)
    first(
        is_fc & ((ins[:, 0] != flat_src) | (ins[:, 1:] != 1).any(axis=1)),
        "LAYR",
        lambda i: (
            f"FC in_shape {_shape(ins[i])} is not ({flat_src[i]}, 1, 1), {source(i)} "
            f"{_shape(src[i])} flattened"
        ),
    )
    other = outs[np.maximum(in1, 0)]
    first(
        is_add & (other != ins).any(axis=1),
        "LAYR",
        lambda i: f"ADD operands differ: {_shape(ins[i])} and layer {in1[i]}'s {_shape(other[i])}",
    )
    kernel = layers["kernel"].astype(np.int64)
    stride = layers["stride"].astype(np.int64)
    pads = layers["pads"].astype(np.int64)
    windowed = is_enc | is_conv | is_max
    first(
        windowed & ((kernel < 1) | (stride < 1)).any(axis=1),
        "LAYR",
        lambda i: f"kernel {_shape(kernel[i])} and stride {_shape(stride[i])} must be >= 1",
    )
    first(is_max & pads.any(axis=1), "LAYR", lambda i: "MAXPOOL has no padding")
    padded_h = ins[:, 1] + pads[:, 0] + pads[:, 2]
    padded_w = ins[:, 2] + pads[:, 1] + pads[:, 3]
    first(
        windowed & ((padded_h < kernel[:, 0]) | (padded_w < kernel[:, 1])),
        "LAYR",
        lambda i: f"kernel {_shape(kernel[i])} is larger than the padded input",
    )
    out_h = (padded_h - kernel[:, 0]) // np.maximum(stride[:, 0], 1) + 1
    out_w = (padded_w - kernel[:, 1]) // np.maximum(stride[:, 1], 1) + 1
    first(
        windowed & ((outs[:, 1] != out_h) | (outs[:, 2] != out_w)),
        "LAYR",
        lambda i: (
            f"out_shape {_shape(outs[i])} does not follow from in_shape, kernel, stride "
            f"and pads (H, W = {out_h[i]}, {out_w[i]})"
        ),
    )
    ones = np.ones(n_layers, np.int64)
    expected_out = np.select(
        [is_max[:, None], (is_lif | is_add)[:, None], is_sum[:, None], is_flat[:, None]],
        [
            np.stack([ins[:, 0], out_h, out_w], axis=1),
            ins,
            np.stack([ins[:, 0], ones, ones], axis=1),
            np.stack([ins.prod(axis=1), ones, ones], axis=1),
        ],
        default=outs,
    )
    first(
        (expected_out != outs).any(axis=1),
        "LAYR",
        lambda i: f"{kname(i)} out_shape {_shape(outs[i])} should be {_shape(expected_out[i])}",
    )
    first(
        is_fc & (outs[:, 1:] != 1).any(axis=1),
        "LAYR",
        lambda i: f"FC out_shape {_shape(outs[i])} is not (features, 1, 1)",
    )
    first(
        is_sum & (kernel != ins[:, 1:]).any(axis=1),
        "LAYR",
        lambda i: f"SUMPOOL kernel {_shape(kernel[i])} is not the input's H, W",
    )
    src_kind = kind[np.maximum(in0, 0)]
    first(
        is_lif & ~np.isin(src_kind, [KIND_ENCODE, KIND_CONV, KIND_FC, KIND_ADD]),
        "LAYR",
        lambda i: (
            f"LIF reads layer {in0[i]}, a {KIND_NAMES[int(src_kind[i])]}; "
            "it must read ENCODE, CONV, FC or ADD"
        ),
    )
    leak_shift = layers["leak_shift"].astype(np.int64)
    reset = layers["reset"].astype(np.int64)
    first(is_lif & (leak_shift > 31), "LAYR", lambda i: f"leak_shift {leak_shift[i]} exceeds 31")
    first(is_lif & (reset > 1), "LAYR", lambda i: f"reset {reset[i]} is neither 0 nor 1")
    last = n_layers - 1
    if kind[last] != KIND_FC or _shape(outs[last]) != (int(model["num_classes"]), 1, 1):
        fail(
            f"LAYR[{last}]: the last layer must be the FC producing the "
            f"{int(model['num_classes'])} logits, not {kname(last)} {_shape(outs[last])}"
        )

    # -- LAYR: weights, biases, groups, tile ranges
    weight_bits = layers["weight_bits"].astype(np.int64)
    first(
        is_enc & ((weight_bits < 2) | (weight_bits > input_bits)),
        "LAYR",
        lambda i: f"ENCODE weight_bits {weight_bits[i]} is out of range 2..{input_bits}",
    )
    first(
        (is_conv | is_fc) & ((weight_bits < 2) | (weight_bits > word_bits)),
        "LAYR",
        lambda i: f"weight_bits {weight_bits[i]} is out of range 2..{word_bits}",
    )
    tile_first = layers["tile_first"].astype(np.int64)
    tile_count = layers["tile_count"].astype(np.int64)
    first(
        ~is_w & (tile_count != 0),
        "LAYR",
        lambda i: f"{kname(i)} has no weights but tile_count {tile_count[i]}",
    )
    first(
        is_w & (tile_first + tile_count > n_tiles),
        "LAYR",
        lambda i: (
            f"tiles {tile_first[i]}..{tile_first[i] + tile_count[i] - 1} are outside "
            f"TILE ({n_tiles} records)"
        ),
    )
    has_bias = (flags & LAYER_FLAG_BIAS) != 0
    first(has_bias & ~is_w, "LAYR", lambda i: f"{kname(i)} cannot have a bias")
    bias_index = layers["bias_index"]
    bias_past = bias_index > np.uint64(nbias)
    room = nbias - np.minimum(bias_index, np.uint64(nbias)).astype(np.int64)
    first(
        has_bias & (bias_past | (outs[:, 0] > room)),
        "LAYR",
        lambda i: (
            f"bias {int(bias_index[i])}..{int(bias_index[i]) + int(outs[i, 0]) - 1} is "
            f"outside BIAS ({nbias} values)"
        ),
    )
    c_in = np.where(is_fc, ins.prod(axis=1), ins[:, 0])
    kk = np.where(is_fc, 1, kernel[:, 0] * kernel[:, 1])
    c_out = outs[:, 0]
    grouping = GROUPING_NAMES[int(model["grouping"])]
    want_groups = group_count(grouping, c_out, n)
    want_slots = active_slot_count(grouping, c_out, c_in, n)
    groups = layers["groups"].astype(np.int64)
    first(
        is_w & (groups != want_groups),
        "LAYR",
        lambda i: (
            f"groups {groups[i]}, {GROUPING_NAMES[int(model['grouping'])]} grouping of "
            f"{c_out[i]} filters on {n} PEs needs {want_groups[i]}"
        ),
    )
    spatial = layers["spatial_tiles"].astype(np.int64)
    want_spatial = -(-(outs[:, 1] * outs[:, 2]) // int(model["accumulators"]))
    first(
        (is_conv | is_fc) & (spatial != want_spatial),
        "LAYR",
        lambda i: (
            f"spatial_tiles {spatial[i]} is not ceil(out H*W / accumulators) = {want_spatial[i]}"
        ),
    )

    # -- TILE: fields
    tl = tiles["layer"].astype(np.int64)
    first(tl >= n_layers, "TILE", lambda i: f"layer {tl[i]} is not a layer index")
    first(~is_w[tl], "TILE", lambda i: f"layer {tl[i]} is a {kname(int(tl[i]))}, without weights")
    if strict:
        first(tiles["reserved"] != 0, "TILE", lambda i: "reserved field is not zero")
    g = tiles["group"].astype(np.int64)
    pe = tiles["pe"].astype(np.int64)
    t = tiles["tile"].astype(np.int64)
    first(g >= groups[tl], "TILE", lambda i: f"group {g[i]} is not below {groups[tl[i]]} groups")
    first(pe >= n, "TILE", lambda i: f"pe {pe[i]} is not below num_pes {n}")
    same = np.zeros(n_tiles, dtype=bool)  # same (layer, group, pe) as the record before
    ordered = np.ones(n_tiles, dtype=bool)
    if n_tiles > 1:
        a = (tl[1:], g[1:], pe[1:], t[1:])
        b = (tl[:-1], g[:-1], pe[:-1], t[:-1])
        gt = a[3] > b[3]
        for x, y in zip(a[2::-1], b[2::-1], strict=True):
            gt = (x > y) | ((x == y) & gt)
        ordered[1:] = gt
        same[1:] = (a[0] == b[0]) & (a[1] == b[1]) & (a[2] == b[2])
    first(
        ~ordered,
        "TILE",
        lambda i: f"not sorted by (layer, group, pe, tile) after TILE[{i - 1}]",
    )
    prev_t = np.concatenate([[-1], t[:-1]])
    first(
        np.where(same, t != prev_t + 1, t != 0),
        "TILE",
        lambda i: f"tile {t[i]} breaks the numbering 0, 1, ... of its PE and group",
    )
    count = tiles["count"].astype(np.int64)
    nnz = tiles["nnz"].astype(np.int64)
    words = tiles["words"].astype(np.int64)
    wsp_bytes = tiles["wsp_bytes"].astype(np.int64)
    first(count < 1, "TILE", lambda i: "count is 0")
    first(nnz > count, "TILE", lambda i: f"nnz {nnz[i]} exceeds count {count[i]}")
    mask_words = -(-count // 16)
    first(
        words != mask_words + nnz,
        "TILE",
        lambda i: f"words {words[i]} is not ceil(count / 16) + nnz = {mask_words[i] + nnz[i]}",
    )
    scratch = int(model["scratchpad_words"])
    first(words > scratch, "TILE", lambda i: f"words {words[i]} exceed scratchpad_words {scratch}")
    first(wsp_bytes != 2 * words, "TILE", lambda i: f"wsp_bytes {wsp_bytes[i]} is not 2 * words")
    raw_off = tiles["wsp_offset"]
    first(raw_off % np.uint64(2) != 0, "TILE", lambda i: f"wsp_offset {raw_off[i]} is odd")
    off_past = raw_off > np.uint64(wsp.size)
    off = np.minimum(raw_off, np.uint64(wsp.size)).astype(np.int64)
    first(
        off_past | (wsp_bytes > wsp.size - off),
        "TILE",
        lambda i: (
            f"WSP blob of {wsp_bytes[i]} bytes at {int(raw_off[i])} is outside WSPW "
            f"({wsp.size} bytes)"
        ),
    )

    # -- TILE: which filter and positions each tile holds (section 2.3's grouping)
    filt = tiles["filter"].astype(np.int64)
    want_filt = slot_filter(grouping, g, pe, n)
    if sata:
        first(
            filt != want_filt,
            "TILE",
            lambda i: f"filter {filt[i]} is not group * num_pes + pe = {g[i] * n + pe[i]} (sata)",
        )
    else:
        first(
            filt != want_filt, "TILE", lambda i: f"filter {filt[i]} is not group {g[i]} (systolic)"
        )
    first(
        filt >= c_out[tl],
        "TILE",
        lambda i: f"filter {filt[i]} is not below layer {tl[i]}'s {c_out[tl[i]]} output channels",
    )
    pos = tiles["position"].astype(np.int64)
    end = pos + count
    start, stop = slot_span(grouping, pe, c_in[tl], kk[tl], n)
    first(
        ~same & (pos != start),
        "TILE",
        lambda i: f"position {pos[i]} is not {start[i]}, the start of PE {pe[i]}'s weights",
    )
    prev_end = np.concatenate([[0], end[:-1]])
    first(
        same & (pos != prev_end),
        "TILE",
        lambda i: f"position {pos[i]} does not continue TILE[{i - 1}], which ends at {prev_end[i]}",
    )
    run_last = np.ones(n_tiles, dtype=bool)
    run_last[:-1] = ~same[1:]
    first(
        run_last & (end != stop),
        "TILE",
        lambda i: f"the tiles of PE {pe[i]}, group {g[i]} end at position {end[i]}, not {stop[i]}",
    )
    slots = np.bincount(tl[~same], minlength=n_layers)
    first(
        is_w & (slots != want_slots),
        "LAYR",
        lambda i: f"tiles fill {slots[i]} (group, pe) slots, the grouping has {want_slots[i]}",
    )
    per_layer = np.bincount(tl, minlength=n_layers)
    first(
        tile_count != per_layer,
        "LAYR",
        lambda i: f"tile_count {tile_count[i]}, but TILE has {per_layer[i]} records of it",
    )
    firsts = np.searchsorted(tl, idx)
    first(
        (per_layer > 0) & (tile_first != firsts),
        "LAYR",
        lambda i: f"tile_first {tile_first[i]}, but its first TILE record is {firsts[i]}",
    )

    # -- WSPW: blobs apart, bitmasks agree with nnz, values fit the layer's weight_bits
    if n_tiles == 0:
        return
    order = np.argsort(off, kind="stable")
    sorted_end = off[order] + wsp_bytes[order]
    clash = np.flatnonzero(off[order][1:] < sorted_end[:-1])
    if clash.size:
        i, j = int(order[clash[0] + 1]), int(order[clash[0]])
        fail(f"TILE[{i}]: WSP blob overlaps TILE[{j}]'s")
    mbytes = 2 * mask_words
    last_word = wsp[off + mbytes - 2].astype(np.int64) | (
        wsp[off + mbytes - 1].astype(np.int64) << 8
    )
    used = count - 16 * (mask_words - 1)  # bits of the last word inside count, 1..16
    first(
        (last_word >> used) != 0,
        "TILE",
        lambda i: f"bitmask has bits set past count {count[i]}",
    )
    limit = np.left_shift(1, weight_bits[tl] - 1)
    for t0, t1 in _chunks(wsp_bytes, _GATHER_BUDGET):
        part = slice(t0, t1)
        masks = _gather(wsp, off[part], mbytes[part])
        ones_per_tile = np.add.reduceat(_POPCOUNT[masks], np.cumsum(mbytes[part]) - mbytes[part])
        bad = np.flatnonzero(ones_per_tile != nnz[part])
        if bad.size:
            i = t0 + int(bad[0])
            fail(f"TILE[{i}]: bitmask has {ones_per_tile[bad[0]]} set bits, nnz is {nnz[i]}")
        values = _gather(wsp, off[part] + mbytes[part], 2 * nnz[part]).view("<i2")
        bound = np.repeat(limit[part], nnz[part])
        out_of_range = np.flatnonzero((values < -bound) | (values >= bound))
        if out_of_range.size:
            k = int(out_of_range[0])
            i = t0 + int(np.searchsorted(np.cumsum(nnz[part]), k, side="right"))
            fail(
                f"TILE[{i}]: weight {int(values[k])} does not fit layer {tl[i]}'s "
                f"{weight_bits[tl[i]]}-bit weights"
            )
