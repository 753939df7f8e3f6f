"""``load_dataset``: pick a file loader, then resize, convert channels and compute statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uticompile.errors import DatasetError

from . import cifar10, digits, fmnist, svhn
from .base import AugmentSpec, Dataset, RawSplits
from .convert import channel_stats, convert_channels, resize_uint8

MIN_SIZE = 8


@dataclass(frozen=True)
class _Entry:
    """How to load one dataset and what is fixed about it."""

    load: Callable[[Path | str | None], RawSplits]
    num_classes: int
    augment: AugmentSpec
    # (channels, mean, std) that override the computed statistics at that channel count.
    reference: tuple[int, tuple[float, ...], tuple[float, ...]] | None = None


_REGISTRY: dict[str, _Entry] = {
    "digits": _Entry(lambda _dir: digits.load_raw(), digits.NUM_CLASSES, digits.AUGMENT),
    "cifar10": _Entry(
        cifar10.load_raw,
        cifar10.NUM_CLASSES,
        cifar10.AUGMENT,
        (3, cifar10.REFERENCE_MEAN, cifar10.REFERENCE_STD),
    ),
    "fmnist": _Entry(fmnist.load_raw, fmnist.NUM_CLASSES, fmnist.AUGMENT),
    "svhn": _Entry(svhn.load_raw, svhn.NUM_CLASSES, svhn.AUGMENT),
}

DATASETS: tuple[str, ...] = tuple(_REGISTRY)


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    size: int = 32,
    channels: int | None = None,
) -> Dataset:
    """Load ``name`` as uint8 [N,C,size,size] with statistics matching the converted images.

    ``digits`` is embedded; the others read their original files from ``data_dir``. ``channels``
    None keeps the dataset's own; 1 <-> 3 converts (see ``convert_channels``). mean/std are
    recomputed from the converted train images, except CIFAR-10 at 3 channels, which keeps the
    reference values at any size so results compare with published ones. Every failure is a
    one-line ``DatasetError``.
    """
    entry = _REGISTRY.get(name)
    if entry is None:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise DatasetError(f"{name}: image size must be an integer >= {MIN_SIZE}, got {size!r}")
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise DatasetError(f"{name}: channels must be 1 or 3 (or unset), got {channels!r}")

    raw = entry.load(data_dir)
    native = raw.x_train.shape[1]
    want = native if channels is None else channels

    # Reduce channels before resizing (less work); replicate after (3x less to resize).
    x_train, x_test = raw.x_train, raw.x_test
    if want < native:
        x_train = convert_channels(name, x_train, want)
        x_test = convert_channels(name, x_test, want)
    x_train = resize_uint8(x_train, int(size))
    x_test = resize_uint8(x_test, int(size))
    if want > native:
        x_train = convert_channels(name, x_train, want)
        x_test = convert_channels(name, x_test, want)

    if entry.reference is not None and entry.reference[0] == want:
        mean, std = entry.reference[1], entry.reference[2]
    else:
        mean, std = channel_stats(x_train)
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=raw.y_train,
        x_test=x_test,
        y_test=raw.y_test,
        num_classes=entry.num_classes,
        mean=mean,
        std=std,
        augment=entry.augment,
    )


def load_dataset_for(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    data_dir: str | Path | None = None,
) -> Dataset:
    """``name`` shaped for a model with ``input_shape`` (C, H, W) and ``num_classes`` outputs."""
    c, h, w = input_shape
    if h != w:
        raise DatasetError(f"non-square model input {h}x{w} is not supported by the datasets")
    data = load_dataset(name, data_dir=data_dir, size=h, channels=c)
    if data.num_classes != num_classes:
        raise DatasetError(f"the model has {num_classes} classes, {name} has {data.num_classes}")
    return data
