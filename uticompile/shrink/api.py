"""The library call behind ``uticompile shrink``: file in, file out, typed result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from uticompile.datasets import load_dataset_for
from uticompile.hardware import load_hardware
from uticompile.onnx_export import save_onnx
from uticompile.onnx_import import read_graph
from uticompile.shrink.config import ShrinkConfig
from uticompile.shrink.runner import ShrinkEvent, ShrinkResult, run_shrink


def default_run_dir(output: str | Path) -> Path:
    """``SMALL.onnx`` -> ``SMALL.run`` beside it (as ``prune`` does)."""
    out = Path(output)
    return out.with_name(out.stem + ".run")


def shrink(
    model: str | Path,
    output: str | Path,
    config: ShrinkConfig,
    *,
    run_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    hw_path: str | Path | None = None,
    resume: bool = False,
    train_limit: int | None = None,
    on_event: Callable[[ShrinkEvent], None] | None = None,
) -> ShrinkResult:
    """Spatio-temporally prune the ONNX ``model`` on ``config.dataset``; write ``output``.

    ``train_limit`` keeps only the first N training images (as ``prune`` and ``compare`` do).
    """
    graph = read_graph(model)
    data = load_dataset_for(
        config.dataset,
        input_shape=graph.input_shape,
        num_classes=graph.num_classes,
        data_dir=data_dir,
    )
    if train_limit is not None:
        data = data.head(train=train_limit)
    run = Path(run_dir) if run_dir is not None else default_run_dir(output)
    hw = load_hardware(None if hw_path is None else Path(hw_path))
    result = run_shrink(graph, data, config, run, resume=resume, hw=hw, on_event=on_event)
    save_onnx(result.graph, output)
    return result
