"""PE utilization (u-Ticket Eq. 2) and the static, weight-count workload figures.

Eq. 2 itself is defined once, in ``uticompile.metrics``.

The static figures count weights only (no spikes, timesteps or spatial size), like the public
code: work = sum of workloads, idle = sum over groups and active PEs of ``(max - w)``, latency = sum
over groups of the max workload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from uticompile.errors import ConfigError
from uticompile.grouping import GroupLayout
from uticompile.metrics import eq2


@dataclass(frozen=True, eq=False)
class StaticStats:
    """Static (weight-count) workload figures of one layer.

    Attributes:
        work: sum of workloads (nonzero weights).
        idle: sum over groups and active PEs of ``(group max - workload)``.
        latency: sum over groups of the max workload.
        group_utilization: Eq. 2 per group (NaN for groups without work).
        utilization: mean of ``group_utilization`` over groups with work; None if there are none.
        params: number of weight positions of the layer (the paper's weighting).
    """

    work: int
    idle: int
    latency: int
    group_utilization: np.ndarray
    utilization: float | None
    params: int


def static_stats(
    workloads: np.ndarray, active: np.ndarray, *, params: int, ceil_avg: bool = False
) -> StaticStats:
    """Static figures of one layer from its workloads ``[num_groups, n]`` (integer).

    ``params`` (the layer's weight count) is passed by the caller because workloads alone do not
    determine it; ``layer_stats`` computes it from a layout.
    """
    w = np.asarray(workloads)
    if not np.issubdtype(w.dtype, np.integer):
        raise ConfigError(f"static_stats needs integer workloads, got dtype {w.dtype}")
    act = np.broadcast_to(np.asarray(active, dtype=bool), w.shape)
    w = np.where(act, w, 0).astype(np.int64)
    gmax = w.max(axis=-1, initial=0)
    idle = int(np.sum(np.where(act, gmax[..., None] - w, 0)))
    gu = eq2(w, act, ceil_avg=ceil_avg)
    has_work = ~np.isnan(gu)
    util = float(gu[has_work].mean()) if has_work.any() else None
    return StaticStats(
        work=int(w.sum()),
        idle=idle,
        latency=int(gmax.sum()),
        group_utilization=gu,
        utilization=util,
        params=int(params),
    )


def layer_stats(mask: np.ndarray, layout: GroupLayout, *, ceil_avg: bool = False) -> StaticStats:
    """``static_stats`` of a layer's mask under a layout, with ``params`` = weight positions."""
    return static_stats(
        layout.workloads(mask), layout.active, params=layout.size, ceil_avg=ceil_avg
    )


def network_utilization(stats: Sequence[StaticStats]) -> tuple[float | None, float | None]:
    """Network utilization: (weighted by parameter count, as the paper; unweighted layer mean, as
    the public code). Layers whose utilization is None are skipped; (None, None) if all are.

    Which layers to include (the public code drops the first conv and all linear layers) is the
    caller's choice.
    """
    used = [s for s in stats if s.utilization is not None]
    if not used:
        return None, None
    u = np.array([s.utilization for s in used], dtype=np.float64)
    p = np.array([s.params for s in used], dtype=np.float64)
    weighted = float((u * p).sum() / p.sum()) if p.sum() > 0 else None
    return weighted, float(u.mean())
