"""A small builder that writes IR graphs layer by layer, with the reference initialization.

Initialization follows the public code: conv weights kaiming-normal (fan_out), conv/linear biases 0,
BatchNorm weight 1 / bias 0 (running mean 0, var 1), linear weights N(0, 0.01). All draws come from
one numpy Generator in build order, so a seed fixes every weight.
"""

from __future__ import annotations

import numpy as np

from uticompile.errors import ConfigError
from uticompile.ir import Graph, LIFParams, Node, infer_shapes


def conv_weight(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Kaiming-normal (fan_out) conv weights [out, in, kh, kw]."""
    fan_out = shape[0] * int(np.prod(shape[2:]))
    return rng.normal(0.0, np.sqrt(2.0 / fan_out), shape)


def linear_weight(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """N(0, 0.01) linear weights [out, in]."""
    return rng.normal(0.0, 0.01, shape)


def bn_params(c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """BatchNorm weight 1, bias 0, running mean 0, running var 1."""
    return np.ones(c), np.zeros(c), np.zeros(c), np.ones(c)


class GraphBuilder:
    """Append layers to a graph under construction; every method returns the new value's name."""

    def __init__(
        self,
        name: str,
        input_shape: tuple[int, int, int],
        num_classes: int,
        *,
        timesteps: int,
        neuron: LIFParams,
        seed: int,
    ) -> None:
        self.graph = Graph(
            name=name,
            input_name="input",
            input_shape=input_shape,
            output_name="",
            num_classes=num_classes,
            timesteps=timesteps,
            nodes=[],
            params={},
            trained_epochs=0,
        )
        self.neuron = neuron
        self.rng = np.random.default_rng(seed)
        self.shape: dict[str, tuple[int, ...]] = {"input": input_shape}
        self._count: dict[str, int] = {}

    def _name(self, kind: str) -> str:
        self._count[kind] = self._count.get(kind, 0) + 1
        return f"{kind}{self._count[kind]}"

    def _add(
        self, kind: str, op: str, inputs: tuple[str, ...], attrs: dict, name: str | None
    ) -> str:
        node = Node(name or self._name(kind), op, inputs, name or "", attrs)
        node.output = node.name
        self.graph.nodes.append(node)
        try:
            self.shape[node.output] = infer_shapes(self.graph)[node.output]
        except Exception as exc:  # a too-small input empties a feature map
            raise ConfigError(
                f"{self.graph.name}: input {self.graph.input_shape[1]}x{self.graph.input_shape[2]}"
                f" is too small for this network ({exc})"
            ) from None
        return node.output

    def _param(self, name: str, value: np.ndarray) -> str:
        self.graph.params[name] = np.ascontiguousarray(value, dtype=np.float32)
        return name

    def conv(
        self, x: str, out_ch: int, *, k: int = 3, stride: int = 1, pad: int = 1, bias: bool = True
    ) -> str:
        name = self._name("conv")
        in_ch = self.shape[x][0]
        weight = conv_weight(self.rng, (out_ch, in_ch, k, k))
        inputs: tuple[str, ...] = (x, self._param(f"{name}.weight", weight))
        if bias:
            inputs += (self._param(f"{name}.bias", np.zeros(out_ch)),)
        attrs = {"kernel_shape": (k, k), "strides": (stride, stride), "pads": (pad,) * 4}
        return self._add("conv", "Conv", inputs, attrs, name)

    def bn(self, x: str) -> str:
        name = self._name("bn")
        slots = ("weight", "bias", "running_mean", "running_var")
        values = bn_params(self.shape[x][0])
        inputs = (x, *(self._param(f"{name}.{k}", v) for k, v in zip(slots, values, strict=True)))
        return self._add(
            "bn", "BatchNormalization", inputs, {"epsilon": 1e-5, "momentum": 0.9}, name
        )

    def lif(self, x: str) -> str:
        return self._add("lif", "LIF", (x,), self.neuron.attrs(), None)

    def encode(self, x: str) -> str:
        return self._add("encode", "DirectEncode", (x,), {}, None)

    def maxpool(self, x: str, k: int = 2) -> str:
        return self._add("pool", "MaxPool", (x,), {"kernel_shape": (k, k), "strides": (k, k)}, None)

    def global_avgpool(self, x: str) -> str:
        return self._add("gap", "GlobalAveragePool", (x,), {}, None)

    def add(self, a: str, b: str) -> str:
        return self._add("add", "Add", (a, b), {}, None)

    def flatten(self, x: str) -> str:
        return self._add("flatten", "Flatten", (x,), {}, None)

    def linear(self, x: str, out_features: int) -> str:
        name = self._name("fc")
        in_features = self.shape[x][0]
        inputs = (
            x,
            self._param(f"{name}.weight", linear_weight(self.rng, (out_features, in_features))),
            self._param(f"{name}.bias", np.zeros(out_features)),
        )
        return self._add("fc", "Gemm", inputs, {}, name)

    def build(self, output: str) -> Graph:
        self.graph.output_name = output
        self.graph.validate()
        return self.graph
