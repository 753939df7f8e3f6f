"""Shared by the benchmarks: a full-width VGG-16 pruned like a 14-round lottery ticket.

The mask is a global magnitude threshold over the reference (kaiming) init at 1 - 0.75^14 = 98.2%
sparsity, so per-layer sparsity varies as in LTH; ``balanced`` applies u-Ticket's balancing to
every layer. BatchNorm statistics are drawn so that every layer fires (the untrained init would
go silent after a few layers and make the runtime look faster than it is).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from uticompile.grouping import group_layout
from uticompile.ir import Graph
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.passes.balance import balance_mask

SPARSITY = 1 - 0.75**14
T = TypeVar("T")


def pruned_vgg16(
    *, balanced: bool, pes: int = 16, seed: int = 0, sparsity: float = SPARSITY
) -> Graph:
    g = build_model("vgg16", ModelSpec((3, 32, 32), 10, seed=seed))
    names = [g.param_names(n)[0] for n in g.weight_nodes()]
    scores = np.concatenate([np.abs(g.params[n]).ravel() for n in names])
    threshold = np.quantile(scores, sparsity)
    rng = np.random.default_rng(seed)
    for name in names:
        w = g.params[name]
        mask = np.abs(w) > threshold
        if balanced:
            mask = balance_mask(mask, group_layout(w.shape, pes, "sata"), "uticket", rng=rng)
        g.params[name] = np.where(mask, w, 0).astype(np.float32)
    for name, v in g.params.items():
        if name.endswith("running_var"):
            g.params[name] = rng.uniform(0.001, 0.01, v.shape).astype(np.float32)
        elif name.startswith("bn") and name.endswith("bias"):
            g.params[name] = rng.uniform(0.0, 0.6, v.shape).astype(np.float32)
    return g


def timed(fn: Callable[[], T], repeats: int = 1) -> tuple[T, float]:
    """(result of the last call, best wall time in seconds over ``repeats`` calls)."""
    best = float("inf")
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return result, best  # type: ignore[return-value]


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB) since the start or the last ``reset_peak``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> float:
    """Reset the peak to the current resident memory (Linux); return that peak (MiB).

    Without it a peak taken at import time (e.g. loading a large library) would hide the
    memory that the measured code needs.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return peak_rss_mib()
