"""The project's ONNX operators, written as model-local functions in the ``ai.uticompile`` domain.

Functions let any onnxruntime execute a uticompile file (it inlines the bodies) while every reader
can still recognize an LIF node by its domain and op type and read its parameters as attributes.

- ``LIF(X) -> Y``: X is time-folded [T*N, ...]; the body reshapes it to [T, -1] and runs a Scan
  over time: u = leak*u + gain*x; fire = u >= threshold;
  u = fire ? (reset == "hard" ? 0 : u - threshold) : u.
- ``LIFSubtractAfterLeak(X) -> Y``: the LIF with reset ``subtract-after-leak`` (snnTorch's
  order): u = (leak*u + gain*x) - threshold * (u_prev > threshold); fire = u > threshold; the
  membrane is not reset in its step. A function of its own, so that no runtime that knows only
  ``LIF`` can run it as another reset. Written only into models that use it.
- ``DirectEncode(X) -> Y``: repeats the analog X [N, ...] for every timestep -> [T*N, ...].
- ``TimeSplit(X) -> Y``: unfolds time, [T*N, ...] -> [T, N, ...] (graph outputs).
- ``SumPool(X) -> Y``: window sums (NIR's SumPool2d, which ONNX lacks): every channel is
  convolved with a kernel of ones. Written only into models that use it.
"""

from __future__ import annotations

import onnx
from onnx import AttributeProto, FunctionProto, NodeProto, TensorProto, helper

DOMAIN = "ai.uticompile"
DOMAIN_VERSION = 1
OPSET = 21
IR_VERSION = 10  # onnxruntime accepts up to 13; onnx >= 1.23 would write 14 by default

_REF_TYPES = {
    "value_float": AttributeProto.FLOAT,
    "value_int": AttributeProto.INT,
    "value_ints": AttributeProto.INTS,
    "value_string": AttributeProto.STRING,
}


def _ref(output: str, kind: str, attribute: str) -> NodeProto:
    """A Constant whose value is the calling node's attribute ``attribute``."""
    node = helper.make_node("Constant", [], [output])
    node.attribute.append(helper.make_attribute_ref(kind, _REF_TYPES[kind]))
    node.attribute[-1].ref_attr_name = attribute
    return node


def _time_shape(x: str, prefix: str) -> list[NodeProto]:
    """Nodes computing ``{prefix}tshape`` = [T, -1] from the ``timesteps`` attribute."""
    return [
        _ref(f"{prefix}T", "value_int", "timesteps"),
        helper.make_node("Constant", [], [f"{prefix}axis0"], value_ints=[0]),
        helper.make_node("Unsqueeze", [f"{prefix}T", f"{prefix}axis0"], [f"{prefix}T1"]),
        helper.make_node("Constant", [], [f"{prefix}minus1"], value_ints=[-1]),
    ]


def _function(name: str, nodes: list[NodeProto], attributes: list[str], doc: str) -> FunctionProto:
    return helper.make_function(
        DOMAIN,
        name,
        ["X"],
        ["Y"],
        nodes,
        [helper.make_opsetid("", OPSET)],
        attributes=attributes,
        doc_string=doc,
    )


def lif_function() -> FunctionProto:
    step = helper.make_graph(
        [
            helper.make_node("Mul", ["leak", "u_prev"], ["leaked"]),
            helper.make_node("Mul", ["gain", "x_t"], ["driven"]),
            helper.make_node("Add", ["leaked", "driven"], ["u"]),
            helper.make_node("GreaterOrEqual", ["u", "threshold"], ["fire"]),
            helper.make_node("Sub", ["u", "threshold"], ["u_sub"]),
            helper.make_node("Mul", ["u_sub", "keep"], ["u_reset"]),
            helper.make_node("Where", ["fire", "u_reset", "u"], ["u_next"]),
            helper.make_node("Cast", ["fire"], ["s_t"], to=TensorProto.FLOAT),
        ],
        "lif_step",
        [
            helper.make_tensor_value_info("u_prev", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("x_t", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("u_next", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("s_t", TensorProto.FLOAT, None),
        ],
    )
    nodes = [
        _ref("leak", "value_float", "leak"),
        _ref("threshold", "value_float", "threshold"),
        _ref("gain", "value_float", "gain"),
        _ref("reset", "value_string", "reset"),
        helper.make_node("Constant", [], ["subtract"], value_string="subtract"),
        helper.make_node("Equal", ["reset", "subtract"], ["is_subtract"]),
        helper.make_node("Cast", ["is_subtract"], ["keep"], to=TensorProto.FLOAT),
        *_time_shape("X", ""),
        helper.make_node("Concat", ["T1", "minus1"], ["tshape"], axis=0),
        helper.make_node("Shape", ["X"], ["xshape"]),
        helper.make_node("Reshape", ["X", "tshape"], ["XT"]),
        helper.make_node("Shape", ["XT"], ["state_shape"], start=1),
        helper.make_node(
            "ConstantOfShape",
            ["state_shape"],
            ["u0"],
            value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
        ),
        helper.make_node("Scan", ["u0", "XT"], ["u_last", "ST"], num_scan_inputs=1, body=step),
        helper.make_node("Reshape", ["ST", "xshape"], ["Y"]),
    ]
    return _function(
        "LIF",
        nodes,
        [
            "leak",
            "threshold",
            "gain",
            "reset",
            "surrogate",
            "alpha",
            "detach_reset",
            "timesteps",
        ],
        "Multi-step leaky integrate-and-fire neuron over time-folded input [T*N, ...].",
    )


def lif_subtract_after_leak_function() -> FunctionProto:
    step = helper.make_graph(
        [
            helper.make_node("Mul", ["leak", "u_prev"], ["leaked"]),
            helper.make_node("Mul", ["gain", "x_t"], ["driven"]),
            helper.make_node("Add", ["leaked", "driven"], ["base"]),
            helper.make_node("Greater", ["u_prev", "threshold"], ["fired"]),
            helper.make_node("Cast", ["fired"], ["s_prev"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["s_prev", "threshold"], ["reduce"]),
            helper.make_node("Sub", ["base", "reduce"], ["u_next"]),
            helper.make_node("Greater", ["u_next", "threshold"], ["fire"]),
            helper.make_node("Cast", ["fire"], ["s_t"], to=TensorProto.FLOAT),
        ],
        "lif_subtract_after_leak_step",
        [
            helper.make_tensor_value_info("u_prev", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("x_t", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("u_next", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("s_t", TensorProto.FLOAT, None),
        ],
    )
    nodes = [
        _ref("leak", "value_float", "leak"),
        _ref("threshold", "value_float", "threshold"),
        _ref("gain", "value_float", "gain"),
        *_time_shape("X", ""),
        helper.make_node("Concat", ["T1", "minus1"], ["tshape"], axis=0),
        helper.make_node("Shape", ["X"], ["xshape"]),
        helper.make_node("Reshape", ["X", "tshape"], ["XT"]),
        helper.make_node("Shape", ["XT"], ["state_shape"], start=1),
        helper.make_node(
            "ConstantOfShape",
            ["state_shape"],
            ["u0"],
            value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
        ),
        helper.make_node("Scan", ["u0", "XT"], ["u_last", "ST"], num_scan_inputs=1, body=step),
        helper.make_node("Reshape", ["ST", "xshape"], ["Y"]),
    ]
    return _function(
        LIF_SUBTRACT_AFTER_LEAK,
        nodes,
        [
            "leak",
            "threshold",
            "gain",
            "reset",
            "surrogate",
            "alpha",
            "detach_reset",
            "timesteps",
        ],
        "LIF whose subtract reset follows the next step's decay (snnTorch); fires on u > theta.",
    )


def direct_encode_function() -> FunctionProto:
    nodes = [
        *_time_shape("X", ""),
        helper.make_node("Unsqueeze", ["X", "axis0"], ["X1"]),
        helper.make_node("Shape", ["X"], ["xshape"]),
        helper.make_node("Shape", ["xshape"], ["rank"]),
        helper.make_node(
            "ConstantOfShape",
            ["rank"],
            ["ones"],
            value=helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        ),
        helper.make_node("Concat", ["T1", "ones"], ["reps"], axis=0),
        helper.make_node("Expand", ["X1", "reps"], ["XT"]),
        helper.make_node("Shape", ["X"], ["tail"], start=1),
        helper.make_node("Concat", ["minus1", "tail"], ["yshape"], axis=0),
        helper.make_node("Reshape", ["XT", "yshape"], ["Y"]),
    ]
    return _function(
        "DirectEncode",
        nodes,
        ["timesteps"],
        "Direct encoding: repeat the analog input per timestep, [N,...] -> [T*N,...].",
    )


def time_split_function() -> FunctionProto:
    nodes = [
        *_time_shape("X", ""),
        helper.make_node("Shape", ["X"], ["tail"], start=1),
        helper.make_node("Concat", ["T1", "minus1", "tail"], ["yshape"], axis=0),
        helper.make_node("Reshape", ["X", "yshape"], ["Y"]),
    ]
    return _function(
        "TimeSplit",
        nodes,
        ["timesteps"],
        "Unfold the time axis of a time-folded tensor: [T*N, ...] -> [T, N, ...].",
    )


def sum_pool_function() -> FunctionProto:
    conv = helper.make_node("Conv", ["XC", "ones"], ["YC"])
    for name in ("strides", "pads"):
        ref = helper.make_attribute_ref(name, AttributeProto.INTS)
        ref.ref_attr_name = name
        conv.attribute.append(ref)
    nodes = [
        # [N, C, H, W] -> [N*C, 1, H, W]: one convolution with a ones kernel serves every channel
        helper.make_node("Shape", ["X"], ["nc"], end=2),
        helper.make_node("Shape", ["X"], ["hw"], start=2),
        helper.make_node("Constant", [], ["flat"], value_ints=[-1, 1]),
        helper.make_node("Concat", ["flat", "hw"], ["xc_shape"], axis=0),
        helper.make_node("Reshape", ["X", "xc_shape"], ["XC"]),
        _ref("kernel", "value_ints", "kernel_shape"),
        helper.make_node("Constant", [], ["one_one"], value_ints=[1, 1]),
        helper.make_node("Concat", ["one_one", "kernel"], ["w_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["w_shape"],
            ["ones"],
            value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]),
        ),
        conv,
        helper.make_node("Shape", ["YC"], ["out_hw"], start=2),
        helper.make_node("Concat", ["nc", "out_hw"], ["y_shape"], axis=0),
        helper.make_node("Reshape", ["YC", "y_shape"], ["Y"]),
    ]
    return _function(
        "SumPool",
        nodes,
        ["kernel_shape", "strides", "pads"],
        "Sum pooling over windows, per channel: [N, C, H, W] -> [N, C, H', W'].",
    )


#: The ONNX op type of an IR ``LIF`` node whose reset is ``subtract-after-leak``.
LIF_SUBTRACT_AFTER_LEAK = "LIFSubtractAfterLeak"
#: Functions written only into models that use them (older files lack them).
OPTIONAL_FUNCTIONS = ("SumPool", LIF_SUBTRACT_AFTER_LEAK)


def functions(used: frozenset[str] | set[str] = frozenset()) -> list[FunctionProto]:
    """The canonical definitions, in the order they are written: the three every model holds,
    then those of ``OPTIONAL_FUNCTIONS`` that ``used`` (ONNX op types) names."""
    always = [lif_function(), direct_encode_function(), time_split_function()]
    optional = {
        "SumPool": sum_pool_function,
        LIF_SUBTRACT_AFTER_LEAK: lif_subtract_after_leak_function,
    }
    return always + [optional[name]() for name in OPTIONAL_FUNCTIONS if name in used]


def canonical_bytes() -> dict[str, bytes]:
    """op type -> serialized canonical function, to recognize tampered or foreign definitions."""
    every = functions(set(OPTIONAL_FUNCTIONS))
    return {f.name: f.SerializeToString(deterministic=True) for f in every}


def opset_imports() -> list[onnx.OperatorSetIdProto]:
    return [helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
