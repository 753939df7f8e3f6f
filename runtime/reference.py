"""An onnxruntime model of the *quantized* network, for checking the runtime bit for bit.

Built from the compiled hardware module (the same passes ``uticompile map`` ran), in integer units
stored as floats: convolutions and linear layers in float32 (exact while partial sums stay below
2^24, which ``psum_bound`` in the map report tells), LIF membranes in float64 so that the leak
``floor(u * m / 2^k)`` is exact, saturation as Clip. Every LIF layer's spikes are outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from uticompile.hwir import HwLayer, HwModule
from uticompile.ir import SUBTRACT_AFTER_LEAK
from uticompile.onnx_functions import IR_VERSION, OPSET

INPUT = "x_q"
LOGITS = "logits"


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value: np.ndarray | float | list[int], dtype: type = np.float32) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op: str, inputs: list[str], **attrs: object) -> str:
        self.count += 1
        out = f"v{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))  # type: ignore[arg-type]
        return out


def _clip(b: _Builder, x: str, acc_bits: int) -> str:
    hi = float(2 ** (acc_bits - 1) - 1)
    return b.op("Clip", [x, b.const(-hi - 1), b.const(hi)])


def _lif(b: _Builder, layer: HwLayer, x: str, timesteps: int, acc_bits: int) -> str:
    hi = float(2 ** (acc_bits - 1) - 1)
    lo = -hi - 1
    if layer.reset == "hard":
        reset = helper.make_node("Constant", [], ["reset_value"], value=_scalar(0.0))
    else:
        reset = helper.make_node("Sub", ["u", "theta"], ["reset_value"])
    leak = [
        helper.make_node("Mul", ["u_prev", "mult"], ["um"]),
        helper.make_node("Div", ["um", "div"], ["ud"]),
        helper.make_node("Floor", ["ud"], ["leaked"]),
    ]
    clip = [
        helper.make_node("Max", ["raw", "lo"], ["raw_lo"]),
        helper.make_node("Min", ["raw_lo", "hi"], ["u"]),
    ]
    if layer.reset == SUBTRACT_AFTER_LEAK:  # u_prev kept its value: its spike comes off now
        body = [
            *leak,
            helper.make_node("Add", ["leaked", "x_t"], ["driven"]),
            helper.make_node("Greater", ["u_prev", "theta"], ["fired"]),
            helper.make_node("Cast", ["fired"], ["s_prev"], to=TensorProto.DOUBLE),
            helper.make_node("Mul", ["s_prev", "theta"], ["reduce"]),
            helper.make_node("Sub", ["driven", "reduce"], ["raw"]),
            *clip,
            helper.make_node("Greater", ["u", "theta"], ["fire"]),
            helper.make_node("Identity", ["u"], ["u_next"]),
            helper.make_node("Cast", ["fire"], ["s_t"], to=TensorProto.FLOAT),
        ]
    else:
        body = [
            *leak,
            helper.make_node("Add", ["leaked", "x_t"], ["raw"]),
            *clip,
            helper.make_node("GreaterOrEqual", ["u", "theta"], ["fire"]),
            reset,
            helper.make_node("Where", ["fire", "reset_value", "u"], ["u_next"]),
            helper.make_node("Cast", ["fire"], ["s_t"], to=TensorProto.FLOAT),
        ]
    step = helper.make_graph(
        body,
        f"{layer.name}_step",
        [
            helper.make_tensor_value_info("u_prev", TensorProto.DOUBLE, None),
            helper.make_tensor_value_info("x_t", TensorProto.DOUBLE, None),
        ],
        [
            helper.make_tensor_value_info("u_next", TensorProto.DOUBLE, None),
            helper.make_tensor_value_info("s_t", TensorProto.FLOAT, None),
        ],
    )
    theta = float(layer.threshold_q)
    b.nodes.extend(
        [
            helper.make_node("Constant", [], ["mult"], value=_scalar(layer.leak_mult)),
            helper.make_node("Constant", [], ["div"], value=_scalar(2.0**layer.leak_shift)),
            helper.make_node("Constant", [], ["lo"], value=_scalar(lo)),
            helper.make_node("Constant", [], ["hi"], value=_scalar(hi)),
            helper.make_node("Constant", [], ["theta"], value=_scalar(theta)),
        ]
    )
    xd = b.op("Cast", [x], to=TensorProto.DOUBLE)
    xt = b.op("Reshape", [xd, b.const([timesteps, -1], np.int64)])
    shape = b.op("Shape", [xt], start=1)
    u0 = b.op(
        "ConstantOfShape", [shape], value=helper.make_tensor("z", TensorProto.DOUBLE, [1], [0.0])
    )
    b.count += 1
    u_last, spikes = f"v{b.count}_u", f"v{b.count}_s"
    b.nodes.append(
        helper.make_node("Scan", [u0, xt], [u_last, spikes], num_scan_inputs=1, body=step)
    )
    return b.op("Reshape", [spikes, b.op("Shape", [x])])


def _scalar(value: float) -> onnx.TensorProto:
    return helper.make_tensor("value", TensorProto.DOUBLE, [], [float(value)])


def reference_model(module: HwModule) -> tuple[onnx.ModelProto, list[int]]:
    """(the ONNX model, the hardware-layer index of each LIF spike output in output order)."""
    T, acc = module.timesteps, module.hw.acc_bits
    b = _Builder()
    values: list[str] = []
    lif_outputs: list[tuple[int, str]] = []
    # Each LIF block has its own constants in its Scan's outer scope: give them unique names.
    for i, layer in enumerate(module.layers):
        src = values[layer.inputs[0]] if layer.inputs[0] >= 0 else INPUT
        if layer.kind in ("ENCODE", "CONV"):
            assert layer.weight is not None and layer.bias is not None
            w = b.const(layer.weight.astype(np.float32))
            bias = b.const(layer.bias.astype(np.float32))
            pt, pl, pb, pr = layer.pads
            y = b.op(
                "Conv",
                [src, w, bias],
                kernel_shape=list(layer.kernel),
                strides=list(layer.stride),
                pads=[pt, pl, pb, pr],
            )
            if layer.kind == "ENCODE":
                y = b.op("Floor", [b.op("Div", [y, b.const(2.0 ** layer.shifts[0])])])
                y = _clip(b, y, acc)
                rep = b.op(
                    "Expand",
                    [
                        b.op("Unsqueeze", [y, b.const([0], np.int64)]),
                        b.const([T, 1, 1, 1, 1], np.int64),
                    ],
                )
                c, h, wd = layer.out_shape
                y = b.op("Reshape", [rep, b.const([-1, c, h, wd], np.int64)])
            else:
                y = _clip(b, y, acc)
        elif layer.kind == "FC":
            assert layer.weight is not None and layer.bias is not None
            w = b.const(layer.weight.reshape(len(layer.weight), -1).astype(np.float32))
            y = _clip(
                b, b.op("Gemm", [src, w, b.const(layer.bias.astype(np.float32))], transB=1), acc
            )
        elif layer.kind == "LIF":
            start = len(b.nodes)
            y = _lif(b, layer, src, T, acc)
            _rename_scan_constants(b.nodes[start:], f"l{i}_")
            lif_outputs.append((i, y))
        elif layer.kind == "MAXPOOL":
            y = b.op("MaxPool", [src], kernel_shape=list(layer.kernel), strides=list(layer.stride))
        elif layer.kind == "SUMPOOL" and layer.kernel == tuple(layer.in_shape[1:]):
            y = b.op("ReduceSum", [src, b.const([2, 3], np.int64)], keepdims=1)
        elif layer.kind == "SUMPOOL":  # window sums: a depthwise conv of ones (exact counts)
            c, kh, kw = layer.in_shape[0], layer.kernel[0], layer.kernel[1]
            ones = b.const(np.ones((c, 1, kh, kw), np.float32))
            y = b.op(
                "Conv", [src, ones], kernel_shape=[kh, kw], strides=list(layer.stride), group=c
            )
        elif layer.kind == "ADD":
            a = b.op("Mul", [src, b.const(2.0 ** layer.shifts[0])])
            c2 = b.op("Mul", [values[layer.inputs[1]], b.const(2.0 ** layer.shifts[1])])
            y = _clip(b, b.op("Add", [a, c2]), acc)
        elif layer.kind == "FLATTEN":
            y = b.op("Flatten", [src], axis=1)
        else:  # pragma: no cover
            raise ValueError(layer.kind)
        values.append(y)
    outputs = [helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, None)]
    b.nodes.append(
        helper.make_node(
            "Reshape", [values[-1], b.const([T, -1, module.num_classes], np.int64)], [LOGITS]
        )
    )
    for i, name in lif_outputs:
        out = f"spikes_{i}"
        b.nodes.append(helper.make_node("Identity", [name], [out]))
        outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    c, h, wd = module.input_shape
    graph = helper.make_graph(
        b.nodes,
        f"{module.name}_quantized",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", c, h, wd])],
        outputs,
        initializer=b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    return model, [i for i, _ in lif_outputs]


def _rename_scan_constants(nodes: list[onnx.NodeProto], prefix: str) -> None:
    """Give one LIF block's outer-scope constants unique names (each LIF has its own)."""
    names = {"mult", "div", "lo", "hi", "theta"}
    for node in nodes:
        node.output[:] = [prefix + o if o in names else o for o in node.output]
        if node.op_type == "Scan":
            body = node.attribute[0].g
            for inner in body.node:
                inner.input[:] = [prefix + v if v in names else v for v in inner.input]
                inner.output[:] = [prefix + v if v in names else v for v in inner.output]
