"""The lottery-ticket search with workload balancing (u-Ticket Algorithm 1) as a resumable runner.

Round 0 trains the dense model; every later round prunes ``rate`` of the surviving weights by
global magnitude, balances the PE workloads of the in-scope layers (after pruning, before
rewinding), rewinds and retrains with pruned weights held at exact zero.

Everything a round produces lives in its own folder of the run directory (``round_00/`` ...):
``masks.npz`` (the round's mask and the magnitude-pruned mask before balancing), ``trained.onnx``,
``report.json`` and a ``done`` marker written last. Each round's RNGs are seeded from
``(seed, round)`` and training checkpoints to ``train.ckpt`` every epoch, so a resumed run (even
after kill -9 mid-round) ends with the byte-identical model of an uninterrupted one.

Files: options in ``lottery_config``, the run directory in ``lottery_paths``, the phases of a round
in ``lottery_phases``, the measured activity cycle-aware balancing uses in ``firing_rates``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uticompile.datasets import Dataset
from uticompile.ir import Graph
from uticompile.models.train import StepInfo
from uticompile.onnx_export import save_onnx
from uticompile.passes.lottery_config import (
    BALANCE_CHOICES,
    REWIND_CHOICES,
    PruneConfig,
    round_seed,
)
from uticompile.passes.lottery_paths import RunPaths, load_masks, save_masks
from uticompile.passes.lottery_phases import (
    finish_round,
    graph_digest,
    load_round,
    masked_graph,
    round_masks,
    round_report,
    search_timing,
    start_weights,
    train_round,
)

__all__ = [
    "BALANCE_CHOICES",
    "REWIND_CHOICES",
    "LotteryEvent",
    "LotteryResult",
    "PruneConfig",
    "load_masks",
    "masked_graph",
    "round_seed",
    "run_identity",
    "run_lottery",
    "save_masks",
]


@dataclass(frozen=True)
class LotteryEvent:
    """Progress for callers (the CLI draws bars from it; the library never prints).

    ``kind``: ``round_start``, ``step`` (with ``step``), ``round_end`` (with ``report``;
    ``resumed`` when the round was finished by an earlier process).
    """

    kind: str
    round: int
    rounds: int
    step: StepInfo | None = None
    report: dict[str, Any] | None = None
    resumed: bool = False


@dataclass
class LotteryResult:
    graph: Graph
    reports: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rounds": self.reports}
        if self.timing is not None:
            out["et_ticket"] = self.timing
        return out


def run_identity(graph: Graph, data: Dataset, config: PruneConfig) -> dict[str, Any]:
    """What a run directory's results depend on: options, model and data digests."""
    return {
        "config": asdict(config),
        "model_sha256": graph_digest(graph),
        "data": {
            "name": data.name,
            "train": int(data.x_train.shape[0]),
            "test": int(data.x_test.shape[0]),
            "input_shape": list(data.input_shape),
        },
    }


def run_lottery(
    graph: Graph,
    data: Dataset,
    config: PruneConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    on_event: Callable[[LotteryEvent], None] | None = None,
) -> LotteryResult:
    """Run (or continue, with ``resume``) the search; returns the final round's pruned graph.

    Raises ConfigError for a non-empty run directory without ``resume`` or one holding another
    run, and PassError if balancing fails its postcondition.
    """
    paths = RunPaths(Path(run_dir))
    graph.validate()
    paths.prepare(run_identity(graph, data, config), resume)
    emit = on_event or (lambda _e: None)
    T = graph.timesteps
    timing = search_timing(graph, data, config, paths)
    if config.rewind_epoch == 0 and not paths.rewind.exists():
        save_onnx(graph, paths.rewind)

    reports: list[dict[str, Any]] = []
    prev: Graph | None = None
    prev_masks: dict[str, np.ndarray] | None = None
    for r in range(config.rounds + 1):
        rp = paths.round(r)
        rp.dir.mkdir(exist_ok=True)
        emit(LotteryEvent("round_start", r, config.rounds))
        if rp.done.exists():
            prev, prev_masks, report = load_round(rp)
            reports.append(report)
            emit(LotteryEvent("round_end", r, config.rounds, report=report, resumed=True))
            continue
        masks, pruned, balance_info, balance_seconds = round_masks(
            r, graph, data, config, paths, prev, prev_masks
        )
        start = start_weights(r, graph, config, paths, masks, prev, prev_masks)

        def on_step(info: StepInfo, r: int = r) -> None:
            emit(LotteryEvent("step", r, config.rounds, step=info))

        trained, train_seconds = train_round(r, start, data, config, paths, masks, T, on_step)
        report = round_report(
            r,
            trained,
            data,
            masks,
            pruned,
            config,
            epochs=config.round_epochs(r),
            train_seconds=train_seconds,
            balance_seconds=balance_seconds,
            balance_info=balance_info,
        )
        finish_round(rp, trained, report, T)
        reports.append(report)
        paths.write_reports(reports)
        prev, prev_masks = trained, masks
        emit(LotteryEvent("round_end", r, config.rounds, report=report))

    paths.write_reports(reports)
    assert prev is not None
    return LotteryResult(graph=prev.with_timesteps(T), reports=reports, timing=timing)
