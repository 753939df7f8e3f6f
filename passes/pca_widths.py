"""Spatial pruning's measurement: how many channels each LIF layer needs, by PCA.

For every LIF layer, the membrane potential after integration and before reset, averaged over
the T timesteps, is recorded on M training images. Rows are (image, spatial position), columns
are channels; the centered covariance's eigenvalues give the explained-variance spectrum, and the
layer keeps the smallest k whose components explain at least ``variance`` of the total.

The covariance is accumulated in float64 batch by batch (count, sum, sum of outer products), so M
images never sit in memory at once. The default cutoff 0.999 is *our* choice: the spatio-temporal
pruning paper's own cutoff is not in the text available here; 0.999 follows the same group's
earlier PCA-based design work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from uticompile.datasets import Dataset
from uticompile.errors import ConfigError
from uticompile.ir import Graph
from uticompile.models.batches import iterate_batches
from uticompile.models.lif import LIF
from uticompile.models.snn import SNN, module_key

DEFAULT_VARIANCE = 0.999  # ours; see the module docstring
DEFAULT_SAMPLES = 256


@dataclass(frozen=True)
class LayerSpectrum:
    """One LIF layer's PCA result: cumulative explained variance per component and the width."""

    layer: str
    channels: int
    rows: int
    cumulative: tuple[float, ...]
    width: int


def check_variance(variance: float) -> None:
    if not (0.0 < variance <= 1.0):
        raise ConfigError(f"variance must be in (0, 1], got {variance}", option="variance")


def channel_rows(mean_membrane: np.ndarray) -> np.ndarray:
    """[B, C, H, W] (or [B, C]) -> [B*H*W, C]: one row per image and position, one column per
    channel."""
    x = np.asarray(mean_membrane)
    if x.ndim == 2:
        return x
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def cumulative_explained_variance(count: int, total: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Cumulative explained-variance ratio of the centered covariance, largest component first.

    ``total`` is the column sum and ``outer`` the sum of row outer products over ``count`` rows.
    A layer whose covariance is zero (it never varies) explains everything with one component.
    """
    if count < 2:
        raise ConfigError("PCA needs at least 2 rows of activations")
    cov = (outer - np.outer(total, total) / count) / (count - 1)
    eig = np.clip(np.linalg.eigvalsh((cov + cov.T) / 2)[::-1], 0.0, None)
    s = eig.sum()
    if s <= 0:
        return np.ones_like(eig)
    cum = np.cumsum(eig) / s
    cum[-1] = 1.0
    return cum


def select_width(cumulative: np.ndarray, variance: float) -> int:
    """The smallest k whose first k components explain at least ``variance``."""
    check_variance(variance)
    return int(np.searchsorted(np.asarray(cumulative), variance - 1e-12, side="left")) + 1


def spectrum_of_rows(layer: str, rows: np.ndarray, variance: float) -> LayerSpectrum:
    """PCA of one matrix of activations (rows x channels); used on synthetic data by the tests."""
    r = np.asarray(rows, np.float64)
    cum = cumulative_explained_variance(r.shape[0], r.sum(0), r.T @ r)
    width = select_width(cum, variance)
    return LayerSpectrum(layer, r.shape[1], r.shape[0], tuple(cum.tolist()), width)


@torch.no_grad()
def pca_spectra(
    graph: Graph,
    data: Dataset,
    *,
    variance: float = DEFAULT_VARIANCE,
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, LayerSpectrum]:
    """Spectrum and width of every LIF layer of ``graph`` on its first ``samples`` train images."""
    check_variance(variance)
    if samples < 2:
        raise ConfigError(f"samples must be >= 2, got {samples}", option="samples")
    net = SNN(graph).eval()
    stats: dict[str, list] = {}

    def hook_for(name: str) -> Callable[[torch.nn.Module, tuple[torch.Tensor, ...], object], None]:
        def hook(mod: torch.nn.Module, args: tuple[torch.Tensor, ...], _out: object) -> None:
            assert isinstance(mod, LIF)
            rows = channel_rows(mod.mean_membrane(args[0]).double().numpy())
            s = stats.setdefault(name, [0, 0.0, 0.0])
            s[0] += rows.shape[0]
            s[1] = s[1] + rows.sum(0)
            s[2] = s[2] + rows.T @ rows

        return hook

    lifs = [n.name for n in graph.lif_nodes()]
    handles = [net.layers[module_key(n)].register_forward_hook(hook_for(n)) for n in lifs]
    try:
        seen = 0
        for x, _ in iterate_batches(
            data, "train", batch_size, shuffle=False, augment=False, generator=None
        ):
            x = x[: samples - seen]
            net(x)
            seen += len(x)
            if on_batch is not None:
                on_batch(len(x))
            if seen >= samples:
                break
    finally:
        for h in handles:
            h.remove()
    out: dict[str, LayerSpectrum] = {}
    for name in lifs:
        count, total, outer = stats[name]
        cum = cumulative_explained_variance(count, np.asarray(total), np.asarray(outer))
        out[name] = LayerSpectrum(
            name, len(cum), count, tuple(float(v) for v in cum), select_width(cum, variance)
        )
    return out
