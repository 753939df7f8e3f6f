"""Datasets for training and evaluating the SNN models: loading, augmentation, batching.

``digits`` ships with scikit-learn; ``cifar10``, ``fmnist`` and ``svhn`` read their original
files from a user-given directory (nothing is ever downloaded).
"""

from __future__ import annotations

from .augment import augment_batch, to_float
from .base import AugmentSpec, Dataset
from .batches import iterate_batches, num_batches
from .loader import DATASETS, load_dataset, load_dataset_for

__all__ = [
    "DATASETS",
    "AugmentSpec",
    "Dataset",
    "augment_batch",
    "iterate_batches",
    "load_dataset",
    "load_dataset_for",
    "num_batches",
    "to_float",
]
