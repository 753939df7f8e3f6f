"""SVHN (cropped digits) from the MATLAB ``train_32x32.mat`` / ``test_32x32.mat`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uticompile.errors import DatasetError

from .base import AugmentSpec, RawSplits, check_labels, require_dir, require_files

NAME = "svhn"
NUM_CLASSES = 10
# Shifts only: house numbers are not mirror-invariant.
AUGMENT = AugmentSpec(crop_padding=4)

TRAIN_FILE = "train_32x32.mat"
TEST_FILE = "test_32x32.mat"
_EXPECTED = "the SVHN train_32x32.mat and test_32x32.mat in the data directory"


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read X (H,W,3,N) uint8 and y (N,1) into uint8 [N,3,H,W] and int64 [N], 10 -> digit 0."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), variable_names=("X", "y"))
    except Exception as exc:  # scipy raises many types (ValueError, MatReadError, ...)
        raise DatasetError(f"{NAME}: {path}: not a readable .mat file ({exc})") from exc
    x = mat.get("X")
    y = mat.get("y")
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise DatasetError(f"{NAME}: {path}: missing the 'X' or 'y' variable")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3:
        raise DatasetError(f"{NAME}: {path}: X must be uint8 (H,W,3,N), got {x.dtype} {x.shape}")
    numeric = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)
    if not numeric or y.size != x.shape[3] or y.ndim > 2:
        raise DatasetError(
            f"{NAME}: {path}: y must hold {x.shape[3]} numeric labels (N,1), "
            f"got {y.dtype} {y.shape}"
        )
    labels = y.reshape(-1)
    integral = np.isfinite(labels) & (labels == np.round(labels))
    if np.issubdtype(labels.dtype, np.floating) and not np.all(integral):
        raise DatasetError(f"{NAME}: {path}: y holds non-integer labels")
    labels = labels.astype(np.int64)
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > 10):
        raise DatasetError(
            f"{NAME}: {path}: labels out of range 0..10 "
            f"(found {int(labels.min())}..{int(labels.max())})"
        )
    labels = np.where(labels == 10, 0, labels)
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))
    return images, check_labels(NAME, path, labels, NUM_CLASSES)


def load_raw(data_dir: str | Path | None) -> RawSplits:
    """Load the train and test .mat files."""
    root = require_dir(NAME, data_dir, _EXPECTED)
    train_path, test_path = require_files(NAME, root, (TRAIN_FILE, TEST_FILE), _EXPECTED)
    x_train, y_train = _read_mat(train_path)
    x_test, y_test = _read_mat(test_path)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{NAME}: {train_path} images {x_train.shape[1:]} differ from "
            f"{test_path} images {x_test.shape[1:]}"
        )
    return RawSplits(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
