"""Accuracy and spike sparsity of an ONNX file, computed by onnxruntime running that file."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from uticompile.datasets import Dataset
from uticompile.ir import Graph
from uticompile.models.batches import iterate_batches
from uticompile.models.train import Evaluation
from uticompile.onnx_export import OUTPUT, SPIKES_SUFFIX, serialize, with_spike_outputs


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A deterministic single-model CPU session."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(serialize(model), options, providers=["CPUExecutionProvider"])


def evaluate_onnx(
    model: onnx.ModelProto, graph: Graph, data: Dataset, *, batch_size: int = 256
) -> Evaluation:
    """Run ``model`` (whose IR is ``graph``) on the test split, with every LIF's spikes exposed."""
    sess = session(with_spike_outputs(model, graph))
    names = [o.name for o in sess.get_outputs()]
    correct = seen = 0
    zeros = dict.fromkeys(names[1:], 0)
    sizes = dict.fromkeys(names[1:], 0)
    for x, y in iterate_batches(
        data, "test", batch_size, shuffle=False, augment=False, generator=None
    ):
        outs = dict(zip(names, sess.run(names, {graph.input_name: x.numpy()}), strict=True))
        pred = outs[OUTPUT].sum(0).argmax(-1)
        correct += int((pred == y.numpy()).sum())
        seen += len(y)
        for k in zeros:
            zeros[k] += int(np.count_nonzero(outs[k] == 0))
            sizes[k] += outs[k].size
    layer = {n.output + SPIKES_SUFFIX: n.name for n in graph.lif_nodes()}
    sparsity = {layer[k]: zeros[k] / sizes[k] for k in zeros}
    return Evaluation(correct / max(seen, 1), seen, sparsity)
