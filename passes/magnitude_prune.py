"""Global magnitude pruning (the lottery-ticket step of u-Ticket Algorithm 1, line 5).

One threshold for the whole network, not per layer: layers that matter less lose more weights,
as in the public code. A pure function on numpy arrays so it can be tested and reused without
torch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from uticompile.errors import ConfigError


def global_magnitude_prune(
    weights: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], rate: float
) -> dict[str, np.ndarray]:
    """Remove the ``round(rate * survivors)`` smallest ``|w|`` among all layers' survivors.

    Survivors are the positions where ``masks`` is true (a layer missing from ``masks`` is dense).
    Ties are broken by a stable order (layer order of ``weights``, then C-order flat index), so
    the result is deterministic. Nothing pruned is ever revived; inputs are not mutated. Returns
    new bool masks for every layer of ``weights``.
    """
    if not (0.0 <= rate <= 1.0) or not np.isfinite(rate):
        raise ConfigError(f"pruning rate must be in [0, 1], got {rate}")
    names = list(weights)
    flat_masks: list[np.ndarray] = []
    for name in names:
        w = np.asarray(weights[name])
        m = masks.get(name)
        if m is None:
            flat_masks.append(np.ones(w.size, dtype=bool))
            continue
        m = np.asarray(m)
        if m.shape != w.shape:
            raise ConfigError(f"mask for {name} has shape {m.shape}, weight {w.shape}")
        flat_masks.append(m.reshape(-1).astype(bool))  # fresh copy
    sizes = [np.asarray(weights[n]).size for n in names]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    all_mask = np.concatenate(flat_masks) if names else np.zeros(0, dtype=bool)
    surv = np.flatnonzero(all_mask)
    k = round(rate * surv.size)
    if k > 0:
        mags = np.concatenate(
            [np.abs(np.asarray(weights[n], dtype=np.float64)).ravel() for n in names]
        )
        # Stable sort of the survivors by magnitude: ties keep (layer, flat index) order.
        order = np.argsort(mags[surv], kind="stable")
        all_mask[surv[order[:k]]] = False
    return {
        name: all_mask[offsets[i] : offsets[i + 1]].reshape(np.shape(weights[name]))
        for i, name in enumerate(names)
    }


def layer_magnitude_prune(
    weights: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    counts: Mapping[str, int],
) -> dict[str, np.ndarray]:
    """Keep exactly ``counts[name]`` survivors of each layer, the largest ``|w|`` first.

    The per-layer twin of ``global_magnitude_prune``: a comparison that must hold every layer's
    count equal to a baseline's (not only the network's total) prunes each variant to the
    baseline's per-layer counts. Ties keep C-order; a layer missing from ``counts`` keeps its
    survivors. Raises ConfigError for a count below 0 or above the layer's survivors, since
    pruning never revives a weight.
    """
    out: dict[str, np.ndarray] = {}
    for name, w in weights.items():
        w = np.asarray(w)
        m = masks.get(name)
        flat = np.ones(w.size, dtype=bool) if m is None else np.asarray(m).reshape(-1).astype(bool)
        if flat.size != w.size:
            raise ConfigError(f"mask for {name} has {flat.size} entries, weight {w.size}")
        keep = counts.get(name)
        surv = np.flatnonzero(flat)
        if keep is not None:
            if not 0 <= keep <= surv.size:
                raise ConfigError(
                    f"layer {name}: cannot keep {keep} weights of its {surv.size} survivors"
                )
            order = np.argsort(np.abs(w.reshape(-1)[surv].astype(np.float64)), kind="stable")
            flat[surv[order[: surv.size - keep]]] = False
        out[name] = flat.reshape(w.shape)
    return out
