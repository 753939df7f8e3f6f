"""The project's intermediate representation of a spiking network.

An IR ``Graph`` is a list of nodes in topological order over named values, plus float32 parameters.
It is what every stage shares: the model zoo builds it, PyTorch trains it (models.snn), ONNX stores
it (onnx_export / onnx_import) and the compiler passes rewrite it.

Time: the input image is analog and has no time axis. ``DirectEncode`` (direct encoding) repeats
its input for every timestep; from there on every value is *time-folded*, shape [T*B, ...] with the
timestep as the outer index, so stateless layers (conv, BN, pool, linear) appear once and process
all timesteps as one batch (tick-batched, like the hardware), while ``LIF`` nodes run the membrane
recurrence over the time axis. The graph output (logits) is time-folded too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Union

import numpy as np

from uticompile.errors import ModelFormatError

AttrValue = Union[int, float, str, tuple[int, ...]]  # noqa: UP007 (a runtime alias on 3.10)

#: Ops of the IR and the attributes each carries (with their types).
OP_ATTRS: dict[str, dict[str, type]] = {
    "Conv": {"kernel_shape": tuple, "strides": tuple, "pads": tuple},
    "BatchNormalization": {"epsilon": float, "momentum": float},
    "LIF": {
        "leak": float,
        "threshold": float,
        "gain": float,
        "reset": str,
        "surrogate": str,
        "alpha": float,
        "detach_reset": int,
    },
    "DirectEncode": {},
    "MaxPool": {"kernel_shape": tuple, "strides": tuple},
    # Window pooling of imported (NIR) networks; zero padding counts in the average.
    "AveragePool": {"kernel_shape": tuple, "strides": tuple, "pads": tuple},
    "SumPool": {"kernel_shape": tuple, "strides": tuple, "pads": tuple},
    "GlobalAveragePool": {},
    "Add": {},
    "Flatten": {},
    "Gemm": {},
}

#: How many inputs each op takes: (activations, parameters); parameters follow activations.
OP_ARITY: dict[str, tuple[int, tuple[int, ...]]] = {
    "Conv": (1, (1, 2)),  # W, optional B
    "BatchNormalization": (1, (4,)),  # scale, B, mean, var
    "LIF": (1, (0,)),
    "DirectEncode": (1, (0,)),
    "MaxPool": (1, (0,)),
    "AveragePool": (1, (0,)),
    "SumPool": (1, (0,)),
    "GlobalAveragePool": (1, (0,)),
    "Add": (2, (0,)),
    "Flatten": (1, (0,)),
    "Gemm": (1, (2,)),  # W [out, in], B [out]
}

#: Ops whose weight (first parameter) is prunable and mapped onto PEs.
WEIGHT_OPS = ("Conv", "Gemm")

#: ``hard``: u = 0 after a spike; ``subtract``: u = u - threshold after a spike (the next step
#: decays the reduced membrane); ``subtract-after-leak`` (snnTorch's ``Leaky`` subtract reset):
#: the membrane keeps its value, the next step decays it, adds its input and then subtracts the
#: threshold, ``u_t = leak*u_{t-1} + gain*x_t - threshold*s_{t-1}``, and it fires on
#: ``u > threshold`` (snnTorch's comparison; the other resets fire on ``>=``).
RESETS = ("hard", "subtract", "subtract-after-leak")
SUBTRACT_AFTER_LEAK = RESETS[2]
SURROGATES = ("tanh", "atan")
ENCODINGS = ("direct",)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")


def as_float32(value: float) -> float:
    """The nearest float32 value, as a Python float."""
    return float(np.float32(value))


@dataclass(frozen=True)
class LIFParams:
    """LIF neuron of Eq. 1: u_t = leak * u_{t-1} + gain * x_t; it fires when u_t >= threshold
    (``reset`` says what follows a spike: see ``RESETS``).

    ``gain`` lets the public code's SpikingJelly neuron (u = 0.25 u + 0.75 x) be expressed exactly.
    ``surrogate``/``alpha`` and ``detach_reset`` only matter for training, but travel with the
    model so an imported file trains as it was trained.
    """

    leak: float = 0.5
    threshold: float = 1.0
    gain: float = 1.0
    reset: str = "hard"
    surrogate: str = "tanh"
    alpha: float = 2.0
    detach_reset: int = 1

    def __post_init__(self) -> None:
        for f in ("leak", "threshold", "gain", "alpha"):
            object.__setattr__(self, f, as_float32(getattr(self, f)))
        object.__setattr__(self, "detach_reset", int(self.detach_reset))
        if self.reset not in RESETS:
            raise ModelFormatError(f"LIF reset must be one of {RESETS}, got {self.reset!r}")
        if self.surrogate not in SURROGATES:
            raise ModelFormatError(
                f"LIF surrogate must be one of {SURROGATES}, got {self.surrogate!r}"
            )
        if not (0.0 <= self.leak <= 1.0):
            raise ModelFormatError(f"LIF leak must lie in [0, 1], got {self.leak}")
        if not (self.threshold > 0.0 and np.isfinite(self.threshold)):
            raise ModelFormatError(f"LIF threshold must be positive, got {self.threshold}")
        if not (self.gain > 0.0 and np.isfinite(self.gain)):
            raise ModelFormatError(f"LIF gain must be positive, got {self.gain}")
        if not (self.alpha > 0.0 and np.isfinite(self.alpha)):
            raise ModelFormatError(f"LIF surrogate alpha must be positive, got {self.alpha}")

    def attrs(self) -> dict[str, AttrValue]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_attrs(cls, attrs: dict[str, AttrValue]) -> LIFParams:
        return cls(**attrs)  # type: ignore[arg-type]


#: Named neuron configurations: the paper's form by default, the public code's behind a name.
NEURON_PRESETS: dict[str, LIFParams] = {
    # Paper Eq. 1 (no input gain), hard reset, tanh surrogate; leak 0.5 is a one-bit shift.
    "paper": LIFParams(),
    # The public code: SpikingJelly LIFNode(tau=4/3, decay_input, v_reset=0), ATan(alpha=2).
    "spikingjelly": LIFParams(leak=0.25, gain=0.75, surrogate="atan", alpha=2.0),
    # SATA's hardware-friendly leak 0.9375 = x - (x >> 4).
    "sata": LIFParams(leak=0.9375),
}


def _normalize(value: AttrValue, kind: type | None) -> AttrValue:
    if kind is float and isinstance(value, (int, float)):
        return as_float32(value)
    if kind is tuple and isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return value


@dataclass
class Node:
    """One operation. Outputs: exactly one value, named like the node unless said otherwise."""

    name: str
    op: str
    inputs: tuple[str, ...]
    output: str
    attrs: dict[str, AttrValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # ONNX stores float attributes as float32: keep only values that survive the round trip.
        types = OP_ATTRS.get(self.op, {})
        self.attrs = {k: _normalize(v, types.get(k)) for k, v in self.attrs.items()}

    def ints(self, key: str) -> tuple[int, ...]:
        """A list-of-ints attribute (kernel_shape, strides, pads)."""
        value = self.attrs[key]
        assert isinstance(value, tuple)
        return value

    def number(self, key: str) -> float:
        value = self.attrs[key]
        assert isinstance(value, (int, float))
        return float(value)

    def lif(self) -> LIFParams:
        if self.op != "LIF":
            raise ModelFormatError(f"node {self.name!r} is {self.op}, not LIF")
        return LIFParams.from_attrs(self.attrs)


@dataclass
class Graph:
    """A whole spiking network: nodes, parameters and the facts needed to run it."""

    name: str
    input_name: str
    input_shape: tuple[int, int, int]  # C, H, W of one analog image
    output_name: str  # time-folded logits
    num_classes: int
    timesteps: int
    nodes: list[Node]
    params: dict[str, np.ndarray]
    encoding: str = "direct"
    #: Epochs of training the weights have seen: 0 for a fresh initialization, None when not
    #: known (a file from elsewhere). Provenance only: not part of ``equals``.
    trained_epochs: int | None = None

    # -- queries ---------------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def producer(self, value: str) -> Node | None:
        for n in self.nodes:
            if n.output == value:
                return n
        return None

    def consumers(self, value: str) -> list[Node]:
        return [n for n in self.nodes if value in n.inputs]

    def activations(self, node: Node) -> tuple[str, ...]:
        return node.inputs[: OP_ARITY[node.op][0]]

    def param_names(self, node: Node) -> tuple[str, ...]:
        return node.inputs[OP_ARITY[node.op][0] :]

    def weight_nodes(self) -> Iterator[Node]:
        """Conv and Gemm nodes: the layers whose weights are pruned and mapped onto PEs."""
        return (n for n in self.nodes if n.op in WEIGHT_OPS)

    def lif_nodes(self) -> Iterator[Node]:
        return (n for n in self.nodes if n.op == "LIF")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of every value (no batch or time axis)."""
        return infer_shapes(self)

    def copy(self) -> Graph:
        """A deep copy: nodes and parameter arrays are not shared."""
        return replace(
            self,
            nodes=[replace(n, attrs=dict(n.attrs)) for n in self.nodes],
            params={k: v.copy() for k, v in self.params.items()},
        )

    def with_timesteps(self, timesteps: int) -> Graph:
        g = self.copy()
        g.timesteps = timesteps
        g.validate()
        return g

    # -- invariants ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check the invariants every stage relies on; raise ModelFormatError if one is broken."""
        if self.timesteps < 1:
            raise ModelFormatError(f"timesteps must be >= 1, got {self.timesteps}")
        if self.encoding not in ENCODINGS:
            raise ModelFormatError(f"unsupported encoding {self.encoding!r}")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ModelFormatError(f"input shape must be C,H,W >= 1, got {self.input_shape}")
        if self.num_classes < 1:
            raise ModelFormatError(f"num_classes must be >= 1, got {self.num_classes}")
        defined = {self.input_name}
        names: set[str] = set()
        for name, arr in self.params.items():
            if arr.dtype != np.float32:
                raise ModelFormatError(f"parameter {name!r} must be float32, got {arr.dtype}")
        for n in self.nodes:
            if not _NAME.match(n.name):
                raise ModelFormatError(f"node name {n.name!r} is not a valid identifier")
            if n.name in names:
                raise ModelFormatError(f"duplicate node name {n.name!r}")
            names.add(n.name)
            if n.op not in OP_ATTRS:
                raise ModelFormatError(f"node {n.name!r}: unsupported op {n.op}")
            n_act, n_params = OP_ARITY[n.op]
            if len(n.inputs) - n_act not in n_params:
                raise ModelFormatError(f"node {n.name!r} ({n.op}): wrong number of inputs")
            for v in n.inputs[:n_act]:
                if v not in defined:
                    raise ModelFormatError(f"node {n.name!r} reads {v!r} before it is defined")
            for p in n.inputs[n_act:]:
                if p not in self.params:
                    raise ModelFormatError(f"node {n.name!r} reads missing parameter {p!r}")
            expected = OP_ATTRS[n.op]
            if set(n.attrs) != set(expected):
                raise ModelFormatError(
                    f"node {n.name!r} ({n.op}): attributes {sorted(n.attrs)} != {sorted(expected)}"
                )
            if n.op == "LIF":
                n.lif()
            if n.output in defined:
                raise ModelFormatError(f"value {n.output!r} is defined twice")
            defined.add(n.output)
        if self.output_name not in defined:
            raise ModelFormatError(f"graph output {self.output_name!r} is never computed")
        encoders = [n for n in self.nodes if n.op == "DirectEncode"]
        if len(encoders) != 1:
            raise ModelFormatError(f"expected exactly one DirectEncode node, found {len(encoders)}")
        shapes = infer_shapes(self)
        if shapes[self.output_name] != (self.num_classes,):
            raise ModelFormatError(
                f"output {self.output_name!r} has shape {shapes[self.output_name]}, "
                f"expected ({self.num_classes},)"
            )

    def equals(self, other: Graph) -> bool:
        """Exact equality: same structure, attributes and bit-identical parameters."""
        if (
            self.name,
            self.input_name,
            self.input_shape,
            self.output_name,
            self.num_classes,
            self.timesteps,
            self.encoding,
            self.nodes,
        ) != (
            other.name,
            other.input_name,
            other.input_shape,
            other.output_name,
            other.num_classes,
            other.timesteps,
            other.encoding,
            other.nodes,
        ):
            return False
        if set(self.params) != set(other.params):
            return False
        return all(
            a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            for a, b in ((self.params[k], other.params[k]) for k in self.params)
        )


def _conv_out(size: int, k: int, s: int, p0: int, p1: int) -> int:
    return (size + p0 + p1 - k) // s + 1


def infer_shapes(g: Graph) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes (C,H,W or F) of every value; raises ModelFormatError on a mismatch."""
    shapes: dict[str, tuple[int, ...]] = {g.input_name: tuple(g.input_shape)}
    for n in g.nodes:
        x = shapes[n.inputs[0]]
        p = [g.params[name].shape for name in g.param_names(n)]
        out: tuple[int, ...]
        if n.op == "Conv":
            kh, kw = n.ints("kernel_shape")
            sh, sw = n.ints("strides")
            pt, pl, pb, pr = n.ints("pads")
            w = p[0]
            if len(x) != 3 or len(w) != 4 or w[1] != x[0] or (w[2], w[3]) != (kh, kw):
                raise ModelFormatError(f"node {n.name!r}: weight {w} does not fit input {x}")
            if len(p) == 2 and p[1] != (w[0],):
                raise ModelFormatError(f"node {n.name!r}: bias shape {p[1]} != ({w[0]},)")
            out = (w[0], _conv_out(x[1], kh, sh, pt, pb), _conv_out(x[2], kw, sw, pl, pr))
        elif n.op == "BatchNormalization":
            if any(s != (x[0],) for s in p):
                raise ModelFormatError(f"node {n.name!r}: BN parameters do not fit input {x}")
            out = x
        elif n.op == "MaxPool":
            kh, kw = n.ints("kernel_shape")
            sh, sw = n.ints("strides")
            out = (x[0], _conv_out(x[1], kh, sh, 0, 0), _conv_out(x[2], kw, sw, 0, 0))
        elif n.op in ("AveragePool", "SumPool"):
            kh, kw = n.ints("kernel_shape")
            sh, sw = n.ints("strides")
            pt, pl, pb, pr = n.ints("pads")
            if len(x) != 3:
                raise ModelFormatError(f"node {n.name!r}: pooling needs a C,H,W input, got {x}")
            out = (x[0], _conv_out(x[1], kh, sh, pt, pb), _conv_out(x[2], kw, sw, pl, pr))
        elif n.op == "GlobalAveragePool":
            out = (x[0], 1, 1)
        elif n.op == "Flatten":
            out = (int(np.prod(x)),)
        elif n.op == "Gemm":
            w = p[0]
            if len(x) != 1 or len(w) != 2 or w[1] != x[0] or p[1] != (w[0],):
                raise ModelFormatError(f"node {n.name!r}: weight {w} does not fit input {x}")
            out = (w[0],)
        elif n.op == "Add":
            if shapes[n.inputs[1]] != x:
                raise ModelFormatError(
                    f"node {n.name!r}: adds {x} and {shapes[n.inputs[1]]} of different shapes"
                )
            out = x
        else:  # LIF, DirectEncode: shape-preserving
            out = x
        if min(out) < 1:
            raise ModelFormatError(f"node {n.name!r}: output shape {out} is empty")
        shapes[n.output] = out
    return shapes
