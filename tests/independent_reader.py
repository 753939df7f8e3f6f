"""A minimal ``.utm`` reader written from docs/mapping-format.md alone, to cross-check uticompile.

Plain Python with ``struct`` and ``zlib`` only (no numpy, no uticompile import), as a third-party
simulator author would write it from the document: if the real writer and this reader disagree,
one of them departs from the specification. It checks the container (magic, version, sizes,
CRCs, bounds) and decodes every record, every string and every tile's WSP blob. Any problem
raises ``ValueError``.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

MAGIC = b"UTMAP\x00\r\n"

# Section 1.1 / 1.2
HEADER = struct.Struct("<8sHHIIIQIII16sI")
ENTRY = struct.Struct("<4sIQQII")

# Section 2.1: name, timesteps, num_classes, input_shape[3], input_frac_bits, input_bits, num_pes,
# scratchpad_words, word_bits, acc_bits, accumulators, grouping, layer_count, tile_count
MODL = struct.Struct("<3I3Ii9I")
MODL_FIELDS = (
    ("name", 1), ("timesteps", 1), ("num_classes", 1), ("input_shape", 3),
    ("input_frac_bits", 1), ("input_bits", 1), ("num_pes", 1), ("scratchpad_words", 1),
    ("word_bits", 1), ("acc_bits", 1), ("accumulators", 1), ("grouping", 1),
    ("layer_count", 1), ("tile_count", 1),
)  # fmt: skip

# Section 2.2
LAYR = struct.Struct("<HHIii3I3I2H2H4HiIQIIiIIIiiIIB15s")
LAYR_FIELDS = (
    ("kind", 1),
    ("flags", 1),
    ("name", 1),
    ("input0", 1),
    ("input1", 1),
    ("in_shape", 3),
    ("out_shape", 3),
    ("kernel", 2),
    ("stride", 2),
    ("pads", 4),
    ("frac_bits", 1),
    ("weight_bits", 1),
    ("bias_index", 1),
    ("tile_first", 1),
    ("tile_count", 1),
    ("threshold", 1),
    ("leak_mult", 1),
    ("leak_shift", 1),
    ("reset", 1),
    ("shift0", 1),
    ("shift1", 1),
    ("groups", 1),
    ("spatial_tiles", 1),
    ("placement", 1),
    ("reserved", 1),
)

# Section 2.3 (1.2: the u32 reserved at 44 became encoding u8, rice_k u8, reserved u16)
TILE = struct.Struct("<IIHHIIIIIQIBBH")
TILE_FIELDS = (
    "layer", "group", "pe", "tile", "filter", "position", "count", "nnz", "words",
    "wsp_offset", "wsp_bytes", "encoding", "rice_k", "reserved",
)  # fmt: skip


def _unpack_fields(values: tuple[Any, ...], fields: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    for name, width in fields:
        out[name] = values[i] if width == 1 else list(values[i : i + width])
        i += width
    return out


def _string(strs: bytes, offset: int) -> str:
    end = strs.find(b"\x00", offset)
    if offset >= len(strs) or end < 0:
        raise ValueError(f"string offset {offset} is not a terminated string")
    return strs[offset:end].decode("utf-8")


def decode_wsp(blob: bytes, position: int, count: int, nnz: int) -> tuple[list[int], list[int]]:
    """(positions, values) of the nonzero weights of one tile (section 2.4)."""
    mask_bytes = 2 * ((count + 15) // 16)
    if len(blob) != mask_bytes + 2 * nnz:
        raise ValueError("WSP blob has the wrong size")
    positions = []
    for i in range(mask_bytes * 8):
        if (blob[i // 8] >> (i % 8)) & 1:
            if i >= count:
                raise ValueError("bitmask bit set past count")
            positions.append(position + i)
    if len(positions) != nnz:
        raise ValueError("bitmask popcount is not nnz")
    values = list(struct.unpack_from(f"<{nnz}h", blob, mask_bytes))
    return positions, values


def decode_compact(
    blob: bytes, position: int, count: int, nnz: int, weight_bits: int, k: int
) -> tuple[list[int], list[int]]:
    """(positions, values) of one compact tile (section 2.5), one bit at a time."""

    def bit(i: int) -> int:
        if i >= 8 * len(blob):
            raise ValueError("compact stream ends early")
        return (blob[i // 8] >> (i % 8)) & 1

    def field(start: int, width: int) -> int:
        return sum(bit(start + j) << j for j in range(width))

    values = []
    for i in range(nnz):
        v = field(i * weight_bits, weight_bits)
        if v >= 1 << (weight_bits - 1):
            v -= 1 << weight_bits
        if v == -(1 << (weight_bits - 1)):
            raise ValueError("compact value out of range")
        values.append(v)
    at = nnz * weight_bits
    remainders = [field(at + i * k, k) for i in range(nnz)]
    at += nnz * k
    positions = []
    previous = -1
    for i in range(nnz):
        q = 0
        while bit(at) == 0:
            q += 1
            at += 1
        at += 1
        previous += (q << k) + remainders[i] + 1
        if previous >= count:
            raise ValueError("compact position past count")
        positions.append(position + previous)
    if len(blob) != 2 * ((at + 15) // 16):
        raise ValueError("compact blob is not its stream padded to a 16-bit word")
    if any(bit(i) for i in range(at, 8 * len(blob))):
        raise ValueError("compact padding is not zero")
    return positions, values


def read_utm(data: bytes) -> dict[str, Any]:
    """Everything in a ``.utm`` file, as plain dicts and lists."""
    if len(data) < 64 or data[:8] != MAGIC:
        raise ValueError("not a .utm file")
    (_, major, minor, header_size, count, entry_size, file_size, alignment, _, table_crc, _,
     header_crc) = HEADER.unpack_from(data, 0)  # fmt: skip
    if major != 1 or header_size != 64 or entry_size != 32 or alignment != 64:
        raise ValueError("unsupported header")
    if zlib.crc32(data[:60]) != header_crc:
        raise ValueError("header CRC")
    if file_size != len(data):
        raise ValueError("file_size")
    if not 1 <= count <= 64 or 64 + 32 * count > len(data):
        raise ValueError("section_count")
    if zlib.crc32(data[64 : 64 + 32 * count]) != table_crc:
        raise ValueError("table CRC")
    sections: dict[bytes, bytes] = {}
    end = 64 + 32 * count
    for i in range(count):
        tag, _, offset, length, crc, _ = ENTRY.unpack_from(data, 64 + 32 * i)
        if offset % alignment or offset < end or offset + length > file_size or tag in sections:
            raise ValueError(f"section {tag!r} bounds")
        body = data[offset : offset + length]
        if zlib.crc32(body) != crc:
            raise ValueError(f"section {tag!r} CRC")
        sections[tag] = body
        end = offset + length
    for tag in (b"MODL", b"LAYR", b"TILE", b"WSPW", b"BIAS", b"STRS"):
        if tag not in sections:
            raise ValueError(f"missing {tag!r}")

    model = _unpack_fields(MODL.unpack(sections[b"MODL"]), MODL_FIELDS)
    strs = sections[b"STRS"]
    model_name = _string(strs, model["name"])

    layr = sections[b"LAYR"]
    if len(layr) != 128 * model["layer_count"]:
        raise ValueError("LAYR size")
    layers = []
    for i in range(model["layer_count"]):
        rec = _unpack_fields(LAYR.unpack_from(layr, 128 * i), LAYR_FIELDS)
        rec["name_str"] = _string(strs, rec["name"])
        layers.append(rec)

    tile_bytes = sections[b"TILE"]
    wspw = sections[b"WSPW"]
    if len(tile_bytes) != 48 * model["tile_count"]:
        raise ValueError("TILE size")
    tiles = []
    for i in range(model["tile_count"]):
        rec = dict(zip(TILE_FIELDS, TILE.unpack_from(tile_bytes, 48 * i), strict=True))
        start = rec["wsp_offset"]
        if start % 2 or start + 2 * rec["words"] > len(wspw):
            raise ValueError("WSP blob bounds")
        blob = wspw[start : start + 2 * rec["words"]]
        if rec["encoding"] == 0:
            if rec["wsp_bytes"] != 2 * rec["words"]:
                raise ValueError("wsp_bytes is not 2 * words")
            rec["positions"], rec["values"] = decode_wsp(
                blob, rec["position"], rec["count"], rec["nnz"]
            )
        elif rec["encoding"] == 1 and minor >= 2:
            if rec["wsp_bytes"] != 0:
                raise ValueError("a compact tile has wsp_bytes 0")
            bits = layers[rec["layer"]]["weight_bits"]
            rec["positions"], rec["values"] = decode_compact(
                blob, rec["position"], rec["count"], rec["nnz"], bits, rec["rice_k"]
            )
        else:
            raise ValueError("unknown tile encoding")
        tiles.append(rec)

    bias_bytes = sections[b"BIAS"]
    if len(bias_bytes) % 4:
        raise ValueError("BIAS size")
    bias = list(struct.unpack(f"<{len(bias_bytes) // 4}i", bias_bytes))
    meta = json.loads(sections[b"META"].decode("utf-8")) if b"META" in sections else {}
    return {
        "version": (major, minor),
        "model": model,
        "model_name": model_name,
        "layers": layers,
        "tiles": tiles,
        "bias": bias,
        "meta": meta,
    }
