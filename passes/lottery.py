"""The lottery-ticket search with workload balancing (u-Ticket Algorithm 1) as a resumable runner.

Round 0 trains the dense model; every later round prunes ``rate`` of the surviving weights by
global magnitude, balances the PE workloads of the in-scope layers (after pruning, before
rewinding), rewinds and retrains with pruned weights held at exact zero.

Everything a round produces lives in its own folder of the run directory (``round_00/`` ...):
``masks.npz`` (the round's mask and the magnitude-pruned mask before balancing), ``trained.onnx``,
``report.json`` and a ``done`` marker written last. Each round's RNGs are seeded from
``(seed, round)`` and training checkpoints to ``train.ckpt`` every epoch, so a resumed run (even
after kill -9 mid-round) ends with the byte-identical model of an uninterrupted one.

``rewind.onnx`` is the rewind point: the input model (a lottery ticket when the input is untrained,
fine-tuning when it was trained; ``search_method`` names which) or epoch K of the dense round.
With ``search_timesteps="auto"`` the ET criterion's choice is saved as ``timesteps.json``.

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
from uticompile.errors import ConfigError
from uticompile.fileio import atomic_write_bytes
from uticompile.ir import Graph
from uticompile.models.train import StepInfo
from uticompile.onnx_export import serialize, to_onnx
from uticompile.passes.lottery_config import (
    AUTO,
    BALANCE_CHOICES,
    CYCLE_RATE_CHOICES,
    REWIND_CHOICES,
    LayerBudgets,
    PruneConfig,
    budgets_from_reports,
    round_seed,
)
from uticompile.passes.lottery_paths import RunPaths, load_masks, save_masks
from uticompile.passes.lottery_phases import (
    criterion_logits,
    finish_round,
    graph_digest,
    load_round,
    masked_graph,
    round_masks,
    round_report,
    search_choice,
    search_timing,
    start_weights,
    train_round,
)
from uticompile.rundir import damaged_files, read_json

__all__ = [
    "AUTO",
    "BALANCE_CHOICES",
    "CYCLE_RATE_CHOICES",
    "REWIND_CHOICES",
    "LayerBudgets",
    "LotteryEvent",
    "LotteryResult",
    "PruneConfig",
    "budgets_from_reports",
    "criterion_logits",
    "load_masks",
    "masked_graph",
    "read_budgets",
    "round_seed",
    "run_identity",
    "run_lottery",
    "save_masks",
    "search_method",
    "search_seconds",
]


@dataclass(frozen=True)
class LotteryEvent:
    """Progress for callers (the CLI draws bars from it; the library never prints).

    ``kind``: ``round_start``, ``step`` (with ``step``), ``round_end`` (with ``report``;
    ``resumed`` when the round was finished by an earlier process), ``redo`` (with ``damaged``:
    a finished round whose files were since damaged runs again).
    """

    kind: str
    round: int
    rounds: int
    step: StepInfo | None = None
    report: dict[str, Any] | None = None
    resumed: bool = False
    damaged: tuple[str, ...] = ()  # ``redo``: the finished round's files found damaged


@dataclass
class LotteryResult:
    graph: Graph
    reports: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, Any] | None = None
    method: dict[str, str] = field(default_factory=dict)
    search_timesteps: dict[str, Any] | None = None  # the ET criterion's choice (``auto``)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rounds": self.reports, "method": self.method}
        if self.timing is not None:
            out["et_ticket"] = self.timing
        if self.search_timesteps is not None:
            out["search_timesteps"] = self.search_timesteps
        out["search_seconds"] = search_seconds(self.reports)
        return out


def search_seconds(reports: list[dict[str, Any]], key: str = "train_seconds") -> dict[str, Any]:
    """Measured training time: dense round, search rounds (1..R-1), final round, total.

    Wall time (``train_seconds``), with the same split of the process's CPU time under ``cpu``:
    on a shared machine the CPU time is the steadier measure of the work done.
    """
    secs = [float(r.get(key, 0.0)) for r in reports]
    out: dict[str, Any] = {
        "dense": secs[0] if secs else 0.0,
        "search": sum(secs[1:-1]),
        "final": secs[-1] if len(secs) > 1 else 0.0,
        "total": sum(secs),
    }
    if key == "train_seconds":
        out["cpu"] = search_seconds(reports, "train_cpu_seconds")
    return out


def search_method(config: PruneConfig, start: Graph) -> dict[str, str]:
    """What kind of search this is, from the options and the start model's training history.

    Rewinding to an untrained model, or late to epoch K of the dense round, is a lottery ticket
    (Algorithm 1 step 4). Rewinding to a file that was already trained is fine-tuning.
    """
    trained = start.trained_epochs
    history = (
        "an untrained model"
        if trained == 0
        else "a model of unknown training"
        if trained is None
        else f"a model trained {trained} epochs"
    )
    if config.rewind == "lr":
        return {
            "kind": "lr-rewinding",
            "text": f"learning-rate rewinding (survivors keep their trained values) from {history}",
        }
    if config.rewind_epoch > 0:
        return {
            "kind": "lottery-ticket-late-rewind",
            "text": f"lottery ticket with late rewinding to epoch {config.rewind_epoch} of the "
            f"dense round, from {history}",
        }
    if trained == 0 and config.round0_epochs > 0:
        return {
            "kind": "lottery-ticket",
            "text": "lottery ticket: every round rewinds the survivors to the initialization",
        }
    if trained == 0:
        return {
            "kind": "pruning-at-init",
            "text": "pruning at initialization (no dense training: dense_epochs 0)",
        }
    return {
        "kind": "fine-tuning",
        "text": f"fine-tuning, not a lottery ticket: every round rewinds to the input, {history} "
        "(start from an untrained model, or rewind to epoch K > 0 of the dense round "
        "(rewind_epoch) for a lottery ticket)",
    }


def read_budgets(run_dir: str | Path, rounds: int) -> LayerBudgets:
    """The per-layer counts of a finished baseline run directory of ``rounds`` rounds.

    Raises ConfigError naming the directory when it holds no finished run of that length.
    """
    paths = RunPaths(Path(run_dir))
    reports = []
    for r in range(rounds + 1):
        rp = paths.round(r)
        if not rp.done.exists():
            raise ConfigError(
                f"{run_dir}: round {r} of the baseline is not finished (need rounds 0..{rounds})"
            )
        damaged = damaged_files(rp.done, paths.root)
        if damaged:
            raise ConfigError(f"{run_dir}: the baseline's {damaged[0]} is missing or damaged")
        reports.append(read_json(rp.report))
    if any("layer_counts" not in rep for rep in reports):
        raise ConfigError(f"{run_dir}: its reports carry no layer_counts (an older run)")
    return budgets_from_reports(reports)


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
    if config.rewind_epoch == 0:
        rewind = serialize(to_onnx(graph))
        if not paths.rewind.is_file() or paths.rewind.read_bytes() != rewind:
            atomic_write_bytes(paths.rewind, rewind)  # made, or made again if damaged

    reports: list[dict[str, Any]] = []
    prev: Graph | None = None
    prev_masks: dict[str, np.ndarray] | None = None
    choice: dict[str, Any] | None = None  # ``auto``: the ET criterion's choice
    for r in range(config.rounds + 1):
        rp = paths.round(r)
        rp.dir.mkdir(exist_ok=True)
        emit(LotteryEvent("round_start", r, config.rounds))
        if rp.done.exists():
            loaded, damaged = load_round(rp, paths)
            if loaded is not None:
                prev, prev_masks, report = loaded
                reports.append(report)
                emit(LotteryEvent("round_end", r, config.rounds, report=report, resumed=True))
                continue
            names = tuple(str(p) for p in damaged)
            emit(LotteryEvent("redo", r, config.rounds, damaged=names))
        if choice is None:
            choice = search_choice(r, data, config, paths, prev, T)
        chosen = None if choice is None else int(choice["timesteps"])
        masks, pruned, balance_info, balance_seconds = round_masks(
            r, graph, data, config, paths, prev, prev_masks, chosen
        )
        start = start_weights(r, graph, config, paths, masks, prev, prev_masks, chosen)

        def on_step(info: StepInfo, r: int = r) -> None:
            emit(LotteryEvent("step", r, config.rounds, step=info))

        trained, train_seconds, train_cpu_seconds = train_round(
            r, start, data, config, paths, masks, T, on_step, graph.trained_epochs
        )
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
        report["train_cpu_seconds"] = train_cpu_seconds
        finish_round(rp, paths, trained, report, T)
        reports.append(report)
        paths.write_reports(reports)
        prev, prev_masks = trained, masks
        emit(LotteryEvent("round_end", r, config.rounds, report=report))

    paths.write_reports(reports)
    assert prev is not None
    if config.search_timesteps == AUTO and choice is None and paths.timesteps.exists():
        choice = read_json(paths.timesteps)  # rounds == 0: chosen, never used
    return LotteryResult(
        graph=prev.with_timesteps(T),
        reports=reports,
        timing=timing,
        method=search_method(config, graph),
        search_timesteps=choice,
    )
