"""``map`` with placement costs measured by the runtime, and its redo for ``run --check``.

Placement is chosen by a pass (passes layer) from cycles that only the runtime can count, and
passes may not import the runtime: this top-layer recipe joins the two. The calibration images
come from the training split (``CALIBRATION_SPLIT``), never the test images runs are scored on.
"""

from __future__ import annotations

from dataclasses import replace

from uticompile.datasets import Dataset
from uticompile.errors import CheckError
from uticompile.hardware import HardwareConfig
from uticompile.hwir import HwModule
from uticompile.ir import Graph
from uticompile.mapfile import Mapping, encode_mapping
from uticompile.passes.pipeline import (
    CALIBRATION_SPLIT,
    MapConfig,
    calibrated,
    compile_graph,
    map_graph,
    to_mapping,
)
from uticompile.runtime.calibrate import calibration_hits
from uticompile.runtime.inputs import quantized_test_batches

CALIBRATION_BATCH = 64


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
    count = min(config.calibration, len(data.x_train))  # "up to": a small split weighs all
    batches = quantized_test_batches(m, data, count, CALIBRATION_BATCH, split=CALIBRATION_SPLIT)
    hits = calibration_hits(m, [x for x, _ in batches])
    return map_graph(graph, config, hw, bound, source, hits=hits, calibration_dataset=data.name)


def recompile(
    m: Mapping,
    mapped_bytes: bytes,
    graph: Graph,
    source: bytes,
    hw: HardwareConfig,
    data: Dataset | None = None,
) -> HwModule:
    """Redo the mapping of ``graph`` with the options in ``m``'s META; it must give
    ``mapped_bytes``, so that ``run --check`` is about this very file.

    A calibrated placement is measured again on ``data``, which must be the dataset it was
    measured on. Mappings written before placement existed are contiguous.
    """
    meta = m.meta
    try:
        config = MapConfig(**{"placement": "contiguous", "calibration": 0, **meta["map_config"]})
        hw = HardwareConfig(**{**hw.__dict__, **meta["hardware"]})
        bound = float(meta["input_bound"])
    except (KeyError, TypeError, ValueError):
        raise CheckError("the mapping's META lacks the options needed to check it") from None
    if calibrated(config):
        want = meta.get("calibration", {}).get("dataset")
        if data is None or data.name != want:
            raise CheckError(
                f"dataset {want} is needed to check this mapping: its placement was calibrated "
                "on it",
                option="dataset",
            )
    module, again_m = map_calibrated(graph, config, hw, bound, source, data)
    if encode_mapping(again_m) != mapped_bytes:
        raise CheckError("the source ONNX does not map to this file (another model or options)")
    return module
