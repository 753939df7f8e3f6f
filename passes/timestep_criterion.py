"""The Early-Time ticket's choice of search timesteps (the LTH-SNN paper's public code).

After the second dense epoch, the time-averaged logits of one batch of training images are taken
at the full T and at each candidate t < T. For each t, KL(p_T || p_t) between the softmaxes is
averaged over the batch; the KLs are divided by the largest of them, and the smallest t whose
normalized KL is below the threshold is chosen (none below: the full T).

Normalizing by the largest means the worst candidate always scores 1.0, so with a single
candidate (T = 3) the full T is always kept; that is the reference's behaviour and kept here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_CANDIDATES: tuple[int, ...] = (2, 3, 4)
DEFAULT_THRESHOLD = 0.6
CRITERION_EPOCH = 2  # dense epochs trained before the criterion looks at the logits
CRITERION_SAMPLES = 1000  # training images in the batch it looks at


@dataclass(frozen=True)
class TimestepChoice:
    """The chosen search T and the numbers it was chosen from (saved in the run directory)."""

    timesteps: int
    full_timesteps: int
    kl: dict[int, float]
    normalized_kl: dict[int, float]
    threshold: float

    def to_json(self) -> dict[str, object]:
        return {
            "timesteps": self.timesteps,
            "full_timesteps": self.full_timesteps,
            "kl": {str(t): v for t, v in self.kl.items()},
            "normalized_kl": {str(t): v for t, v in self.normalized_kl.items()},
            "threshold": self.threshold,
        }


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def mean_kl(reference: np.ndarray, other: np.ndarray) -> float:
    """Batch mean of KL(softmax(reference) || softmax(other)) for logits [N, classes]."""
    log_p = _log_softmax(np.asarray(reference, dtype=np.float64))
    log_q = _log_softmax(np.asarray(other, dtype=np.float64))
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))


def choose_timesteps(
    logits: np.ndarray,
    *,
    candidates: Sequence[int] = DEFAULT_CANDIDATES,
    threshold: float = DEFAULT_THRESHOLD,
) -> TimestepChoice:
    """Pick the search T from per-timestep logits [T, N, classes] of one batch.

    The network is causal in time (a LIF at step t sees steps <= t only), so the first t steps
    of a run at T are exactly a run at t: the time average over ``logits[:t]`` is the
    t-timestep network's output.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 3:
        raise ValueError(f"logits must be [T, N, classes], got shape {z.shape}")
    full = z.shape[0]
    full_mean = z.mean(axis=0)
    ts = sorted({int(t) for t in candidates if 1 <= int(t) < full})
    kl = {t: mean_kl(full_mean, z[:t].mean(axis=0)) for t in ts}
    return choose_from_kl(kl, full, threshold)


def choose_from_kl(kl: Mapping[int, float], full: int, threshold: float) -> TimestepChoice:
    """The rule itself: normalize by the largest KL, take the smallest t below ``threshold``."""
    largest = max(kl.values(), default=0.0)
    norm = {t: (v / largest if largest > 0 else 0.0) for t, v in sorted(kl.items())}
    below = [t for t, v in norm.items() if v < threshold]
    return TimestepChoice(
        timesteps=min(below) if below else full,
        full_timesteps=full,
        kl=dict(sorted(kl.items())),
        normalized_kl=norm,
        threshold=threshold,
    )
