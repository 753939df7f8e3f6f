"""PE utilization, u-Ticket Eq. 2: the one definition every layer uses.

Eq. 2: ``mu = 1 - ((T_max - T_avg) / T_max) * n / (n - 1)``, the share of processing time the PEs
other than the slowest spend on useful work. The paper leaves two cases undefined; here:

* ``n`` is the number of ACTIVE PEs of the group: unoccupied slots of a partial group hold no
  filter and are clock-gated, so they are neither work nor idle.
* ``T_max = 0`` (a group with no work, including one with no active PE) gives NaN, and NaN groups
  are skipped by every average: there is nothing to utilize.
* otherwise ``n = 1`` gives 1.0: a lone PE never waits for anyone.

``T_avg`` is the plain mean over active PEs (paper). With ``ceil_avg=True`` it is ``ceil(mean)``
as in the public code; nothing is clipped, so for non-integer times ``mu`` can then exceed 1.

Pruning (static weight counts), ``inspect`` and the runtime's cost model (cycles counted while
running, where a group's T_max is its measured latency) all call this module.
"""

from __future__ import annotations

import numpy as np


def eq2_formula(tmax: np.ndarray, tavg: np.ndarray, n_act: np.ndarray) -> np.ndarray:
    """Eq. 2 from a group's ``T_max``, ``T_avg`` and active-PE count (any matching shapes)."""
    tmax = np.asarray(tmax, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = 1.0 - (tmax - tavg) / tmax * (n_act / np.maximum(n_act - 1, 1))
    mu = np.where(n_act == 1, 1.0, mu)
    mu = np.where((tmax > 0) & (n_act > 0), mu, np.nan)
    return np.asarray(mu, dtype=np.float64)


def eq2(t: np.ndarray, active: np.ndarray, *, ceil_avg: bool = False) -> np.ndarray:
    """Eq. 2 per group over the last axis, vectorized over any leading axes (groups, timesteps).

    ``t`` holds nonnegative processing times ``[..., n]``; ``active`` (broadcastable to it) marks
    the PEs that count. Returns float64 ``[...]``: NaN where the group has no work, 1.0 where it
    has exactly one active PE with work. ``ceil_avg`` uses ``ceil(mean)`` (exact integer ceiling
    for integer ``t``) as the public code does.
    """
    times = np.asarray(t)
    act = np.broadcast_to(np.asarray(active, dtype=bool), times.shape)
    n_act = act.sum(axis=-1)
    tmax = np.where(act, times, 0).max(axis=-1, initial=0).astype(np.float64)
    tsum = np.where(act, times, 0).sum(axis=-1)
    safe_n = np.maximum(n_act, 1)
    if ceil_avg and np.issubdtype(times.dtype, np.integer):
        tavg = (-(-tsum // safe_n)).astype(np.float64)
    else:
        tavg = tsum / safe_n
        if ceil_avg:
            tavg = np.ceil(tavg)
    return eq2_formula(tmax, tavg, n_act)


def eq2_latency(latency: np.ndarray, busy: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Eq. 2 per group from its latency (``T_max``) and its PEs' busy times (``T_avg`` over active).

    Running a layer, a group's latency can exceed its busiest PE's busy time (a PE waits for its
    inputs), so ``T_max`` is the measured latency rather than the max over ``busy``.
    """
    n = active.sum(axis=-1)
    avg = np.where(active, busy, 0).sum(axis=-1) / np.maximum(n, 1)
    return eq2_formula(latency, avg, n)
