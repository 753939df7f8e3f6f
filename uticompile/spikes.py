"""Spike traces in CSR form, and their ``.uts`` file (docs/mapping-format.md, section 3).

Spikes of one layer are mostly zero, and an activation that never fires costs the accelerator's
activation processing unit nothing, so traces are stored the way that unit streams them: one CSR
row per (sample, channel), one column per position ``h * W + w``, holding only the activations
that spike at least once, each with its T spikes packed into a T-bit code (bit ``t`` = timestep
``t``). Everything here is vectorized: traces have millions of activations.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from uticompile.container import Container, read_container, read_container_file, write_container
from uticompile.errors import MappingFormatError
from uticompile.fileio import atomic_write_bytes
from uticompile.limits import MAX_DIM, MAX_TIMESTEPS

MAGIC = b"UTSPK\x00\r\n"
"""Container magic of a spike trace file."""

VERSION = (1, 0)
"""Format version written."""

"""Largest C, H or W a trace file may declare (as the mapping's ``input_shape``)."""

_SPKH = struct.Struct("<5IiII")  # T, samples, C, H, W, layer, nnz, reserved
_REQUIRED = (b"SPKH", b"IPTR", b"INDX", b"CODE")
_U32_MAX = 2**32 - 1
_I32 = np.iinfo(np.int32)


def code_dtype(timesteps: int) -> np.dtype:
    """The narrowest unsigned dtype holding a ``timesteps``-bit code (uint8/16/32/64)."""
    _check_timesteps(timesteps)
    return np.dtype(f"uint{_code_bytes(timesteps) * 8}")


def _code_bytes(timesteps: int) -> int:
    """Bytes of the code dtype for T: 1, 2, 4 or 8."""
    return 1 << max(0, (timesteps - 1).bit_length() - 3)


def _check_timesteps(timesteps: int) -> None:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int | np.integer):
        raise ValueError(f"timesteps must be an integer, got {type(timesteps).__name__}")
    if not 1 <= timesteps <= MAX_TIMESTEPS:
        raise ValueError(f"timesteps {timesteps} not in 1..{MAX_TIMESTEPS}")


@dataclass(frozen=True, eq=False)
class SpikeCSR:
    """One layer's spikes for ``samples`` samples, CSR over activations with T-bit codes.

    Attributes:
        timesteps: T, 1..64.
        shape: C, H, W of one timestep's activations (fully-connected layers: F, 1, 1).
        samples: number of samples.
        matrix: ``[samples * C, H * W]`` CSR of codes (``code_dtype(T)``), row ``sample * C + c``,
            column ``h * W + w``; canonical: sorted indices, no explicit zeros, no bit past T.
        layer: the mapping's ``LAYR`` index whose output these spikes are; -1 if none.
        labels: optional int ``[samples]`` dataset labels.
    """

    timesteps: int
    shape: tuple[int, int, int]
    samples: int
    matrix: sparse.csr_matrix
    layer: int = -1
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Refuse an inconsistent trace here, so encoders, decoders and writers can trust it."""
        _check_timesteps(self.timesteps)
        if len(self.shape) != 3 or any(int(d) < 1 for d in self.shape):
            raise ValueError(f"shape must be three dimensions >= 1, got {self.shape}")
        if self.samples < 0:
            raise ValueError(f"samples must be >= 0, got {self.samples}")
        if self.layer < -1:
            raise ValueError(f"layer must be >= -1, got {self.layer}")
        m = self.matrix
        if not isinstance(m, sparse.csr_matrix):
            raise ValueError(f"matrix must be a scipy.sparse.csr_matrix, got {type(m).__name__}")
        c, h, w = self.shape
        if m.shape != (self.samples * c, h * w):
            raise ValueError(f"matrix shape {m.shape} is not {(self.samples * c, h * w)}")
        if m.dtype != code_dtype(self.timesteps):
            raise ValueError(f"matrix dtype {m.dtype} is not {code_dtype(self.timesteps)}")
        if not m.has_canonical_format:
            raise ValueError("matrix indices are not sorted and unique within each row")
        if m.nnz and not m.data.all():
            raise ValueError("matrix stores an explicit zero (an activation that never spikes)")
        bits = 8 * m.dtype.itemsize
        if self.timesteps < bits and m.nnz and int(m.data.max()) >> self.timesteps:
            raise ValueError(f"a code has bits past timestep {self.timesteps - 1}")
        if self.labels is not None:
            lab = self.labels
            if lab.ndim != 1 or lab.shape[0] != self.samples or lab.dtype.kind not in "iu":
                raise ValueError(f"labels must be {self.samples} integers, got {lab.shape}")

    @property
    def nnz(self) -> int:
        """Stored activations: those that spike at least once."""
        return int(self.matrix.nnz)

    def equals(self, other: object) -> bool:
        """Exact equality of every field (canonical CSR makes array equality meaningful)."""
        if not isinstance(other, SpikeCSR):
            return False
        a, b = self.matrix, other.matrix
        if (self.timesteps, tuple(self.shape), self.samples, self.layer) != (
            other.timesteps,
            tuple(other.shape),
            other.samples,
            other.layer,
        ):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if not (
            np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data, b.data)
        ):
            return False
        if self.labels is None or other.labels is None:
            return self.labels is None and other.labels is None
        return bool(np.array_equal(self.labels, other.labels))


# ---------------------------------------------------------------------------------------------
# codes <-> bits


def _codes_from_bits(bits: np.ndarray, timesteps: int) -> np.ndarray:
    """Codes of ``bits`` ``[..., T]`` (0/1, bit t = timestep t), as ``code_dtype(T)``."""
    packed = np.packbits(bits, axis=-1, bitorder="little")  # [..., ceil(T/8)]
    width = _code_bytes(timesteps)
    buf = np.zeros((*packed.shape[:-1], width), np.uint8)
    buf[..., : packed.shape[-1]] = packed
    codes = buf.view(np.dtype(f"<u{width}"))[..., 0]
    return codes.astype(code_dtype(timesteps), copy=False)


def _bits_from_codes(codes: np.ndarray, timesteps: int) -> np.ndarray:
    """Bits ``[count, T]`` (uint8 0/1) of 1-D codes that fit ``code_dtype(T)``."""
    width = _code_bytes(timesteps)
    raw = np.ascontiguousarray(codes, dtype=np.dtype(f"<u{width}")).view(np.uint8)
    return np.unpackbits(raw.reshape(-1, width), axis=1, count=timesteps, bitorder="little")


def pack_codes(codes: npt.ArrayLike, T: int) -> bytes:
    """The spec's bit stream: code ``j`` at stream bits ``j*T .. j*T+T-1``, LSB first, 0-padded."""
    _check_timesteps(T)
    arr = np.asarray(codes)
    if arr.ndim != 1:
        raise ValueError(f"codes must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"codes must be integers, got {arr.dtype}")
    if arr.size:
        if arr.dtype.kind == "i" and int(arr.min()) < 0:
            raise ValueError("codes must be non-negative")
        if T < 64 and int(arr.max()) >> T:
            raise ValueError(f"a code does not fit in {T} bits")
    bits = _bits_from_codes(arr.astype(code_dtype(T), copy=False), T)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def unpack_codes(data: bytes | memoryview, count: int, T: int) -> np.ndarray:
    """Inverse of ``pack_codes``: ``count`` codes as ``code_dtype(T)``.

    ``data`` must be exactly ``ceil(count * T / 8)`` bytes with zero padding bits; anything else
    is a ValueError (a writer that disagrees with the stream layout, not a loose reader).
    """
    _check_timesteps(T)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    buf = np.frombuffer(data, dtype=np.uint8)
    nbits = count * T
    if buf.size != (nbits + 7) // 8:
        raise ValueError(f"{buf.size} bytes do not hold exactly {count} {T}-bit codes")
    if nbits % 8 and int(buf[-1]) >> (nbits % 8):
        raise ValueError("padding bits past the last code are not zero")
    bits = np.unpackbits(buf, count=nbits, bitorder="little").reshape(count, T)
    return _codes_from_bits(bits, T)


# ---------------------------------------------------------------------------------------------
# dense <-> CSR


def _csr(
    codes: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]
) -> sparse.csr_matrix:
    """A CSR matrix from arrays already known canonical (scipy picks the index width)."""
    m = sparse.csr_matrix(
        (codes, indices.astype(np.int64, copy=False), indptr.astype(np.int64, copy=False)),
        shape=shape,
    )
    m.has_sorted_indices = True
    return m


def _as_labels(labels: npt.ArrayLike | None, samples: int) -> np.ndarray | None:
    """Labels as int32 ``[samples]``, the width the file stores, or None."""
    if labels is None:
        return None
    lab = np.asarray(labels)
    if lab.shape != (samples,) or lab.dtype.kind not in "iu":
        raise ValueError(f"labels must be {samples} integers, got {lab.dtype} {lab.shape}")
    if lab.size and (int(lab.min()) < _I32.min or int(lab.max()) > _I32.max):
        raise ValueError("labels do not fit in int32")
    return lab.astype(np.int32)


def encode_spikes(
    spikes: npt.ArrayLike, *, layer: int = -1, labels: npt.ArrayLike | None = None
) -> SpikeCSR:
    """CSR trace of 0/1 ``spikes`` ``[samples, T, C, H, W]`` (or ``[samples, T, F]`` for FC)."""
    arr = np.asarray(spikes)
    if arr.ndim == 3:
        arr = arr.reshape(*arr.shape, 1, 1)
    if arr.ndim != 5:
        raise ValueError(
            f"spikes must be [samples, T, C, H, W] or [samples, T, F], got {arr.shape}"
        )
    samples, timesteps, c, h, w = (int(d) for d in arr.shape)
    _check_timesteps(timesteps)
    if min(c, h, w) < 1:
        raise ValueError(f"activation shape {(c, h, w)} has an empty dimension")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"spikes must be bool or 0/1 numbers, got {arr.dtype}")
        if not ((arr == 0) | (arr == 1)).all():
            raise ValueError("spikes must be 0 or 1")
        arr = arr != 0
    # [S, C, H, W, T] bits -> one code per activation, then rows (sample, c) x columns (h, w)
    dense = _codes_from_bits(np.moveaxis(arr, 1, -1), timesteps).reshape(samples * c, h * w)
    stored = dense != 0
    indptr = np.zeros(samples * c + 1, np.int64)
    np.cumsum(np.count_nonzero(stored, axis=1), out=indptr[1:])
    matrix = _csr(dense[stored], np.nonzero(stored)[1], indptr, (samples * c, h * w))
    return SpikeCSR(timesteps, (c, h, w), samples, matrix, layer, _as_labels(labels, samples))


def decode_spikes(csr: SpikeCSR) -> np.ndarray:
    """The bool spikes ``[samples, T, C, H, W]`` of ``csr``: the exact inverse of encoding."""
    c, h, w = csr.shape
    m = csr.matrix
    out = np.zeros((csr.samples, csr.timesteps, c * h * w), np.bool_)
    if m.nnz:
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        pos = (rows % c) * (h * w) + m.indices
        bits = _bits_from_codes(m.data, csr.timesteps).view(np.bool_)  # [nnz, T]
        out[(rows // c)[:, None], np.arange(csr.timesteps)[None, :], pos[:, None]] = bits
    return out.reshape(csr.samples, csr.timesteps, c, h, w)


# ---------------------------------------------------------------------------------------------
# .uts files


def spikes_to_bytes(csr: SpikeCSR) -> bytes:
    """The ``.uts`` file of ``csr``."""
    c, h, w = csr.shape
    if max(c, h, w) > MAX_DIM:
        raise ValueError(f"shape {csr.shape} has a dimension above {MAX_DIM}")
    if csr.samples > _U32_MAX or csr.nnz > _U32_MAX:
        raise ValueError("samples or stored activations exceed the file's 32-bit counts")
    if csr.layer > _I32.max:
        raise ValueError(f"layer {csr.layer} does not fit in int32")
    m = csr.matrix
    head = _SPKH.pack(csr.timesteps, csr.samples, c, h, w, csr.layer, csr.nnz, 0)
    sections: list[tuple[bytes, bytes]] = [
        (b"SPKH", head),
        (b"IPTR", m.indptr.astype("<u4").tobytes()),
        (b"INDX", m.indices.astype("<u4").tobytes()),
        (b"CODE", pack_codes(m.data, csr.timesteps)),
    ]
    labels = _as_labels(csr.labels, csr.samples)
    if labels is not None:
        sections.append((b"LABL", labels.astype("<i4").tobytes()))
    return write_container(MAGIC, sections, version=VERSION)


def spikes_from_bytes(data: bytes | memoryview, *, what: str) -> SpikeCSR:
    """Parse and fully validate a ``.uts`` file; ``what`` names it in error messages."""
    return _from_container(read_container(data, MAGIC, _REQUIRED, what=what), what)


def write_spikes(csr: SpikeCSR, path: str | os.PathLike[str]) -> None:
    """Write ``csr`` to ``path`` atomically: a trace appears whole or not at all."""
    atomic_write_bytes(path, spikes_to_bytes(csr))


def read_spikes(path: str | os.PathLike[str]) -> SpikeCSR:
    """Read and fully validate the ``.uts`` file at ``path``."""
    return _from_container(read_container_file(path, MAGIC, _REQUIRED), os.fspath(path))


def _from_container(container: Container, what: str) -> SpikeCSR:
    """Validate every count against its section before allocating anything it implies."""
    secs = container.sections

    def fail(msg: str) -> MappingFormatError:
        return MappingFormatError(f"{what}: {msg}")

    if len(secs[b"SPKH"]) != _SPKH.size:
        raise fail(f"SPKH is {len(secs[b'SPKH'])} bytes, expected {_SPKH.size}")
    timesteps, samples, c, h, w, layer, nnz, _ = _SPKH.unpack(secs[b"SPKH"])
    if not 1 <= timesteps <= MAX_TIMESTEPS:
        raise fail(f"SPKH timesteps {timesteps} not in 1..{MAX_TIMESTEPS}")
    if not all(1 <= d <= MAX_DIM for d in (c, h, w)):
        raise fail(f"SPKH shape {(c, h, w)} has a dimension outside 1..{MAX_DIM}")
    if layer < -1:
        raise fail(f"SPKH layer {layer} is below -1")
    rows, cols = samples * c, h * w
    if nnz > rows * cols:
        raise fail(f"SPKH nnz {nnz} exceeds the {rows * cols} activations of the trace")
    _expect_len(secs, b"IPTR", 4 * (rows + 1), fail)
    _expect_len(secs, b"INDX", 4 * nnz, fail)
    _expect_len(secs, b"CODE", (nnz * timesteps + 7) // 8, fail)
    if b"LABL" in secs:
        _expect_len(secs, b"LABL", 4 * samples, fail)

    indptr = np.frombuffer(secs[b"IPTR"], dtype="<u4")
    if indptr[0] != 0 or indptr[-1] != nnz:
        raise fail(f"IPTR runs from {indptr[0]} to {indptr[-1]}, expected 0 to nnz {nnz}")
    if (indptr[1:] < indptr[:-1]).any():
        raise fail(f"IPTR decreases at row {int(np.argmax(indptr[1:] < indptr[:-1]))}")
    indices = np.frombuffer(secs[b"INDX"], dtype="<u4")
    if nnz and int(indices.max()) >= cols:
        raise fail(f"INDX has position {int(indices.max())} >= H*W = {cols}")
    increasing = indices[1:] > indices[:-1]
    starts = indptr[1:-1].astype(np.int64)
    increasing[starts[(starts > 0) & (starts < nnz)] - 1] = True  # a new row may start anywhere
    if not increasing.all():
        raise fail(
            f"INDX not strictly increasing within a row at entry {int(np.argmin(increasing)) + 1}"
        )
    code = secs[b"CODE"]
    if (nnz * timesteps) % 8 and code[-1] >> ((nnz * timesteps) % 8):
        raise fail("CODE padding bits past the last code are not zero")
    codes = unpack_codes(code, nnz, timesteps)
    if nnz and not codes.all():
        raise fail(f"CODE of stored activation {int(np.argmin(codes != 0))} has no spike")
    labels = None
    if b"LABL" in secs:
        labels = np.frombuffer(secs[b"LABL"], dtype="<i4").astype(np.int32)
    matrix = _csr(codes, indices, indptr, (rows, cols))
    return SpikeCSR(timesteps, (c, h, w), samples, matrix, layer, labels)


def _expect_len(
    secs: dict[bytes, memoryview],
    tag: bytes,
    expected: int,
    fail: Callable[[str], MappingFormatError],
) -> None:
    """Compare a section's length with what the header's counts imply, before reading it."""
    if len(secs[tag]) != expected:
        raise fail(f"{tag.decode()} is {len(secs[tag])} bytes, expected {expected}")
