"""Pruning inside the user's own training loop (as NNI and SparseML allow).

The lottery runner owns its training loop; a ``Pruner`` owns none. Between their own epochs the
user calls ``step()`` (one round of Algorithm 1, lines 5-16: global magnitude pruning of the
survivors, then PE workload balancing) and ``apply(net)`` (pruned weights zeroed and held at
zero). The strategies are the library's own (``global_magnitude_prune``, ``balance_masks``), so a
pruner step gives the masks a lottery round gives for the same weights, masks and seed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from uticompile.errors import ConfigError
from uticompile.grouping import GROUPINGS
from uticompile.ir import Graph
from uticompile.models.snn import SNN
from uticompile.models.train import apply_masks
from uticompile.passes.balance_layers import balance_masks, layer_weights, scope_layers
from uticompile.passes.lottery import BALANCE_CHOICES, masked_graph
from uticompile.passes.magnitude_prune import global_magnitude_prune


@dataclass(frozen=True)
class PruneStep:
    """What one ``Pruner.step`` did: the new masks' sparsity and balancing's changes per layer."""

    step: int
    sparsity: float
    layer_sparsity: Mapping[str, float]
    regrown: Mapping[str, int]
    removed: Mapping[str, int]
    balance_seconds: float


class Pruner:
    """Masks for an IR graph or a torch ``SNN``, pruned ``rate`` per step and PE-balanced.

    ``balance``: ``none``, ``uticket``, ``magnitude`` or ``cycles`` (the latter needs
    per-position ``costs`` passed to ``step``). ``pes`` and ``grouping`` give each layer's PE
    layout; ``paper_compat`` balances only the public code's scope. Masks start dense.
    """

    def __init__(
        self,
        model: Graph | SNN,
        *,
        rate: float = 0.25,
        balance: str = "uticket",
        pes: int = 16,
        grouping: str = "sata",
        seed: int = 0,
        paper_compat: bool = False,
    ) -> None:
        if not 0.0 < rate < 1.0:
            raise ConfigError(f"rate must be in (0, 1), got {rate}", option="rate")
        if balance not in BALANCE_CHOICES:
            raise ConfigError(
                f"balance must be one of {', '.join(BALANCE_CHOICES)}, got {balance!r}",
                option="balance",
            )
        if pes < 1:
            raise ConfigError(f"pes must be >= 1, got {pes}", option="pes")
        if grouping not in GROUPINGS:
            raise ConfigError(f"grouping must be one of {', '.join(GROUPINGS)}", option="grouping")
        self.graph = model.to_graph() if isinstance(model, SNN) else model
        self.rate, self.balance, self.pes, self.grouping = rate, balance, pes, grouping
        self.seed = seed
        self.scope = scope_layers(self.graph, paper_compat=paper_compat)
        self.masks: dict[str, np.ndarray] = {
            n: np.ones(w.shape, dtype=bool) for n, w in layer_weights(self.graph).items()
        }
        self.steps = 0
        self._hooks: list[Any] = []

    def step(
        self,
        model: Graph | SNN | None = None,
        *,
        costs: Mapping[str, np.ndarray] | None = None,
    ) -> PruneStep:
        """Prune ``rate`` of the survivors by global magnitude of ``model``'s current weights
        (default: the graph given at construction), then balance; updates ``self.masks``."""
        if self.balance == "cycles" and costs is None:
            raise ConfigError("costs are needed by cycles balancing", option="costs")
        weights = _weights(self.graph if model is None else model)
        if set(weights) != set(self.masks):
            raise ConfigError("model's weight layers are not the ones this pruner was made for")
        pruned = global_magnitude_prune(weights, self.masks, self.rate)
        self.steps += 1
        regrown = dict.fromkeys(self.scope, 0)
        removed = dict.fromkeys(self.scope, 0)
        t0 = time.perf_counter()
        masks = pruned
        if self.balance != "none":
            rng = np.random.default_rng([self.seed, self.steps, 1])
            masks, info = balance_masks(
                self.graph, pruned, mode=self.balance, n=self.pes, grouping=self.grouping,
                rng=rng, scope=self.scope, scores=weights, costs=costs,
            )  # fmt: skip
            for name, change in info.items():
                regrown[name], removed[name] = change.regrown, change.removed
        seconds = time.perf_counter() - t0
        self.masks = masks
        sizes = {n: m.size for n, m in masks.items()}
        kept = {n: int(np.count_nonzero(m)) for n, m in masks.items()}
        return PruneStep(
            step=self.steps,
            sparsity=1.0 - sum(kept.values()) / max(sum(sizes.values()), 1),
            layer_sparsity={n: 1.0 - kept[n] / sizes[n] for n in masks},
            regrown=regrown,
            removed=removed,
            balance_seconds=seconds,
        )

    def apply(self, net: SNN) -> None:
        """Zero ``net``'s pruned weights and keep them zero while the user trains.

        A gradient hook masks every weight's gradient, and a forward pre-hook re-zeroes the
        weight before each forward pass (so optimizer momentum or weight decay cannot revive a
        pruned weight). Replaces the hooks of an earlier ``apply``.
        """
        self.remove()
        masks = apply_masks(net, self.masks)
        layers = net.weight_layers()
        for name, m in masks.items():
            layer = layers[name]
            self._hooks.append(layer.weight.register_hook(lambda g, m=m: g * m))
            self._hooks.append(layer.register_forward_pre_hook(_rezero(layer.weight, m)))

    def remove(self) -> None:
        """Remove the hooks ``apply`` installed (the weights stay as they are)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def pruned_graph(self, model: Graph | SNN) -> Graph:
        """``model``'s graph with pruned weights set to +0.0: what ``map_model`` takes."""
        return masked_graph(model.to_graph() if isinstance(model, SNN) else model, self.masks)


def _rezero(weight: torch.Tensor, mask: torch.Tensor) -> Any:
    def hook(_module: torch.nn.Module, _args: Any) -> None:
        with torch.no_grad():
            weight.mul_(mask)

    return hook


def _weights(model: Graph | SNN) -> dict[str, np.ndarray]:
    if isinstance(model, SNN):
        return {
            n: layer.weight.detach().cpu().to(torch.float32).numpy()
            for n, layer in model.weight_layers().items()
        }
    return layer_weights(model)
