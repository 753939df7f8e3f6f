"""CSR spike traces: exact round trips, the hand-computed bit layout, and hostile files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from uticompile.container import write_container
from uticompile.errors import MappingFormatError
from uticompile.spikes import (
    MAGIC,
    SpikeCSR,
    code_dtype,
    decode_spikes,
    encode_spikes,
    pack_codes,
    read_spikes,
    spikes_from_bytes,
    spikes_to_bytes,
    unpack_codes,
    write_spikes,
)

TIMESTEPS = (1, 2, 3, 4, 5, 8, 9, 16)
DENSITIES = (0.0, 0.05, 0.3, 0.7, 1.0)


@st.composite
def spike_tensors(draw: st.DrawFn) -> np.ndarray:
    samples = draw(st.integers(1, 4))
    t = draw(st.sampled_from(TIMESTEPS))
    if draw(st.booleans()):
        shape: tuple[int, ...] = (draw(st.integers(1, 12)),)  # fully connected
    else:
        shape = (draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    density = draw(st.sampled_from(DENSITIES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spikes = rng.random((samples, t, *shape)) < density
    dtype = draw(st.sampled_from([np.bool_, np.uint8, np.int64, np.float32]))
    return spikes.astype(dtype)


def _reference_stream(codes: list[int], t: int) -> bytes:
    """The spec's stream computed independently, through one big Python integer."""
    value = sum(code << (j * t) for j, code in enumerate(codes))
    return value.to_bytes((len(codes) * t + 7) // 8, "little")


# ---------------------------------------------------------------------------------------------
# codec


@settings(max_examples=150, deadline=None)
@given(spike_tensors(), st.booleans())
def test_encode_decode_round_trip(spikes: np.ndarray, with_labels: bool) -> None:
    samples, t = spikes.shape[:2]
    labels = np.arange(samples) * 3 - 1 if with_labels else None
    csr = encode_spikes(spikes, layer=2, labels=labels)
    five = spikes.reshape(*spikes.shape, 1, 1) if spikes.ndim == 3 else spikes
    assert csr.shape == five.shape[2:]
    assert (csr.samples, csr.timesteps, csr.layer) == (samples, t, 2)
    m = csr.matrix
    assert m.dtype == code_dtype(t)
    assert m.has_canonical_format
    assert m.data.all()
    assert csr.nnz == int(five.astype(bool).any(axis=1).sum())
    decoded = decode_spikes(csr)
    assert decoded.dtype == np.bool_
    np.testing.assert_array_equal(decoded, five.astype(bool))
    # the file is canonical too: parse then write again gives the same bytes
    data = spikes_to_bytes(csr)
    back = spikes_from_bytes(data, what="trace")
    assert back.equals(csr)
    assert spikes_to_bytes(back) == data


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 64), st.integers(0, 40), st.integers(0, 2**32 - 1))
def test_pack_unpack_round_trip(t: int, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, count, dtype=np.uint64) * 2 + rng.integers(0, 2, count)
    codes = codes.astype(np.uint64)
    if t < 64:
        codes &= np.uint64((1 << t) - 1)
    stream = pack_codes(codes, t)
    assert stream == _reference_stream([int(c) for c in codes], t)
    back = unpack_codes(stream, count, t)
    assert back.dtype == code_dtype(t)
    np.testing.assert_array_equal(back.astype(np.uint64), codes)
    assert unpack_codes(memoryview(stream), count, t).tobytes() == back.tobytes()


def test_code_dtype_widths() -> None:
    widths = {t: code_dtype(t) for t in (1, 8, 9, 16, 17, 32, 33, 64)}
    assert widths == {
        1: np.uint8,
        8: np.uint8,
        9: np.uint16,
        16: np.uint16,
        17: np.uint32,
        32: np.uint32,
        33: np.uint64,
        64: np.uint64,
    }


def test_hand_computed_t4_stream() -> None:
    # two activations per byte, the first in the low nibble; trailing nibble zero
    assert pack_codes(np.array([0b0001, 0b1010, 0b1111]), 4) == bytes([0xA1, 0x0F])
    np.testing.assert_array_equal(unpack_codes(bytes([0xA1, 0x0F]), 3, 4), [1, 10, 15])
    # T = 3 straddles bytes: codes 0b101, 0b011, 0b110 are stream bits 1,0,1 1,1,0 0,1,1
    assert pack_codes(np.array([0b101, 0b011, 0b110]), 3) == bytes([0b1001_1101, 0b1])


def test_hand_made_tensor_csr() -> None:
    # 2 samples, T = 4, C = 2, H = 1, W = 3; spikes[s, t, c, 0, w]
    spikes = np.zeros((2, 4, 2, 1, 3), np.uint8)
    spikes[0, 0, 0, 0, 1] = 1  # s0 c0 w1: code 0b0001
    spikes[0, [1, 3], 0, 0, 2] = 1  # s0 c0 w2: code 0b1010
    spikes[0, :, 1, 0, 0] = 1  # s0 c1 w0: code 0b1111
    spikes[1, 2, 1, 0, 2] = 1  # s1 c1 w2: code 0b0100 (row 3); row 2 empty
    csr = encode_spikes(spikes, labels=[7, 3])
    m = csr.matrix
    assert m.shape == (4, 3)
    np.testing.assert_array_equal(m.indptr, [0, 2, 3, 3, 4])
    np.testing.assert_array_equal(m.indices, [1, 2, 0, 2])
    np.testing.assert_array_equal(m.data, [0b0001, 0b1010, 0b1111, 0b0100])
    assert m.data.dtype == np.uint8
    np.testing.assert_array_equal(csr.labels, [7, 3])
    np.testing.assert_array_equal(decode_spikes(csr), spikes.astype(bool))

    data = spikes_to_bytes(csr)
    again = spikes_from_bytes(data, what="hand")
    assert again.equals(csr)
    assert pack_codes(m.data, 4) == bytes([0xA1, 0x4F])


def test_fully_connected_shape() -> None:
    spikes = np.zeros((1, 2, 5), bool)
    spikes[0, 1, 3] = True
    csr = encode_spikes(spikes)
    assert csr.shape == (5, 1, 1)
    np.testing.assert_array_equal(csr.matrix.indptr, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(csr.matrix.data, [0b10])
    assert decode_spikes(csr).shape == (1, 2, 5, 1, 1)


def test_zero_samples() -> None:
    csr = encode_spikes(np.zeros((0, 3, 2, 2, 2), bool), labels=np.zeros(0, int))
    assert csr.matrix.shape == (0, 4)
    assert decode_spikes(csr).shape == (0, 3, 2, 2, 2)
    assert spikes_from_bytes(spikes_to_bytes(csr), what="empty").equals(csr)


def test_t64_all_ones() -> None:
    spikes = np.ones((2, 64, 1, 2, 2), bool)
    csr = encode_spikes(spikes)
    assert csr.matrix.dtype == np.uint64
    assert (csr.matrix.data == np.uint64(2**64 - 1)).all()
    np.testing.assert_array_equal(decode_spikes(csr), spikes)
    assert spikes_from_bytes(spikes_to_bytes(csr), what="t64").equals(csr)


def test_equals() -> None:
    a = encode_spikes(np.eye(3, dtype=bool).reshape(1, 3, 3), labels=[1])
    assert a.equals(encode_spikes(np.eye(3, dtype=bool).reshape(1, 3, 3), labels=[1]))
    assert not a.equals(encode_spikes(np.eye(3, dtype=bool).reshape(1, 3, 3)))
    assert not a.equals(encode_spikes(np.eye(3, dtype=bool).reshape(1, 3, 3), labels=[2]))
    assert not a.equals(encode_spikes(np.eye(3, dtype=bool).reshape(1, 3, 3), layer=0))
    assert not a.equals(encode_spikes(np.ones((1, 3, 3), bool), labels=[1]))
    assert not a.equals("spikes")


@pytest.mark.parametrize(
    ("spikes", "kwargs"),
    [
        (np.full((1, 2, 3), 2), {}),
        (np.full((1, 2, 3), np.nan), {}),
        (np.full((1, 2, 3), -1), {}),
        (np.zeros((1, 2)), {}),
        (np.zeros((1, 2, 3, 4)), {}),
        (np.zeros((1, 0, 3)), {}),
        (np.zeros((1, 65, 3)), {}),
        (np.zeros((1, 2, 0)), {}),
        (np.array([[["a"]]]), {}),
        (np.zeros((2, 2, 3)), {"labels": [1]}),
        (np.zeros((1, 2, 3)), {"labels": [1.5]}),
        (np.zeros((1, 2, 3)), {"labels": [2**40]}),
    ],
)
def test_encode_rejects(spikes: np.ndarray, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        encode_spikes(spikes, **kwargs)  # type: ignore[arg-type]


def test_codec_rejects() -> None:
    with pytest.raises(ValueError, match="fit"):
        pack_codes(np.array([16]), 4)
    with pytest.raises(ValueError, match="non-negative"):
        pack_codes(np.array([-1]), 4)
    with pytest.raises(ValueError, match="timesteps"):
        pack_codes(np.array([1]), 0)
    with pytest.raises(ValueError, match="exactly"):
        unpack_codes(bytes(3), 3, 4)
    with pytest.raises(ValueError, match="padding"):
        unpack_codes(bytes([0xA1, 0x1F]), 3, 4)


def test_spikecsr_rejects_non_canonical() -> None:
    explicit_zero = sparse.csr_matrix(
        (np.array([0], np.uint8), np.array([0]), np.array([0, 1])), shape=(1, 2)
    )
    unsorted = sparse.csr_matrix(
        (np.array([1, 1], np.uint8), np.array([1, 0]), np.array([0, 2])), shape=(1, 2)
    )
    wide = sparse.csr_matrix(
        (np.array([4], np.uint8), np.array([0]), np.array([0, 1])), shape=(1, 2)
    )
    for m in (explicit_zero, unsorted, wide):
        with pytest.raises(ValueError):  # noqa: PT011
            SpikeCSR(2, (1, 1, 2), 1, m)
    with pytest.raises(ValueError, match="dtype"):
        SpikeCSR(2, (1, 1, 2), 1, wide.astype(np.uint16))
    with pytest.raises(ValueError, match="shape"):
        SpikeCSR(3, (1, 2, 2), 1, wide)


# ---------------------------------------------------------------------------------------------
# files


def test_file_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    csr = encode_spikes(rng.random((3, 5, 2, 4, 4)) < 0.2, layer=4, labels=[0, 9, 1])
    path = tmp_path / "sub" / "trace.uts"
    write_spikes(csr, path)
    assert path.read_bytes() == spikes_to_bytes(csr)
    back = read_spikes(path)
    assert back.equals(csr)
    assert path.read_bytes()[:8] == MAGIC
    write_spikes(back, tmp_path / "again.uts")
    assert (tmp_path / "again.uts").read_bytes() == path.read_bytes()


def _tiny() -> SpikeCSR:
    """3 samples, T = 4, C = 2, H = W = 2 with empty rows, several rows and a row change."""
    spikes = np.zeros((3, 4, 2, 2, 2), bool)
    spikes[0, 0, 0, 0, :] = True
    spikes[0, 1, 1, 1, 1] = True
    spikes[2, 3, 0, 1, 0] = True
    return encode_spikes(spikes, labels=[1, 2, 3])


def _sections(csr: SpikeCSR) -> dict[bytes, bytes]:
    m = csr.matrix
    c, h, w = csr.shape
    secs = {
        b"SPKH": struct.pack("<5IiII", csr.timesteps, csr.samples, c, h, w, -1, csr.nnz, 0),
        b"IPTR": m.indptr.astype("<u4").tobytes(),
        b"INDX": m.indices.astype("<u4").tobytes(),
        b"CODE": pack_codes(m.data, csr.timesteps),
    }
    if csr.labels is not None:
        secs[b"LABL"] = csr.labels.astype("<i4").tobytes()
    return secs


def _file(sections: dict[bytes, bytes]) -> bytes:
    return write_container(MAGIC, list(sections.items()))


def _head(**fields: int) -> bytes:
    values = {"t": 4, "samples": 3, "c": 2, "h": 2, "w": 2, "layer": -1, "nnz": 4, "res": 0}
    values.update(fields)
    return struct.pack("<5IiII", *values.values())


def test_tiny_sections_are_valid() -> None:
    secs = _sections(_tiny())
    assert secs[b"SPKH"] == _head()
    assert secs[b"IPTR"] == np.array([0, 2, 3, 3, 3, 4, 4], "<u4").tobytes()
    assert spikes_from_bytes(_file(secs), what="tiny").equals(_tiny())
    assert spikes_to_bytes(_tiny()) == _file(secs)
    # reserved SPKH field is ignored; LABL is optional
    secs[b"SPKH"] = _head(res=7)
    del secs[b"LABL"]
    back = spikes_from_bytes(_file(secs), what="tiny")
    assert back.labels is None
    assert back.matrix.nnz == 4


def _u32(*values: int) -> bytes:
    return np.array(values, "<u4").tobytes()


HOSTILE: dict[str, tuple[dict[bytes, bytes | None], str | None]] = {
    "T zero": ({b"SPKH": _head(t=0)}, "timesteps"),
    "T 65": ({b"SPKH": _head(t=65)}, "timesteps"),
    "C zero": ({b"SPKH": _head(c=0)}, "shape"),
    "W huge": ({b"SPKH": _head(w=65536)}, "shape"),
    "layer -2": ({b"SPKH": _head(layer=-2)}, "layer"),
    "SPKH short": ({b"SPKH": _head()[:28]}, "SPKH"),
    "SPKH long": ({b"SPKH": _head() + bytes(4)}, "SPKH"),
    "huge samples": ({b"SPKH": _head(samples=2**32 - 1, c=65535)}, "IPTR"),
    "huge nnz": ({b"SPKH": _head(nnz=2**32 - 1)}, "nnz"),
    "nnz above INDX": ({b"SPKH": _head(nnz=5)}, "INDX"),
    "IPTR short": ({b"IPTR": _u32(0, 2, 3, 3, 3, 4)}, "IPTR"),
    "IPTR first": ({b"IPTR": _u32(1, 2, 3, 3, 3, 4, 4)}, "IPTR"),
    "IPTR last": ({b"IPTR": _u32(0, 2, 3, 3, 3, 4, 3)}, "IPTR"),
    "IPTR decreasing": ({b"IPTR": _u32(0, 2, 1, 3, 3, 4, 4)}, "IPTR"),
    "IPTR past nnz": ({b"IPTR": _u32(0, 9, 3, 3, 3, 4, 4)}, "IPTR"),
    "index out of range": ({b"INDX": _u32(0, 1, 4, 2)}, "INDX"),
    "index huge": ({b"INDX": _u32(0, 2**32 - 1, 3, 2)}, "INDX"),
    "index repeated": ({b"INDX": _u32(1, 1, 3, 2)}, "INDX"),
    "index decreasing": ({b"INDX": _u32(1, 0, 3, 2)}, "INDX"),
    "INDX short": ({b"INDX": _u32(0, 1, 3)}, "INDX"),
    "CODE short": ({b"CODE": bytes([0x11])}, "CODE"),
    "CODE long": ({b"CODE": bytes([0x11, 0x82, 0])}, "CODE"),
    "zero code": ({b"CODE": bytes([0x01, 0x80])}, "no spike"),
    "LABL short": ({b"LABL": _u32(1, 2)}, "LABL"),
    "SPKH missing": ({b"SPKH": None}, None),
    "CODE missing": ({b"CODE": None}, None),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_sections(case: str) -> None:
    changes, match = HOSTILE[case]
    secs = _sections(_tiny())
    assert secs[b"CODE"] == bytes([0x11, 0x82])  # the values the cases above were written for
    for tag, value in changes.items():
        if value is None:
            del secs[tag]
        else:
            secs[tag] = value
    with pytest.raises(MappingFormatError, match=match) as info:
        spikes_from_bytes(_file(secs), what="bad.uts")
    assert "\n" not in str(info.value)


def test_padding_bits_rejected() -> None:
    secs = _sections(encode_spikes(np.ones((1, 3, 1, 1, 1), bool)))  # T = 3: 5 padding bits
    secs[b"CODE"] = bytes([0b1000_0111])
    with pytest.raises(MappingFormatError, match="padding"):
        spikes_from_bytes(_file(secs), what="pad")


def test_row_change_may_restart_indices() -> None:
    # row 0 ends at position 3, row 1 starts at position 0: valid
    secs = _sections(_tiny())
    secs[b"INDX"] = _u32(0, 3, 0, 2)
    assert spikes_from_bytes(_file(secs), what="ok").matrix.indices.tolist() == [0, 3, 0, 2]


def test_truncated_and_flipped_files(tmp_path: Path) -> None:
    data = spikes_to_bytes(_tiny())
    for cut in (0, 7, 63, 64, len(data) // 2, len(data) - 1):
        with pytest.raises(MappingFormatError):
            spikes_from_bytes(data[:cut], what="cut")
    with pytest.raises(MappingFormatError):
        spikes_from_bytes(data + b"\0", what="long")
    path = tmp_path / "cut.uts"
    path.write_bytes(data[:-3])
    with pytest.raises(MappingFormatError):
        read_spikes(path)
    other = bytearray(data)
    other[:8] = b"UTMAP\x00\r\n"
    with pytest.raises(MappingFormatError):
        spikes_from_bytes(bytes(other), what="magic")


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([b"SPKH", b"IPTR", b"INDX", b"CODE", b"LABL"]),
    st.integers(0, 2**32 - 1),
    st.integers(0, 3),
)
def test_mutated_sections_fail_cleanly(tag: bytes, seed: int, how: int) -> None:
    """Any payload change gives a valid trace or MappingFormatError, never another exception."""
    rng = np.random.default_rng(seed)
    secs = _sections(_tiny())
    payload = bytearray(secs[tag])
    if how == 0 and payload:  # flip one bit
        i = int(rng.integers(len(payload) * 8))
        payload[i // 8] ^= 1 << (i % 8)
    elif how == 1 and len(payload) >= 4:  # overwrite one u32 with an edge value
        i = int(rng.integers(len(payload) // 4)) * 4
        value = int(rng.choice([0, 1, 2**31 - 1, 2**31, 2**32 - 1, int(rng.integers(2**32))]))
        payload[i : i + 4] = value.to_bytes(4, "little")
    elif how == 2:  # truncate
        del payload[int(rng.integers(len(payload) + 1)) :]
    else:  # extend
        payload += rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
    secs[tag] = bytes(payload)
    message = ""
    try:
        csr: SpikeCSR | None = spikes_from_bytes(_file(secs), what="fuzz")
    except MappingFormatError as exc:
        csr, message = None, str(exc)
    if csr is None:
        assert message.startswith("fuzz")
        assert "\n" not in message
    else:  # the change kept the file valid: it must still decode and re-encode exactly
        decoded = decode_spikes(csr)
        assert encode_spikes(decoded, layer=csr.layer, labels=csr.labels).equals(csr)
