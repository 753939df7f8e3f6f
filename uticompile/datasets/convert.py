"""Size and channel conversion of uint8 image stacks, and exact per-channel statistics."""

from __future__ import annotations

import numpy as np

from uticompile.errors import DatasetError

# Resize in chunks so a 60k-image set never needs one float32 copy of itself at once.
_RESIZE_CHUNK = 4096


def _power_of_two_ratio(n_in: int, n_out: int) -> bool:
    """``n_out = n_in * 2**k`` (k >= 1): then every bilinear weight is a short dyadic fraction."""
    ratio, rest = divmod(n_out, n_in)
    return rest == 0 and ratio > 1 and ratio & (ratio - 1) == 0


def _linear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear interpolation (align_corners=False) on one axis."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = src.astype(np.int64)  # src >= 0: truncation is floor
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0
    return i0, i1, 1.0 - w1, w1


def _upsample_exact(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear enlargement of uint8 [N,C,H,W] by a power of two on both axes, in float64.

    With a power-of-two ratio, the weights are multiples of ``2**-(k+1)``, so every product and
    sum of 8-bit pixels is exact in any evaluation order: the result equals torch's float32 one.
    """
    h0, h1, a0, a1 = _linear_taps(x.shape[2], size)
    w0, w1, b0, b1 = _linear_taps(x.shape[3], size)
    xf = x.astype(np.float64)
    top, bottom = xf[:, :, h0, :], xf[:, :, h1, :]
    t0 = top[..., w0] * b0 + top[..., w1] * b1
    t1 = bottom[..., w0] * b0 + bottom[..., w1] * b1
    return t0 * a0[:, None] + t1 * a1[:, None]


def resize_uint8(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of uint8 [N,C,H,W] to size x size, rounded and clipped back to uint8.

    Antialiasing is on only when an axis shrinks (it matters only then); images already of the
    target size are returned untouched so their pixels stay bit-exact. Enlarging by a power of two
    (digits' 8x8 to 32x32) is exact in numpy, so loading such a dataset needs no torch; any other
    ratio uses torch's interpolation (imported only then), whose float32 rounding order it keeps.
    """
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    out = np.empty((n, c, size, size), dtype=np.uint8)
    if _power_of_two_ratio(h, size) and _power_of_two_ratio(w, size):
        for start in range(0, n, _RESIZE_CHUNK):
            resized = _upsample_exact(x[start : start + _RESIZE_CHUNK], size)
            out[start : start + _RESIZE_CHUNK] = np.clip(np.round(resized), 0, 255)
        return out
    import torch
    import torch.nn.functional as F

    antialias = size < h or size < w
    for start in range(0, n, _RESIZE_CHUNK):
        chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + _RESIZE_CHUNK]))
        resampled = F.interpolate(
            chunk.to(torch.float32),
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=antialias,
        )
        out[start : start + _RESIZE_CHUNK] = resampled.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def convert_channels(name: str, x: np.ndarray, channels: int) -> np.ndarray:
    """Convert uint8 [N,C,H,W] to ``channels`` channels.

    1 -> 3 replicates the plane; 3 -> 1 takes the plain (unweighted) mean of R, G and B, not a
    luminance formula: the networks only need a consistent grey, not a perceptual one.
    """
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return np.ascontiguousarray(np.repeat(x, 3, axis=1))
    if have == 3 and channels == 1:
        grey = x.astype(np.float32).mean(axis=1, keepdims=True)
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    raise DatasetError(f"{name}: cannot convert {have} channels to {channels}")


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 [N,C,H,W], in [0,1] pixel units.

    Computed from a 256-bin histogram in float64: exact, order-independent (so deterministic),
    and needs no float copy of the whole set. A constant channel gets std 1.0 instead of 0 so
    normalization never divides by zero.
    """
    levels = np.arange(256, dtype=np.float64) / 255.0
    means: list[float] = []
    stds: list[float] = []
    for ch in range(x.shape[1]):
        counts = np.bincount(x[:, ch].reshape(-1), minlength=256).astype(np.float64)
        total = counts.sum()
        if total == 0:
            means.append(0.0)
            stds.append(1.0)
            continue
        mean = float((counts * levels).sum() / total)
        var = float((counts * (levels - mean) ** 2).sum() / total)
        std = float(np.sqrt(var))
        means.append(mean)
        stds.append(std if std > 0.0 else 1.0)
    return tuple(means), tuple(stds)
