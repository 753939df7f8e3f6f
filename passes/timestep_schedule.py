"""Temporal pruning's rules: which timestep schedules are possible and which T is kept.

Each stage of the schedule starts from the previous stage's weights with fewer timesteps and
trains again; the smallest T whose accuracy stays within ``max_drop`` percentage points of the
reference (the model entering the temporal pass) is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

from uticompile.errors import ConfigError

DEFAULT_SCHEDULE: tuple[int, ...] = (4, 3, 2, 1)
DEFAULT_MAX_DROP = 1.0  # percentage points of accuracy


def parse_schedule(text: str) -> tuple[int, ...]:
    """``"4,3,2,1"`` -> (4, 3, 2, 1); a one-line ConfigError for anything else."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--timesteps takes comma-separated integers, got {text!r}") from None
    check_schedule(values)
    return values


def check_schedule(schedule: Sequence[int], model_timesteps: int | None = None) -> None:
    """A schedule is non-empty, every T >= 1, strictly decreasing, and (given the model's T)
    starts at most at that T: temporal pruning removes timesteps, it does not add them."""
    if not schedule:
        raise ConfigError("--timesteps needs at least one value")
    if min(schedule) < 1:
        raise ConfigError(f"--timesteps values must be >= 1, got {min(schedule)}")
    if any(b >= a for a, b in pairwise(schedule)):
        raise ConfigError(
            f"--timesteps must be strictly decreasing, got {','.join(map(str, schedule))}"
        )
    if model_timesteps is not None and schedule[0] > model_timesteps:
        raise ConfigError(
            f"--timesteps starts at T={schedule[0]}, above the model's T={model_timesteps}"
        )


def choose_timesteps(accuracy: Mapping[int, float], reference: float, max_drop: float) -> int:
    """The smallest T whose accuracy is at least ``reference - max_drop/100``; the largest T
    of the schedule when none is (accuracies are fractions, ``max_drop`` percentage points)."""
    if max_drop < 0:
        raise ConfigError(f"--max-drop must be >= 0, got {max_drop}")
    ok = [t for t, a in accuracy.items() if a >= reference - max_drop / 100.0 - 1e-12]
    return min(ok) if ok else max(accuracy)
