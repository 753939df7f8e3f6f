"""Temporal pruning's rules: which schedules are possible, when a stage stops, which T is kept.

Each stage of the schedule starts from the previous stage's weights with fewer timesteps and
trains until its accuracy recovers: epoch by epoch, up to a cap, until its validation accuracy is
within ``max_drop`` percentage points of the reference (the model entering the temporal pass) or
has not improved for ``patience`` epochs; the stage keeps its best epoch's weights. The smallest T
whose accuracy stays within ``max_drop`` of the reference is kept.

Messages name options as the library spells them (``timesteps``, ``max_drop``); the CLI shows
its flags instead (``UticompileError.option``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise

from uticompile.errors import ConfigError

DEFAULT_SCHEDULE: tuple[int, ...] = (4, 3, 2, 1)
DEFAULT_MAX_DROP = 1.0  # percentage points of accuracy
DEFAULT_PATIENCE = 2  # epochs without improvement before a stage gives up
RECOVERED = "recovered"
NO_IMPROVEMENT = "no improvement"


def parse_schedule(text: str) -> tuple[int, ...]:
    """``"4,3,2,1"`` -> (4, 3, 2, 1); a one-line ConfigError for anything else."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"timesteps takes comma-separated integers, got {text!r}", option="timesteps"
        ) from None
    check_schedule(values)
    return values


def check_schedule(schedule: Sequence[int], model_timesteps: int | None = None) -> None:
    """A schedule is non-empty, every T >= 1, strictly decreasing, and (given the model's T)
    starts at most at that T: temporal pruning removes timesteps, it does not add them."""
    if not schedule:
        raise ConfigError("timesteps needs at least one value", option="timesteps")
    if min(schedule) < 1:
        raise ConfigError(f"timesteps values must be >= 1, got {min(schedule)}", option="timesteps")
    if any(b >= a for a, b in pairwise(schedule)):
        raise ConfigError(
            f"timesteps must be strictly decreasing, got {','.join(map(str, schedule))}",
            option="timesteps",
        )
    if model_timesteps is not None and schedule[0] > model_timesteps:
        raise ConfigError(
            f"timesteps starts at T={schedule[0]}, above the model's T={model_timesteps}",
            option="timesteps",
        )


def choose_timesteps(accuracy: Mapping[int, float], reference: float, max_drop: float) -> int:
    """The smallest T whose accuracy is at least ``reference - max_drop/100``; the largest T
    of the schedule when none is (accuracies are fractions, ``max_drop`` percentage points)."""
    check_max_drop(max_drop)
    ok = [t for t, a in accuracy.items() if within_drop(a, reference, max_drop)]
    return min(ok) if ok else max(accuracy)


def check_max_drop(max_drop: float) -> None:
    if not (max_drop >= 0 and math.isfinite(max_drop)):
        raise ConfigError(
            f"max_drop must be >= 0 percentage points, got {max_drop}", option="max_drop"
        )


def within_drop(accuracy: float, reference: float, max_drop: float) -> bool:
    """``accuracy`` (a fraction) is at most ``max_drop`` percentage points below ``reference``."""
    return accuracy >= reference - max_drop / 100.0 - 1e-12


def best_epoch(validation: Sequence[float]) -> int:
    """The 1-based epoch of the highest validation accuracy (the earliest of equals)."""
    if not validation:
        raise ValueError("no epochs")
    return max(range(len(validation)), key=lambda i: (validation[i], -i)) + 1


def stage_stop(
    validation: Sequence[float], reference: float, max_drop: float, patience: int
) -> str | None:
    """Why a temporal stage stops after the epochs whose validation accuracies are given, or
    None to train on: ``RECOVERED`` once the last epoch is within ``max_drop`` of
    ``reference``, ``NO_IMPROVEMENT`` once the best epoch is ``patience`` epochs behind."""
    if not validation:
        return None
    if within_drop(validation[-1], reference, max_drop):
        return RECOVERED
    if len(validation) - best_epoch(validation) >= patience:
        return NO_IMPROVEMENT
    return None
