"""Datasets for training and evaluating the SNN models: loading, checking and converting files.

``digits`` ships with scikit-learn; ``cifar10``, ``fmnist`` and ``svhn`` read their original
files from a user-given directory (nothing is ever downloaded). This package needs no torch, so a
runtime-only user can load test images; augmentation and mini-batching into torch tensors live
in ``uticompile.models.augment`` and ``uticompile.models.batches``.
"""

from __future__ import annotations

from .base import AugmentSpec, Dataset
from .loader import DATASETS, load_dataset, load_dataset_for

__all__ = [
    "DATASETS",
    "AugmentSpec",
    "Dataset",
    "load_dataset",
    "load_dataset_for",
]
