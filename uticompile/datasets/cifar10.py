"""CIFAR-10 from the official python pickle batches, read with a restricted unpickler.

The batches are pickles, and a pickle can call any importable function; ``_SafeUnpickler`` only
resolves the few globals the real files (and protocol-2 re-pickles made by Python 3) need.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from uticompile.errors import DatasetError

from .base import AugmentSpec, RawSplits, check_labels, require_dir, require_files

NAME = "cifar10"
NUM_CLASSES = 10
# Reference recipe: random crop 32 with padding 4, horizontal flip, Cutout with one 16 px hole.
AUGMENT = AugmentSpec(crop_padding=4, hflip=True, cutout=16)
# Reference normalization, used at 3 channels (other channel counts recompute their own).
REFERENCE_MEAN = (0.4913, 0.4821, 0.4465)
REFERENCE_STD = (0.2023, 0.1994, 0.2010)

SUBDIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
_EXPECTED = "the CIFAR-10 python batches in the data directory"

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array-rebuilding function
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes as _codecs.encode(str, "latin1") under protocol 2, b"" as bytes().
    ("_codecs", "encode"): codecs.encode,  # the same function as _codecs.encode
    ("builtins", "bytes"): bytes,
    ("__builtin__", "bytes"): bytes,
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals, so loading never runs foreign code."""

    def find_class(self, module: str, name: str) -> Any:
        """Return an allow-listed object; refuse everything else."""
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"disallowed pickle global {module}.{name}") from None


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one batch into uint8 [N,3,32,32] images and int64 labels."""
    try:
        with path.open("rb") as handle:
            obj = _SafeUnpickler(handle, encoding="bytes").load()
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"{NAME}: {path}: not a readable CIFAR-10 batch ({exc})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{NAME}: {path}: expected a dict, got {type(obj).__name__}")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if data is None or labels is None:
        raise DatasetError(f"{NAME}: {path}: missing the b'data' or b'labels' entry")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DatasetError(f"{NAME}: {path}: b'data' must be a uint8 [N,3072] array")
    if data.shape[1] != 3 * 32 * 32:
        raise DatasetError(
            f"{NAME}: {path}: b'data' rows have {data.shape[1]} bytes, expected 3072"
        )
    try:
        label_array = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DatasetError(f"{NAME}: {path}: b'labels' is not a list of integers") from exc
    if label_array.shape[0] != data.shape[0]:
        raise DatasetError(
            f"{NAME}: {path}: {data.shape[0]} images but {label_array.shape[0]} labels"
        )
    label_array = check_labels(NAME, path, label_array, NUM_CLASSES)
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32)), label_array


def load_raw(data_dir: str | Path | None) -> RawSplits:
    """Load the five training batches and the test batch from data_dir or its standard subdir."""
    root = require_dir(NAME, data_dir, _EXPECTED)
    if (root / SUBDIR).is_dir():
        root = root / SUBDIR
    paths = require_files(NAME, root, (*TRAIN_FILES, TEST_FILE), _EXPECTED)
    batches = [_read_batch(p) for p in paths]
    train = batches[:-1]
    x_test, y_test = batches[-1]
    return RawSplits(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test,
        y_test=y_test,
    )
