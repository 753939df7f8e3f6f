"""The ``run`` recipe: a mapping on dataset images (optionally checked against its source ONNX).

One place for what ``uticompile run`` and ``uticompile.api.run`` both do: shape the dataset for
the mapping, quantize its test images, recompile the source for the check, simulate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from uticompile.datasets import Dataset, load_dataset_for
from uticompile.hardware import HardwareConfig
from uticompile.ir import Graph
from uticompile.mapfile import Mapping
from uticompile.runtime.simulate import (
    Checker,
    Simulation,
    quantized_test_batches,
    recompile,
    simulate,
)


def dataset_for_mapping(m: Mapping, dataset: str, data_dir: str | Path | None = None) -> Dataset:
    """``dataset`` shaped for the mapping's input (C, H, W) and classes."""
    c, h, w = (int(v) for v in m.model["input_shape"])
    classes = int(m.model["num_classes"])
    return load_dataset_for(dataset, input_shape=(c, h, w), num_classes=classes, data_dir=data_dir)


def run_on_dataset(
    m: Mapping,
    data: Dataset,
    hw: HardwareConfig,
    *,
    samples: int,
    batch_size: int,
    check: tuple[bytes, Graph, bytes] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Simulation:
    """Run the first ``samples`` test images of ``data`` on ``m`` and count every event.

    ``check`` = (the mapping's bytes, the source graph, the source ONNX bytes): the source is
    recompiled with the stored options (it must give these very bytes) and every spike compared
    with onnxruntime; a mismatch raises ``CheckError``. ``on_start(samples)`` is called once the
    inputs are ready (after the check's recompile, so a progress bar opens only for real work),
    ``on_batch(n)`` after every batch.
    """
    checker = None
    if check is not None:
        mapped_bytes, graph, source = check
        checker = Checker(recompile(m, mapped_bytes, graph, source, hw))
    batches = quantized_test_batches(m, data, samples, batch_size)
    if on_start is not None:
        on_start(sum(len(x) for x, _ in batches))
    return simulate(m, batches, hw, checker=checker, on_batch=on_batch)
