"""Calibration of placement: what each weight position costs, measured by running a mapping.

``map --placement auto`` chooses each layer's placement on the cycles it would cost, which depend
on the spikes reaching the layer. Those come from running a first, contiguous mapping of the same
model on the first ``calibration`` training images (never the test images that runs are scored
on, ``workflow.calibrated_map``), and counting per step what every weight position meets
(the engine's ``hits``, the cost model's own count).
"""

from __future__ import annotations

import numpy as np

from uticompile.mapfile import KIND_NAMES, Mapping
from uticompile.runtime.engine import Engine


def calibration_hits(m: Mapping, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per CONV/FC layer name: int32 ``[steps, C, K]`` cycles per weight position and step."""
    engine = Engine(m)
    parts: dict[str, list[np.ndarray]] = {}
    for x_q in images:
        execution = engine.run(x_q)
        for i, rec in enumerate(m.layers):
            if KIND_NAMES[int(rec["kind"])] not in ("CONV", "FC"):
                continue
            hits = execution.hits[i]
            c = int(rec["in_shape"][0])
            if KIND_NAMES[int(rec["kind"])] == "FC":
                c *= int(rec["in_shape"][1]) * int(rec["in_shape"][2])
            steps = hits.shape[0] * hits.shape[1]
            parts.setdefault(m.layer_names[i], []).append(
                hits.reshape(steps, c, -1).astype(np.int32)
            )
    return {name: np.concatenate(p) for name, p in parts.items()}
