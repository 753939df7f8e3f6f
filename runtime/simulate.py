"""The simulation loop: run a mapping batch by batch, count every event, optionally check."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from uticompile.hardware import HardwareConfig
from uticompile.mapfile import Mapping
from uticompile.runtime.cost import CostReport, EventCounter
from uticompile.runtime.engine import Engine

if TYPE_CHECKING:  # the checker needs onnxruntime; a plain run does not import it
    from uticompile.runtime.check import Checker, CheckResult


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
