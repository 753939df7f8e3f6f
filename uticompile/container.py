"""The container shared by uticompile's binary files (docs/mapping-format.md, section 1).

A 64-byte header, a table of tagged sections and the sections themselves, every part CRC-32
protected. ``.utm`` mappings and ``.uts`` spike traces both use it, so the checks that make a
truncated, corrupted or hostile file fail cleanly live here once. Reading compares every length
with the real size before slicing anything, and returns zero-copy views of the sections.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from uticompile.errors import MappingFormatError

HEADER_SIZE = 64
SECTION_ENTRY_SIZE = 32
ALIGNMENT = 64
MAX_SECTIONS = 64
SUPPORTED_MAJOR = 1
MAX_FILE_SIZE = 4 << 30
"""Largest file read: every offset and length of the formats then fits comfortably."""

HEADER_DTYPE = np.dtype(
    [
        ("magic", "u1", (8,)),
        ("version_major", "<u2"),
        ("version_minor", "<u2"),
        ("header_size", "<u4"),
        ("section_count", "<u4"),
        ("section_entry_size", "<u4"),
        ("file_size", "<u8"),
        ("alignment", "<u4"),
        ("flags", "<u4"),
        ("table_crc32", "<u4"),
        ("reserved", "u1", (16,)),
        ("header_crc32", "<u4"),
    ]
)
SECTION_DTYPE = np.dtype(
    [
        ("tag", "u1", (4,)),
        ("flags", "<u4"),
        ("offset", "<u8"),
        ("length", "<u8"),
        ("crc32", "<u4"),
        ("reserved", "<u4"),
    ]
)

#: What each known magic is, so a wrong file gets a helpful "bad magic" message.
FILE_KINDS: dict[bytes, str] = {
    b"UTMAP\x00\r\n": "uticompile mapping",
    b"UTSPK\x00\r\n": "uticompile spike trace",
}


@dataclass(frozen=True)
class Container:
    """A checked container: its version and its sections as zero-copy views, by tag."""

    version: tuple[int, int]
    sections: dict[bytes, memoryview]


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _tag_ok(tag: bytes) -> bool:
    """Tags are four printable ASCII bytes, so error messages can always show them."""
    return len(tag) == 4 and all(0x20 <= b <= 0x7E for b in tag)


def _tag_str(tag: bytes) -> str:
    return tag.decode("ascii") if _tag_ok(tag) else tag.hex()


def write_container(
    magic: bytes,
    sections: Sequence[tuple[bytes, bytes | bytearray | memoryview]],
    *,
    version: tuple[int, int] = (1, 0),
) -> bytes:
    """The container bytes: sections in the given order, each at a 64-byte aligned offset.

    Deterministic (gaps are zero). Offsets are strictly increasing even for empty sections, so
    readers that demand a strictly increasing table accept the file too. Raises ValueError for
    an impossible request (bad magic or tag, duplicate tag, 0 or more than 64 sections).
    """
    if len(magic) != 8:
        raise ValueError(f"magic must be 8 bytes, got {len(magic)}")
    if not 1 <= len(sections) <= MAX_SECTIONS:
        raise ValueError(f"a container holds 1..{MAX_SECTIONS} sections, got {len(sections)}")
    major, minor = version
    if not (0 <= major <= 0xFFFF and 0 <= minor <= 0xFFFF):
        raise ValueError(f"version {version} does not fit two u16")
    tags = [bytes(tag) for tag, _ in sections]
    for tag in tags:
        if not _tag_ok(tag):
            raise ValueError(f"section tag {tag!r} is not four printable ASCII bytes")
    if len(set(tags)) != len(tags):
        raise ValueError(f"duplicate section tags in {tags}")
    payloads = [memoryview(payload).cast("B") for _, payload in sections]
    count = len(sections)
    table = np.zeros(count, SECTION_DTYPE)
    pos = _align(HEADER_SIZE + SECTION_ENTRY_SIZE * count)
    for i, (tag, payload) in enumerate(zip(tags, payloads, strict=True)):
        table[i]["tag"] = np.frombuffer(tag, np.uint8)
        table[i]["offset"] = pos
        table[i]["length"] = payload.nbytes
        table[i]["crc32"] = zlib.crc32(payload)
        pos = _align(pos + max(payload.nbytes, 1))
    file_size = int(table[-1]["offset"]) + payloads[-1].nbytes
    header = np.zeros((), HEADER_DTYPE)
    header["magic"] = np.frombuffer(magic, np.uint8)
    header["version_major"], header["version_minor"] = major, minor
    header["header_size"] = HEADER_SIZE
    header["section_count"] = count
    header["section_entry_size"] = SECTION_ENTRY_SIZE
    header["file_size"] = file_size
    header["alignment"] = ALIGNMENT
    table_bytes = table.tobytes()
    header["table_crc32"] = zlib.crc32(table_bytes)
    head = bytearray(header.tobytes())
    head[60:64] = zlib.crc32(head[:60]).to_bytes(4, "little")
    out = bytearray(file_size)
    out[:HEADER_SIZE] = head
    out[HEADER_SIZE : HEADER_SIZE + len(table_bytes)] = table_bytes
    for entry, payload in zip(table, payloads, strict=True):
        start = int(entry["offset"])
        out[start : start + payload.nbytes] = payload
    return bytes(out)


def read_container(
    data: bytes | bytearray | memoryview,
    magic: bytes,
    required: Iterable[bytes],
    *,
    what: str,
    kind: str | None = None,
) -> Container:
    """Check ``data`` as a container of ``magic`` holding the ``required`` sections.

    Every check of section 1.2 is made before anything is trusted; a failure raises
    ``MappingFormatError`` with one line prefixed by ``what`` (the file's name). ``kind`` names
    the expected file in the bad-magic message (default: from ``FILE_KINDS``). Reserved fields
    must be zero in a x.0 file (its writer wrote zeros) and are ignored in a later minor version.
    """
    view = memoryview(data).cast("B")
    size = view.nbytes
    kind = kind or FILE_KINDS.get(bytes(magic), "uticompile file")

    def fail(msg: str) -> MappingFormatError:
        return MappingFormatError(f"{what}: {msg}")

    head = bytes(view[:8])
    if head != magic[: len(head)]:
        other = FILE_KINDS.get(head)
        hint = f"; it is a {other}" if other and head != magic else ""
        raise fail(f"not a {kind} (bad magic{hint})")
    if size < HEADER_SIZE:
        raise fail(f"truncated: file has {size} bytes, less than the {HEADER_SIZE}-byte header")
    h = np.frombuffer(view, HEADER_DTYPE, count=1)[0]
    major, minor = int(h["version_major"]), int(h["version_minor"])
    if major != SUPPORTED_MAJOR:
        raise fail(
            f"format version {major}.{minor} is not supported "
            f"(this reader reads {SUPPORTED_MAJOR}.x)"
        )
    if int(h["header_size"]) != HEADER_SIZE:
        raise fail(f"header_size is {int(h['header_size'])}, expected {HEADER_SIZE}")
    if int(h["section_entry_size"]) != SECTION_ENTRY_SIZE:
        raise fail(
            f"section_entry_size is {int(h['section_entry_size'])}, expected {SECTION_ENTRY_SIZE}"
        )
    if zlib.crc32(view[:60]) != int(h["header_crc32"]):
        raise fail("header: CRC mismatch")
    file_size = int(h["file_size"])
    if file_size > size:
        raise fail(f"truncated: header says {file_size} bytes, file has {size}")
    if file_size < size:
        raise fail(f"header says {file_size} bytes, file has {size} (trailing data)")
    if int(h["alignment"]) != ALIGNMENT:
        raise fail(f"alignment is {int(h['alignment'])}, expected {ALIGNMENT}")
    strict = minor == 0
    if strict and (int(h["flags"]) or h["reserved"].any()):
        raise fail("header: reserved fields are not zero")
    count = int(h["section_count"])
    if not 1 <= count <= MAX_SECTIONS:
        raise fail(f"section_count {count} is out of range 1..{MAX_SECTIONS}")
    table_end = HEADER_SIZE + SECTION_ENTRY_SIZE * count
    if table_end > size:
        raise fail(f"truncated: the section table ends at {table_end}, file has {size} bytes")
    if zlib.crc32(view[HEADER_SIZE:table_end]) != int(h["table_crc32"]):
        raise fail("section table: CRC mismatch")
    table = np.frombuffer(view, SECTION_DTYPE, count=count, offset=HEADER_SIZE)
    sections: dict[bytes, memoryview] = {}
    prev_end, prev_tag = table_end, "the section table"
    for entry in table:  # at most 64 entries
        tag = entry["tag"].tobytes()
        if not _tag_ok(tag):
            raise fail(f"section tag {tag.hex()} is not four printable ASCII bytes")
        name = _tag_str(tag)
        if tag in sections:
            raise fail(f"section {name} appears twice")
        offset, length = int(entry["offset"]), int(entry["length"])
        if offset % ALIGNMENT:
            raise fail(f"section {name}: offset {offset} is not a multiple of {ALIGNMENT}")
        if offset < prev_end:
            raise fail(f"section {name}: offset {offset} overlaps {prev_tag} (ends at {prev_end})")
        if length > size - offset:
            raise fail(
                f"section {name}: {length} bytes at offset {offset} run past the end of the "
                f"file ({size} bytes)"
            )
        body = view[offset : offset + length]
        if zlib.crc32(body) != int(entry["crc32"]):
            raise fail(f"section {name}: CRC mismatch")
        if strict and (int(entry["flags"]) or int(entry["reserved"])):
            raise fail(f"section {name}: reserved fields are not zero")
        sections[tag] = body
        prev_end, prev_tag = offset + length, f"section {name}"
    for tag in required:
        if tag not in sections:
            raise fail(f"missing required section {_tag_str(tag)}")
    return Container(version=(major, minor), sections=sections)


def read_file_bytes(path: str | os.PathLike[str], *, what: str | None = None) -> bytes:
    """The bytes of the file at ``path``, refusing a missing file or one over 4 GiB."""
    name = os.fspath(path) if what is None else what
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_SIZE:
                raise MappingFormatError(f"{name}: {size} bytes is over the 4 GiB limit")
            data = handle.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise MappingFormatError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise MappingFormatError(f"{name}: is a directory") from None
    except OSError as exc:
        raise MappingFormatError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_SIZE:  # it grew while being read
        raise MappingFormatError(f"{name}: file is over the 4 GiB limit")
    return data


def read_container_file(
    path: str | os.PathLike[str],
    magic: bytes,
    required: Iterable[bytes],
    *,
    kind: str | None = None,
) -> Container:
    """``read_container`` on the file at ``path``; messages are prefixed with the path."""
    name = os.fspath(path)
    return read_container(read_file_bytes(path, what=name), magic, required, what=name, kind=kind)
