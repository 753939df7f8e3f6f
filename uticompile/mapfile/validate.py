"""Semantic validation of a mapping's records (docs/mapping-format.md §2), vectorized: one numpy
expression per rule over all records at once. The PE grouping rule comes from
``uticompile.grouping`` and the WSP word counts from ``wsp``, so the reader checks exactly what
the mapper builds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import numpy.typing as npt

from uticompile.errors import MappingFormatError
from uticompile.grouping import active_slot_count, group_count, slot_filter, slot_span
from uticompile.limits import MAX_DIM
from uticompile.mapfile.compact import (
    ENCODING_COMPACT,
    ENCODING_NAMES,
    ENCODING_WSP,
    MAX_RICE_K,
    decode_compact,
)
from uticompile.mapfile.records import (
    BASE_VERSION,
    COMPACT_MINOR,
    GROUPING_NAMES,
    GROUPING_SATA,
    KIND_ADD,
    KIND_CONV,
    KIND_ENCODE,
    KIND_FC,
    KIND_FLATTEN,
    KIND_LIF,
    KIND_MAXPOOL,
    KIND_NAMES,
    KIND_SUMPOOL,
    LAYER_FLAG_BIAS,
    MODL_RANGES,
    PLACEMENT_CONTIGUOUS,
    PLACEMENT_SORTED,
    PLACEMENT_SPLIT,
    RESET_HARD,
    RESET_SUBTRACT,
    RESET_SUBTRACT_AFTER_LEAK,
    WINDOW_SUMPOOL_MINOR,
)
from uticompile.mapfile.wsp import MASK_WORD_BITS, WORD_BYTES, mask_words, wsp_words

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
_GATHER_BUDGET = 1 << 22  # bytes of WSPW gathered at once while checking blobs


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


class _Checker:
    """Raises the one-line ``MappingFormatError`` naming the first record that breaks a rule."""

    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, msg: str) -> NoReturn:
        raise MappingFormatError(f"{self.what}: {msg}")

    def first(self, bad: npt.ArrayLike, rec: str, msg: Callable[[int], str]) -> None:
        hits = np.flatnonzero(bad)
        if hits.size:
            i = int(hits[0])
            self.fail(f"{rec}[{i}]: {msg(i)}")


def _col(records: np.ndarray, name: str) -> np.ndarray:
    return records[name].astype(np.int64)


@dataclass(frozen=True)
class _Layers:
    """LAYR's fields as int64 columns, what each kind implies, and MODL's grouping (no checks:
    only elementwise decoding, so nothing here can index out of bounds on a hostile file)."""

    kind: np.ndarray
    flags: np.ndarray
    in0: np.ndarray
    in1: np.ndarray
    ins: np.ndarray
    outs: np.ndarray
    kernel: np.ndarray
    stride: np.ndarray
    pads: np.ndarray
    weight_bits: np.ndarray
    tile_first: np.ndarray
    tile_count: np.ndarray
    groups: np.ndarray
    spatial_tiles: np.ndarray
    leak_shift: np.ndarray
    shift0: np.ndarray
    shift1: np.ndarray
    reset: np.ndarray
    placement: np.ndarray
    num_pes: int
    grouping: str

    @classmethod
    def of(cls, model: np.ndarray, layers: np.ndarray) -> _Layers:
        names = {
            "kind": "kind", "flags": "flags", "in0": "input0", "in1": "input1",
            "ins": "in_shape", "outs": "out_shape", "kernel": "kernel", "stride": "stride",
            "pads": "pads", "weight_bits": "weight_bits", "tile_first": "tile_first",
            "tile_count": "tile_count", "groups": "groups", "spatial_tiles": "spatial_tiles",
            "leak_shift": "leak_shift", "reset": "reset", "placement": "placement",
            "shift0": "shift0", "shift1": "shift1",
        }  # fmt: skip
        return cls(
            **{k: _col(layers, v) for k, v in names.items()},
            num_pes=int(model["num_pes"]),
            grouping=GROUPING_NAMES[int(model["grouping"])],
        )

    def kname(self, i: int) -> str:
        return KIND_NAMES.get(int(self.kind[i]), str(int(self.kind[i])))

    is_enc = property(lambda self: self.kind == KIND_ENCODE)
    is_conv = property(lambda self: self.kind == KIND_CONV)
    is_fc = property(lambda self: self.kind == KIND_FC)
    is_lif = property(lambda self: self.kind == KIND_LIF)
    is_max = property(lambda self: self.kind == KIND_MAXPOOL)
    is_sum = property(lambda self: self.kind == KIND_SUMPOOL)
    is_add = property(lambda self: self.kind == KIND_ADD)
    is_flat = property(lambda self: self.kind == KIND_FLATTEN)

    @property
    def is_w(self) -> np.ndarray:
        return np.isin(self.kind, (KIND_ENCODE, KIND_CONV, KIND_FC))

    @property
    def c_in(self) -> np.ndarray:
        """Input channels of a weight layer (an FC's input is flattened)."""
        return np.where(self.is_fc, self.ins.prod(axis=1), self.ins[:, 0])

    @property
    def kk(self) -> np.ndarray:
        """Kernel positions per input channel."""
        return np.where(self.is_fc, 1, self.kernel[:, 0] * self.kernel[:, 1])

    @property
    def c_out(self) -> np.ndarray:
        return self.outs[:, 0]

    @property
    def placed(self) -> np.ndarray:
        """Weight layers placed freely (1.1: placement 1 or 2), not by MODL's grouping."""
        return self.is_w & (self.placement != PLACEMENT_CONTIGUOUS)


@dataclass(frozen=True)
class _Tiles:
    """TILE's fields as int64 columns (``raw_off`` kept u64 to detect offsets past the blob)."""

    tl: np.ndarray
    g: np.ndarray
    pe: np.ndarray
    t: np.ndarray
    filt: np.ndarray
    pos: np.ndarray
    count: np.ndarray
    nnz: np.ndarray
    words: np.ndarray
    wsp_bytes: np.ndarray
    raw_off: np.ndarray
    reserved: np.ndarray
    encoding: np.ndarray
    rice_k: np.ndarray

    @classmethod
    def of(cls, tiles: np.ndarray) -> _Tiles:
        names = {
            "tl": "layer", "g": "group", "pe": "pe", "t": "tile", "filt": "filter",
            "pos": "position", "count": "count", "nnz": "nnz", "words": "words",
            "wsp_bytes": "wsp_bytes", "encoding": "encoding", "rice_k": "rice_k",
        }  # fmt: skip
        return cls(
            **{k: _col(tiles, v) for k, v in names.items()},
            raw_off=tiles["wsp_offset"],
            reserved=tiles["reserved"],
        )


def validate(
    model: np.ndarray,
    layers: np.ndarray,
    tiles: np.ndarray,
    wsp: np.ndarray,
    nbias: int,
    *,
    strict: bool,
    what: str,
    minor: int = BASE_VERSION[1],
) -> None:
    """Every rule of section 2 a consumer relies on; raises on the first record breaking one.

    ``layers``/``tiles`` hold exactly MODL's layer_count/tile_count records. ``strict``: the
    file's minor version is known here, so its reserved fields must be zero. ``minor``: the
    file's minor version, which decides what a ``SUMPOOL`` may be (the whole map before 1.2,
    windows from 1.2) and whether a tile may be compact (from 1.2). The sections run in this
    order, each
    relying on what the ones before established (e.g. indices in range before indexing with them).
    """
    ck = _Checker(what)
    _check_model(ck, model, len(layers))
    lay = _Layers.of(model, layers)
    _check_layer_graph(ck, model, lay, layers["reserved"], strict, minor)
    _check_layer_storage(ck, model, lay, len(tiles), nbias, layers["bias_index"])
    til = _Tiles.of(tiles)
    same, off = _check_tile_fields(ck, model, lay, til, wsp, strict, minor)
    _check_tile_runs(ck, lay, til, same)
    _check_blobs(ck, lay, til, off, wsp)


def _check_model(ck: _Checker, model: np.ndarray, n_layers: int) -> None:
    """MODL: every field in its range, and at least one layer."""
    for name, (lo, hi) in MODL_RANGES.items():
        v = int(model[name])
        if not lo <= v <= hi:
            ck.fail(f"MODL: {name} {v} is out of range {lo}..{hi}")
    input_shape = model["input_shape"].astype(np.int64)
    if ((input_shape < 1) | (input_shape > MAX_DIM)).any():
        ck.fail(f"MODL: input_shape {_shape(input_shape)} is out of range 1..{MAX_DIM}")
    if n_layers == 0:
        ck.fail("MODL: layer_count is 0; a network has at least one layer")


def _check_layer_graph(
    ck: _Checker, model: np.ndarray, L: _Layers, reserved: np.ndarray, strict: bool, minor: int
) -> None:
    """LAYR: kinds, inputs (earlier layers only) and shapes that follow from each other."""
    n_layers, idx, kind, kname = len(L.kind), np.arange(len(L.kind)), L.kind, L.kname
    flags, in0, in1, ins, outs = L.flags, L.in0, L.in1, L.ins, L.outs
    kernel, stride, pads = L.kernel, L.stride, L.pads
    is_enc, is_conv, is_fc, is_lif = L.is_enc, L.is_conv, L.is_fc, L.is_lif
    is_max, is_sum, is_add, is_flat = L.is_max, L.is_sum, L.is_add, L.is_flat
    input_shape = model["input_shape"].astype(np.int64)
    ck.first(~np.isin(kind, list(KIND_NAMES)), "LAYR", lambda i: f"unknown kind {kind[i]}")
    if strict:
        ck.first(flags & ~LAYER_FLAG_BIAS != 0, "LAYR", lambda i: f"unknown flags 0x{flags[i]:x}")
        ck.first(reserved.any(axis=1), "LAYR", lambda i: "reserved bytes are not zero")
    ck.first(
        is_enc & (in0 != -1), "LAYR", lambda i: f"ENCODE must read the input (-1), not {in0[i]}"
    )
    ck.first(
        ~is_enc & ((in0 < 0) | (in0 >= idx)),
        "LAYR",
        lambda i: f"input0 {in0[i]} is not an earlier layer",
    )
    ck.first(
        is_add & ((in1 < 0) | (in1 >= idx)),
        "LAYR",
        lambda i: f"input1 {in1[i]} is not an earlier layer",
    )
    ck.first(
        ~is_add & (in1 != -1), "LAYR", lambda i: f"input1 is {in1[i]}, must be -1 for {kname(i)}"
    )
    ck.first(
        ((ins < 1) | (ins > MAX_DIM)).any(axis=1),
        "LAYR",
        lambda i: f"in_shape {_shape(ins[i])} is out of range 1..{MAX_DIM}",
    )
    ck.first(
        ((outs < 1) | (outs > MAX_DIM)).any(axis=1),
        "LAYR",
        lambda i: f"out_shape {_shape(outs[i])} is out of range 1..{MAX_DIM}",
    )
    src = outs[np.maximum(in0, 0)]
    src[is_enc] = input_shape

    def source(i: int) -> str:
        return "the network input" if in0[i] < 0 else f"layer {in0[i]}'s output"

    ck.first(
        ~is_fc & (ins != src).any(axis=1),
        "LAYR",
        lambda i: f"in_shape {_shape(ins[i])} does not match {source(i)} {_shape(src[i])}",
    )
    flat_src = src.prod(axis=1)
    ck.first(
        is_fc & ((ins[:, 0] != flat_src) | (ins[:, 1:] != 1).any(axis=1)),
        "LAYR",
        lambda i: (
            f"FC in_shape {_shape(ins[i])} is not ({flat_src[i]}, 1, 1), {source(i)} "
            f"{_shape(src[i])} flattened"
        ),
    )
    other = outs[np.maximum(in1, 0)]
    ck.first(
        is_add & (other != ins).any(axis=1),
        "LAYR",
        lambda i: f"ADD operands differ: {_shape(ins[i])} and layer {in1[i]}'s {_shape(other[i])}",
    )
    # 1.2: a SUMPOOL's kernel and stride are read (window sums); before, it pools the whole map
    sum_windows = is_sum if minor >= WINDOW_SUMPOOL_MINOR else np.zeros_like(is_sum)
    windowed = is_enc | is_conv | is_max | sum_windows
    ck.first(
        windowed & ((kernel < 1) | (stride < 1)).any(axis=1),
        "LAYR",
        lambda i: f"kernel {_shape(kernel[i])} and stride {_shape(stride[i])} must be >= 1",
    )
    ck.first(
        (is_max | sum_windows) & pads.any(axis=1),
        "LAYR",
        lambda i: f"{kname(i)} has no padding",
    )
    padded_h = ins[:, 1] + pads[:, 0] + pads[:, 2]
    padded_w = ins[:, 2] + pads[:, 1] + pads[:, 3]
    ck.first(
        windowed & ((padded_h < kernel[:, 0]) | (padded_w < kernel[:, 1])),
        "LAYR",
        lambda i: f"kernel {_shape(kernel[i])} is larger than the padded input",
    )
    out_h = (padded_h - kernel[:, 0]) // np.maximum(stride[:, 0], 1) + 1
    out_w = (padded_w - kernel[:, 1]) // np.maximum(stride[:, 1], 1) + 1
    ck.first(
        windowed & ((outs[:, 1] != out_h) | (outs[:, 2] != out_w)),
        "LAYR",
        lambda i: (
            f"out_shape {_shape(outs[i])} does not follow from in_shape, kernel, stride "
            f"and pads (H, W = {out_h[i]}, {out_w[i]})"
        ),
    )
    ck.first(
        is_sum & ~sum_windows & (kernel != ins[:, 1:]).any(axis=1),
        "LAYR",
        lambda i: (
            f"SUMPOOL kernel {_shape(kernel[i])} is not the input's H, W "
            f"(window sums need format version 1.{WINDOW_SUMPOOL_MINOR})"
        ),
    )
    ones = np.ones(n_layers, np.int64)
    expected_out = np.select(
        [
            (is_max | sum_windows)[:, None],
            (is_lif | is_add)[:, None],
            is_sum[:, None],
            is_flat[:, None],
        ],
        [
            np.stack([ins[:, 0], out_h, out_w], axis=1),
            ins,
            np.stack([ins[:, 0], ones, ones], axis=1),
            np.stack([ins.prod(axis=1), ones, ones], axis=1),
        ],
        default=outs,
    )
    ck.first(
        (expected_out != outs).any(axis=1),
        "LAYR",
        lambda i: f"{kname(i)} out_shape {_shape(outs[i])} should be {_shape(expected_out[i])}",
    )
    ck.first(
        is_fc & (outs[:, 1:] != 1).any(axis=1),
        "LAYR",
        lambda i: f"FC out_shape {_shape(outs[i])} is not (features, 1, 1)",
    )
    src_kind = kind[np.maximum(in0, 0)]
    ck.first(
        is_lif & ~np.isin(src_kind, [KIND_ENCODE, KIND_CONV, KIND_FC, KIND_ADD]),
        "LAYR",
        lambda i: (
            f"LIF reads layer {in0[i]}, a {KIND_NAMES[int(src_kind[i])]}; "
            "it must read ENCODE, CONV, FC or ADD"
        ),
    )
    leak_shift = L.leak_shift
    reset = L.reset
    ck.first(is_lif & (leak_shift > 31), "LAYR", lambda i: f"leak_shift {leak_shift[i]} exceeds 31")
    # shifts are exact on 64-bit integers in this range (section 2.2); none is ever negative
    s0, s1 = L.shift0.astype(np.int64), L.shift1.astype(np.int64)
    bad_shift = (L.is_add & ((s0 < 0) | (s0 > 31) | (s1 < 0) | (s1 > 31))) | (
        L.is_enc & ((s0 < 0) | (s0 > 62))
    )
    ck.first(
        bad_shift,
        "LAYR",
        lambda i: (
            f"{L.kname(i)} shifts {s0[i]}, {s1[i]} are out of range (ADD 0..31, ENCODE 0..62)"
        ),
    )
    resets: tuple[int, ...]
    if minor >= WINDOW_SUMPOOL_MINOR:  # 1.2 adds reset 2 (subtract after the leak)
        resets = (RESET_HARD, RESET_SUBTRACT, RESET_SUBTRACT_AFTER_LEAK)
        names = f"not {RESET_HARD}, {RESET_SUBTRACT} or {RESET_SUBTRACT_AFTER_LEAK}"
    else:
        resets, names = (RESET_HARD, RESET_SUBTRACT), f"neither {RESET_HARD} nor {RESET_SUBTRACT}"
    ck.first(
        is_lif & ~np.isin(reset, resets),
        "LAYR",
        lambda i: f"reset {reset[i]} is {names}",
    )
    last = n_layers - 1
    head = last  # the classifier: the last layer, or the FC its spiking output neuron reads
    if kind[last] == KIND_LIF and 0 <= int(in0[last]) < last:
        head = int(in0[last])
    if kind[head] != KIND_FC or _shape(outs[last]) != (int(model["num_classes"]), 1, 1):
        ck.fail(
            f"LAYR[{last}]: the last layer must be the FC producing the "
            f"{int(model['num_classes'])} logits, not {kname(last)} {_shape(outs[last])} "
            "(or a LIF reading that FC)"
        )


def _check_layer_storage(
    ck: _Checker, model: np.ndarray, L: _Layers, n_tiles: int, nbias: int, bias_index: np.ndarray
) -> None:
    """LAYR: weight widths, biases, groups and tile ranges."""
    is_enc, is_conv, is_fc, is_w, kname = L.is_enc, L.is_conv, L.is_fc, L.is_w, L.kname
    weight_bits, tile_first, tile_count, outs = L.weight_bits, L.tile_first, L.tile_count, L.outs
    input_bits, word_bits, n = int(model["input_bits"]), int(model["word_bits"]), L.num_pes
    ck.first(
        is_enc & ((weight_bits < 2) | (weight_bits > input_bits)),
        "LAYR",
        lambda i: f"ENCODE weight_bits {weight_bits[i]} is out of range 2..{input_bits}",
    )
    ck.first(
        (is_conv | is_fc) & ((weight_bits < 2) | (weight_bits > word_bits)),
        "LAYR",
        lambda i: f"weight_bits {weight_bits[i]} is out of range 2..{word_bits}",
    )
    ck.first(
        ~is_w & (tile_count != 0),
        "LAYR",
        lambda i: f"{kname(i)} has no weights but tile_count {tile_count[i]}",
    )
    ck.first(
        is_w & (tile_first + tile_count > n_tiles),
        "LAYR",
        lambda i: (
            f"tiles {tile_first[i]}..{tile_first[i] + tile_count[i] - 1} are outside "
            f"TILE ({n_tiles} records)"
        ),
    )
    has_bias = (L.flags & LAYER_FLAG_BIAS) != 0
    ck.first(has_bias & ~is_w, "LAYR", lambda i: f"{kname(i)} cannot have a bias")
    bias_past = bias_index > np.uint64(nbias)
    room = nbias - np.minimum(bias_index, np.uint64(nbias)).astype(np.int64)
    ck.first(
        has_bias & (bias_past | (outs[:, 0] > room)),
        "LAYR",
        lambda i: (
            f"bias {int(bias_index[i])}..{int(bias_index[i]) + int(outs[i, 0]) - 1} is "
            f"outside BIAS ({nbias} values)"
        ),
    )
    c_out, groups, code, placed = L.c_out, L.groups, L.placement, L.placed
    ck.first(code > PLACEMENT_SPLIT, "LAYR", lambda i: f"placement {code[i]} is not 0, 1 or 2")
    ck.first(~is_w & (code != 0), "LAYR", lambda i: f"{kname(i)} has no weights to place")
    ck.first(
        placed & ((groups < 1) | (groups > c_out)),
        "LAYR",
        lambda i: f"groups {groups[i]} is not in 1..{c_out[i]} (one filter or more per group)",
    )
    want_groups = group_count(L.grouping, c_out, n)
    ck.first(
        is_w & ~placed & (groups != want_groups),
        "LAYR",
        lambda i: (
            f"groups {groups[i]}, {GROUPING_NAMES[int(model['grouping'])]} grouping of "
            f"{c_out[i]} filters on {n} PEs needs {want_groups[i]}"
        ),
    )
    spatial = L.spatial_tiles
    want_spatial = -(-(outs[:, 1] * outs[:, 2]) // int(model["accumulators"]))
    ck.first(
        (is_conv | is_fc) & (spatial != want_spatial),
        "LAYR",
        lambda i: (
            f"spatial_tiles {spatial[i]} is not ceil(out H*W / accumulators) = {want_spatial[i]}"
        ),
    )


def _check_tile_fields(
    ck: _Checker,
    model: np.ndarray,
    L: _Layers,
    T: _Tiles,
    wsp: np.ndarray,
    strict: bool,
    minor: int,
) -> tuple[np.ndarray, np.ndarray]:
    """TILE: fields, order and WSP sizes; returns (same PE run as the record before, offsets)."""
    n_layers, n_tiles, n = len(L.kind), len(T.tl), L.num_pes
    tl, g, pe, t, kname, groups = T.tl, T.g, T.pe, T.t, L.kname, L.groups
    ck.first(tl >= n_layers, "TILE", lambda i: f"layer {tl[i]} is not a layer index")
    ck.first(
        ~L.is_w[tl], "TILE", lambda i: f"layer {tl[i]} is a {kname(int(tl[i]))}, without weights"
    )
    enc, rice_k = T.encoding, T.rice_k
    if minor < COMPACT_MINOR:  # before 1.2, encoding and rice_k were reserved bytes
        ck.first(
            (T.reserved != 0) | (enc != 0) | (rice_k != 0),
            "TILE",
            lambda i: "reserved field is not zero",
        )
    elif strict:
        ck.first(T.reserved != 0, "TILE", lambda i: "reserved field is not zero")
    ck.first(
        ~np.isin(enc, list(ENCODING_NAMES)),
        "TILE",
        lambda i: f"encoding {enc[i]} is not {ENCODING_WSP} (wsp) or {ENCODING_COMPACT} (compact)",
    )
    is_wsp = enc == ENCODING_WSP
    ck.first(is_wsp & (rice_k != 0), "TILE", lambda i: f"rice_k {rice_k[i]} of a WSP tile is not 0")
    ck.first(
        rice_k > MAX_RICE_K, "TILE", lambda i: f"rice_k {rice_k[i]} is out of range 0..{MAX_RICE_K}"
    )
    ck.first(g >= groups[tl], "TILE", lambda i: f"group {g[i]} is not below {groups[tl[i]]} groups")
    ck.first(pe >= n, "TILE", lambda i: f"pe {pe[i]} is not below num_pes {n}")
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
    ck.first(
        ~ordered,
        "TILE",
        lambda i: f"not sorted by (layer, group, pe, tile) after TILE[{i - 1}]",
    )
    prev_t = np.concatenate([[-1], t[:-1]])
    ck.first(
        np.where(same, t != prev_t + 1, t != 0),
        "TILE",
        lambda i: f"tile {t[i]} breaks the numbering 0, 1, ... of its PE and group",
    )
    count, nnz, words, wsp_bytes = T.count, T.nnz, T.words, T.wsp_bytes
    ck.first(count < 1, "TILE", lambda i: "count is 0")
    ck.first(nnz > count, "TILE", lambda i: f"nnz {nnz[i]} exceeds count {count[i]}")
    want_words = wsp_words(count, nnz)
    ck.first(
        is_wsp & (words != want_words),
        "TILE",
        lambda i: f"words {words[i]} is not ceil(count / 16) + nnz = {want_words[i]}",
    )
    scratch = int(model["scratchpad_words"])
    ck.first(
        words > scratch, "TILE", lambda i: f"words {words[i]} exceed scratchpad_words {scratch}"
    )
    ck.first(
        is_wsp & (wsp_bytes != WORD_BYTES * words),
        "TILE",
        lambda i: f"wsp_bytes {wsp_bytes[i]} is not 2 * words",
    )
    ck.first(
        ~is_wsp & (wsp_bytes != 0),
        "TILE",
        lambda i: f"wsp_bytes {wsp_bytes[i]} of a compact tile is not 0",
    )
    blob = WORD_BYTES * words  # every tile's blob: WSP or compact
    raw_off = T.raw_off
    ck.first(raw_off % np.uint64(2) != 0, "TILE", lambda i: f"wsp_offset {raw_off[i]} is odd")
    off_past = raw_off > np.uint64(wsp.size)
    off = np.minimum(raw_off, np.uint64(wsp.size)).astype(np.int64)
    ck.first(
        off_past | (blob > wsp.size - off),
        "TILE",
        lambda i: (
            f"WSP blob of {blob[i]} bytes at {int(raw_off[i])} is outside WSPW ({wsp.size} bytes)"
        ),
    )
    return same, off


def _check_tile_runs(ck: _Checker, L: _Layers, T: _Tiles, same: np.ndarray) -> None:
    """TILE: which filter and positions each tile holds (section 2.3's grouping, from
    ``uticompile.grouping``), and LAYR's tile ranges agreeing with TILE."""
    n_layers, n_tiles, n, grouping = len(L.kind), len(T.tl), L.num_pes, L.grouping
    tl, g, pe, count, filt, pos = T.tl, T.g, T.pe, T.count, T.filt, T.pos
    c_in, kk, c_out, tile_first, tile_count = L.c_in, L.kk, L.c_out, L.tile_first, L.tile_count
    want_filt = slot_filter(grouping, g, pe, n)
    free = L.placed[tl]  # tiles of placed layers follow section 2.3's placement rules instead
    if grouping == GROUPING_NAMES[GROUPING_SATA]:
        ck.first(
            ~free & (filt != want_filt),
            "TILE",
            lambda i: f"filter {filt[i]} is not group * num_pes + pe = {g[i] * n + pe[i]} (sata)",
        )
    else:
        ck.first(
            ~free & (filt != want_filt),
            "TILE",
            lambda i: f"filter {filt[i]} is not group {g[i]} (systolic)",
        )
    ck.first(
        filt >= c_out[tl],
        "TILE",
        lambda i: f"filter {filt[i]} is not below layer {tl[i]}'s {c_out[tl[i]]} output channels",
    )
    end = pos + count
    start, stop = slot_span(grouping, pe, c_in[tl], kk[tl], n)
    ck.first(
        ~free & ~same & (pos != start),
        "TILE",
        lambda i: f"position {pos[i]} is not {start[i]}, the start of PE {pe[i]}'s weights",
    )
    prev_end = np.concatenate([[0], end[:-1]])
    ck.first(
        same & (pos != prev_end),
        "TILE",
        lambda i: f"position {pos[i]} does not continue TILE[{i - 1}], which ends at {prev_end[i]}",
    )
    run_last = np.ones(n_tiles, dtype=bool)
    run_last[:-1] = ~same[1:]
    ck.first(
        ~free & run_last & (end != stop),
        "TILE",
        lambda i: f"the tiles of PE {pe[i]}, group {g[i]} end at position {end[i]}, not {stop[i]}",
    )
    _check_placed_runs(ck, L, T, same, run_last)
    slots = np.bincount(tl[~same], minlength=n_layers)
    want_slots = active_slot_count(grouping, c_out, c_in, n)
    ck.first(
        L.is_w & ~L.placed & (slots != want_slots),
        "LAYR",
        lambda i: f"tiles fill {slots[i]} (group, pe) slots, the grouping has {want_slots[i]}",
    )
    per_layer = np.bincount(tl, minlength=n_layers)
    ck.first(
        tile_count != per_layer,
        "LAYR",
        lambda i: f"tile_count {tile_count[i]}, but TILE has {per_layer[i]} records of it",
    )
    firsts = np.searchsorted(tl, np.arange(n_layers))
    ck.first(
        (per_layer > 0) & (tile_first != firsts),
        "LAYR",
        lambda i: f"tile_first {tile_first[i]}, but its first TILE record is {firsts[i]}",
    )


def _check_placed_runs(
    ck: _Checker, L: _Layers, T: _Tiles, same: np.ndarray, run_last: np.ndarray
) -> None:
    """Section 2.3's rules for placed layers (placement 1 or 2), over all their tiles at once.

    Each (group, pe) holds one contiguous range of one filter, cut at input-channel boundaries;
    the ranges of a filter lie in one group and cover it exactly once; every filter is placed,
    every group holds one; ``sorted`` (1) layers hold whole filters only.
    """
    tl, g, filt, pos = T.tl, T.g, T.filt, T.pos
    end = pos + T.count
    fsize, kk = L.c_in * L.kk, L.kk
    free = L.placed[tl]
    prev_filt = np.concatenate([[-1], filt[:-1]])
    ck.first(
        free & same & (filt != prev_filt),
        "TILE",
        lambda i: f"filter {filt[i]} differs from filter {prev_filt[i]} of its PE's tiles",
    )
    starts = np.flatnonzero(free & ~same)  # one row per PE run
    ends = np.flatnonzero(free & run_last)
    rl, rg, rf, r0, r1 = tl[starts], g[starts], filt[starts], pos[starts], end[ends]
    k = kk[rl]
    bad = np.flatnonzero((r0 % k != 0) | (r1 % k != 0))
    if bad.size:
        j, i = int(bad[0]), int(starts[bad[0]])
        ck.fail(
            f"TILE[{i}]: PE {T.pe[i]} of group {g[i]} holds positions {r0[j]}..{r1[j] - 1}, "
            f"not whole input channels of {k[j]} positions"
        )
    whole = L.placement[rl] == PLACEMENT_SORTED
    bad = np.flatnonzero(whole & ((r0 != 0) | (r1 != fsize[rl])))
    if bad.size:
        i = int(starts[bad[0]])
        ck.fail(f"TILE[{i}]: a sorted (1) layer's PE holds a whole filter, not a part of it")
    order = np.lexsort((r0, rf, rl))
    rl, rg, rf, r0, r1, at = rl[order], rg[order], rf[order], r0[order], r1[order], starts[order]
    new = np.ones(len(rl), bool)
    new[1:] = (rl[1:] != rl[:-1]) | (rf[1:] != rf[:-1])
    last = np.ones(len(rl), bool)
    last[:-1] = new[1:]
    prev_end = np.concatenate([[0], r1[:-1]])
    prev_group = np.concatenate([[-1], rg[:-1]])
    for cond, msg in (
        (new & (r0 != 0), "starts at position {r0}, so positions 0..{r0m1} are on no PE"),
        (~new & (r0 != prev_end), "starts at {r0}, the filter's previous PE range ends at {pe}"),
        (~new & (rg != prev_group), "lies in another group than the rest of its filter"),
        (last & (r1 != fsize[rl]), "the filter's last PE range ends at {r1}, not {fs}"),
    ):
        bad = np.flatnonzero(cond)
        if bad.size:
            j = int(bad[0])
            text = msg.format(r0=r0[j], r0m1=r0[j] - 1, pe=prev_end[j], r1=r1[j], fs=fsize[rl[j]])
            ck.fail(f"TILE[{int(at[j])}]: filter {rf[j]} of layer {rl[j]}: {text}")
    n_layers = len(L.kind)
    filters = np.bincount(rl[new], minlength=n_layers)
    ck.first(
        L.placed & (filters != L.c_out),
        "LAYR",
        lambda i: f"{filters[i]} of its {L.c_out[i]} filters are placed on PEs",
    )
    used = np.unique(rl * (1 << 32) + rg)
    groups_used = np.bincount(used >> 32, minlength=n_layers)
    ck.first(
        L.placed & (groups_used != L.groups),
        "LAYR",
        lambda i: f"only {groups_used[i]} of its {L.groups[i]} groups hold a filter",
    )


def _check_blobs(ck: _Checker, L: _Layers, T: _Tiles, off: np.ndarray, wsp: np.ndarray) -> None:
    """WSPW: blobs apart, bitmasks (WSP) or streams (compact) agree with nnz, values fit the
    layer's weight_bits."""
    if len(T.tl) == 0:
        return
    blob = WORD_BYTES * T.words
    order = np.argsort(off, kind="stable")
    sorted_end = off[order] + blob[order]
    clash = np.flatnonzero(off[order][1:] < sorted_end[:-1])
    if clash.size:
        i, j = int(order[clash[0] + 1]), int(order[clash[0]])
        ck.fail(f"TILE[{i}]: WSP blob overlaps TILE[{j}]'s")
    compact = np.flatnonzero(T.encoding == ENCODING_COMPACT)
    if compact.size:

        def fail(j: int, msg: str) -> NoReturn:
            ck.fail(f"TILE[{int(compact[j])}]: {msg}")

        decode_compact(
            wsp, off[compact], T.words[compact], T.count[compact], T.nnz[compact],
            L.weight_bits[T.tl[compact]], T.rice_k[compact], fail,
        )  # fmt: skip
    _check_wsp_blobs(ck, L, T, off, wsp, np.flatnonzero(T.encoding == ENCODING_WSP))


def _check_wsp_blobs(
    ck: _Checker, L: _Layers, T: _Tiles, off: np.ndarray, wsp: np.ndarray, which: np.ndarray
) -> None:
    """The WSP tiles ``which``: no bitmask bits past count, popcounts are nnz, values fit."""
    if which.size == 0:
        return
    tl, count, nnz, wsp_bytes = T.tl[which], T.count[which], T.nnz[which], T.wsp_bytes[which]
    off, weight_bits = off[which], L.weight_bits
    mwords = mask_words(count)
    mbytes = WORD_BYTES * mwords
    last_word = wsp[off + mbytes - 2].astype(np.int64) | (
        wsp[off + mbytes - 1].astype(np.int64) << 8
    )
    used = count - MASK_WORD_BITS * (mwords - 1)  # bits of the last word inside count, 1..16
    bad = np.flatnonzero((last_word >> used) != 0)
    if bad.size:
        ck.fail(f"TILE[{int(which[bad[0]])}]: bitmask has bits set past count {count[bad[0]]}")
    limit = np.left_shift(1, weight_bits[tl] - 1)
    for t0, t1 in _chunks(wsp_bytes, _GATHER_BUDGET):
        part = slice(t0, t1)
        masks = _gather(wsp, off[part], mbytes[part])
        ones_per_tile = np.add.reduceat(_POPCOUNT[masks], np.cumsum(mbytes[part]) - mbytes[part])
        bad = np.flatnonzero(ones_per_tile != nnz[part])
        if bad.size:
            i = t0 + int(bad[0])
            ck.fail(
                f"TILE[{int(which[i])}]: bitmask has {ones_per_tile[bad[0]]} set bits, "
                f"nnz is {nnz[i]}"
            )
        values = _gather(wsp, off[part] + mbytes[part], WORD_BYTES * nnz[part]).view("<i2")
        bound = np.repeat(limit[part], nnz[part])
        out_of_range = np.flatnonzero((values < -bound) | (values >= bound))
        if out_of_range.size:
            k = int(out_of_range[0])
            i = t0 + int(np.searchsorted(np.cumsum(nnz[part]), k, side="right"))
            ck.fail(
                f"TILE[{int(which[i])}]: weight {int(values[k])} does not fit layer {tl[i]}'s "
                f"{weight_bits[tl[i]]}-bit weights"
            )
