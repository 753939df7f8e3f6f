"""FoldBatchNorm: merge every inference-mode BatchNorm into the conv or linear layer before it.

w' = w * gamma / sqrt(var + eps) per output channel and b' = (b - mean) * gamma / sqrt(var + eps)
+ beta, computed in float64 and stored as float32. Zero weights stay exactly zero, so pruning
masks (and u-Ticket's balanced workloads) are untouched. The accelerator has no BN unit: a BN that
cannot be folded is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from uticompile.errors import InvariantError, PassError
from uticompile.ir import Graph
from uticompile.passes.base import PassResult


@dataclass(frozen=True)
class FoldBatchNorm:
    name: ClassVar[str] = "fold-batchnorm"

    def __call__(self, graph: Graph) -> PassResult:
        g = graph.copy()
        changed = False
        for bn in [n for n in g.nodes if n.op == "BatchNormalization"]:
            producer = g.producer(bn.inputs[0])
            if producer is None or producer.op not in ("Conv", "Gemm"):
                raise PassError(f"BatchNorm {bn.name!r} does not follow a conv or linear layer")
            if len(g.consumers(producer.output)) != 1:
                raise PassError(f"{producer.name!r} feeds more than its BatchNorm {bn.name!r}")
            gamma, beta, mean, var = (g.params[p].astype(np.float64) for p in g.param_names(bn))
            scale = gamma / np.sqrt(var + bn.number("epsilon"))
            w_name = producer.inputs[1]
            w = g.params[w_name].astype(np.float64)
            shape = (-1,) + (1,) * (w.ndim - 1)
            g.params[w_name] = (w * scale.reshape(shape)).astype(np.float32)
            if len(producer.inputs) == 3:
                b = g.params[producer.inputs[2]].astype(np.float64)
            else:
                b = np.zeros_like(mean)
                b_name = f"{producer.name}.bias"
                if b_name in g.params:
                    raise PassError(f"parameter {b_name!r} already exists")
                producer.inputs = (*producer.inputs, b_name)
            g.params[producer.inputs[2]] = ((b - mean) * scale + beta).astype(np.float32)
            producer.output = bn.output
            g.nodes.remove(bn)
            for p in g.param_names(bn):
                if not any(p in n.inputs for n in g.nodes):
                    del g.params[p]
            changed = True
        if any(n.op == "BatchNormalization" for n in g.nodes):  # postcondition
            raise InvariantError("a BatchNorm survived folding")
        g.validate()
        return PassResult(g, changed)
