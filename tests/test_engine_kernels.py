"""The numpy engine's kernels agree exactly; its memory budget refuses before allocating."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from uticompile.errors import UticompileError
from uticompile.hardware import HardwareConfig
from uticompile.ir import NEURON_PRESETS
from uticompile.mapfile import Mapping, decode_mapping, encode_mapping
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping
from uticompile.runtime import engine as engine_module
from uticompile.runtime import products
from uticompile.runtime.budget import ENV, check_run_budget, memory_limit
from uticompile.runtime.cost import count_events
from uticompile.runtime.engine import Engine
from uticompile.runtime.inputs import normalize, quantize_input
from uticompile.runtime.traces import run_traces


def _mapping(name: str, keep: float, grouping: str = "sata") -> Mapping:
    spec = ModelSpec((1, 16, 16), 10, neuron=NEURON_PRESETS["paper"], seed=1)
    g = build_model(name, spec)
    rng = np.random.default_rng(2)
    for node in g.weight_nodes():
        w = g.params[node.inputs[1]]
        g.params[node.inputs[1]] = np.where(rng.random(w.shape) < keep, w, 0).astype(np.float32)
    for p, v in g.params.items():  # keep the layers firing
        if p.endswith("running_var"):
            g.params[p] = rng.uniform(0.02, 0.2, v.shape).astype(np.float32)
        elif p.startswith("bn") and p.endswith("bias"):
            g.params[p] = rng.uniform(0.0, 0.5, v.shape).astype(np.float32)
    module = compile_graph(g, MapConfig(grouping=grouping), HardwareConfig(), 2.5)
    return decode_mapping(encode_mapping(to_mapping(module)))


CASES = [("vgg_small", 0.3, "sata"), ("resnet_small", 1.0, "systolic")]


@pytest.mark.parametrize(("name", "keep", "grouping"), CASES)
def test_every_kernel_gives_the_same_integers_and_events(
    name: str, keep: float, grouping: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = _mapping(name, keep, grouping)
    x_q = quantize_input(np.random.default_rng(4).normal(0, 1, (3, 1, 16, 16)), 5, 8)
    runs = {}
    used = set()
    for kernel in products.KERNELS:

        def forced(w: object, dtype: type, cols: int, pairs: int, nz: int, k: str = kernel) -> str:
            used.add(k)
            return k

        monkeypatch.setattr(engine_module, "choose", forced)
        runs[kernel] = Engine(m).run(x_q)
    assert used == set(products.KERNELS)
    ref = runs["dense"]
    assert 0 < ref.outputs[-2].values.mean() < 1 or name == "resnet_small"
    hw = HardwareConfig()
    for kernel, run in runs.items():
        for a, b in zip(ref.outputs, run.outputs, strict=True):
            np.testing.assert_array_equal(a.values, b.values, err_msg=kernel)
        assert count_events(m, run, hw).to_json() == count_events(m, ref, hw).to_json()


def test_float_types_are_chosen_only_where_exact() -> None:
    m = _mapping("vgg_small", 0.3)
    e = Engine(m)
    w = e.matrices[e.kinds.index("CONV")]
    assert w.float_type(1) == np.float32
    assert w.float_type(2**24) == np.float64
    assert w.float_type(2**53) == np.int64


def test_normalize_is_training_float32_arithmetic() -> None:
    torch_augment = pytest.importorskip("uticompile.models.augment")
    x = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16).repeat(3, axis=1)
    for mean, std in [
        ((0.4914, 0.4822, 0.4465), (0.247, 0.2435, 0.2616)),
        ((0.1,) * 3, (0.3,) * 3),
    ]:
        ours = normalize(x, mean, std)
        theirs = torch_augment.to_float(x, mean, std).numpy()
        np.testing.assert_array_equal(ours.view(np.int32), theirs.view(np.int32))


def test_a_run_past_the_memory_limit_is_refused_before_allocating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = _mapping("vgg_small", 0.3)
    with pytest.raises(UticompileError, match=r"layer \d+ \(\w+\): 100000 samples need .* GiB"):
        Engine(m, memory_limit=2**30).run(np.zeros((100000, 1, 16, 16), np.int8))
    hostile = copy.deepcopy(m)  # dimensions the format allows (65535), a few bytes of file
    hostile.layers[0]["in_shape"] = (1, 65535, 65535)
    hostile.layers[0]["out_shape"][1:] = (65535, 65535)
    with pytest.raises(UticompileError, match=r"layer 0 \(\w+\): 1 samples need 800.0 GiB"):
        check_run_budget(hostile, 1, 0, None, 2**34)
    monkeypatch.setenv(ENV, "1M")
    assert memory_limit() == 2**20
    with pytest.raises(UticompileError, match=rf"over the limit of 1.0 MiB \({ENV}\)"):
        check_run_budget(m, 50, 0, None)
    monkeypatch.setenv(ENV, "lots")
    with pytest.raises(UticompileError, match="not a size"):
        memory_limit()


def test_a_trace_is_checked_before_it_is_densified() -> None:
    # only the header is read before the check: a header that asks for too much never densifies
    m = _mapping("vgg_small", 0.3)
    layer = 1
    c, h, w = (int(v) for v in m.layers[layer]["out_shape"])
    t = int(m.model["timesteps"])
    huge: Any = SimpleNamespace(timesteps=t, shape=(c, h, w), samples=10**9, layer=layer)
    with pytest.raises(UticompileError, match="samples need"):
        run_traces(m, huge, HardwareConfig(), what="t.uts")
    wrong: Any = SimpleNamespace(timesteps=t, shape=(1, 65535, 65535), samples=1, layer=layer)
    with pytest.raises(UticompileError, match="do not fit layer 1"):
        run_traces(m, wrong, HardwareConfig(), what="t.uts")


@pytest.mark.parametrize(
    ("kernel", "stride"), [((2, 2), (2, 2)), ((3, 2), (2, 1)), ((5, 7), (1, 3)), ((5, 7), (9, 9))]
)
def test_sumpool_windows_count_spikes_like_a_loop(
    kernel: tuple[int, int], stride: tuple[int, int]
) -> None:
    """SUMPOOL (1.2): overlapping, strided and whole-map windows, against a loop over windows."""
    from uticompile.mapfile import LAYR_DTYPE

    x = np.random.default_rng(3).random((2, 3, 4, 5, 7)) < 0.4  # [T, N, C, H, W] spikes
    oh, ow = (5 - kernel[0]) // stride[0] + 1, (7 - kernel[1]) // stride[1] + 1
    rec = np.zeros((), LAYR_DTYPE)
    rec["kernel"], rec["stride"], rec["out_shape"] = kernel, stride, (4, oh, ow)
    want = np.zeros((2, 3, 4, oh, ow), np.int64)
    for i in range(oh):
        for j in range(ow):
            r, c = i * stride[0], j * stride[1]
            want[..., i, j] = x[..., r : r + kernel[0], c : c + kernel[1]].sum(axis=(3, 4))
    got = Engine._sumpool(rec, x)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
