"""Shared fixtures: small data and models the tests make themselves."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from uticompile.ir import NEURON_PRESETS, Graph
from uticompile.models.zoo import ModelSpec, build_model


def dyadic_graph(graph: Graph, seed: int = 0) -> Graph:
    """A copy of ``graph`` with parameters on a dyadic grid so float32 arithmetic is exact.

    Weights are k/64 (|k| <= 8), biases and BN shifts j/16, BN scales k/2 (k = 1..4), and BN
    epsilon 2^-10 with running_var 4 - 2^-10, so sqrt(var + eps) = 2 exactly. Every product and
    every partial sum of the network then fits float32's 24-bit mantissa and is computed without
    rounding by any engine, in any summation order: spikes must be identical, not just close.
    """
    g = graph.copy()
    rng = np.random.default_rng(seed)
    eps = 2.0**-10
    for node in g.nodes:
        names = g.param_names(node)
        if node.op in ("Conv", "Gemm"):
            w = g.params[names[0]]
            g.params[names[0]] = (rng.integers(-8, 9, w.shape) / 64).astype(np.float32)
            if len(names) > 1:
                b = g.params[names[1]]
                g.params[names[1]] = (rng.integers(-4, 5, b.shape) / 16).astype(np.float32)
        elif node.op == "BatchNormalization":
            c = g.params[names[0]].shape
            g.params[names[0]] = (rng.integers(1, 5, c) / 2).astype(np.float32)
            g.params[names[1]] = (rng.integers(0, 17, c) / 16).astype(np.float32)
            g.params[names[2]] = (rng.integers(-4, 5, c) / 16).astype(np.float32)
            g.params[names[3]] = np.full(c, 4.0 - eps, np.float32)
            node.attrs["epsilon"] = eps
    g.validate()
    return g


def dyadic_input(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).integers(-16, 17, shape) / 16).astype(np.float32)


@pytest.fixture(scope="session")
def small_graphs() -> dict[str, Graph]:
    spec = ModelSpec((1, 16, 16), 10, timesteps=4, neuron=NEURON_PRESETS["paper"], seed=3)
    return {name: build_model(name, spec) for name in ("vgg_small", "resnet_small")}


def independent_reader() -> ModuleType:
    """tests/independent_reader.py, loaded by path (it is deliberately not part of the package)."""
    path = Path(__file__).with_name("independent_reader.py")
    spec = importlib.util.spec_from_file_location("independent_reader", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seal_crcs(buf: bytearray) -> bytes:
    """Recompute every CRC a doctored file's header and table allow, as a forger would, so the
    damage reaches the checks behind the CRCs."""
    count = int.from_bytes(buf[16:20], "little")
    for i in range(min(count, 64)):
        entry = 64 + 32 * i
        if entry + 32 > len(buf):
            break
        offset, length = struct.unpack_from("<QQ", buf, entry + 8)
        if offset + length <= len(buf):
            struct.pack_into("<I", buf, entry + 24, zlib.crc32(buf[offset : offset + length]))
    table_end = 64 + 32 * min(count, 64)
    if table_end <= len(buf):
        struct.pack_into("<I", buf, 40, zlib.crc32(buf[64:table_end]))
    struct.pack_into("<I", buf, 60, zlib.crc32(buf[:60]))
    return bytes(buf)
