"""Mini-batch iteration over a ``Dataset``: optional shuffle and augmentation, then normalize."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from uticompile.datasets import AugmentSpec, Dataset
from uticompile.models.augment import augment_batch, to_float

_SPLITS = ("train", "test")


def _split_arrays(ds: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (images, labels) of ``split``."""
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)


def num_batches(ds: Dataset, split: str, batch_size: int) -> int:
    """Batches per epoch of ``split``, counting the last partial batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x, _ = _split_arrays(ds, split)
    return -(-x.shape[0] // batch_size)


def iterate_batches(
    ds: Dataset,
    split: str,
    batch_size: int,
    *,
    shuffle: bool,
    augment: bool,
    generator: torch.Generator | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield one epoch of (float32 [B,C,H,W] normalized images, int64 [B] labels).

    Every sample appears exactly once; the last batch may be smaller. ``augment`` applies
    ``ds.augment`` to the train split only (test images are never augmented). The order and the
    augmentation draw from ``generator`` (torch's global generator when None), so a seeded
    generator reproduces the epoch. Arguments are checked now, not at the first ``next``.
    """
    num_batches(ds, split, batch_size)  # validates split and batch_size eagerly
    x, y = _split_arrays(ds, split)
    gen = generator if generator is not None else torch.default_generator
    spec = ds.augment if (augment and split == "train") else None
    return _batches(x, y, batch_size, shuffle, spec, gen, ds.mean, ds.std)


def _batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool,
    spec: AugmentSpec | None,
    gen: torch.Generator,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The generator behind ``iterate_batches``."""
    n = x.shape[0]
    if shuffle:
        order = torch.randperm(n, generator=gen, device=gen.device).cpu().numpy()
    else:
        order = np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        # Fancy indexing copies, so batches never alias (possibly read-only) dataset arrays.
        xb = torch.from_numpy(x[idx])
        yb = torch.from_numpy(y[idx])
        if spec is not None:
            xb = augment_batch(xb, spec, gen)
        yield to_float(xb, mean, std), yb
