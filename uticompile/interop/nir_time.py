"""The one place where NIR's continuous time meets the IR's timesteps (both directions).

NIR's LIF is ``tau dv/dt = (v_leak - v) + r*I`` and its IF ``dv/dt = r*I``. Forward Euler at step
``dt``, in the membrane ``u = v - v_reset``, gives the IR's ``u = leak*u + gain*x``:
``leak = 1 - dt/tau``, ``gain = r*dt/tau`` (IF: leak 1, ``gain = r*dt``), and ``v_leak - v_reset``
becomes a constant drive ``(v_leak - v_reset)/r`` added to the input. Export inverts these in
float64 (``tau = dt/(1 - leak)``, ``r = gain/(1 - leak)``), so that import recovers the float32
leak and gain exactly.

A max-pool over spikes has no NIR node; an average pool of window ``k`` followed by an IF whose
threshold lies below one spike's share ``1/k`` (we write ``0.5/k``) fires exactly when some
spike is in the window, and never keeps a membrane: it is that max-pool.
"""

from __future__ import annotations

import numpy as np

DEFAULT_DT = 1e-4  # what SpikingJelly and snnTorch write
COMPARES = ("ge", "gt")
#: What follows a spike, which a NIR file cannot say: ``zero`` (NIR's reset to ``v_reset``;
#: SpikingJelly, snnTorch ``reset_mechanism="zero"``) or ``subtract`` (snnTorch's default:
#: decay, add the input, then subtract the threshold where the previous step fired; it fires on
#: ``>``, so it goes with ``compare="gt"``). The IR reset each one becomes:
IMPORT_RESETS = {"zero": "hard", "subtract": "subtract-after-leak"}


def lif_step(tau: float, r: float, dt: float) -> tuple[float, float]:
    """(leak, gain) of a NIR LIF at step ``dt``."""
    return 1.0 - dt / tau, r * dt / tau


def if_gain(r: float, dt: float) -> float:
    """The gain of a NIR IF at step ``dt`` (its leak is 1)."""
    return r * dt


def leak_drive(v_leak: float, v_reset: float, r: float) -> float:
    """The constant input that a resting potential away from the reset value amounts to."""
    return (v_leak - v_reset) / r


def lif_constants(leak: float, gain: float, dt: float) -> tuple[float, float]:
    """(tau, r) of the NIR LIF that runs as ``u = leak*u + gain*x`` at step ``dt`` (leak < 1)."""
    return dt / (1.0 - leak), gain / (1.0 - leak)


def if_resistance(gain: float, dt: float) -> float:
    """r of the NIR IF that runs as ``u = u + gain*x`` at step ``dt``."""
    return gain / dt


def spike_threshold(theta: float, compare: str) -> float:
    """The IR's (``>=``) float32 threshold for a neuron that fires on ``v - v_reset`` vs ``theta``.

    ``gt`` (snnTorch) fires on ``u > theta``, which for float32 ``u`` is ``u >= next float32``.
    """
    t = np.float32(theta)
    return float(np.nextafter(t, np.float32(np.inf)) if compare == "gt" else t)


def max_pool_threshold(kernel: tuple[int, int]) -> float:
    """The IF threshold that makes ``AvgPool2d(kernel)`` + IF a max-pool over spikes."""
    return 0.5 / (kernel[0] * kernel[1])


def is_max_pool_threshold(threshold: float, kernel: tuple[int, int]) -> bool:
    """Whether an IF (gain 1) after ``AvgPool2d(kernel)`` over spikes fires on any spike."""
    share = np.float32(1.0) / np.float32(kernel[0] * kernel[1])  # as the pooling rounds it
    return 0.0 < threshold < float(share)
