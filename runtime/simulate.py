"""Running a mapping on dataset samples or spike traces, costing it, and checking it.

``--check`` recompiles the source ONNX with the options stored in the mapping, requires the
result to be byte-identical to the mapping (so the check is about this very file), then runs the
quantized network in onnxruntime on the same inputs and requires identical spikes in every LIF
layer and identical predictions; the first mismatch is reported with layer, position and timestep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import onnxruntime as ort

from uticompile.datasets import Dataset
from uticompile.errors import UticompileError
from uticompile.hardware import HardwareConfig
from uticompile.hwir import HwModule
from uticompile.ir import Graph
from uticompile.mapfile import KIND_NAMES, Mapping, encode_mapping
from uticompile.models.batches import iterate_batches
from uticompile.onnx_export import serialize
from uticompile.passes.pipeline import (
    CALIBRATION_SPLIT,
    MapConfig,
    calibrated,
    compile_graph,
    map_graph,
    to_mapping,
)
from uticompile.runtime.calibrate import calibration_hits
from uticompile.runtime.cost import CostReport, EventCounter
from uticompile.runtime.engine import Engine, Execution, quantize_input
from uticompile.runtime.reference import INPUT, reference_model

CALIBRATION_BATCH = 64


class CheckError(UticompileError):
    """The runtime and onnxruntime disagree (or the mapping is not the source's)."""


def recompile(
    m: Mapping,
    mapped_bytes: bytes,
    graph: Graph,
    source: bytes,
    hw: HardwareConfig,
    data: Dataset | None = None,
) -> HwModule:
    """Redo the mapping of ``graph`` with the stored options; it must give ``mapped_bytes``.

    A calibrated placement is measured again on ``data``, which must be the dataset it was
    measured on. Mappings written before placement existed are contiguous.
    """
    meta = m.meta
    try:
        config = MapConfig(**{"placement": "contiguous", "calibration": 0, **meta["map_config"]})
        hw = HardwareConfig(**{**hw.__dict__, **meta["hardware"]})
        bound = float(meta["input_bound"])
    except (KeyError, TypeError, ValueError):
        raise CheckError("the mapping's META lacks the options needed for --check") from None
    if calibrated(config):
        want = meta.get("calibration", {}).get("dataset")
        if data is None or data.name != want:
            raise CheckError(
                f"the placement was calibrated on {want!r}: run --check with --dataset {want}"
            )
    module, again_m = map_calibrated(graph, config, hw, bound, source, data)
    again = encode_mapping(again_m)
    if again != mapped_bytes:
        raise CheckError("the source ONNX does not map to this file (another model or options)")
    return module


@dataclass
class CheckResult:
    samples: int = 0
    layers: int = 0
    spikes_compared: int = 0
    predictions_equal: bool = True


class Checker:
    """Runs the quantized reference in onnxruntime and compares batch by batch."""

    def __init__(self, module: HwModule) -> None:
        model, self.lif_layers = reference_model(module)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            serialize(model), options, providers=["CPUExecutionProvider"]
        )
        self.result = CheckResult(layers=len(self.lif_layers))

    def compare(self, x_q: np.ndarray, execution: Execution, names: list[str], first: int) -> None:
        outs = self.session.run(None, {INPUT: x_q.astype(np.float32)})
        for j, i in enumerate(self.lif_layers):
            mine = execution.outputs[i].values
            ref = outs[1 + j].reshape(mine.shape).astype(bool)
            bad = np.argwhere(ref != mine)
            if bad.size:
                t, n, *pos = (int(v) for v in bad[0])
                raise CheckError(
                    f"spike mismatch in layer {i} ({names[i]}) at sample {first + n}, "
                    f"timestep {t}, position {tuple(pos)}: runtime {int(mine[tuple(bad[0])])}, "
                    f"onnxruntime {int(ref[tuple(bad[0])])}"
                )
            self.result.spikes_compared += int(mine.size)
        ref_pred = outs[0].sum(axis=0).argmax(axis=-1)
        diff = np.flatnonzero(ref_pred != execution.predictions)
        if diff.size:
            n = int(diff[0])
            raise CheckError(
                f"prediction mismatch at sample {first + n}: runtime {execution.predictions[n]}, "
                f"onnxruntime {ref_pred[n]}"
            )
        self.result.samples += len(x_q)


@dataclass
class Simulation:
    report: CostReport
    predictions: np.ndarray
    labels: np.ndarray | None
    check: CheckResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        if self.labels is None or len(self.labels) == 0:
            return None
        return float(np.mean(self.predictions == self.labels))


def simulate(
    m: Mapping,
    batches: Sequence[tuple[np.ndarray, np.ndarray | None]],
    hw: HardwareConfig,
    *,
    checker: Checker | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Simulation:
    """Run the mapping on quantized input batches ``(x_q, labels)`` and count every event."""
    engine = Engine(m)
    counter = EventCounter(m, hw)
    preds: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    seen = 0
    for x_q, y in batches:
        execution = engine.run(x_q)
        counter.add(execution)
        if checker is not None:
            checker.compare(x_q, execution, m.layer_names, seen)
        preds.append(execution.predictions)
        if y is not None:
            labels.append(y)
        seen += len(x_q)
        if on_batch is not None:
            on_batch(len(x_q))
    return Simulation(
        report=counter.report(),
        predictions=np.concatenate(preds) if preds else np.zeros(0, np.int64),
        labels=np.concatenate(labels) if labels else None,
        check=checker.result if checker is not None else None,
    )


def quantized_test_batches(
    m: Mapping, data: Dataset, samples: int, batch_size: int, *, split: str = "test"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``samples`` images of ``split`` (in order, unaugmented), quantized to the
    mapping's input format."""
    frac, bits = int(m.model["input_frac_bits"]), int(m.model["input_bits"])
    out: list[tuple[np.ndarray, np.ndarray]] = []
    left = samples
    for x, y in iterate_batches(
        data, split, batch_size, shuffle=False, augment=False, generator=None
    ):
        if left <= 0:
            break
        x_np, y_np = x.numpy()[:left], y.numpy()[:left]
        out.append((quantize_input(x_np, frac, bits), y_np))
        left -= len(x_np)
    return out


def first_lif(m: Mapping) -> int:
    """Index of the LIF that reads the analog encoder: its spikes enter the PE array."""
    for i, k in enumerate(m.layers["kind"]):
        if KIND_NAMES[int(k)] == "LIF":
            return i
    raise UticompileError("the mapping has no LIF layer")


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
    batches = quantized_test_batches(
        m, data, config.calibration, CALIBRATION_BATCH, split=CALIBRATION_SPLIT
    )
    hits = calibration_hits(m, [x for x, _ in batches])
    return map_graph(graph, config, hw, bound, source, hits=hits, calibration_dataset=data.name)
