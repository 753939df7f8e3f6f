"""The ``map`` and ``run`` recipes, shared by the CLI and the Python API (one place for each).

map: load the dataset the model sees (input range; calibration spikes), then ``map_calibrated``.
run: shape the dataset for the mapping, check the memory budget before loading images, quantize
the test images, recompile the source for the onnxruntime check, simulate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from uticompile.datasets import Dataset, load_dataset, load_dataset_for
from uticompile.hardware import HardwareConfig
from uticompile.hwir import HwModule
from uticompile.ir import Graph
from uticompile.mapfile import Mapping
from uticompile.passes.pipeline import MapConfig, input_bound
from uticompile.runtime.budget import check_run_budget
from uticompile.runtime.inputs import check_samples, quantized_test_batches
from uticompile.runtime.simulate import Simulation, simulate
from uticompile.workflow.calibrated_map import map_calibrated, recompile


def map_for_dataset(
    graph: Graph,
    config: MapConfig,
    hw: HardwareConfig,
    dataset: str,
    *,
    data_dir: str | Path | None = None,
    source: bytes = b"",
) -> tuple[HwModule, Mapping]:
    """Map ``graph``; ``dataset`` (shaped for the model) sets the input range and calibrates."""
    c, h, _ = graph.input_shape
    data = load_dataset(dataset, data_dir=data_dir, size=h, channels=c)
    return map_calibrated(graph, config, hw, input_bound(data.mean, data.std), source, data)


def dataset_for_mapping(m: Mapping, dataset: str, data_dir: str | Path | None = None) -> Dataset:
    """``dataset`` shaped for the mapping's input (C, H, W) and classes."""
    c, h, w = (int(v) for v in m.model["input_shape"])
    classes = int(m.model["num_classes"])
    return load_dataset_for(dataset, input_shape=(c, h, w), num_classes=classes, data_dir=data_dir)


def run_on_dataset(
    m: Mapping,
    data: Dataset | Callable[[], Dataset],
    hw: HardwareConfig,
    *,
    samples: int,
    batch_size: int,
    check: tuple[bytes, Graph, bytes] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Simulation:
    """Run the first ``samples`` test images on ``m`` and count every event.

    ``data`` may be a loader, called only once the memory budget allows the run. ``check`` =
    (the mapping's bytes, the source graph, the source ONNX bytes): the source is mapped again
    with the stored options (it must give these very bytes) and every spike is compared with
    onnxruntime; a mismatch raises ``CheckError``. ``on_start(samples)`` is called once the
    inputs are ready (after that recompile, so a progress bar opens only for real work),
    ``on_batch(n)`` after every batch.
    """
    check_run_budget(m, min(samples, batch_size), 0, None)  # before the images are loaded
    if not isinstance(data, Dataset):
        data = data()
    check_samples(samples, data)  # before the --check recompile
    checker = None
    if check is not None:
        from uticompile.runtime.check import Checker

        mapped_bytes, graph, source = check
        checker = Checker(recompile(m, mapped_bytes, graph, source, hw, data))
    batches = quantized_test_batches(m, data, samples, batch_size)
    if on_start is not None:
        on_start(sum(len(x) for x, _ in batches))
    return simulate(m, batches, hw, checker=checker, on_batch=on_batch)
