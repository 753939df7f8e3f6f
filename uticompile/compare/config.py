"""The options of ``uticompile compare`` and the names every part of the workflow shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from uticompile.errors import ConfigError
from uticompile.limits import MAX_PES
from uticompile.passes.lottery import BALANCE_CHOICES, LayerBudgets, PruneConfig
from uticompile.passes.pca_widths import DEFAULT_SAMPLES, DEFAULT_VARIANCE
from uticompile.passes.pipeline import MapConfig
from uticompile.passes.timestep_criterion import DEFAULT_CANDIDATES, DEFAULT_THRESHOLD
from uticompile.passes.timestep_schedule import DEFAULT_MAX_DROP, DEFAULT_SCHEDULE
from uticompile.placement import PLACEMENTS
from uticompile.shrink.config import ShrinkConfig

BASELINE = "none"  # the lottery-ticket baseline every variant is compared with
SWEEP_VARIANT = "uticket"  # Fig. 7b: this variant against the baseline, round by round
PAPER_PLACEMENT = "contiguous"  # the paper's mapping: every balance variant's main row


def row_key(balance: str, placement: str) -> str:
    """A row of the tables: the balance variant, suffixed by any placement but the paper's."""
    return balance if placement == PAPER_PLACEMENT else f"{balance}+{placement}"


@dataclass(frozen=True)
class CompareConfig:
    """Every option of ``uticompile compare``; validated at construction."""

    dataset: str = "digits"
    data_dir: str | None = None
    balance: tuple[str, ...] = (BASELINE, SWEEP_VARIANT)
    pes: tuple[int, ...] = (16,)
    rounds: int = 14
    rate: float = 0.25
    epochs: int = 5
    dense_epochs: int | None = None
    rewind_epoch: int = 0
    search_timesteps: int | str | None = None
    search_threshold: float = DEFAULT_THRESHOLD
    search_candidates: tuple[int, ...] = DEFAULT_CANDIDATES
    grouping: str = "sata"
    cycle_rates: str = "rewind"
    match_layer_counts: bool = False  # prune each variant to the baseline's per-layer counts
    bits: int = 16
    placement: tuple[str, ...] = (PAPER_PLACEMENT, "auto")
    samples: int = 100
    batch_size: int = 64
    run_batch_size: int = 50
    train_limit: int | None = None
    seed: int = 0
    hw_path: str | None = None
    device: str = "cpu"
    spatio_temporal: bool = False  # add the spatio-temporal variants (shrink, then u-Ticket)
    variance: float = DEFAULT_VARIANCE
    timesteps: tuple[int, ...] = DEFAULT_SCHEDULE
    max_drop: float = DEFAULT_MAX_DROP
    pca_samples: int = DEFAULT_SAMPLES

    def __post_init__(self) -> None:
        """Reject impossible options before any work (one-line ConfigError)."""
        object.__setattr__(self, "balance", tuple(self.balance))
        object.__setattr__(self, "pes", tuple(int(p) for p in self.pes))
        object.__setattr__(self, "placement", tuple(self.placement))
        bad_placement = [p for p in self.placement if p not in PLACEMENTS]
        if bad_placement:
            raise ConfigError(
                f"placement has unknown values {', '.join(bad_placement)}; choose from "
                f"{', '.join(PLACEMENTS)}",
                option="placement",
            )
        if PAPER_PLACEMENT not in self.placement or len(set(self.placement)) != len(self.placement):
            raise ConfigError(
                "placement must list 'contiguous' (the paper's mapping, the baseline) once, "
                "and every other placement at most once",
                option="placement",
            )
        object.__setattr__(self, "search_candidates", tuple(self.search_candidates))
        object.__setattr__(self, "timesteps", tuple(int(t) for t in self.timesteps))
        if not self.balance:
            raise ConfigError("balance needs at least the baseline 'none'", option="balance")
        unknown = [b for b in self.balance if b not in BALANCE_CHOICES]
        if unknown:
            raise ConfigError(
                f"balance has unknown variants {', '.join(unknown)}; "
                f"choose from {', '.join(BALANCE_CHOICES)}",
                option="balance",
            )
        if len(set(self.balance)) != len(self.balance):
            raise ConfigError("balance lists a variant twice", option="balance")
        if BASELINE not in self.balance:
            raise ConfigError(
                "balance must include 'none': it is the baseline of every figure", option="balance"
            )
        if not self.pes:
            raise ConfigError("pes needs at least one PE count", option="pes")
        bad = [p for p in self.pes if not 1 <= p <= MAX_PES]
        if bad:
            raise ConfigError(f"pes values must lie in 1..{MAX_PES}, got {bad[0]}", option="pes")
        if len(set(self.pes)) != len(self.pes):
            raise ConfigError("pes lists a PE count twice", option="pes")
        if self.samples < 1:
            raise ConfigError(f"samples must be >= 1, got {self.samples}", option="samples")
        if self.run_batch_size < 1:
            raise ConfigError(f"run batch size must be >= 1, got {self.run_batch_size}")
        if self.train_limit is not None and self.train_limit < 1:
            raise ConfigError(
                f"train_limit must be >= 1, got {self.train_limit}", option="train_limit"
            )
        for variant in self.balance:
            self.prune_config(variant)  # rounds, rate, epochs, seed, device, batch size
        for n in self.pes:
            self.map_config(n)
        if self.spatio_temporal:
            if self.pca_samples < 2:  # shrink calls it samples: name compare's own option
                raise ConfigError(
                    f"pca_samples must be >= 2, got {self.pca_samples}", option="pca_samples"
                )
            self.shrink_config()  # variance, schedule, max drop

    @property
    def primary_pes(self) -> int:
        """The PE count pruning balances for (the first of the sweep)."""
        return self.pes[0]

    def prune_config(self, balance: str, budgets: LayerBudgets | None = None) -> PruneConfig:
        """The pruning options of one variant; ``budgets`` (the baseline's per-layer counts,
        with ``match_layer_counts``) apply to every variant but the baseline."""
        return PruneConfig(
            dataset=self.dataset,
            rounds=self.rounds,
            rate=self.rate,
            epochs=self.epochs,
            dense_epochs=self.dense_epochs,
            rewind_epoch=self.rewind_epoch,
            search_timesteps=self.search_timesteps,
            search_threshold=self.search_threshold,
            search_candidates=self.search_candidates,
            balance=balance,
            pes=self.primary_pes,
            grouping=self.grouping,
            cycle_rates=self.cycle_rates,
            layer_budgets=None if balance == BASELINE else budgets,
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device,
        )

    def shrink_config(self) -> ShrinkConfig:
        """The spatio-temporal variant: both passes, costed like the rest; the rounds' epochs
        train the rebuilt network and cap every timestep stage."""
        return ShrinkConfig(
            dataset=self.dataset,
            variance=self.variance,
            timesteps=self.timesteps,
            max_drop=self.max_drop,
            epochs=self.epochs,
            max_stage_epochs=self.epochs,
            samples=self.pca_samples,
            run_samples=self.samples,
            pes=self.primary_pes,
            grouping=self.grouping,
            bits=self.bits,
            placement=PAPER_PLACEMENT,
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device,
        )

    def map_config(self, pes: int, placement: str = PAPER_PLACEMENT) -> MapConfig:
        return MapConfig(pes=pes, grouping=self.grouping, bits=self.bits, placement=placement)

    def rows(self) -> list[tuple[str, str, str]]:
        """(row key, balance, placement) of every table row: each variant under each placement."""
        placements = [PAPER_PLACEMENT] + [p for p in self.placement if p != PAPER_PLACEMENT]
        return [(row_key(b, p), b, p) for b in self.balance for p in placements]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["balance"], d["pes"] = list(self.balance), list(self.pes)
        d["placement"] = list(self.placement)
        d["search_candidates"] = list(self.search_candidates)
        d["timesteps"] = list(self.timesteps)
        return d


def sweep_applies(config: CompareConfig) -> bool:
    """Fig. 7b needs the u-Ticket variant and at least two pruning rounds."""
    return SWEEP_VARIANT in config.balance and config.rounds >= 2
