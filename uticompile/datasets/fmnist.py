"""Fashion-MNIST from the four gzip-compressed idx files."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from uticompile.errors import DatasetError

from .base import AugmentSpec, RawSplits, check_labels, require_dir, require_files

NAME = "fmnist"
NUM_CLASSES = 10
AUGMENT = AugmentSpec(crop_padding=4, hflip=True)

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
_EXPECTED = "the Fashion-MNIST idx .gz files in the data directory"

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Decompress an idx file and check its magic, dimensions and byte count against the header."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{NAME}: {path}: not a readable gzip file ({exc})") from exc
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{NAME}: {path}: only {len(raw)} bytes, shorter than the idx header")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise DatasetError(f"{NAME}: {path}: bad idx magic 0x{found:08x}, expected 0x{magic:08x}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if any(d == 0 for d in dims[1:]):
        raise DatasetError(f"{NAME}: {path}: zero-sized dimension in {dims}")
    expected = math.prod(dims)
    body = len(raw) - header
    if body != expected:
        raise DatasetError(
            f"{NAME}: {path}: header dims {'x'.join(map(str, dims))} need {expected} bytes, "
            f"file has {body}"
        )
    # Copy: frombuffer views are read-only, and torch warns on non-writable arrays.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _read_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label files into uint8 [N,1,H,W] and int64 [N]."""
    x = _read_idx(images, IMAGES_MAGIC)
    y = _read_idx(labels, LABELS_MAGIC)
    if x.shape[0] != y.shape[0]:
        raise DatasetError(
            f"{NAME}: {images} has {x.shape[0]} images but {labels} has {y.shape[0]} labels"
        )
    return np.ascontiguousarray(x[:, None]), check_labels(NAME, labels, y, NUM_CLASSES)


def load_raw(data_dir: str | Path | None) -> RawSplits:
    """Load train and test (t10k) images and labels."""
    root = require_dir(NAME, data_dir, _EXPECTED)
    tr_x, tr_y, te_x, te_y = require_files(
        NAME, root, (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS), _EXPECTED
    )
    x_train, y_train = _read_pair(tr_x, tr_y)
    x_test, y_test = _read_pair(te_x, te_y)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{NAME}: {tr_x} images are {x_train.shape[2]}x{x_train.shape[3]} but {te_x} "
            f"images are {x_test.shape[2]}x{x_test.shape[3]}"
        )
    return RawSplits(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
