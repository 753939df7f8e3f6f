"""Golden-text tests of the stable printers: any change to the IR, the passes' lowering and
quantization, or the mapping layout shows up as a readable diff. Regenerate deliberately with
UTICOMPILE_UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from uticompile.hardware import default_hardware
from uticompile.ir import Graph
from uticompile.mapfile import decode_mapping, encode_mapping
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping
from uticompile.printer import format_graph, format_mapping

GOLDEN = Path(__file__).with_name("golden")


def _formula_weights(g: Graph) -> Graph:
    """Weights from a formula (no RNG stream), a third of them pruned, BN statistics fixed."""
    g = g.copy()
    for name, arr in g.params.items():
        idx = np.arange(arr.size, dtype=np.int64)
        if name.endswith(".weight") and arr.ndim >= 2:
            w = ((idx * 2654435761) % 17 - 8) / 64.0
            g.params[name] = np.where(idx % 3 == 0, 0.0, w).reshape(arr.shape).astype(np.float32)
        elif name.endswith("running_var"):
            g.params[name] = np.full(arr.shape, 0.25, np.float32)
        elif name.endswith("running_mean") or name.endswith(".bias"):
            g.params[name] = ((idx % 5) / 16.0).astype(np.float32)
    return g


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UTICOMPILE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; review and regenerate if intended"


@pytest.mark.parametrize("model", ["vgg_small", "resnet_small"])
def test_ir_text(model: str) -> None:
    _check(f"{model}.ir.txt", format_graph(build_model(model, ModelSpec((1, 16, 16), 10))))


@pytest.mark.parametrize("placement", ["contiguous", "auto"])
@pytest.mark.parametrize("model", ["vgg_small", "resnet_small"])
def test_mapping_text(model: str, placement: str) -> None:
    g = _formula_weights(build_model(model, ModelSpec((1, 16, 16), 10)))
    config = MapConfig(pes=8, placement=placement)
    mapping = to_mapping(compile_graph(g, config, default_hardware(), 2.0))
    name = f"{model}.map.txt" if placement == "contiguous" else f"{model}.{placement}.map.txt"
    _check(name, format_mapping(decode_mapping(encode_mapping(mapping))))
