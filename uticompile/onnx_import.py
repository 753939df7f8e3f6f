"""ONNX -> IR, for every file the exporter writes; anything else is rejected with a clear reason.

The importer trusts nothing: it checks the ONNX structure, the metadata, that the ai.uticompile
functions are the canonical ones (a changed LIF body would silently change semantics), every op and
attribute, and finally the IR's own invariants.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, numpy_helper

from uticompile.errors import ModelFormatError
from uticompile.ir import OP_ATTRS, SUBTRACT_AFTER_LEAK, Graph, Node
from uticompile.limits import MAX_ABS_WEIGHT
from uticompile.onnx_export import CUSTOM_OPS, META_PREFIX, OUTPUT, SPIKES_SUFFIX
from uticompile.onnx_functions import (
    DOMAIN,
    DOMAIN_VERSION,
    LIF_SUBTRACT_AFTER_LEAK,
    canonical_bytes,
)

_MAX_BYTES = 2**31 - 1  # protobuf's own limit for one message

#: Attributes of standard ops that the IR fixes; a file may state them, with these values only.
_FIXED: dict[str, dict[str, object]] = {
    "Conv": {"dilations": [1, 1], "group": 1, "auto_pad": b"NOTSET"},
    "Gemm": {"transB": 1, "transA": 0, "alpha": 1.0, "beta": 1.0},
    "Flatten": {"axis": 1},
    "BatchNormalization": {"training_mode": 0},
    "MaxPool": {
        "pads": [0, 0, 0, 0],
        "dilations": [1, 1],
        "ceil_mode": 0,
        "auto_pad": b"NOTSET",
        "storage_order": 0,
    },
    "AveragePool": {
        "count_include_pad": 1,
        "dilations": [1, 1],
        "ceil_mode": 0,
        "auto_pad": b"NOTSET",
    },
}
_DEFAULTS: dict[str, dict[str, object]] = {
    "BatchNormalization": {"epsilon": 1e-5, "momentum": 0.9},
    "Conv": {"strides": (1, 1), "pads": (0, 0, 0, 0)},
    "MaxPool": {"strides": (1, 1)},
    "AveragePool": {"strides": (1, 1), "pads": (0, 0, 0, 0)},
    "SumPool": {"strides": (1, 1), "pads": (0, 0, 0, 0)},
}


def load_onnx(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Read an ONNX file; a missing, unreadable or non-ONNX file raises ModelFormatError."""
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"{p}: no such file")
    if p.stat().st_size > _MAX_BYTES:
        raise ModelFormatError(f"{p}: larger than 2 GiB, which ONNX protobuf files cannot be")
    data = p.read_bytes()
    try:
        model = onnx.ModelProto.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelFormatError(f"{p}: not an ONNX model ({exc.__class__.__name__})") from None
    if not model.HasField("graph"):
        raise ModelFormatError(f"{p}: not an ONNX model (no graph)")
    return model


def read_graph(path: str | os.PathLike[str]) -> Graph:
    """Load ``path`` and import it into the IR."""
    try:
        return from_onnx(load_onnx(path))
    except ModelFormatError as exc:
        msg = str(exc)
        raise ModelFormatError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


def _attr_value(attr: AttributeProto) -> object:
    value = onnx.helper.get_attribute_value(attr)
    if attr.type == AttributeProto.INTS:
        return list(value)
    if attr.type == AttributeProto.FLOATS:
        return list(value)
    return value


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    meta = {p.key: p.value for p in model.metadata_props}
    for key in ("model", "timesteps", "encoding"):
        if META_PREFIX + key not in meta:
            raise ModelFormatError(
                f"not a uticompile model: metadata {META_PREFIX + key!r} is missing"
            )
    return meta


def _trained_epochs(meta: dict[str, str]) -> int | None:
    """The optional provenance entry: how many epochs the weights were trained (None: unknown)."""
    text = meta.get(META_PREFIX + "trained_epochs")
    if text is None:
        return None
    if not text.isdigit():
        raise ModelFormatError(f"metadata uticompile.trained_epochs is not a count: {text!r}")
    return int(text)


def _check_functions(model: onnx.ModelProto) -> None:
    canonical = canonical_bytes()
    for f in model.functions:
        if f.domain != DOMAIN:
            raise ModelFormatError(f"function {f.domain}.{f.name} is not supported")
        if canonical.get(f.name) != f.SerializeToString(deterministic=True):
            raise ModelFormatError(
                f"function {DOMAIN}.{f.name} differs from uticompile's definition"
            )


def _convert_attrs(node: onnx.NodeProto, op: str, timesteps: int) -> dict:
    expected = OP_ATTRS[op]
    fixed = _FIXED.get(op, {})
    attrs: dict[str, object] = dict(_DEFAULTS.get(op, {}))
    where = f"node {node.name!r} ({op})"
    for a in node.attribute:
        if a.ref_attr_name:
            raise ModelFormatError(f"{where}: attribute reference {a.name!r} outside a function")
        value = _attr_value(a)
        if a.name == "timesteps" and op in ("LIF", "DirectEncode"):
            if value != timesteps:
                raise ModelFormatError(f"{where}: timesteps {value} != model's {timesteps}")
        elif a.name in fixed:
            if value != fixed[a.name]:
                raise ModelFormatError(f"{where}: {a.name}={value!r} is not supported")
        elif a.name in expected:
            kind = expected[a.name]
            if kind is tuple:
                if not isinstance(value, list):
                    raise ModelFormatError(f"{where}: attribute {a.name!r} must be a list of ints")
                value = tuple(int(v) for v in value)
            elif kind is float and a.type != AttributeProto.FLOAT:
                raise ModelFormatError(f"{where}: attribute {a.name!r} must be a float")
            elif kind is int and a.type != AttributeProto.INT:
                raise ModelFormatError(f"{where}: attribute {a.name!r} must be an int")
            elif kind is str:
                if a.type != AttributeProto.STRING:
                    raise ModelFormatError(f"{where}: attribute {a.name!r} must be a string")
                value = value.decode("utf-8", "replace")  # type: ignore[attr-defined]
            attrs[a.name] = value
        else:
            raise ModelFormatError(f"{where}: unsupported attribute {a.name!r}")
    if op == "Conv" and "kernel_shape" not in attrs:
        raise ModelFormatError(f"{where}: kernel_shape is required")
    if op in ("MaxPool", "AveragePool", "SumPool") and "kernel_shape" not in attrs:
        raise ModelFormatError(f"{where}: kernel_shape is required")
    stated = {a.name for a in node.attribute}
    if op == "AveragePool" and any(attrs["pads"]) and "count_include_pad" not in stated:  # type: ignore[arg-type]
        raise ModelFormatError(f"{where}: padded average pooling must count the padding")
    missing = set(expected) - set(attrs)
    if missing:
        raise ModelFormatError(f"{where}: missing attribute(s) {', '.join(sorted(missing))}")
    for key in ("kernel_shape", "strides"):
        if key in attrs and len(attrs[key]) != 2:  # type: ignore[arg-type]
            raise ModelFormatError(f"{where}: {key} must have 2 entries")
    if "pads" in attrs and len(attrs["pads"]) != 4:  # type: ignore[arg-type]
        raise ModelFormatError(f"{where}: pads must have 4 entries")
    return attrs


def from_onnx(model: onnx.ModelProto) -> Graph:
    """Import a uticompile ONNX model into the IR (raises ModelFormatError with the reason)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise ModelFormatError(f"invalid ONNX: {first}") from None
    meta = _metadata(model)
    try:
        timesteps = int(meta[META_PREFIX + "timesteps"])
    except ValueError:
        raise ModelFormatError("metadata uticompile.timesteps is not an integer") from None
    imports = {o.domain: o.version for o in model.opset_import}
    if imports.get(DOMAIN, DOMAIN_VERSION) != DOMAIN_VERSION:
        raise ModelFormatError(f"domain {DOMAIN} version {imports[DOMAIN]} is not supported")
    _check_functions(model)
    g = model.graph
    params: dict[str, np.ndarray] = {}
    for init in g.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            raise ModelFormatError(f"initializer {init.name!r} is not float32")
        try:
            params[init.name] = np.ascontiguousarray(numpy_helper.to_array(init), dtype=np.float32)
        except (ValueError, TypeError) as exc:
            raise ModelFormatError(f"initializer {init.name!r} is malformed ({exc})") from None
        values = params[init.name]
        if values.size and not np.isfinite(values).all():
            raise ModelFormatError(f"initializer {init.name!r} holds NaN or infinite values")
        if values.size and float(np.abs(values).max()) > MAX_ABS_WEIGHT:
            raise ModelFormatError(
                f"initializer {init.name!r} holds a value beyond {MAX_ABS_WEIGHT:g} in magnitude"
            )
    inputs = [i for i in g.input if i.name not in params]
    if len(inputs) != 1:
        raise ModelFormatError(f"expected one graph input, found {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[1:]):
        raise ModelFormatError(
            f"graph input {inputs[0].name!r} must be [N, C, H, W] with fixed C,H,W"
        )
    input_shape = (dims[1].dim_value, dims[2].dim_value, dims[3].dim_value)
    outputs = {o.name for o in g.output}
    if OUTPUT not in outputs:
        raise ModelFormatError(f"graph output {OUTPUT!r} is missing")

    nodes: list[Node] = []
    output_name = ""
    for i, n in enumerate(g.node):
        op = n.op_type
        name = n.name or f"{op}_{i}"
        onnx_op = op
        if op == LIF_SUBTRACT_AFTER_LEAK and n.domain == DOMAIN:  # an IR LIF (its reset says)
            op = "LIF"
        if n.domain not in ("", "ai.onnx", DOMAIN) or (op not in OP_ATTRS and op != "TimeSplit"):
            raise ModelFormatError(
                f"node {name!r}: unsupported op {(n.domain + '.') if n.domain else ''}{op}"
            )
        if (n.domain == DOMAIN) != (op in (*CUSTOM_OPS, "TimeSplit")):
            raise ModelFormatError(f"node {name!r}: op {op} in the wrong domain {n.domain!r}")
        if len(n.output) != 1:
            raise ModelFormatError(f"node {name!r} ({op}): expected exactly one output")
        if op == "TimeSplit":
            if n.output[0] == OUTPUT:
                output_name = n.input[0]
            elif not (n.output[0] in outputs and n.output[0].endswith(SPIKES_SUFFIX)):
                raise ModelFormatError(f"node {name!r}: TimeSplit may only feed graph outputs")
            continue
        attrs = _convert_attrs(n, op, timesteps)
        if op == "LIF" and (attrs.get("reset") == SUBTRACT_AFTER_LEAK) != (onnx_op != "LIF"):
            raise ModelFormatError(
                f"node {name!r}: reset {attrs.get('reset')!r} needs op "
                f"{LIF_SUBTRACT_AFTER_LEAK if onnx_op == 'LIF' else 'LIF'}"
            )
        try:
            nodes.append(Node(name, op, tuple(n.input), n.output[0], attrs))
        except (TypeError, ValueError) as exc:
            raise ModelFormatError(f"node {name!r}: bad attribute ({exc})") from None
    if not output_name:
        raise ModelFormatError(f"no TimeSplit produces the output {OUTPUT!r}")
    out_dims = next(o for o in g.output if o.name == OUTPUT).type.tensor_type.shape.dim
    if len(out_dims) != 3 or not out_dims[2].HasField("dim_value"):
        raise ModelFormatError(f"output {OUTPUT!r} must be [T, N, classes]")
    graph = Graph(
        name=meta[META_PREFIX + "model"],
        input_name=inputs[0].name,
        input_shape=input_shape,
        output_name=output_name,
        num_classes=out_dims[2].dim_value,
        timesteps=timesteps,
        nodes=nodes,
        params=params,
        encoding=meta[META_PREFIX + "encoding"],
        trained_epochs=_trained_epochs(meta),
    )
    graph.validate()
    unused = set(params) - {p for node in nodes for p in graph.param_names(node)}
    if unused:
        raise ModelFormatError(f"initializer {sorted(unused)[0]!r} is not used by any node")
    return graph
