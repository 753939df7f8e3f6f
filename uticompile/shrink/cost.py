"""What a stage costs on the modeled accelerator: map, run, and the numbers the report shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from uticompile.datasets import Dataset
from uticompile.hardware import HardwareConfig
from uticompile.ir import Graph
from uticompile.onnx_export import serialize, to_onnx
from uticompile.passes.pipeline import MapConfig, input_bound
from uticompile.passes.resize_channels import weight_count
from uticompile.runtime.inputs import quantized_test_batches
from uticompile.runtime.simulate import simulate
from uticompile.workflow.calibrated_map import map_calibrated

RUN_BATCH = 50


def model_size(graph: Graph) -> dict[str, int]:
    """Conv/linear weights (parameters) and how many are nonzero."""
    nonzero = sum(int(np.count_nonzero(graph.params[n.inputs[1]])) for n in graph.weight_nodes())
    return {"parameters": weight_count(graph), "nonzeros": nonzero}


def mapped_cost(
    graph: Graph,
    data: Dataset,
    config: MapConfig,
    hw: HardwareConfig,
    samples: int,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Map ``graph`` to ``config.pes`` PEs (as ``uticompile map`` does) and run ``samples`` test
    images.

    Latency is cycles per sample: the sum over timesteps of the busiest PE, so it is T times the
    cycles of an average step (``cycles_per_step``). ``latency_floor`` is the physical floor for
    the same work: every PE busy every cycle (work / PEs).
    """
    hw = hw.with_pes(config.pes)
    bound = input_bound(data.mean, data.std)
    _, mapping = map_calibrated(graph, config, hw, bound, serialize(to_onnx(graph)), data)
    batches = quantized_test_batches(mapping, data, samples, RUN_BATCH)
    sim = simulate(mapping, batches, hw, on_batch=on_batch)
    r = sim.report
    n = max(r.samples, 1)
    T = graph.timesteps
    return {
        "pes": config.pes,
        "samples": r.samples,
        "timesteps": T,
        "latency": r.latency / n,
        "cycles_per_step": r.latency / n / T,
        "latency_floor": r.work / n / config.pes,
        "work": r.work / n,
        "idle": r.idle / n,
        "utilization": r.utilization_weighted,
        "energy_pj": r.energy_pj["total"] / n if "total" in r.energy_pj else None,
        "accuracy": sim.accuracy,
    }
