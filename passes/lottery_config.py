"""Every option of a lottery-ticket run, validated before any work (``PruneConfig``).

The CLI, the compare workflow and a run directory's ``config.json`` all come from this one
dataclass, so an option means the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from uticompile.errors import ConfigError
from uticompile.grouping import GROUPINGS
from uticompile.limits import check_pes, check_timesteps
from uticompile.models.train import TrainConfig
from uticompile.passes.balance import BALANCE_MODES
from uticompile.passes.timestep_criterion import DEFAULT_CANDIDATES, DEFAULT_THRESHOLD

BALANCE_CHOICES: tuple[str, ...] = ("none", *BALANCE_MODES)
REWIND_CHOICES: tuple[str, ...] = ("weights", "lr")
# Where cycle-aware balancing measures firing rates: the model the mask will be trained from
# (the rewind point, with the new mask), or the previous round's trained model (with the new mask).
CYCLE_RATE_CHOICES: tuple[str, ...] = ("rewind", "previous")
# Per-round per-layer nonzero counts: ((layer, count), ...) for rounds 1..R.
LayerBudgets = tuple[tuple[tuple[str, int], ...], ...]
AUTO = "auto"  # --search-timesteps auto: the ET ticket's KL criterion picks the search T


@dataclass(frozen=True)
class PruneConfig:
    """Every option of a pruning run; the CLI and the saved ``config.json`` come from it."""

    dataset: str = "digits"
    rounds: int = 14
    rate: float = 0.25
    epochs: int = 5
    dense_epochs: int | None = None
    rewind_epoch: int = 0
    rewind: str = "weights"
    balance: str = "uticket"
    pes: int = 16
    grouping: str = "sata"
    search_timesteps: int | str | None = None  # an int, "auto" (the ET criterion) or None
    search_threshold: float = DEFAULT_THRESHOLD
    search_candidates: tuple[int, ...] = DEFAULT_CANDIDATES
    paper_compat: bool = False
    cycle_rates: str = "rewind"
    layer_budgets: LayerBudgets | None = None  # each layer's count per round (from a baseline)
    batch_size: int = 64
    lr: float = 0.1
    weight_decay: float = 5e-4
    augment: bool = True
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        """Reject impossible options before any work (one-line ConfigError)."""
        if not (0.0 < self.rate < 1.0):
            raise ConfigError(f"rate must be in (0, 1), got {self.rate}", option="rate")
        if self.rounds < 0:
            raise ConfigError(f"rounds must be >= 0, got {self.rounds}", option="rounds")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}", option="epochs")
        if self.dense_epochs is not None and self.dense_epochs < 0:
            raise ConfigError(
                f"dense_epochs must be >= 0, got {self.dense_epochs}", option="dense_epochs"
            )
        if self.rewind_epoch < 0 or self.rewind_epoch > self.epochs:
            raise ConfigError(
                f"rewind_epoch must be in [0, epochs={self.epochs}], got {self.rewind_epoch}",
                option="rewind_epoch",
            )
        if self.rewind_epoch > self.round0_epochs:
            raise ConfigError(
                f"rewind_epoch {self.rewind_epoch} is past the dense round's "
                f"{self.round0_epochs} epochs: there is no such rewind point",
                option="rewind_epoch",
            )
        if self.rewind not in REWIND_CHOICES:
            raise ConfigError(f"rewind must be one of {', '.join(REWIND_CHOICES)}", option="rewind")
        if self.balance not in BALANCE_CHOICES:
            raise ConfigError(
                f"balance must be one of {', '.join(BALANCE_CHOICES)}", option="balance"
            )
        if self.cycle_rates not in CYCLE_RATE_CHOICES:
            raise ConfigError(
                f"cycle_rates must be one of {', '.join(CYCLE_RATE_CHOICES)}", option="cycle_rates"
            )
        if self.layer_budgets is not None:
            budgets = tuple(
                tuple((str(n), int(c)) for n, c in counts) for counts in self.layer_budgets
            )
            object.__setattr__(self, "layer_budgets", budgets)
            if len(budgets) != self.rounds:
                raise ConfigError(
                    f"layer_budgets has {len(budgets)} rounds, the run has {self.rounds}",
                    option="layer_budgets",
                )
            if any(c < 0 for counts in budgets for _, c in counts):
                raise ConfigError("layer_budgets holds a negative count", option="layer_budgets")
        check_pes(self.pes)
        if self.grouping not in GROUPINGS:
            raise ConfigError(f"grouping must be one of {', '.join(GROUPINGS)}", option="grouping")
        object.__setattr__(self, "search_candidates", tuple(self.search_candidates))
        if isinstance(self.search_timesteps, str) and self.search_timesteps != AUTO:
            raise ConfigError(
                f"search_timesteps must be an integer or {AUTO!r}, got {self.search_timesteps!r}",
                option="search_timesteps",
            )
        if isinstance(self.search_timesteps, int):
            check_timesteps(self.search_timesteps, "search_timesteps")
        if not (0.0 < self.search_threshold <= 1.0):
            raise ConfigError(
                f"search_threshold must be in (0, 1], got {self.search_threshold}",
                option="search_threshold",
            )
        if not self.search_candidates or min(self.search_candidates) < 1:
            raise ConfigError("search_candidates needs timesteps >= 1", option="search_candidates")
        check_timesteps(max(self.search_candidates), "search_candidates")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}", option="seed")
        self.train_config(0, self.epochs)  # validates batch size, lr, weight decay, device

    @property
    def round0_epochs(self) -> int:
        """Epochs of the dense round (``dense_epochs``, default ``epochs``)."""
        return self.epochs if self.dense_epochs is None else self.dense_epochs

    def round_epochs(self, r: int) -> int:
        """Epochs of round ``r``: late rewinding trains ``epochs - K`` after round 0."""
        if r == 0:
            return self.round0_epochs
        return self.epochs - self.rewind_epoch if self.rewind == "weights" else self.epochs

    def round_timesteps(self, r: int, timesteps: int, chosen: int | None = None) -> int:
        """ET ticket: search rounds use the search T, the final round the model's T.

        With ``auto`` the search T is ``chosen`` by the criterion during the dense round, which
        therefore runs at the full T.
        """
        if self.search_timesteps is None or r >= self.rounds:
            return timesteps
        if self.search_timesteps == AUTO:
            return timesteps if r == 0 or chosen is None else chosen
        assert isinstance(self.search_timesteps, int)
        return self.search_timesteps

    def round_budget(self, r: int) -> dict[str, int] | None:
        """Round ``r``'s per-layer counts (``layer_budgets``), or None for global pruning."""
        if self.layer_budgets is None or r < 1:
            return None
        return dict(self.layer_budgets[r - 1])

    def train_config(self, r: int, epochs: int) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=round_seed(self.seed, r),
            device=self.device,
            augment=self.augment,
        )


def budgets_from_reports(reports: list[dict[str, Any]]) -> LayerBudgets:
    """Every pruning round's per-layer nonzero counts of a finished run (``layer_counts``).

    A variant pruned to these budgets holds exactly the baseline's count in every layer after
    every round, so the comparison is iso-sparse per layer, not only in total.
    """
    return tuple(
        tuple((n, int(c["balanced"])) for n, c in sorted(rep["layer_counts"].items()))
        for rep in reports[1:]
    )


def round_seed(seed: int, r: int) -> int:
    """A seed that depends on (seed, round) only, so nothing depends on process history."""
    return int(np.random.SeedSequence([seed, r]).generate_state(1, dtype=np.uint32)[0])
