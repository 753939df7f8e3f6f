"""Batch augmentation on uint8 images and normalization to float, vectorized over the batch.

Each transform is one gather or one mask for the whole batch (no per-sample Python loop), and all
randomness comes from the caller's generator, so a seed reproduces a run exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from uticompile.datasets import AugmentSpec


def to_float(
    x_uint8: torch.Tensor | np.ndarray, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Map uint8 [B,C,H,W] to float32 ``(x/255 - mean) / std`` with per-channel mean/std."""
    if isinstance(x_uint8, np.ndarray) and not x_uint8.flags.writeable:
        x_uint8 = x_uint8.copy()  # torch warns on (and must not write through) read-only arrays
    x = torch.as_tensor(x_uint8)
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"to_float expects uint8 [B,C,H,W], got {x.dtype} {tuple(x.shape)}")
    channels = x.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"to_float: mean/std need {channels} values, got {len(mean)}/{len(std)}")
    m = torch.tensor(tuple(mean), dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(tuple(std), dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x.to(torch.float32) / 255.0 - m) / s


def augment_batch(
    x_uint8: torch.Tensor, spec: AugmentSpec, generator: torch.Generator
) -> torch.Tensor:
    """Randomly crop (zero padding), flip and cut out each image of a uint8 [B,C,H,W] batch.

    Crop offsets are uniform in [0, 2*crop_padding] per sample; each sample is mirrored with
    p=0.5; Cutout zeroes one cutout x cutout square per sample whose centre is uniform over the
    image and which is clipped at the borders. Cutout writes 0 into uint8 pixels, i.e. black
    before normalization, not the dataset mean. Random draws happen in a fixed order (offsets,
    flips, hole centres) on the generator's device, so results depend only on its state. An
    identity spec returns the input tensor itself.
    """
    if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4:
        raise ValueError(
            f"augment_batch expects uint8 [B,C,H,W], got {x_uint8.dtype} {tuple(x_uint8.shape)}"
        )
    if spec.is_identity:
        return x_uint8
    b, c, h, w = x_uint8.shape
    dev = x_uint8.device
    gdev = generator.device
    out = x_uint8

    if spec.crop_padding > 0 or spec.hflip:
        p = spec.crop_padding
        rows = torch.arange(h, device=dev).expand(b, h)
        cols = torch.arange(w, device=dev).expand(b, w)
        if p > 0:
            padded = torch.zeros((b, c, h + 2 * p, w + 2 * p), dtype=torch.uint8, device=dev)
            padded[:, :, p : p + h, p : p + w] = x_uint8
            oy = torch.randint(0, 2 * p + 1, (b, 1), generator=generator, device=gdev).to(dev)
            ox = torch.randint(0, 2 * p + 1, (b, 1), generator=generator, device=gdev).to(dev)
            rows = rows + oy
            cols = cols + ox
        else:
            padded = x_uint8
        if spec.hflip:
            flip = torch.rand((b, 1), generator=generator, device=gdev).to(dev) < 0.5
            cols = torch.where(flip, cols.flip(1), cols)
        bi = torch.arange(b, device=dev).view(b, 1, 1, 1)
        ci = torch.arange(c, device=dev).view(1, c, 1, 1)
        out = padded[bi, ci, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]

    if spec.cutout > 0:
        cy = torch.randint(0, h, (b, 1), generator=generator, device=gdev).to(dev)
        cx = torch.randint(0, w, (b, 1), generator=generator, device=gdev).to(dev)
        y0 = cy - spec.cutout // 2
        x0 = cx - spec.cutout // 2
        ys = torch.arange(h, device=dev).view(1, h)
        xs = torch.arange(w, device=dev).view(1, w)
        in_y = (ys >= y0) & (ys < y0 + spec.cutout)  # [B,H]
        in_x = (xs >= x0) & (xs < x0 + spec.cutout)  # [B,W]
        hole = (in_y[:, :, None] & in_x[:, None, :])[:, None]  # [B,1,H,W]
        out = out.masked_fill(hole, 0)
    return out
