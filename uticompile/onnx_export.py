"""IR -> ONNX: every layer appears once; time lives in the ai.uticompile functions.

The file has one input ``input`` [N, C, H, W] (analog images) and one output ``logits``
[T, N, classes]; T, the encoding and the model name are in the metadata. Serialization is
deterministic, so the same graph always gives the same bytes.
"""

from __future__ import annotations

import os

import onnx
from onnx import TensorProto, helper, numpy_helper

import uticompile
from uticompile.fileio import atomic_write_bytes
from uticompile.ir import SUBTRACT_AFTER_LEAK, Graph, Node
from uticompile.onnx_functions import (
    DOMAIN,
    IR_VERSION,
    LIF_SUBTRACT_AFTER_LEAK,
    functions,
    opset_imports,
)

INPUT = "input"
OUTPUT = "logits"
SPIKES_SUFFIX = ".spikes"
META_PREFIX = "uticompile."
META_FORMAT = "1"

#: Attributes written for standard ops beyond the IR's own (fixed by the IR's semantics).
_FIXED_ATTRS: dict[str, dict[str, object]] = {
    "Conv": {"dilations": [1, 1], "group": 1},
    "Gemm": {"transB": 1},
    "Flatten": {"axis": 1},
    "AveragePool": {"count_include_pad": 1},
}

#: IR ops written as ai.uticompile functions; those in ``_TIMED`` also carry ``timesteps``.
CUSTOM_OPS = ("LIF", "DirectEncode", "SumPool")
_TIMED = ("LIF", "DirectEncode")


def onnx_op_type(node: Node) -> str:
    """The ONNX op type of an IR node: its op, except the LIF whose reset has a function of its
    own (``onnx_functions.LIF_SUBTRACT_AFTER_LEAK``)."""
    if node.op == "LIF" and node.attrs.get("reset") == SUBTRACT_AFTER_LEAK:
        return LIF_SUBTRACT_AFTER_LEAK
    return node.op


def _onnx_node(node: Node, timesteps: int) -> onnx.NodeProto:
    attrs: dict[str, object] = {
        k: list(v) if isinstance(v, tuple) else v for k, v in node.attrs.items()
    }
    attrs.update(_FIXED_ATTRS.get(node.op, {}))
    domain = ""
    if node.op in CUSTOM_OPS:
        domain = DOMAIN
    if node.op in _TIMED:
        attrs["timesteps"] = timesteps
    return helper.make_node(
        onnx_op_type(node),
        list(node.inputs),
        [node.output],
        name=node.name,
        domain=domain,
        **attrs,  # type: ignore[arg-type]
    )


def time_split(value: str, output: str, timesteps: int) -> onnx.NodeProto:
    return helper.make_node(
        "TimeSplit", [value], [output], name=f"split_{output}", domain=DOMAIN, timesteps=timesteps
    )


def to_onnx(graph: Graph, *, spike_outputs: bool = False) -> onnx.ModelProto:
    """Build the ONNX model of ``graph``; ``spike_outputs`` adds every LIF's spikes as outputs."""
    graph.validate()
    T = graph.timesteps
    c, h, w = graph.input_shape
    nodes = [_onnx_node(n, T) for n in graph.nodes]
    nodes.append(time_split(graph.output_name, OUTPUT, T))
    outputs = [
        helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [T, "N", graph.num_classes])
    ]
    onnx_graph = helper.make_graph(
        nodes,
        graph.name,
        [
            helper.make_tensor_value_info(
                INPUT if graph.input_name == INPUT else graph.input_name,
                TensorProto.FLOAT,
                ["N", c, h, w],
            )
        ],
        outputs,
        initializer=[numpy_helper.from_array(v, k) for k, v in graph.params.items()],
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=opset_imports(),
        functions=functions({onnx_op_type(n) for n in graph.nodes}),
        ir_version=IR_VERSION,
        producer_name="uticompile",
        producer_version=uticompile.__version__,
        doc_string=f"Spiking neural network {graph.name} (T={T}, {graph.encoding} encoding).",
    )
    helper.set_model_props(
        model,
        {
            f"{META_PREFIX}format": META_FORMAT,
            f"{META_PREFIX}model": graph.name,
            f"{META_PREFIX}timesteps": str(T),
            f"{META_PREFIX}encoding": graph.encoding,
            **(
                {}
                if graph.trained_epochs is None
                else {f"{META_PREFIX}trained_epochs": str(graph.trained_epochs)}
            ),
        },
    )
    if spike_outputs:
        model = with_spike_outputs(model, graph)
    return model


def with_spike_outputs(model: onnx.ModelProto, graph: Graph) -> onnx.ModelProto:
    """A copy of ``model`` (the ONNX form of ``graph``) that also outputs every LIF's spikes.

    The debug outputs are named ``<LIF output>.spikes``, shape [T, N, ...]; importing ignores them.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    T = graph.timesteps
    shapes = graph.shapes()
    existing = {o.name for o in out.graph.output}
    for node in graph.lif_nodes():
        name = node.output + SPIKES_SUFFIX
        if name in existing:
            continue
        out.graph.node.append(time_split(node.output, name, T))
        dims: list[int | str] = [T, "N", *shapes[node.output]]
        out.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
    return out


def serialize(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString(deterministic=True)


def save_onnx(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Write ``graph`` to ``path`` atomically and deterministically."""
    atomic_write_bytes(path, serialize(to_onnx(graph)))
