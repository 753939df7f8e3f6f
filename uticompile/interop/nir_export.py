"""IR -> NIR: hand a uticompile network (e.g. a pruned ticket) to SpikingJelly, snnTorch, ...

The inverse of ``nir_import`` at the same ``dt``:

- BatchNorm must be folded first (NIR has no BatchNorm node; ``export-nir`` folds it with the
  FoldBatchNorm pass, which the core cannot import); pruned zeros stay zeros;
- LIF -> ``nir.LIF`` with ``tau = dt/(1 - leak)``, ``r = gain/(1 - leak)``, ``v_leak = v_reset =
  0``, stored as float64 (in float32 the leak is not recovered exactly), or ``nir.IF`` with
  ``r = gain/dt`` where the leak is 1; a subtract reset has no NIR form and is refused;
- MaxPool over spikes (NIR has none) -> the exact pair ``AvgPool2d(k)`` + ``IF(r = 1/dt,
  v_threshold = 0.5/k^2)``: the average of any spike in the window crosses half a spike's share;
- GlobalAveragePool -> ``AvgPool2d`` over the whole map; residual ``Add`` -> extra edges (NIR sums
  the edges into a node); ``DirectEncode`` is implicit (a NIR input is applied at every step).
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from uticompile.errors import InvariantError, ModelFormatError
from uticompile.fileio import atomic_write_bytes
from uticompile.interop.nir_import import nir_package
from uticompile.interop.nir_time import (
    DEFAULT_DT,
    if_resistance,
    lif_constants,
    max_pool_threshold,
)
from uticompile.ir import Graph, Node


def graph_to_nir(graph: Graph, *, dt: float = DEFAULT_DT) -> Any:
    """The ``nir.NIRGraph`` of ``graph`` (validated first; BatchNorm must be folded)."""
    nir = nir_package()
    if not (dt > 0 and np.isfinite(dt)):
        raise ModelFormatError(f"dt must be positive, got {dt}")
    graph.validate()
    g = graph
    bn = next((n for n in g.nodes if n.op == "BatchNormalization"), None)
    if bn is not None:
        raise ModelFormatError(
            f"node {bn.name!r}: NIR has no BatchNorm; fold it first (passes.FoldBatchNorm)"
        )
    shapes = g.shapes()
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(g.input_shape))}
    sources: dict[str, list[str]] = {g.input_name: ["input"]}  # IR value -> NIR nodes summed
    edges: list[tuple[str, str]] = []

    def emit(name: str, node: Any, value: str, reads: str) -> None:
        nodes[name] = node
        edges.extend((s, name) for s in sources[reads])
        sources[value] = [name]

    for n in g.nodes:
        x = n.inputs[0]
        if n.op == "DirectEncode":
            sources[n.output] = sources[x]
        elif n.op == "Add":
            both = sources[x] + sources[n.inputs[1]]
            if len(set(both)) != len(both):
                raise ModelFormatError(f"node {n.name!r}: adds a value to itself")
            sources[n.output] = both
        elif n.op == "MaxPool":
            k = n.ints("kernel_shape")
            emit(
                f"{n.name}.avg",
                nir.AvgPool2d(np.array(k), np.array(n.ints("strides")), np.array([0, 0])),
                f"{n.name}.avg",
                x,
            )
            size = shapes[n.output]
            fire = nir.IF(
                r=np.full(size, if_resistance(1.0, dt)),
                v_threshold=np.full(size, max_pool_threshold((k[0], k[1]))),
                v_reset=np.zeros(size),
            )
            emit(n.name, fire, n.output, f"{n.name}.avg")
        else:
            emit(n.name, _node(nir, g, n, shapes, dt), n.output, x)
    nodes["output"] = nir.Output(output_type=np.array(shapes[g.output_name]))
    edges.extend((s, "output") for s in sources[g.output_name])
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, type_check=True)
    except Exception as exc:  # pragma: no cover - an invariant: our shapes are consistent
        raise InvariantError(f"NIR rejected the exported graph: {exc}") from exc


def _node(nir: Any, g: Graph, n: Node, shapes: dict[str, tuple[int, ...]], dt: float) -> Any:
    x = shapes[n.inputs[0]]
    params = [g.params[p] for p in g.param_names(n)]
    if n.op == "Conv":
        pt, pl, pb, pr = n.ints("pads")
        if (pt, pl) != (pb, pr):
            raise ModelFormatError(f"node {n.name!r}: NIR has no asymmetric padding")
        w = params[0]
        bias = params[1] if len(params) == 2 else np.zeros(w.shape[0], np.float32)
        return nir.Conv2d(
            input_shape=np.array(x[1:]),
            weight=w.copy(),
            stride=np.array(n.ints("strides")),
            padding=np.array([pt, pl]),
            dilation=np.array([1, 1]),
            groups=1,
            bias=bias.copy(),
        )
    if n.op == "Gemm":
        return nir.Affine(weight=params[0].copy(), bias=params[1].copy())
    if n.op == "Flatten":
        return nir.Flatten(input_type={"input": np.array(x)}, start_dim=0, end_dim=-1)
    if n.op in ("AveragePool", "SumPool", "GlobalAveragePool"):
        k: tuple[int, ...]
        s: tuple[int, ...]
        pads: tuple[int, ...]
        if n.op == "GlobalAveragePool":
            k = s = (x[1], x[2])
            pads = (0, 0, 0, 0)
        else:
            k, s, pads = n.ints("kernel_shape"), n.ints("strides"), n.ints("pads")
        if (pads[0], pads[1]) != (pads[2], pads[3]):
            raise ModelFormatError(f"node {n.name!r}: NIR has no asymmetric padding")
        cls = nir.SumPool2d if n.op == "SumPool" else nir.AvgPool2d
        return cls(np.array(k), np.array(s), np.array(pads[:2]))
    if n.op == "LIF":
        return _neuron(nir, n, shapes[n.output], dt)
    raise ModelFormatError(f"node {n.name!r}: {n.op} has no NIR form")  # pragma: no cover


def _neuron(nir: Any, n: Node, shape: tuple[int, ...], dt: float) -> Any:
    p = n.lif()
    if p.reset != "hard":
        raise ModelFormatError(
            f"node {n.name!r}: a subtract reset has no NIR form (NIR resets to v_reset)"
        )
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    if p.leak == 1.0:
        return nir.IF(
            r=full(if_resistance(p.gain, dt)), v_threshold=full(p.threshold), v_reset=full(0.0)
        )
    tau, r = lif_constants(p.leak, p.gain, dt)
    return nir.LIF(
        tau=full(tau),
        r=full(r),
        v_leak=full(0.0),
        v_threshold=full(p.threshold),
        v_reset=full(0.0),
    )


def nir_bytes(nir_graph: Any) -> bytes:
    """The HDF5 bytes of ``nir_graph`` (written in memory, so the file can appear atomically)."""
    nir = nir_package()
    buf = io.BytesIO()
    nir.write(buf, nir_graph)
    return buf.getvalue()


def export_nir(graph: Graph, path: str | os.PathLike[str], *, dt: float = DEFAULT_DT) -> None:
    """Write ``graph`` as a NIR file at ``path`` (atomically)."""
    atomic_write_bytes(path, nir_bytes(graph_to_nir(graph, dt=dt)))
