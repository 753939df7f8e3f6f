"""Every option of a spatio-temporal pruning run (``uticompile shrink``), validated at once."""

from __future__ import annotations

import math
from dataclasses import dataclass

from uticompile.errors import ConfigError
from uticompile.models.train import TrainConfig
from uticompile.passes.pca_widths import DEFAULT_SAMPLES, DEFAULT_VARIANCE, check_variance
from uticompile.passes.pipeline import MapConfig
from uticompile.passes.timestep_schedule import (
    DEFAULT_MAX_DROP,
    DEFAULT_SCHEDULE,
    check_schedule,
)


@dataclass(frozen=True)
class ShrinkConfig:
    """``variance`` None skips the spatial pass, ``timesteps`` None the temporal pass.

    ``samples`` training images feed the PCA; ``run_samples`` test images are run on the
    modeled accelerator (``pes`` PEs) to cost every stage.
    """

    dataset: str = "digits"
    variance: float | None = DEFAULT_VARIANCE
    timesteps: tuple[int, ...] | None = DEFAULT_SCHEDULE
    max_drop: float = DEFAULT_MAX_DROP
    epochs: int = 5
    samples: int = DEFAULT_SAMPLES
    run_samples: int = 100
    pes: int = 16
    grouping: str = "sata"
    bits: int = 16
    placement: str = "contiguous"  # the paper's mapping; see ``map --placement``
    batch_size: int = 64
    lr: float = 0.1
    weight_decay: float = 5e-4
    augment: bool = True
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        """Reject impossible options before any work (one-line ConfigError)."""
        if self.variance is None and self.timesteps is None:
            raise ConfigError("nothing to do: give --variance, --timesteps or both")
        if self.variance is not None:
            check_variance(self.variance)
        if self.timesteps is not None:
            object.__setattr__(self, "timesteps", tuple(int(t) for t in self.timesteps))
            check_schedule(self.timesteps)
        if not (self.max_drop >= 0 and math.isfinite(self.max_drop)):
            raise ConfigError(f"--max-drop must be >= 0 percentage points, got {self.max_drop}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.samples < 2:
            raise ConfigError(f"--samples must be >= 2, got {self.samples}")
        if self.run_samples < 1:
            raise ConfigError(f"--run-samples must be >= 1, got {self.run_samples}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")
        self.map_config()
        self.train_config(0)

    def map_config(self) -> MapConfig:
        return MapConfig(
            pes=self.pes, grouping=self.grouping, bits=self.bits, placement=self.placement
        )

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=seed,
            device=self.device,
            augment=self.augment,
        )
