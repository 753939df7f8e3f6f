"""Encoding and decoding the mapped binary: records <-> container sections, fully validated.

Decoding refuses anything inconsistent (one line naming the record) instead of letting a
simulator index out of bounds later; encoding runs the same checks, so no invalid file is written.
"""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn

import numpy as np

from uticompile.container import read_container, read_file_bytes, write_container
from uticompile.errors import MappingFormatError
from uticompile.fileio import atomic_write_bytes
from uticompile.mapfile.records import (
    LAYER_FLAG_BIAS,
    LAYR_DTYPE,
    MAGIC_UTM,
    MODL_DTYPE,
    REQUIRED_SECTIONS,
    TILE_DTYPE,
    VERSION,
    Mapping,
    meta_text,
    required_version,
)
from uticompile.mapfile.validate import validate


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

    The header says the lowest version that expresses ``m`` (``required_version``): 1.1 unless a
    1.2 feature is used (a compact tile, a SUMPOOL window, LIF reset 2).

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
    meta = meta_text(m.meta)
    # 1.1 unless a newer feature (a compact tile, a SUMPOOL window, LIF reset 2) is used
    version = required_version(layers, tiles)
    validate(
        model, layers, tiles, wsp, len(bias), strict=True, what=f"mapping {m.name!r}",
        minor=version[1],
    )  # fmt: skip
    sections = [
        (b"MODL", model.tobytes()),
        (b"LAYR", layers.tobytes()),
        (b"TILE", tiles.tobytes()),
        (b"WSPW", wsp.tobytes()),
        (b"BIAS", bias.astype("<i4").tobytes()),
        (b"STRS", strs),
        (b"META", meta.encode("utf-8")),
    ]
    return write_container(MAGIC_UTM, sections, version=version)


def write_mapping(m: Mapping, path: str | os.PathLike[str]) -> None:
    """Write ``m`` to ``path`` atomically: a mapping appears whole or not at all."""
    atomic_write_bytes(path, encode_mapping(m))


def decode_mapping(data: bytes | bytearray | memoryview, *, what: str = "mapping") -> Mapping:
    """Parse and fully validate ``.utm`` bytes; ``what`` prefixes every error message."""
    container = read_container(data, MAGIC_UTM, REQUIRED_SECTIONS, what=what)
    minor = container.version[1]
    strict = minor <= VERSION[1]  # every field of this minor is known: reserved ones are 0
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
    if minor == 0:  # 1.0 had no placement: its byte was reserved
        bad = np.flatnonzero(layers["placement"])
        if bad.size:
            fail(f"LAYR[{int(bad[0])}]: reserved bytes are not zero")
    validate(model, layers, tiles, wsp, len(bias), strict=strict, what=what, minor=minor)
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
