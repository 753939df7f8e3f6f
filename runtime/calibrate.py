"""Calibrated placement: measure what each weight position costs on training samples, then map.

``map --placement auto`` chooses each layer's placement on the cycles it would cost, which depend
on the spikes reaching the layer. Those come from running a first, contiguous mapping of the same
model on the first ``calibration`` training images (never the test images that runs are scored
on), and counting per step what every weight position meets (``cost.position_hits``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from uticompile.datasets import Dataset
from uticompile.hardware import HardwareConfig
from uticompile.hwir import HwModule
from uticompile.ir import Graph
from uticompile.mapfile import KIND_NAMES, Mapping
from uticompile.models.batches import iterate_batches
from uticompile.passes.pipeline import (
    CALIBRATION_SPLIT,
    MapConfig,
    calibrated,
    compile_graph,
    map_graph,
    to_mapping,
)
from uticompile.runtime.cost import position_hits
from uticompile.runtime.engine import Engine, quantize_input

_BATCH = 64


def calibration_hits(m: Mapping, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per CONV/FC layer name: int32 ``[steps, C, K]`` cycles per weight position and step."""
    engine = Engine(m)
    parts: dict[str, list[np.ndarray]] = {}
    for x_q in images:
        outs = engine.run(x_q).outputs
        for i, rec in enumerate(m.layers):
            if KIND_NAMES[int(rec["kind"])] not in ("CONV", "FC"):
                continue
            hits = position_hits(outs[int(rec["input0"])].values, rec)
            c = int(rec["in_shape"][0])
            if KIND_NAMES[int(rec["kind"])] == "FC":
                c *= int(rec["in_shape"][1]) * int(rec["in_shape"][2])
            steps = hits.shape[0] * hits.shape[1]
            parts.setdefault(m.layer_names[i], []).append(
                hits.reshape(steps, c, -1).astype(np.int32)
            )
    return {name: np.concatenate(p) for name, p in parts.items()}


def calibration_images(m: Mapping, data: Dataset, samples: int) -> list[np.ndarray]:
    """The first ``samples`` training images (in order, unaugmented), quantized for ``m``."""
    frac, bits = int(m.model["input_frac_bits"]), int(m.model["input_bits"])
    out, left = [], samples
    for x, _ in iterate_batches(
        data, CALIBRATION_SPLIT, _BATCH, shuffle=False, augment=False, generator=None
    ):
        if left <= 0:
            break
        out.append(quantize_input(x.numpy()[:left], frac, bits))
        left -= len(out[-1])
    return out


def map_calibrated(
    graph: Graph,
    config: MapConfig,
    hw: HardwareConfig,
    bound: float,
    source: bytes,
    data: Dataset | None,
) -> tuple[HwModule, Mapping]:
    """``map_graph``, with placement costs measured on ``data`` when the options ask for it.

    Contiguous placement, ``calibration = 0`` or no data: placement costs are static (one cycle
    per nonzero weight). The result depends only on the inputs, so ``--check`` can redo it.
    """
    if not calibrated(config) or data is None:
        return map_graph(graph, config, hw, bound, source)
    first = compile_graph(graph, replace(config, placement="contiguous"), hw, bound)
    m = to_mapping(first)
    hits = calibration_hits(m, calibration_images(m, data, config.calibration))
    return map_graph(graph, config, hw, bound, source, hits=hits, calibration_dataset=data.name)
