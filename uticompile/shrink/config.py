"""Every option of a spatio-temporal pruning run (``uticompile shrink``), validated at once.

Messages name options by their field (``epochs must be >= 1``); the CLI shows the flag.
"""

from __future__ import annotations

from dataclasses import dataclass

from uticompile.errors import ConfigError
from uticompile.models.train import TrainConfig
from uticompile.passes.pca_widths import DEFAULT_SAMPLES, DEFAULT_VARIANCE, check_variance
from uticompile.passes.pipeline import MapConfig
from uticompile.passes.timestep_schedule import (
    DEFAULT_MAX_DROP,
    DEFAULT_PATIENCE,
    DEFAULT_SCHEDULE,
    check_max_drop,
    check_schedule,
)

DEFAULT_VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class ShrinkConfig:
    """``variance`` None skips the spatial pass, ``timesteps`` None the temporal pass.

    ``samples`` training images feed the PCA; ``run_samples`` test images are run on the
    modeled accelerator (``pes`` PEs) to cost every stage. ``epochs`` trains the rebuilt
    (spatial) network; each temporal stage trains until its accuracy on the held-out
    ``validation_fraction`` of the training split recovers to within ``max_drop`` of the
    reference, stops improving for ``patience`` epochs, or reaches ``max_stage_epochs``.
    """

    dataset: str = "digits"
    variance: float | None = DEFAULT_VARIANCE
    timesteps: tuple[int, ...] | None = DEFAULT_SCHEDULE
    max_drop: float = DEFAULT_MAX_DROP
    epochs: int = 5
    max_stage_epochs: int = 10
    patience: int = DEFAULT_PATIENCE
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
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
            raise ConfigError("nothing to do: give variance, timesteps or both")
        if self.variance is not None:
            check_variance(self.variance)
        if self.timesteps is not None:
            object.__setattr__(self, "timesteps", tuple(int(t) for t in self.timesteps))
            check_schedule(self.timesteps)
        check_max_drop(self.max_drop)
        for name in ("epochs", "max_stage_epochs", "patience", "run_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}", option=name)
        if self.samples < 2:
            raise ConfigError(f"samples must be >= 2, got {self.samples}", option="samples")
        if not (0.0 < self.validation_fraction <= 0.5):
            raise ConfigError(
                f"validation_fraction must be in (0, 0.5], got {self.validation_fraction}",
                option="validation_fraction",
            )
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}", option="seed")
        self.map_config()
        self.train_config(0)

    def map_config(self) -> MapConfig:
        return MapConfig(
            pes=self.pes, grouping=self.grouping, bits=self.bits, placement=self.placement
        )

    def train_config(self, seed: int, epochs: int | None = None) -> TrainConfig:
        """Training of the spatial stage (``epochs``) or, given, of a temporal stage's cap."""
        return TrainConfig(
            epochs=self.epochs if epochs is None else epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=seed,
            device=self.device,
            augment=self.augment,
        )
