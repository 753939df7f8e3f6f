"""Every zoo model maps at full width, and the mapping's per-PE workloads are the pruned counts."""

from __future__ import annotations

import numpy as np
import pytest

from uticompile.hardware import default_hardware
from uticompile.mapfile import decode_mapping, encode_mapping
from uticompile.mapstats import layer_summary
from uticompile.models.zoo import ZOO, ModelSpec, build_model
from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping


@pytest.mark.parametrize("name", sorted(ZOO))
def test_full_width_zoo_model_maps_with_pruned_workloads(name: str) -> None:
    g = build_model(name, ModelSpec((3, 32, 32), 10))
    rng = np.random.default_rng(0)
    for node in g.weight_nodes():  # 98% sparse, as after 14 lottery rounds
        w = g.params[node.inputs[1]]
        g.params[node.inputs[1]] = np.where(rng.random(w.shape) < 0.02, w, 0).astype(np.float32)
    m = decode_mapping(
        encode_mapping(
            to_mapping(compile_graph(g, MapConfig(placement="contiguous"), default_hardware(), 2.5))
        )
    )
    rows = {r["name"]: r for r in layer_summary(m)}
    assert set(rows) == {n.name for n in g.weight_nodes()}
    for node in g.weight_nodes():
        w = g.params[node.inputs[1]]
        per_filter = (w != 0).reshape(len(w), -1).sum(axis=1)
        row = rows[node.name]
        padded: list[int | None] = [None] * (row["groups"] * 16)  # clock-gated slots: null
        padded[: len(per_filter)] = per_filter.tolist()
        assert [v for g in row["workloads"] for v in g] == padded, node.name
        assert row["nonzero"] == int((w != 0).sum())
