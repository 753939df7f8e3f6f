"""The binary container (docs/mapping-format.md, section 1): layout, round trips, every check."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.conftest import seal_crcs
from uticompile.container import (
    HEADER_DTYPE,
    SECTION_DTYPE,
    read_container,
    read_container_file,
    write_container,
)
from uticompile.errors import MappingFormatError

MAGIC = b"UTMAP\x00\r\n"
SPIKES = b"UTSPK\x00\r\n"
SECTIONS = [(b"AAAA", b"first section"), (b"BBBB", b""), (b"CCCC", bytes(range(200)))]

# The document's tables, copied by hand: (offset, field).
DOC_HEADER = [
    (0, "magic"), (8, "version_major"), (10, "version_minor"), (12, "header_size"),
    (16, "section_count"), (20, "section_entry_size"), (24, "file_size"), (32, "alignment"),
    (36, "flags"), (40, "table_crc32"), (44, "reserved"), (60, "header_crc32"),
]  # fmt: skip
DOC_ENTRY = [(0, "tag"), (4, "flags"), (8, "offset"), (16, "length"), (24, "crc32"),
             (28, "reserved")]  # fmt: skip


def _error(data: bytes, required: tuple[bytes, ...] = ()) -> str:
    with pytest.raises(MappingFormatError) as info:
        read_container(data, MAGIC, required, what="m.utm")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("m.utm: ")
    return message


def test_layout_matches_the_document() -> None:
    assert HEADER_DTYPE.itemsize == 64
    assert SECTION_DTYPE.itemsize == 32
    for dtype, doc in ((HEADER_DTYPE, DOC_HEADER), (SECTION_DTYPE, DOC_ENTRY)):
        fields, names = dtype.fields, dtype.names
        assert fields is not None
        assert names is not None
        assert [(fields[f][1], f) for f in names] == doc


def test_round_trip_layout_and_zero_copy() -> None:
    data = write_container(MAGIC, SECTIONS, version=(1, 0))
    assert data == write_container(MAGIC, SECTIONS)  # deterministic
    c = read_container(data, MAGIC, [b"AAAA", b"CCCC"], what="m.utm")
    assert c.version == (1, 0)
    assert list(c.sections) == [tag for tag, _ in SECTIONS]
    for tag, body in SECTIONS:
        assert bytes(c.sections[tag]) == body
        assert c.sections[tag].obj is data  # a view into the file, not a copy
    magic, major, minor, hsize, count, esize, fsize, align, flags, _, reserved, _ = struct.unpack(
        "<8sHHIIIQII4s16s4s", data[:64]
    )
    assert (magic, major, minor, hsize, count, esize, align, flags) == (
        MAGIC, 1, 0, 64, 3, 32, 64, 0,
    )  # fmt: skip
    assert fsize == len(data)
    assert reserved == bytes(16)
    offsets = [struct.unpack_from("<Q", data, 64 + 32 * i + 8)[0] for i in range(3)]
    assert offsets == [192, 256, 320]  # aligned, strictly increasing even after an empty one
    assert data[160:192] == bytes(32)
    assert data[192 + 13 : 256] == bytes(256 - 205)
    assert len(data) == 320 + 200


def test_memoryview_input_and_higher_minor_version() -> None:
    data = bytearray(write_container(MAGIC, SECTIONS, version=(1, 7)))
    data[44] = 0xAA  # header reserved: ignored by a 1.0 reader in a 1.7 file
    data[64 + 28] = 0x55  # entry reserved
    c = read_container(memoryview(seal_crcs(data)), MAGIC, [], what="m.utm")
    assert c.version == (1, 7)
    assert bytes(c.sections[b"CCCC"]) == bytes(range(200))


def test_reserved_fields_must_be_zero_in_a_1_0_file() -> None:
    data = bytearray(write_container(MAGIC, SECTIONS))
    data[44] = 1
    assert _error(seal_crcs(data)) == "m.utm: header: reserved fields are not zero"
    data = bytearray(write_container(MAGIC, SECTIONS))
    data[64 + 32 + 4] = 1
    assert _error(seal_crcs(data)) == "m.utm: section BBBB: reserved fields are not zero"


def test_messages() -> None:
    good = write_container(MAGIC, SECTIONS)
    assert _error(b"GIF89a" + good[6:]) == "m.utm: not a uticompile mapping (bad magic)"
    assert _error(b"") == "m.utm: truncated: file has 0 bytes, less than the 64-byte header"
    assert _error(good[:5]).endswith("less than the 64-byte header")
    assert _error(b"PK") == "m.utm: not a uticompile mapping (bad magic)"
    assert _error(write_container(SPIKES, SECTIONS)) == (
        "m.utm: not a uticompile mapping (bad magic; it is a uticompile spike trace)"
    )
    assert _error(good[:500]) == f"m.utm: truncated: header says {len(good)} bytes, file has 500"
    assert _error(good + b"\0") == (
        f"m.utm: header says {len(good)} bytes, file has {len(good) + 1} (trailing data)"
    )
    assert _error(write_container(MAGIC, SECTIONS, version=(2, 0))) == (
        "m.utm: format version 2.0 is not supported (this reader reads 1.x)"
    )
    assert "version 0.9 is not supported" in _error(
        write_container(MAGIC, SECTIONS, version=(0, 9))
    )
    bad = bytearray(good)
    bad[20] ^= 1  # header byte
    assert _error(bytes(bad)) == "m.utm: section_entry_size is 33, expected 32"
    bad = bytearray(good)
    bad[36] ^= 1
    assert _error(bytes(bad)) == "m.utm: header: CRC mismatch"
    bad = bytearray(good)
    bad[64 + 40] ^= 1  # second entry's offset
    assert _error(bytes(bad)) == "m.utm: section table: CRC mismatch"
    bad = bytearray(good)
    bad[320 + 7] ^= 0xFF
    assert _error(bytes(bad)) == "m.utm: section CCCC: CRC mismatch"
    assert _error(good, (b"AAAA", b"DDDD")) == "m.utm: missing required section DDDD"


def _forged(edit: dict[int, bytes], base: bytes | None = None) -> bytes:
    data = bytearray(base or write_container(MAGIC, SECTIONS))
    for pos, raw in edit.items():
        data[pos : pos + len(raw)] = raw
    return seal_crcs(data)


def _u32(v: int) -> bytes:
    return struct.pack("<I", v)


def _u64(v: int) -> bytes:
    return struct.pack("<Q", v)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({12: _u32(65)}, "header_size is 65, expected 64"),
        ({32: _u32(128)}, "alignment is 128, expected 64"),
        ({16: _u32(0)}, "section_count 0 is out of range 1..64"),
        ({16: _u32(2**31)}, "section_count 2147483648 is out of range 1..64"),
        ({16: _u32(65)}, "section_count 65 is out of range 1..64"),
        ({16: _u32(20)}, "truncated: the section table ends at 704, file has 520 bytes"),
        ({16: _u32(4)}, "section tag 00000000 is not four printable ASCII bytes"),  # a gap
        ({24: _u64(2**64 - 1)}, f"truncated: header says {2**64 - 1} bytes"),
        ({64 + 8: _u64(193)}, "section AAAA: offset 193 is not a multiple of 64"),
        ({64 + 8: _u64(128)}, "section AAAA: offset 128 overlaps the section table (ends at 160)"),
        ({64 + 40: _u64(128)}, "section BBBB: offset 128 overlaps section AAAA (ends at 205)"),
        ({64 + 72: _u64(2**63)}, "section CCCC: 200 bytes at offset 9223372036854775808 run past"),
        ({64 + 80: _u64(2**64 - 1)}, f"section CCCC: {2**64 - 1} bytes at offset 320 run past"),
        ({64 + 80: _u64(201)}, "section CCCC: 201 bytes at offset 320 run past the end"),
        ({64 + 32: b"AAAA"}, "section AAAA appears twice"),
        ({64: b"\x00BC\n"}, "section tag 0042430a is not four printable ASCII bytes"),
    ],
)
def test_forged_headers_and_tables(edit: dict[int, bytes], message: str) -> None:
    assert _error(_forged(edit)).startswith(f"m.utm: {message}")


def test_unknown_sections_are_skipped_but_checked() -> None:
    data = write_container(MAGIC, [(b"MODL", b"x"), (b"ZZZ9", b"future")])
    assert set(read_container(data, MAGIC, [b"MODL"], what="m").sections) == {b"MODL", b"ZZZ9"}
    bad = bytearray(data)
    bad[-1] ^= 1
    assert _error(bytes(bad), (b"MODL",)) == "m.utm: section ZZZ9: CRC mismatch"


def test_sixty_four_sections() -> None:
    many = [(f"S{i:03d}".encode(), bytes([i]) * i) for i in range(64)]
    c = read_container(write_container(MAGIC, many), MAGIC, [], what="m")
    assert [bytes(v) for v in c.sections.values()] == [body for _, body in many]
    with pytest.raises(ValueError, match=r"1\.\.64"):
        write_container(MAGIC, [*many, (b"MORE", b"")])


@pytest.mark.parametrize(
    ("magic", "sections", "version"),
    [
        (b"SHORT", SECTIONS, (1, 0)),
        (MAGIC, [], (1, 0)),
        (MAGIC, [(b"AB", b"")], (1, 0)),
        (MAGIC, [(b"AAAA", b""), (b"AAAA", b"")], (1, 0)),
        (MAGIC, SECTIONS, (1, 70000)),
    ],
)
def test_writer_refuses_impossible_requests(
    magic: bytes, sections: list[tuple[bytes, bytes]], version: tuple[int, int]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        write_container(magic, sections, version=version)


def test_files(tmp_path: Path) -> None:
    path = tmp_path / "m.utm"
    path.write_bytes(write_container(MAGIC, SECTIONS))
    c = read_container_file(path, MAGIC, [b"AAAA"])
    assert bytes(c.sections[b"AAAA"]) == b"first section"
    with pytest.raises(MappingFormatError, match=r"^.*absent\.utm: no such file$"):
        read_container_file(tmp_path / "absent.utm", MAGIC, [])
    with pytest.raises(MappingFormatError, match="is a directory"):
        read_container_file(tmp_path, MAGIC, [])
    path.write_bytes(write_container(MAGIC, SECTIONS)[:100])
    with pytest.raises(MappingFormatError, match=f"^{path}: truncated"):
        read_container_file(path, MAGIC, [])


def test_refuses_files_over_4_gib(tmp_path: Path) -> None:
    path = tmp_path / "huge.utm"
    with open(path, "wb") as handle:  # sparse: no disk space is used
        handle.truncate((4 << 30) + 1)
    try:
        with pytest.raises(MappingFormatError, match="over the 4 GiB limit"):
            read_container_file(path, MAGIC, [])
    finally:
        os.unlink(path)
