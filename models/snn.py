"""A trainable PyTorch module that executes any IR graph, and the way back to the IR.

One interpreter serves every model (zoo-built or imported from ONNX), so whatever the exporter
writes can be trained again. Parameters live in standard torch layers keyed by node, so pruning
code finds every prunable weight as ``module.layers[node].weight``.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from uticompile.ir import Graph, Node
from uticompile.models.lif import LIF


def module_key(node_name: str) -> str:
    """A ModuleDict key for a node name (ONNX names may hold characters torch refuses)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", node_name)


class SNN(nn.Module):
    """Executes ``graph``: input [B,C,H,W] analog images -> logits [T, B, classes]."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        graph.validate()
        self.graph = graph.copy()
        self.timesteps = graph.timesteps
        shapes = graph.shapes()
        self.layers = nn.ModuleDict()
        keys = [module_key(n.name) for n in graph.nodes]
        if len(set(keys)) != len(keys):
            raise ValueError("node names collide after sanitizing")  # validate() prevents this
        for node, key in zip(graph.nodes, keys, strict=True):
            layer = self._make_layer(node, shapes[node.inputs[0]])
            if layer is not None:
                self.layers[key] = layer
        self.load_graph_params(graph)

    def _make_layer(self, node: Node, in_shape: tuple[int, ...]) -> nn.Module | None:
        g = self.graph
        if node.op == "Conv":
            w = g.params[node.inputs[1]]
            pt, pl, pb, pr = node.ints("pads")
            if (pt, pl) != (pb, pr):
                raise ValueError(f"node {node.name}: asymmetric padding is not supported")
            return nn.Conv2d(
                w.shape[1],
                w.shape[0],
                node.ints("kernel_shape"),  # type: ignore[arg-type]
                stride=node.ints("strides"),  # type: ignore[arg-type]
                padding=(pt, pl),
                bias=len(node.inputs) == 3,
            )
        if node.op == "BatchNormalization":
            cls = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
            momentum = 1.0 - node.number("momentum")  # ONNX and torch define it oppositely
            return cls(in_shape[0], eps=node.number("epsilon"), momentum=momentum)
        if node.op == "Gemm":
            w = g.params[node.inputs[1]]
            return nn.Linear(w.shape[1], w.shape[0])
        if node.op == "LIF":
            return LIF(node.lif(), self.timesteps)
        return None

    # -- parameters <-> graph ---------------------------------------------------------------------
    def _param_slots(self) -> list[tuple[str, torch.Tensor]]:
        """(graph parameter name, the tensor holding it) for every parameter, in graph order."""
        slots: list[tuple[str, torch.Tensor]] = []
        for node in self.graph.nodes:
            names = self.graph.param_names(node)
            if not names:
                continue
            layer = self.layers[module_key(node.name)]
            attrs: tuple[str, ...] = ("weight", "bias")
            if node.op == "BatchNormalization":
                attrs = ("weight", "bias", "running_mean", "running_var")
            slots.extend(
                (name, getattr(layer, attr)) for name, attr in zip(names, attrs, strict=False)
            )
        return slots

    @torch.no_grad()
    def load_graph_params(self, graph: Graph) -> None:
        """Copy ``graph``'s parameters into the layers (bit-exact)."""
        for name, tensor in self._param_slots():
            tensor.copy_(torch.from_numpy(graph.params[name]))

    @torch.no_grad()
    def to_graph(self) -> Graph:
        """The IR graph with this module's current parameters (float32, bit-exact copies)."""
        g = self.graph.copy()
        for name, tensor in self._param_slots():
            g.params[name] = tensor.detach().cpu().to(torch.float32).numpy().copy()
        g.timesteps = self.timesteps
        return g

    def weight_layers(self) -> dict[str, nn.Conv2d | nn.Linear]:
        """Node name -> Conv2d/Linear layer: the prunable, PE-mapped weights."""
        out: dict[str, nn.Conv2d | nn.Linear] = {}
        for n in self.graph.weight_nodes():
            layer = self.layers[module_key(n.name)]
            assert isinstance(layer, (nn.Conv2d, nn.Linear))
            out[n.name] = layer
        return out

    def set_timesteps(self, timesteps: int) -> None:
        """Run with another T (e.g. ET-ticket search with fewer timesteps)."""
        self.timesteps = timesteps
        for layer in self.layers.values():
            if isinstance(layer, LIF):
                layer.timesteps = timesteps

    # -- execution -----------------------------------------------------------------------------
    def forward(
        self, x: torch.Tensor, spikes: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Logits [T, B, classes]; each LIF's output [T, B, ...] goes into ``spikes`` if given."""
        values: dict[str, torch.Tensor] = {self.graph.input_name: x}
        T = self.timesteps
        for node in self.graph.nodes:
            inp = values[node.inputs[0]]
            op = node.op
            if op in ("Conv", "BatchNormalization", "Gemm", "LIF"):
                out = self.layers[module_key(node.name)](inp)
                if op == "LIF" and spikes is not None:
                    spikes[node.name] = out.reshape(T, -1, *out.shape[1:])
            elif op == "DirectEncode":
                out = inp.unsqueeze(0).expand(T, *inp.shape).reshape(-1, *inp.shape[1:])
            elif op == "MaxPool":
                out = F.max_pool2d(inp, node.ints("kernel_shape"), node.ints("strides"))
            elif op in ("AveragePool", "SumPool"):
                out = _window_pool(inp, node)
            elif op == "GlobalAveragePool":
                out = inp.mean(dim=(2, 3), keepdim=True)
            elif op == "Add":
                out = inp + values[node.inputs[1]]
            elif op == "Flatten":
                out = inp.flatten(1)
            else:  # pragma: no cover - validate() rejects other ops
                raise ValueError(f"unsupported op {op}")
            values[node.output] = out
        logits = values[self.graph.output_name]
        return logits.reshape(T, -1, logits.shape[-1])


def _window_pool(x: torch.Tensor, node: Node) -> torch.Tensor:
    """Average (zero padding counted) or sum over windows; symmetric padding only."""
    pt, pl, pb, pr = node.ints("pads")
    if (pt, pl) != (pb, pr):
        raise ValueError(f"node {node.name}: asymmetric padding is not supported")
    return F.avg_pool2d(
        x,
        node.ints("kernel_shape"),
        node.ints("strides"),
        (pt, pl),
        count_include_pad=True,
        divisor_override=1 if node.op == "SumPool" else None,
    )


def predict(logits: torch.Tensor) -> torch.Tensor:
    """Class prediction: argmax of the logits summed over timesteps."""
    return logits.sum(0).argmax(-1)


def spike_sparsity(spikes: dict[str, torch.Tensor]) -> dict[str, float]:
    """Fraction of zero entries in each layer's spike tensor."""
    return {k: float(1.0 - v.float().mean().item()) for k, v in spikes.items()}
