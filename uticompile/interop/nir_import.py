"""NIR -> IR: bring a network trained in SpikingJelly, snnTorch, Norse, ... into uticompile.

NIR neurons are continuous-time and a file carries no dt, no T and no reset mode: forward Euler
at step ``dt`` maps them exactly onto the IR's LIF with a hard reset (the rules, shared with the
export, are in ``nir_time``), in the membrane ``u = v - v_reset``, which starts at 0 (``v`` at
``v_reset``, as in SpikingJelly). A nonzero ``v_leak - v_reset`` becomes a bias of the weight layer
that feeds the neuron; CubaLIF with ``tau_syn == dt`` is a LIF whose input is ``w_in`` times
larger (its synaptic current is exactly the present input); ``compare="gt"`` (snnTorch) fires on
``>``. ``reset="subtract"`` (snnTorch's default, which its files write exactly like a reset to 0)
gives the IR's ``subtract-after-leak`` neuron, snnTorch's own order: ``u_t = leak*u_{t-1} +
gain*x_t - theta*s_{t-1}``, firing on ``u > theta`` (it needs ``compare="gt"``).

Several edges into one node are a sum (IR ``Add``). The analog input is a static frame repeated
at every timestep (``DirectEncode`` after the first conv, or on the input). An ``AvgPool2d`` over
spikes whose only reader is an IF firing at any count (threshold below one spike's share) is a
max-pool, written by ``nir_export`` that way, and comes back as ``MaxPool``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from uticompile.errors import ModelFormatError
from uticompile.interop.nir_time import (
    COMPARES,
    DEFAULT_DT,
    IMPORT_RESETS,
    if_gain,
    is_max_pool_threshold,
    leak_drive,
    lif_step,
    spike_threshold,
)
from uticompile.ir import SUBTRACT_AFTER_LEAK, AttrValue, Graph, LIFParams, Node

#: Surrogate used when an imported network is trained again (SpikingJelly's and snnTorch's default).
_SURROGATE = {"surrogate": "atan", "alpha": 2.0}


def nir_package() -> Any:
    """The ``nir`` package (a dependency; named here so that a broken install is one line)."""
    try:
        import nir
    except ImportError:  # pragma: no cover - nir is a dependency
        raise ModelFormatError("reading NIR needs the 'nir' package (pip install nir)") from None
    return nir


def read_nir(path: str | os.PathLike[str]) -> Any:
    """Load a ``.nir`` file as a ``nir.NIRGraph``; a missing or malformed file is one-line error."""
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"{p}: no such file")
    nir = nir_package()
    try:
        return nir.read(p, type_check=False)
    except Exception as exc:  # h5py and nir raise many types for foreign or broken files
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise ModelFormatError(f"{p}: not a readable NIR file ({first})") from None


def import_nir(
    path: str | os.PathLike[str],
    *,
    timesteps: int,
    dt: float = DEFAULT_DT,
    compare: str = "ge",
    reset: str = "zero",
) -> Graph:
    """Read ``path`` and convert it into an IR graph (see ``nir_to_graph``)."""
    try:
        return nir_to_graph(
            read_nir(path),
            timesteps=timesteps,
            dt=dt,
            compare=compare,
            reset=reset,
            name=Path(path).stem,
        )
    except ModelFormatError as exc:
        msg = str(exc)
        raise ModelFormatError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


def _scalar(node_name: str, field: str, value: Any) -> float:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ModelFormatError(f"node {node_name!r}: {field} must be finite numbers")
    if np.any(arr != arr.flat[0]):
        raise ModelFormatError(
            f"node {node_name!r}: per-neuron {field} values differ; only one value per layer "
            "is supported"
        )
    return float(arr.flat[0])


def _pair(node_name: str, field: str, value: Any) -> tuple[int, int]:
    arr = np.atleast_1d(np.asarray(value)).astype(np.int64).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2:
        raise ModelFormatError(f"node {node_name!r}: {field} must have 1 or 2 entries")
    return int(arr[0]), int(arr[1])


def _ident(key: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_.:/-]", "_", key) or "node"
    if not re.match(r"[A-Za-z_]", name):
        name = "n" + name
    base, i = name, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


class _Builder:
    """Accumulates IR nodes and parameters while walking the NIR graph in topological order."""

    def __init__(self, dt: float, compare: str, reset: str = "zero") -> None:
        self.dt, self.compare, self.reset = dt, compare, IMPORT_RESETS[reset]
        self.nodes: list[Node] = []
        self.params: dict[str, np.ndarray] = {}
        self.taken: set[str] = set()
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.exclusive: set[str] = set()  # values that exactly one NIR edge reads

    def add(self, key: str, op: str, inputs: tuple[str, ...], attrs: dict, shape: tuple) -> str:
        name = _ident(key, self.taken)
        self.nodes.append(Node(name, op, inputs, name, attrs))
        self.shapes[name] = tuple(int(s) for s in shape)
        return name

    def param(self, name: str, value: Any) -> str:
        self.params[name] = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        return name

    # -- neurons ------------------------------------------------------------------------------
    def neuron(self, key: str, kind: str, node: Any, x: str) -> str:
        s = lambda f: _scalar(key, f, getattr(node, f))  # noqa: E731
        dt = self.dt
        drive = 0.0
        if kind == "IF":
            leak, gain, v_reset = 1.0, if_gain(s("r"), dt), s("v_reset")
        else:
            tau = s("tau_mem") if kind == "CubaLIF" else s("tau")
            r, v_reset = s("r"), s("v_reset")
            if tau < dt:
                raise ModelFormatError(
                    f"node {key!r}: tau {tau:g} is below dt {dt:g} (the leak would be negative); "
                    "pass the dt the file was written for with --dt"
                )
            leak, gain = lif_step(tau, r, dt)
            if r != 0.0:
                drive = leak_drive(s("v_leak"), v_reset, r)
            if kind == "CubaLIF":
                tau_syn = s("tau_syn")
                if not np.isclose(tau_syn, dt, rtol=1e-6, atol=0.0):
                    raise ModelFormatError(
                        f"node {key!r}: CubaLIF with tau_syn {tau_syn:g} != dt {dt:g} has "
                        "synaptic memory, which the LIF cannot express"
                    )
                gain *= s("w_in")
        theta = s("v_threshold") - v_reset
        if not gain > 0.0:
            raise ModelFormatError(f"node {key!r}: the input gain r*dt/tau must be positive")
        if not theta > 0.0:
            raise ModelFormatError(f"node {key!r}: v_threshold must lie above v_reset")
        # the subtract-after-leak neuron fires on ">" itself and subtracts theta as written
        after_leak = self.reset == SUBTRACT_AFTER_LEAK
        threshold = float(np.float32(theta)) if after_leak else spike_threshold(theta, self.compare)
        if drive != 0.0:
            self._add_bias(key, x, drive)
        params = LIFParams(
            leak=leak,
            gain=gain,
            threshold=threshold,
            reset=self.reset,
            **_SURROGATE,  # type: ignore[arg-type]
        )
        return self.add(key, "LIF", (x,), params.attrs(), self.shapes[x])

    def _add_bias(self, key: str, x: str, drive: float) -> None:
        layer = next((n for n in self.nodes if n.output == x), None)
        if layer is None or layer.op not in ("Conv", "Gemm") or x not in self.exclusive:
            raise ModelFormatError(
                f"node {key!r}: v_leak != v_reset needs a conv or linear layer of its own "
                "before the neuron"
            )
        out = self.shapes[x][0]
        if len(layer.inputs) == 2:
            layer.inputs = (*layer.inputs, self.param(f"{layer.name}.bias", np.zeros(out)))
        b = self.params[layer.inputs[2]].astype(np.float64) + drive
        self.params[layer.inputs[2]] = b.astype(np.float32)


def _topological(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> list[str]:
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise ModelFormatError(f"edge {a!r} -> {b!r} names a node the graph does not have")
        preds[b].append(a)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(k: str) -> None:
        stack = [(k, iter(preds[k]))]
        state[k] = 1
        while stack:
            cur, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                state[cur] = 2
                order.append(cur)
            elif state.get(nxt) == 1:
                raise ModelFormatError(f"node {nxt!r}: recurrent graphs are not supported")
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(preds[nxt])))

    for k in sorted(nodes):
        if k not in state:
            visit(k)
    return order


def nir_to_graph(
    nir_graph: Any,
    *,
    timesteps: int,
    dt: float = DEFAULT_DT,
    compare: str = "ge",
    reset: str = "zero",
    name: str = "nir_model",
) -> Graph:
    """Convert a ``nir.NIRGraph`` into a validated IR graph of ``timesteps`` steps of ``dt``."""
    nir = nir_package()
    if timesteps < 1:
        raise ModelFormatError(f"timesteps must be >= 1, got {timesteps}")
    if not (dt > 0 and np.isfinite(dt)):
        raise ModelFormatError(f"dt must be positive, got {dt}")
    if compare not in COMPARES:
        raise ModelFormatError(f"compare must be one of {COMPARES}, got {compare!r}")
    if reset not in IMPORT_RESETS:
        raise ModelFormatError(f"reset must be one of {tuple(IMPORT_RESETS)}, got {reset!r}")
    if reset == "subtract" and compare != "gt":
        raise ModelFormatError(
            "reset 'subtract' is snnTorch's neuron, which fires on v > threshold: "
            "use compare 'gt' with it"
        )
    nodes: dict[str, Any] = dict(nir_graph.nodes)
    edges = [(str(a), str(b)) for a, b in nir_graph.edges]
    if len(set(edges)) != len(edges):
        raise ModelFormatError("the graph repeats an edge")
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFormatError(
            f"expected one Input and one Output node, found {len(inputs)} and {len(outputs)}"
        )
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    for src, dst in edges:
        if dst in preds:
            preds[dst].append(src)
    order = _topological(nodes, edges)

    b = _Builder(dt, compare, reset)
    in_shape = tuple(int(v) for v in np.asarray(nodes[inputs[0]].input_type["input"]).ravel())
    features = len(in_shape) == 1  # the IR's input is C,H,W: features come in as F,1,1
    if features:
        in_shape = (in_shape[0], 1, 1)
    if len(in_shape) != 3 or min(in_shape) < 1:
        raise ModelFormatError(f"input must be C,H,W or features, got shape {in_shape}")
    input_name = "input"
    b.taken.add(input_name)
    b.shapes[input_name] = in_shape
    value: dict[str, str] = {}  # NIR node -> IR value it produces
    for key in order:
        node = nodes[key]
        kind = type(node).__name__
        if key == inputs[0]:
            value[key] = input_name
            if features:
                value[key] = b.add("input.flatten", "Flatten", (input_name,), {}, in_shape[:1])
            continue
        srcs = [value[p] for p in preds[key] if p in value]
        if len(srcs) != len(preds[key]) or not srcs:
            raise ModelFormatError(f"node {key!r} ({kind}) is not reachable from the input")
        x = srcs[0]
        for i, other in enumerate(srcs[1:]):
            if b.shapes[other] != b.shapes[x]:
                raise ModelFormatError(
                    f"node {key!r}: its inputs have different shapes {b.shapes[x]} and "
                    f"{b.shapes[other]}"
                )
            x = b.add(f"{key}.sum{i}", "Add", (x, other), {}, b.shapes[x])
        value[key] = _convert(b, key, kind, node, x)
        if value[key] != x and sum(1 for src, _ in edges if src == key) == 1:
            b.exclusive.add(value[key])
    output = value[outputs[0]]
    if len(b.shapes[output]) != 1:
        output = b.add(
            "output.flatten", "Flatten", (output,), {}, (int(np.prod(b.shapes[output])),)
        )
    _place_encoder(b, input_name)
    _recognize_max_pools(b)
    _recognize_global_pools(b)
    graph = Graph(
        name=name if re.match(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$", name) else _ident(name, set()),
        input_name=input_name,
        input_shape=in_shape,
        output_name=output,
        num_classes=b.shapes[output][0],
        timesteps=timesteps,
        nodes=b.nodes,
        params=b.params,
    )
    graph.validate()
    return graph


def _convert(b: _Builder, key: str, kind: str, node: Any, x: str) -> str:
    shape = b.shapes[x]
    if kind in ("LIF", "IF", "CubaLIF"):
        return b.neuron(key, kind, node, x)
    if kind == "Output":
        return x
    if kind == "Conv2d":
        w = np.asarray(node.weight)
        if w.ndim != 4 or len(shape) != 3 or w.shape[1] != shape[0]:
            raise ModelFormatError(
                f"node {key!r}: conv weight {w.shape} does not fit input {shape}"
            )
        if _pair(key, "dilation", node.dilation) != (1, 1):
            raise ModelFormatError(f"node {key!r}: dilated convolutions are not supported")
        if int(np.asarray(node.groups).ravel()[0]) != 1:
            raise ModelFormatError(f"node {key!r}: grouped convolutions are not supported")
        kh, kw = w.shape[2], w.shape[3]
        stride = _pair(key, "stride", node.stride)
        pad = node.padding
        pad = pad.decode() if isinstance(pad, bytes) else pad
        if isinstance(pad, str) or (isinstance(pad, np.ndarray) and pad.dtype.kind in "US"):
            pad = str(pad)
            if pad == "valid":
                ph, pw = 0, 0
            elif pad == "same" and stride == (1, 1) and kh % 2 and kw % 2:
                ph, pw = kh // 2, kw // 2
            else:
                raise ModelFormatError(f"node {key!r}: padding {pad!r} is not supported")
        else:
            ph, pw = _pair(key, "padding", pad)
        bias = np.asarray(node.bias) if node.bias is not None else np.zeros(w.shape[0])
        name = _ident(key, set(b.taken))
        inputs = (x, b.param(f"{name}.weight", w), b.param(f"{name}.bias", bias))
        out = (
            w.shape[0],
            (shape[1] + 2 * ph - kh) // stride[0] + 1,
            (shape[2] + 2 * pw - kw) // stride[1] + 1,
        )
        attrs = {"kernel_shape": (kh, kw), "strides": stride, "pads": (ph, pw, ph, pw)}
        return b.add(key, "Conv", inputs, attrs, out)
    if kind in ("Affine", "Linear"):
        w = np.asarray(node.weight)
        if len(shape) != 1:
            raise ModelFormatError(
                f"node {key!r}: {kind} reads a {len(shape)}-d value; flatten it first"
            )
        if w.ndim != 2 or w.shape[1] != shape[0]:
            raise ModelFormatError(f"node {key!r}: weight {w.shape} does not fit input {shape}")
        bias = np.asarray(node.bias) if kind == "Affine" else np.zeros(w.shape[0])
        name = _ident(key, set(b.taken))
        inputs = (x, b.param(f"{name}.weight", w), b.param(f"{name}.bias", bias))
        return b.add(key, "Gemm", inputs, {}, (w.shape[0],))
    if kind == "Flatten":
        if len(shape) == 1:
            return x
        start, end = int(node.start_dim), int(node.end_dim)
        if start % len(shape) != 0 or end % len(shape) != len(shape) - 1:
            raise ModelFormatError(
                f"node {key!r}: only a flatten of all of C,H,W is supported "
                f"(start_dim {start}, end_dim {end})"
            )
        return b.add(key, "Flatten", (x,), {}, (int(np.prod(shape)),))
    if kind in ("AvgPool2d", "SumPool2d"):
        if len(shape) != 3:
            raise ModelFormatError(f"node {key!r}: pooling needs a C,H,W input, got {shape}")
        k = _pair(key, "kernel_size", node.kernel_size)
        stride = k if node.stride is None else _pair(key, "stride", node.stride)
        ph, pw = (0, 0) if node.padding is None else _pair(key, "padding", node.padding)
        out = (
            shape[0],
            (shape[1] + 2 * ph - k[0]) // stride[0] + 1,
            (shape[2] + 2 * pw - k[1]) // stride[1] + 1,
        )
        op = "AveragePool" if kind == "AvgPool2d" else "SumPool"
        attrs = {"kernel_shape": k, "strides": stride, "pads": (ph, pw, ph, pw)}
        return b.add(key, op, (x,), attrs, out)
    raise ModelFormatError(f"node {key!r}: NIR {kind} is not supported")


def _place_encoder(b: _Builder, input_name: str) -> None:
    """Insert ``DirectEncode``: after the first conv if it alone reads the input, else on it."""
    readers = [n for n in b.nodes if input_name in n.inputs]
    first = readers[0] if len(readers) == 1 and readers[0].op == "Conv" else None
    source = first.output if first is not None else input_name
    enc = _ident("encode", b.taken)
    for n in b.nodes:
        if source in n.inputs:
            n.inputs = tuple(enc if v == source else v for v in n.inputs)
    at = b.nodes.index(first) + 1 if first is not None else 0
    b.nodes.insert(at, Node(enc, "DirectEncode", (source,), enc, {}))
    b.shapes[enc] = b.shapes[source]


def _recognize_max_pools(b: _Builder) -> None:
    """AveragePool over spikes + an IF that fires on any spike in the window -> MaxPool (exact)."""
    producers = {n.output: n for n in b.nodes}
    for pool in [n for n in b.nodes if n.op == "AveragePool"]:
        src = producers.get(pool.inputs[0])
        readers = [n for n in b.nodes if pool.output in n.inputs]
        if src is None or src.op != "LIF" or len(readers) != 1 or readers[0].op != "LIF":
            continue
        if any(pool.ints("pads")):
            continue
        neuron = readers[0]
        p = neuron.lif()
        kh, kw = pool.ints("kernel_shape")
        if p.leak != 1.0 or p.gain != 1.0 or not is_max_pool_threshold(p.threshold, (kh, kw)):
            continue
        b.nodes.remove(pool)
        at = b.nodes.index(neuron)
        attrs: dict[str, AttrValue] = {"kernel_shape": (kh, kw), "strides": pool.ints("strides")}
        b.nodes[at] = Node(neuron.name, "MaxPool", pool.inputs, neuron.output, attrs)


def _recognize_global_pools(b: _Builder) -> None:
    """An average over the whole feature map is the IR's GlobalAveragePool (as exported)."""
    for i, n in enumerate(b.nodes):
        whole = n.op == "AveragePool" and n.ints("kernel_shape") == b.shapes[n.inputs[0]][1:]
        if whole and not any(n.ints("pads")):
            b.nodes[i] = Node(n.name, "GlobalAveragePool", n.inputs, n.output, {})
