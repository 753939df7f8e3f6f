"""Figures about a mapping: per-PE workloads and utilization, and storage sizes.

Sizes compare what the file stores (``bytes``: WSP and compact tiles as written) with what every
tile would take in WSP and in the compact encoding, dense storage, CSR-style storage (values +
column indices + row pointers) and two entropy bounds of mask plus values, per weight layer and in
total. The mask's part of both bounds is ``n * H(p)``: n dense positions, H the binary entropy at
the layer's density p = nonzero / n (the information in the positions of an i.i.d. mask of that
density). Values: ``bytes_entropy_bound`` adds the empirical entropy of the layer's nonzero values
(``sum -c_v log2(c_v / nnz)`` over distinct values v with counts c_v), ``bytes_bound_weight_bits``
adds ``nnz * weight_bits`` (values stored at their declared width, as a format must when it does not
model them). Both are rounded up to whole bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from uticompile.mapfile import (
    GROUPING_NAMES,
    KIND_CODES,
    KIND_NAMES,
    PLACEMENT_NAMES,
    WEIGHT_KINDS,
    Mapping,
)
from uticompile.mapfile.compact import (
    ENCODING_NAMES,
    ENCODING_WSP,
    decode_compact,
    runs_of,
    tile_compact_words,
)
from uticompile.mapfile.wsp import WORD_BYTES, mask_words, wsp_words
from uticompile.metrics import eq2


def _entropy_bits(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def _binary_entropy(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def pe_workloads(m: Mapping, layer: int) -> np.ndarray:
    """Nonzero weights per PE, int64 [groups, num_pes] (summed over the PE's tiles)."""
    rec = m.layers[layer]
    first, count = int(rec["tile_first"]), int(rec["tile_count"])
    t = m.tiles[first : first + count]
    n = int(m.model["num_pes"])
    out = np.zeros(int(rec["groups"]) * n, dtype=np.int64)
    np.add.at(out, t["group"].astype(np.int64) * n + t["pe"], t["nnz"].astype(np.int64))
    return out.reshape(int(rec["groups"]), n)


def pe_active(m: Mapping, layer: int) -> np.ndarray:
    rec = m.layers[layer]
    first, count = int(rec["tile_first"]), int(rec["tile_count"])
    t = m.tiles[first : first + count]
    n = int(m.model["num_pes"])
    out = np.zeros(int(rec["groups"]) * n, dtype=bool)
    out[t["group"].astype(np.int64) * n + t["pe"]] = True
    return out.reshape(int(rec["groups"]), n)


@dataclass(frozen=True)
class LayerWeights:
    """The nonzero weights of a weight layer, in tile order (section 2.3/2.4).

    Arrays are [nnz]: ``tile`` is the tile's index among the layer's tiles, ``filter`` the output
    channel, ``position`` the position in the flattened filter, ``value`` the int16 weight.
    ``shape`` is (filters, positions).
    """

    shape: tuple[int, int]
    tile: np.ndarray
    filter: np.ndarray
    position: np.ndarray
    value: np.ndarray


def _spans(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of ``buf[s : s + n]`` for every (s, n), without a Python loop."""
    seg = np.cumsum(lengths) - lengths
    idx = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - seg, lengths)
    return buf[idx]


def layer_weights(m: Mapping, layer: int) -> LayerWeights:
    """Decode all blobs of a (validated) weight layer at once, WSP and compact: no loop over
    tiles or weights."""
    rec = m.layers[layer]
    o = int(rec["out_shape"][0])
    c = int(rec["in_shape"][0]) * (
        int(rec["in_shape"][1]) * int(rec["in_shape"][2]) if KIND_CODES["FC"] == rec["kind"] else 1
    )
    kk = 1 if KIND_CODES["FC"] == rec["kind"] else int(rec["kernel"][0]) * int(rec["kernel"][1])
    first, count = int(rec["tile_first"]), int(rec["tile_count"])
    t = m.tiles[first : first + count]
    is_wsp = t["encoding"] == ENCODING_WSP
    tile, where, value = _wsp_weights(m, t, np.flatnonzero(is_wsp))
    if not is_wsp.all():
        which = np.flatnonzero(~is_wsp)
        ct = t[which]
        got = decode_compact(
            m.wsp, ct["wsp_offset"].astype(np.int64), ct["words"], ct["count"], ct["nnz"],
            int(rec["weight_bits"]), ct["rice_k"],
        )  # fmt: skip
        order = np.argsort(np.concatenate([tile, which[got.tile]]), kind="stable")
        tile = np.concatenate([tile, which[got.tile]])[order]
        where = np.concatenate([where, got.position])[order]
        value = np.concatenate([value, got.value.astype(np.int16)])[order]
    position = t["position"].astype(np.int64)[tile] + where
    return LayerWeights((o, c * kk), tile, t["filter"].astype(np.int64)[tile], position, value)


def _wsp_weights(
    m: Mapping, tiles: np.ndarray, which: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tile index, position within the tile, value int16) of the WSP tiles ``which``."""
    t = tiles[which]
    off = t["wsp_offset"].astype(np.int64)
    nnz = t["nnz"].astype(np.int64)
    mbytes = WORD_BYTES * mask_words(t["count"].astype(np.int64))
    bits = np.unpackbits(_spans(m.wsp, off, mbytes), bitorder="little")
    where = np.flatnonzero(bits)
    assert where.size == int(nnz.sum()), "the reader checks that bitmasks agree with nnz"
    tile = np.repeat(np.arange(len(t), dtype=np.int64), nnz)
    bit0 = np.cumsum(8 * mbytes) - 8 * mbytes
    value = _spans(m.wsp, off + mbytes, WORD_BYTES * nnz).view("<i2").astype(np.int16)
    return which[tile], where - bit0[tile], value


def dense_weights(m: Mapping, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(values int16 [O, positions], mask bool) of a weight layer, decoded from its tiles."""
    w = layer_weights(m, layer)
    values = np.zeros(w.shape, np.int16)
    mask = np.zeros(w.shape, bool)
    mask[w.filter, w.position] = True
    values[w.filter, w.position] = w.value
    return values, mask


def layer_summary(m: Mapping) -> list[dict[str, Any]]:
    """One entry per weight layer: workloads, static utilization (Eq. 2) and storage sizes."""
    rows = []
    word = int(m.model["word_bits"])
    for i, rec in enumerate(m.layers):
        if int(rec["kind"]) not in WEIGHT_KINDS:
            continue
        w = pe_workloads(m, i)
        act = pe_active(m, i)
        mu = eq2(w, act)
        lw = layer_weights(m, i)
        values = np.zeros(lw.shape, np.int16)
        mask = np.zeros(lw.shape, bool)
        mask[lw.filter, lw.position] = True
        values[lw.filter, lw.position] = lw.value
        o, cols = mask.shape
        nnz = int(mask.sum())
        index_bytes = 2 if cols <= 65536 else 4
        mask_bits = cols * o * _binary_entropy(nnz / mask.size)
        entropy = mask_bits + _entropy_bits(values[mask])
        bits = int(rec["weight_bits"])
        t = m.tiles[int(rec["tile_first"]) : int(rec["tile_first"]) + int(rec["tile_count"])]
        rel = lw.position - t["position"].astype(np.int64)[lw.tile]  # position in its tile
        first_of_tile = np.ones(lw.tile.size, bool)
        first_of_tile[1:] = lw.tile[1:] != lw.tile[:-1]
        runs = np.where(first_of_tile, rel, runs_of(rel))
        compact_words, _ = tile_compact_words(lw.tile, runs, len(t), bits)
        encodings = sorted({ENCODING_NAMES[int(e)] for e in t["encoding"]})
        has_work = ~np.isnan(mu)
        rows.append(
            {
                "layer": i,
                "name": m.layer_names[i],
                "groups": int(rec["groups"]),
                "placement": PLACEMENT_NAMES[int(rec["placement"])],
                "tiles": int(rec["tile_count"]),
                "nonzero": nnz,
                "positions": int(mask.size),
                # over the PEs holding weights (a tile, maybe empty); clock-gated slots hold no
                # workload: null in ``workloads``, so its non-null minimum is workload_min
                "workload_min": int(w[act].min()) if act.any() else 0,
                "workload_max": int(w[act].max()) if act.any() else 0,
                "workloads": [
                    [int(v) if a else None for v, a in zip(row, arow, strict=True)]
                    for row, arow in zip(w, act, strict=True)
                ],
                "static_utilization": float(mu[has_work].mean()) if has_work.any() else None,
                "encoding": encodings[0] if len(encodings) == 1 else "mixed",
                "tiles_compact": int((t["encoding"] != ENCODING_WSP).sum()),
                "bytes": WORD_BYTES * int(t["words"].astype(np.int64).sum()),
                "bytes_wsp": WORD_BYTES * int(wsp_words(t["count"], t["nnz"]).sum()),
                "bytes_compact": WORD_BYTES * int(compact_words.sum()),
                "bytes_dense": mask.size * word // 8,
                "bytes_csr": nnz * (word // 8 + index_bytes) + 4 * (o + 1),
                "bytes_entropy_bound": math.ceil(entropy / 8),
                "bytes_bound_weight_bits": math.ceil((mask_bits + nnz * bits) / 8),
            }
        )
    return rows


def header(m: Mapping) -> dict[str, Any]:
    """The MODL record in readable form (what ``inspect`` prints first)."""
    md = m.model
    return {
        "model": m.name,
        "timesteps": int(md["timesteps"]),
        "num_classes": int(md["num_classes"]),
        "input_shape": [int(v) for v in md["input_shape"]],
        "input_frac_bits": int(md["input_frac_bits"]),
        "num_pes": int(md["num_pes"]),
        "grouping": GROUPING_NAMES[int(md["grouping"])],
        "scratchpad_words": int(md["scratchpad_words"]),
        "acc_bits": int(md["acc_bits"]),
        "layers": len(m.layers),
        "tiles": len(m.tiles),
    }


def layer_list(m: Mapping) -> list[dict[str, Any]]:
    """Index, name, kind and output shape of every layer."""
    return [
        {"index": i, "name": m.layer_names[i], "kind": KIND_NAMES[int(r["kind"])],
         "out_shape": [int(v) for v in r["out_shape"]]}
        for i, r in enumerate(m.layers)
    ]  # fmt: skip


def size_totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    keys = ("bytes", "bytes_wsp", "bytes_compact", "bytes_dense", "bytes_csr",
            "bytes_entropy_bound", "bytes_bound_weight_bits", "nonzero", "positions")  # fmt: skip
    return {k: int(sum(r[k] for r in rows)) for k in keys}
