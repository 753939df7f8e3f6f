"""The mapping's input format: dataset images normalized and quantized, in numpy (no torch).

``normalize`` is the same float32 arithmetic as training's ``models.augment.to_float``
(``(x / 255 - mean) / std``, each step rounded to float32), so that a mapping sees bit for bit
the inputs the model was evaluated on; a test compares the two on every pixel value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from uticompile.errors import ConfigError
from uticompile.mapfile import Mapping

if TYPE_CHECKING:  # the caller loads the dataset (resizing some needs torch; running does not)
    from uticompile.datasets import Dataset


def quantize_input(x: np.ndarray, frac_bits: int, bits: int) -> np.ndarray:
    """Normalized float images -> the mapping's ``bits``-bit fixed-point input (int64)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.rint(np.asarray(x, np.float64) * 2.0**frac_bits), lo, hi).astype(np.int64)


def normalize(x_uint8: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 [B, C, H, W] -> float32 ``(x / 255 - mean) / std`` with per-channel statistics."""
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return (x_uint8.astype(np.float32) / np.float32(255.0) - m) / s


def check_samples(
    samples: int, data: Dataset, *, split: str = "test", option: str = "samples"
) -> None:
    """Refuse more images than the split holds: a silent clamp would report a run of fewer
    samples than asked for (and compare runs of different sizes)."""
    available = len(data.x_test if split == "test" else data.x_train)
    if samples > available:
        raise ConfigError(
            f"{option} {samples} is more than the {available} images of the {data.name} "
            f"{split} split",
            option=option,
        )


def quantized_test_batches(
    m: Mapping, data: Dataset, samples: int, batch_size: int, *, split: str = "test"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``samples`` images of ``split`` (in order, unaugmented), quantized to the
    mapping's input format. Raises ConfigError if the split holds fewer."""
    frac, bits = int(m.model["input_frac_bits"]), int(m.model["input_bits"])
    check_samples(samples, data, split=split)
    xs, ys = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    out = []
    stop = samples
    for i in range(0, stop, batch_size):
        j = min(i + batch_size, stop)
        x = normalize(xs[i:j], data.mean, data.std)
        out.append((quantize_input(x, frac, bits), np.array(ys[i:j])))
    return out
