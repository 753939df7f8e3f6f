"""Workload balancing of a whole network's masks (u-Ticket Algorithm 1, lines 6-16).

Applies ``balance_mask`` to every in-scope layer with the layer's PE layout and checks the
result against the pruned mask (``iso`` targets: counts conserved, spread <= 1; ``ceil``: every PE
at the group max; ``cycles``: the expected-cycles bound) so an unbalanced mask never reaches
training. Layers out of scope keep their masks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from uticompile.errors import ConfigError, PassError
from uticompile.grouping import group_layout
from uticompile.ir import Graph
from uticompile.passes.balance import (
    BALANCE_MODES,
    balance_mask,
    check_balanced,
    check_cycles_balanced,
    check_iso_balanced,
)


@dataclass(frozen=True)
class LayerBalance:
    """What balancing changed in one layer: positions regrown and survivors removed, and the
    layer's nonzero count before (as pruned) and after balancing (equal under ``iso`` targets).
    """

    regrown: int
    removed: int
    before: int
    after: int


def prunable_layers(graph: Graph) -> list[str]:
    """Every Conv and Gemm node, in graph order: the layers pruning and balancing act on."""
    return [n.name for n in graph.weight_nodes()]


def layer_weights(graph: Graph) -> dict[str, np.ndarray]:
    """Node name -> weight array of every prunable layer (shared, not copied)."""
    return {n.name: graph.params[n.inputs[1]] for n in graph.weight_nodes()}


def scope_layers(graph: Graph, *, paper_compat: bool) -> list[str]:
    """Layers balanced and counted in utilization.

    Default: every conv and linear layer. ``paper_compat``: the public code's scope, which skips
    the first conv (it reads the analog image) and every linear layer.
    """
    nodes = list(graph.weight_nodes())
    if not paper_compat:
        return [n.name for n in nodes]
    convs = [n.name for n in nodes if n.op == "Conv"]
    return convs[1:]


def balance_masks(
    graph: Graph,
    masks: Mapping[str, np.ndarray],
    *,
    mode: str,
    n: int,
    grouping: str,
    rng: np.random.Generator,
    scope: Iterable[str],
    scores: Mapping[str, np.ndarray] | None = None,
    costs: Mapping[str, np.ndarray] | None = None,
    targets: str = "iso",
) -> tuple[dict[str, np.ndarray], dict[str, LayerBalance]]:
    """Balance every layer of ``scope``; returns new masks (all layers) and per-layer changes.

    ``scores`` (trained weights) are needed by ``magnitude`` and ``cycles``, ``costs``
    (expected cycles per position, broadcastable to the weight) by ``cycles``; ``targets`` is
    the count rule (``iso`` or the public code's ``ceil``). Layers are processed in graph order
    with the one ``rng``, so the same seed gives the same masks. Raises PassError naming the
    layer if a postcondition fails.
    """
    if mode not in BALANCE_MODES:
        raise ConfigError(
            f"unknown balance mode {mode!r}; expected one of {', '.join(BALANCE_MODES)}"
        )
    wanted = set(scope)
    out = {k: np.asarray(v, dtype=bool).copy() for k, v in masks.items()}
    info: dict[str, LayerBalance] = {}
    for node in graph.weight_nodes():
        if node.name not in wanted:
            continue
        shape = tuple(graph.params[node.inputs[1]].shape)
        layout = group_layout(shape, n, grouping)
        before = out.get(node.name, np.ones(shape, dtype=bool))
        after = balance_mask(
            before,
            layout,
            mode,
            rng=rng,
            scores=None if scores is None else scores.get(node.name),
            cost=None if costs is None else costs.get(node.name),
            targets=targets,
        )
        try:
            if targets == "iso":
                check_iso_balanced(after, before, layout)
            else:
                check_balanced(after, layout)
            if mode == "cycles" and costs is not None:
                check_cycles_balanced(after, before, layout, costs[node.name])
        except PassError as exc:
            raise PassError(f"layer {node.name}: {exc}") from exc
        info[node.name] = LayerBalance(
            regrown=int((after & ~before).sum()),
            removed=int((before & ~after).sum()),
            before=int(before.sum()),
            after=int(after.sum()),
        )
        out[node.name] = after
    return out, info
