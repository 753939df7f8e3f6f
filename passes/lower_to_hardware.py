"""LowerToHardware: turn a BN-free IR graph into the accelerator's layer list (float weights).

- the first conv, which feeds ``DirectEncode``, becomes ``ENCODE`` (the analog layer, run once);
- conv -> ``CONV``, linear -> ``FC``, max-pool -> ``MAXPOOL`` (an OR on spikes), add -> ``ADD``,
  flatten -> ``FLATTEN``;
- average and sum pooling -> ``SUMPOOL`` (spike counts per window; global pooling is the window of
  the whole map). An average's 1/(kh*kw) is multiplied (in float64) into the weights of the
  ``CONV`` or ``FC`` that reads it, before quantization, so the hardware never divides: that layer
  computes (W/k) . counts = W . (counts/k) with one rounding, W/k's own quantization. For k = kh*kw
  a power of two the fold is exact: W/k is exact in float32 and its integers at 2^-(s + log2 k)
  are W's at 2^-s, whenever the quantizer keeps those log2 k extra fraction bits (it does unless
  the layer's bias or next threshold caps its scale, see passes/quantize.py). Window pools need no
  padding (refused otherwise) and the format version 1.2;
- the network ends with its classifier (``FC``), or with a ``LIF`` that reads it (spiking output);
- LIF -> ``LIF`` with the input gain folded into the threshold: u = leak*u + g*x fires at theta
  exactly when v = u/g, v = leak*v + x, fires at theta/g (hard, subtract and subtract-after-leak
  resets alike: each subtracts the threshold, theta/g in v's units).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from uticompile.errors import PassError
from uticompile.hardware import HardwareConfig
from uticompile.hwir import NETWORK_INPUT, HwLayer, HwModule
from uticompile.ir import Graph
from uticompile.passes.base import PassResult


def _chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return (shape[0], shape[1], shape[2]) if len(shape) == 3 else (shape[0], 1, 1)


@dataclass(frozen=True)
class LowerToHardware:
    hw: HardwareConfig
    grouping: str = "sata"
    input_bound: float = 1.0

    name: ClassVar[str] = "lower-to-hardware"

    def __call__(self, graph: Graph) -> PassResult:
        shapes = graph.shapes()
        index: dict[str, int] = {graph.input_name: NETWORK_INPUT}
        divisor: dict[str, float] = {}  # value -> pending 1/(kh*kw) of an average pool
        layers: list[HwLayer] = []

        def add(layer: HwLayer, value: str) -> None:
            layers.append(layer)
            index[value] = len(layers) - 1

        for node in graph.nodes:
            if node.op == "BatchNormalization":
                raise PassError(f"BatchNorm {node.name!r} must be folded first")
            x = node.inputs[0]
            in_shape, out_shape = _chw(shapes[x]), _chw(shapes[node.output])
            base = {"name": node.name, "in_shape": in_shape, "out_shape": out_shape}
            if x in divisor and node.op not in ("Flatten", "Gemm", "Conv"):
                raise PassError(
                    f"{node.name!r}: an average pool must feed a conv or linear layer, "
                    f"not {node.op} (its division is folded into that layer's weights)"
                )
            if node.op == "DirectEncode":
                producer = graph.producer(x)
                if (
                    producer is None
                    or producer.op != "Conv"
                    or producer.inputs[0] != graph.input_name
                ):
                    raise PassError("direct encoding must follow a conv on the network input")
                layers[index[x]].kind = "ENCODE"
                index[node.output] = index[x]
                continue
            if index.get(x) == NETWORK_INPUT and node.op != "Conv":
                raise PassError(f"{node.name!r}: only the encoding conv may read the analog input")
            if node.op in ("Conv", "Gemm"):
                w = graph.params[node.inputs[1]]
                b = graph.params[node.inputs[2]] if len(node.inputs) == 3 else np.zeros(w.shape[0])
                if x in divisor:
                    w = (w.astype(np.float64) * divisor[x]).astype(np.float32)
                layer = HwLayer(
                    **base,  # type: ignore[arg-type]
                    kind="CONV" if node.op == "Conv" else "FC",
                    inputs=(index[x],),
                    weight=w.copy(),
                    bias=np.asarray(b, np.float32).copy(),
                )
                if node.op == "Conv":
                    layer.kernel = node.ints("kernel_shape")  # type: ignore[assignment]
                    layer.stride = node.ints("strides")  # type: ignore[assignment]
                    layer.pads = node.ints("pads")  # type: ignore[assignment]
                add(layer, node.output)
            elif node.op == "LIF":
                p = node.lif()
                if layers[index[x]].kind not in ("CONV", "FC", "ADD", "ENCODE"):
                    raise PassError(f"LIF {node.name!r} must read partial sums")
                layer = HwLayer(**base, kind="LIF", inputs=(index[x],))  # type: ignore[arg-type]
                layer.threshold, layer.leak, layer.reset = p.threshold / p.gain, p.leak, p.reset
                add(layer, node.output)
            elif node.op == "MaxPool":
                layer = HwLayer(**base, kind="MAXPOOL", inputs=(index[x],))  # type: ignore[arg-type]
                layer.kernel = node.ints("kernel_shape")  # type: ignore[assignment]
                layer.stride = node.ints("strides")  # type: ignore[assignment]
                add(layer, node.output)
            elif node.op in ("GlobalAveragePool", "AveragePool", "SumPool"):
                layer = HwLayer(**base, kind="SUMPOOL", inputs=(index[x],))  # type: ignore[arg-type]
                layer.kernel = (in_shape[1], in_shape[2])  # global: the whole map
                layer.stride = layer.kernel
                if node.op != "GlobalAveragePool":
                    if any(node.ints("pads")):
                        raise PassError(
                            f"{node.name!r}: padded {node.op} has no hardware form "
                            "(SUMPOOL windows are unpadded)"
                        )
                    layer.kernel = node.ints("kernel_shape")  # type: ignore[assignment]
                    layer.stride = node.ints("strides")  # type: ignore[assignment]
                if layers[index[x]].kind not in ("LIF", "MAXPOOL"):
                    raise PassError(f"{node.name!r}: pooling must read spikes")
                add(layer, node.output)
                if node.op != "SumPool":
                    divisor[node.output] = 1.0 / (layer.kernel[0] * layer.kernel[1])
            elif node.op == "Flatten":
                layer = HwLayer(**base, kind="FLATTEN", inputs=(index[x],))  # type: ignore[arg-type]
                add(layer, node.output)
                if x in divisor:
                    divisor[node.output] = divisor[x]
            elif node.op == "Add":
                inputs = (index[x], index[node.inputs[1]])
                layer = HwLayer(**base, kind="ADD", inputs=inputs)  # type: ignore[arg-type]
                add(layer, node.output)
            else:  # pragma: no cover - validate() admits no other op
                raise PassError(f"{node.name!r}: op {node.op} has no hardware lowering")
        last = layers[-1]
        spiking_head = last.kind == "LIF" and layers[last.inputs[0]].kind == "FC"
        if index[graph.output_name] != len(layers) - 1 or not (last.kind == "FC" or spiking_head):
            raise PassError(
                "the network must end with its classifier (a linear layer, or a neuron after it)"
            )
        encoders = [layer for layer in layers if layer.kind == "ENCODE"]
        if len(encoders) != 1:
            raise PassError("the network needs exactly one direct-encoding conv")
        module = HwModule(
            name=graph.name,
            timesteps=graph.timesteps,
            num_classes=graph.num_classes,
            input_shape=graph.input_shape,
            hw=self.hw,
            grouping=self.grouping,
            input_bound=self.input_bound,
            layers=layers,
        )
        return PassResult(module, True)
