"""The dataset record, its augmentation recipe, and checks shared by the file loaders.

Loaders only parse files into ``RawSplits`` (uint8 NCHW at the native size); resizing, channel
conversion and statistics happen once, in ``loader.py``, so every dataset is treated alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from uticompile.errors import ConfigError, DatasetError


@dataclass(frozen=True)
class AugmentSpec:
    """Training augmentation: zero-padded random crop, horizontal flip, one Cutout hole.

    ``crop_padding`` is the zero border (pixels) before cropping back to the original size;
    ``cutout`` is the side of the square hole in pixels (0 disables it).
    """

    crop_padding: int = 0
    hflip: bool = False
    cutout: int = 0

    def __post_init__(self) -> None:
        """Reject negative sizes early: they would silently do nothing or index out of range."""
        if self.crop_padding < 0:
            raise ConfigError(f"augment: crop_padding must be >= 0, got {self.crop_padding}")
        if self.cutout < 0:
            raise ConfigError(f"augment: cutout must be >= 0, got {self.cutout}")

    @property
    def is_identity(self) -> bool:
        """True when applying the spec would leave every image unchanged."""
        return self.crop_padding == 0 and not self.hflip and self.cutout == 0


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: uint8 images [N,C,H,W], int64 labels [N], and per-channel statistics.

    ``mean``/``std`` are in [0,1] pixel units and match the stored (converted) images, so
    ``augment.to_float`` normalizes consistently. ``augment`` is the default training recipe.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: AugmentSpec

    def __post_init__(self) -> None:
        """Catch inconsistent records at construction instead of deep inside training."""
        splits = (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test))
        for split, x, y in splits:
            if x.dtype != np.uint8 or x.ndim != 4:
                raise DatasetError(
                    f"{self.name}: {split} images must be uint8 [N,C,H,W], "
                    f"got {x.dtype} with shape {x.shape}"
                )
            if y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise DatasetError(
                    f"{self.name}: {split} labels must be int64 [{x.shape[0]}], "
                    f"got {y.dtype} with shape {y.shape}"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DatasetError(
                f"{self.name}: train images {self.x_train.shape[1:]} and test images "
                f"{self.x_test.shape[1:]} differ in shape"
            )
        channels = self.x_train.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise DatasetError(f"{self.name}: mean/std need {channels} values per channel")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        _, c, h, w = self.x_train.shape
        return (int(c), int(h), int(w))

    def head(self, train: int | None = None, test: int | None = None) -> Dataset:
        """The first ``train`` training and ``test`` test images (None keeps a split whole)."""
        x_train, y_train = self.x_train[:train], self.y_train[:train]
        return replace(
            self,
            x_train=x_train,
            y_train=y_train,
            x_test=self.x_test[:test],
            y_test=self.y_test[:test],
        )

    def hold_out(self, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
        """(rest, held out): a seeded random ``fraction`` of the *training* images set aside.

        ``rest`` keeps the other training images and the test split; ``held out`` has the slice
        as both its splits, so whatever evaluates it reads held-out training images, never test
        images. The slice depends on (``seed``, training-set size) only.
        """
        n = self.x_train.shape[0]
        k = round(fraction * n)
        if not (0.0 < fraction < 1.0) or not (1 <= k < n):
            raise ConfigError(
                f"{self.name}: holding out {fraction} of {n} training images leaves none held "
                "out or none to train on"
            )
        held = np.zeros(n, bool)
        held[np.random.default_rng(seed).permutation(n)[:k]] = True
        x, y = self.x_train[held], self.y_train[held]
        rest = replace(self, x_train=self.x_train[~held], y_train=self.y_train[~held])
        return rest, replace(self, x_train=x, y_train=y, x_test=x, y_test=y)


@dataclass(frozen=True, eq=False)
class RawSplits:
    """What a file loader returns: native-size uint8 images [N,C,H,W] and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def require_dir(name: str, data_dir: str | Path | None, expected: str) -> Path:
    """Resolve ``data_dir`` or fail with one line saying what should be there."""
    if data_dir is None:
        raise DatasetError(
            f"data_dir is needed for {name} (expected {expected})", option="data_dir"
        )
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{name}: missing directory {path} (expected {expected})")
    return path


def require_files(name: str, root: Path, files: tuple[str, ...], expected: str) -> list[Path]:
    """Check every file exists before parsing any, so the message names the exact missing path."""
    paths = [root / f for f in files]
    for path in paths:
        if not path.is_file():
            raise DatasetError(f"{name}: missing {path} (expected {expected})")
    return paths


def check_labels(name: str, source: Path, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Return labels as int64 after checking they lie in [0, num_classes)."""
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DatasetError(
            f"{name}: {source}: labels out of range [0, {num_classes}) "
            f"(found {int(labels.min())}..{int(labels.max())})"
        )
    return labels.astype(np.int64, copy=False)
