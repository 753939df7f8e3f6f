"""Structured (channel) pruning's rebuild: the same network with other per-layer widths.

Channels live in *channel spaces*: a Conv or Gemm opens one (its output channels); BN, LIF,
pooling and the encoder pass theirs through; an ``Add`` joins its two inputs' spaces into one,
because the channels it adds must match. So in a residual block the block's output LIF, the
second conv, the shortcut (and, through identity shortcuts, the neighbouring blocks) share one
width. A space takes the largest width any of its LIF layers asks for, so every layer keeps at
least the components its own cutoff needs. The input's space and the classifier's (the graph
output) keep their widths.

The rebuilt network is freshly initialized with the zoo's initialization from ``seed``, drawing
in node order exactly as the zoo builder does: resizing a zoo model to its own widths with the
zoo seed gives back the zoo model, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from uticompile.errors import ConfigError
from uticompile.ir import Graph
from uticompile.models.builder import bn_params, conv_weight, linear_weight

_PASS_THROUGH = ("BatchNormalization", "LIF", "DirectEncode", "MaxPool", "GlobalAveragePool")


class _Spaces:
    """Union-find over channel spaces, keyed by the node that opened them."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def channel_groups(graph: Graph) -> dict[str, str]:
    """Node name -> its channel space (the name of one node that opened it), for every Conv,
    Gemm and LIF node. Nodes in one space must have one width."""
    spaces = _Spaces()
    space_of: dict[str, str] = {graph.input_name: "<input>"}
    spaces.find("<input>")
    for node in graph.nodes:
        if node.op in ("Conv", "Gemm"):
            space_of[node.output] = spaces.find(node.name)
        elif node.op in _PASS_THROUGH:
            space_of[node.output] = space_of[node.inputs[0]]
        elif node.op == "Add":
            spaces.union(space_of[node.inputs[0]], space_of[node.inputs[1]])
            space_of[node.output] = space_of[node.inputs[0]]
        elif node.op == "Flatten":
            space_of[node.output] = f"<flatten:{node.name}>"  # features, resized with the source
        else:  # pragma: no cover - validate() rejects other ops
            raise ConfigError(f"node {node.name}: cannot resize channels through {node.op}")
    return {
        n.name: spaces.find(space_of[n.output])
        for n in graph.nodes
        if n.op in ("Conv", "Gemm", "LIF")
    }


def shared_widths(graph: Graph, lif_widths: Mapping[str, int]) -> dict[str, int]:
    """Output channels of every Conv/Gemm node when each LIF layer asks for ``lif_widths``.

    Spaces without a LIF width, the input's and the classifier's keep their current width.
    """
    groups = channel_groups(graph)
    shapes = graph.shapes()
    fixed = {"<input>"}
    head = graph.producer(graph.output_name)
    if head is not None and head.name in groups:
        fixed.add(groups[head.name])
    want: dict[str, int] = {}
    for name, k in lif_widths.items():
        if name not in groups or graph.node(name).op != "LIF":
            raise ConfigError(f"{name} is not a LIF layer of {graph.name}")
        if k < 1:
            raise ConfigError(f"layer {name}: width must be >= 1, got {k}")
        g = groups[name]
        want[g] = max(want.get(g, 0), int(k))
    out: dict[str, int] = {}
    for node in graph.weight_nodes():
        g = groups[node.name]
        current = shapes[node.output][0]
        out[node.name] = current if g in fixed or g not in want else want[g]
    return out


def resize_channels(graph: Graph, out_channels: Mapping[str, int], *, seed: int) -> Graph:
    """``graph`` rebuilt with ``out_channels`` (Conv/Gemm node -> width), freshly initialized.

    Raises ConfigError when the widths break a channel space (an Add over unequal widths).
    """
    g = graph.copy()
    rng = np.random.default_rng(seed)
    shapes = graph.shapes()
    channels: dict[str, int] = {graph.input_name: graph.input_shape[0]}
    for node in g.nodes:
        names = g.param_names(node)
        c_in = channels[node.inputs[0]]
        if node.op == "Conv":
            old = g.params[names[0]].shape
            c_out = int(out_channels.get(node.name, old[0]))
            g.params[names[0]] = conv_weight(rng, (c_out, c_in, *old[2:])).astype(np.float32)
            if len(names) > 1:
                g.params[names[1]] = np.zeros(c_out, np.float32)
            channels[node.output] = c_out
        elif node.op == "Gemm":
            old = g.params[names[0]].shape
            c_out = int(out_channels.get(node.name, old[0]))
            g.params[names[0]] = linear_weight(rng, (c_out, c_in)).astype(np.float32)
            g.params[names[1]] = np.zeros(c_out, np.float32)
            channels[node.output] = c_out
        elif node.op == "BatchNormalization":
            for name, value in zip(names, bn_params(c_in), strict=True):
                g.params[name] = value.astype(np.float32)
            channels[node.output] = c_in
        elif node.op == "Add":
            other = channels[node.inputs[1]]
            if other != c_in:
                raise ConfigError(
                    f"node {node.name} adds {c_in} and {other} channels: widths joined by an "
                    "add must be equal"
                )
            channels[node.output] = c_in
        elif node.op == "Flatten":
            src = shapes[node.inputs[0]]
            channels[node.output] = c_in * int(np.prod(src[1:]))
        else:
            channels[node.output] = c_in
    g.validate()
    return g


def weight_count(graph: Graph) -> int:
    """Conv and linear weights: the PE-mapped parameters structured pruning removes."""
    return sum(int(graph.params[n.inputs[1]].size) for n in graph.weight_nodes())
