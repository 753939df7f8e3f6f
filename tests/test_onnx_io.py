"""ONNX export and import: structure, exact round trips, determinism, and rejection of bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from uticompile.errors import ModelFormatError
from uticompile.ir import NEURON_PRESETS, Graph
from uticompile.models.zoo import ZOO, ModelSpec, build_model
from uticompile.onnx_export import serialize, to_onnx
from uticompile.onnx_functions import DOMAIN, IR_VERSION
from uticompile.onnx_import import from_onnx, load_onnx, read_graph


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("neuron", ["paper", "spikingjelly"])
def test_round_trip_is_exact(name: str, neuron: str) -> None:
    spec = ModelSpec((3, 32, 32), 10, width=0.25, timesteps=5, neuron=NEURON_PRESETS[neuron])
    graph = build_model(name, spec)
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    back = from_onnx(onnx.ModelProto.FromString(serialize(model)))
    assert back.equals(graph)
    assert serialize(to_onnx(back)) == serialize(model)


def test_every_layer_appears_once_and_lif_is_a_function(small_graphs: dict[str, Graph]) -> None:
    graph = small_graphs["vgg_small"]
    model = to_onnx(graph)
    ops = [(n.domain, n.op_type) for n in model.graph.node]
    assert ops.count((DOMAIN, "LIF")) == len(list(graph.lif_nodes())) == 4
    assert ops.count(("", "Conv")) == 4
    assert {f.name for f in model.functions} == {"LIF", "DirectEncode", "TimeSplit"}
    lif = next(n for n in model.graph.node if n.op_type == "LIF")
    attrs = {a.name: helper.get_attribute_value(a) for a in lif.attribute}
    assert attrs["leak"] == pytest.approx(0.5)
    assert attrs["threshold"] == 1.0
    assert attrs["reset"] == b"hard"
    assert attrs["timesteps"] == 4
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["uticompile.timesteps"] == "4"
    assert meta["uticompile.encoding"] == "direct"
    assert meta["uticompile.model"] == "vgg_small"
    assert model.ir_version == IR_VERSION <= 13


def test_float_attributes_survive_as_float32() -> None:
    spec = ModelSpec((1, 32, 32), 10, neuron=NEURON_PRESETS["paper"].__class__(leak=0.1))
    graph = build_model("vgg_small", spec)
    assert graph.nodes[3].attrs["leak"] == float(np.float32(0.1))
    assert from_onnx(to_onnx(graph)).equals(graph)


def test_same_graph_same_bytes(small_graphs: dict[str, Graph]) -> None:
    g = small_graphs["resnet_small"]
    assert serialize(to_onnx(g)) == serialize(to_onnx(g.copy()))


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(serialize(model))
    return path


def test_unknown_op_is_named(tmp_path: Path, small_graphs: dict[str, Graph]) -> None:
    model = to_onnx(small_graphs["vgg_small"])
    node = next(n for n in model.graph.node if n.op_type == "MaxPool")
    node.op_type = "LpPool"
    with pytest.raises(ModelFormatError, match=r"node 'pool1': unsupported op LpPool"):
        read_graph(_save(model, tmp_path / "m.onnx"))


def test_custom_domain_op_is_named(small_graphs: dict[str, Graph]) -> None:
    model = to_onnx(small_graphs["vgg_small"])
    model.graph.node[0].domain = "com.example"
    model.graph.node[0].op_type = "Mystery"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(ModelFormatError, match=r"unsupported op com.example.Mystery"):
        from_onnx(model)


def test_tampered_lif_body_is_rejected(small_graphs: dict[str, Graph]) -> None:
    model = to_onnx(small_graphs["vgg_small"])
    lif = next(f for f in model.functions if f.name == "LIF")
    lif.doc_string = "changed"
    with pytest.raises(ModelFormatError, match="differs from uticompile's definition"):
        from_onnx(model)


def test_not_onnx_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\x00 this is not protobuf" * 10)
    with pytest.raises(ModelFormatError, match="not an ONNX model"):
        load_onnx(junk)
    with pytest.raises(ModelFormatError, match="no such file"):
        load_onnx(tmp_path / "absent.onnx")


def test_foreign_onnx_without_metadata(tmp_path: Path) -> None:
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = helper.make_model(g, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(ModelFormatError, match="not a uticompile model"):
        from_onnx(model)


def test_bad_attribute_values_are_rejected(small_graphs: dict[str, Graph]) -> None:
    model = to_onnx(small_graphs["vgg_small"])
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    conv.attribute.append(helper.make_attribute("auto_pad", "SAME_UPPER"))
    with pytest.raises(ModelFormatError, match="auto_pad"):
        from_onnx(model)
    model = to_onnx(small_graphs["vgg_small"])
    lif = next(n for n in model.graph.node if n.op_type == "LIF")
    next(a for a in lif.attribute if a.name == "reset").s = b"sideways"
    with pytest.raises(ModelFormatError, match="reset"):
        from_onnx(model)
    model = to_onnx(small_graphs["vgg_small"])
    lif = next(n for n in model.graph.node if n.op_type == "LIF")
    next(a for a in lif.attribute if a.name == "timesteps").i = 7
    with pytest.raises(ModelFormatError, match="timesteps 7"):
        from_onnx(model)


def test_shape_mismatch_is_rejected(small_graphs: dict[str, Graph]) -> None:
    model = to_onnx(small_graphs["vgg_small"])
    init = next(i for i in model.graph.initializer if i.name == "conv2.weight")
    arr = np.zeros((32, 3, 3, 3), np.float32)
    init.CopyFrom(onnx.numpy_helper.from_array(arr, "conv2.weight"))
    with pytest.raises(ModelFormatError, match="conv2"):
        from_onnx(model)


def test_training_provenance_travels_with_the_file(small_graphs: dict[str, Graph]) -> None:
    """The zoo writes trained_epochs 0; the file keeps it; unknown stays unknown; junk is named."""
    g = small_graphs["vgg_small"]
    assert g.trained_epochs == 0
    assert from_onnx(to_onnx(g)).trained_epochs == 0
    trained = g.copy()
    trained.trained_epochs = 7
    back = from_onnx(to_onnx(trained))
    assert back.trained_epochs == 7
    assert back.equals(g)  # provenance is not part of the network
    unknown = g.copy()
    unknown.trained_epochs = None
    model = to_onnx(unknown)
    assert not any(p.key.endswith("trained_epochs") for p in model.metadata_props)
    assert from_onnx(model).trained_epochs is None
    model = to_onnx(trained)
    next(p for p in model.metadata_props if p.key.endswith("trained_epochs")).value = "-1"
    with pytest.raises(ModelFormatError, match="trained_epochs"):
        from_onnx(model)
