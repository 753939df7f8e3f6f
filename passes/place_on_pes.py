"""PlaceOnPEs: put every weight layer's filters on PEs and split them into scratchpad tiles.

Each PE slot holds what the layer's placement (``ChoosePlacement``) gives it: one contiguous range
of input channels of one filter. Without one, the grouping pruning balances against
(``uticompile.grouping.group_layout``) is used, so a u-Ticket-balanced layer keeps equal workloads.
Each PE's weight range is cut at input-channel boundaries into tiles whose WSP (bitmask words +
nonzero words) fits the scratchpad; each tile is loaded in its own pass. The cut is greedy (as
many channels as fit), computed for all PEs of a layer at once, one tile index at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from uticompile.errors import InvariantError, PassError
from uticompile.grouping import group_layout
from uticompile.hwir import HwLayer, HwModule
from uticompile.mapfile.wsp import mask_words
from uticompile.passes.base import PassResult
from uticompile.placement import contiguous


def place_layer(layer: HwLayer, n: int, grouping: str, capacity: int, accumulators: int) -> None:
    assert layer.weight is not None
    w = layer.weight
    o = w.shape[0]
    kk = int(np.prod(w.shape[2:])) if w.ndim == 4 else 1
    c_in = w.shape[1]
    placed = layer.placement or contiguous(group_layout(tuple(w.shape), n, grouping), kk)
    slots = np.arange(len(placed.filter))
    filt, first_ch, n_ch = placed.filter, placed.first, placed.channels
    # nonzeros per (filter, input channel), then cumulative per PE over its channel range
    per_ch = (w.reshape(o, c_in, kk) != 0).sum(axis=2)
    width = int(n_ch.max(initial=0))
    ch = first_ch[:, None] + np.arange(width + 1)[None, :] - 1
    valid = np.arange(width + 1)[None, :] <= n_ch[:, None]
    gathered = np.where(
        (np.arange(width + 1)[None, :] >= 1) & valid,
        per_ch[filt[:, None], np.clip(ch, 0, c_in - 1)],
        0,
    )
    cum = np.cumsum(gathered, axis=1)  # cum[:, j] = nonzeros in the first j channels
    rows: list[np.ndarray] = []
    begin = np.zeros(len(slots), dtype=np.int64)
    tile = 0
    j = np.arange(width + 1)[None, :]
    while True:
        todo = begin < n_ch
        if not todo.any():
            break
        words = (
            mask_words((j - begin[:, None]) * kk) + cum - cum[np.arange(len(slots)), begin][:, None]
        )
        fits = (j > begin[:, None]) & valid & (words <= capacity)
        end = np.where(fits, j, 0).max(axis=1)
        stuck = todo & (end <= begin)
        if stuck.any():
            raise PassError(
                f"{layer.name!r}: one input channel of a filter needs more than the "
                f"{capacity}-word scratchpad"
            )
        idx = np.flatnonzero(todo)
        b, e = begin[idx], end[idx]
        nnz = cum[idx, e] - cum[idx, b]
        rows.append(
            np.stack(
                [
                    placed.group[idx],
                    placed.pe[idx],
                    np.full(len(idx), tile),
                    filt[idx],
                    (first_ch[idx] + b) * kk,
                    (e - b) * kk,
                    nnz,
                ],
                axis=1,
            )
        )
        begin = np.where(todo, end, begin)
        tile += 1
    tiles = np.concatenate(rows) if rows else np.zeros((0, 7), np.int64)
    order = np.lexsort((tiles[:, 2], tiles[:, 1], tiles[:, 0]))
    layer.tiles = tiles[order].astype(np.int64)
    layer.groups = placed.groups
    layer.spatial_tiles = -(-layer.out_shape[1] * layer.out_shape[2] // accumulators)
    # postcondition: the tiles cover every nonzero weight exactly once and fit the scratchpad
    if int(layer.tiles[:, 6].sum()) != int(np.count_nonzero(w)):
        raise InvariantError(
            f"{layer.name!r}: tiles hold {layer.tiles[:, 6].sum()} of "
            f"{np.count_nonzero(w)} nonzero weights"
        )
    if np.any(mask_words(layer.tiles[:, 5]) + layer.tiles[:, 6] > capacity):
        raise InvariantError(f"{layer.name!r}: a tile overflows the scratchpad")


@dataclass(frozen=True)
class PlaceOnPEs:
    name: ClassVar[str] = "place-on-pes"

    def __call__(self, module: HwModule) -> PassResult:
        if not module.quantized:
            raise PassError("weights must be quantized before placement")
        hw = module.hw
        for layer in module.weight_layers():
            place_layer(layer, hw.num_pes, module.grouping, hw.scratchpad_words, hw.accumulators)
        return PassResult(module, True)
