"""scikit-learn's embedded 8x8 handwritten digits: the default dataset, needs no download."""

from __future__ import annotations

import numpy as np

from .base import AugmentSpec, RawSplits

NUM_CLASSES = 10
# Shifts only: digits are not mirror-invariant, and the 8x8 originals are too small for Cutout.
AUGMENT = AugmentSpec(crop_padding=2)


def load_raw() -> RawSplits:
    """Load the 1797 digits, scale 0..16 to 0..255, and split 1437/360 (stratified, seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # [N, 8, 8], values 0..16
    pixels = np.clip(np.rint(images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        pixels, labels, test_size=0.2, random_state=0, stratify=labels
    )
    return RawSplits(
        x_train=np.ascontiguousarray(x_train),
        y_train=np.asarray(y_train, dtype=np.int64),
        x_test=np.ascontiguousarray(x_test),
        y_test=np.asarray(y_test, dtype=np.int64),
    )
