"""Prune every variant from the same start and seed, map and run each model, collect the numbers.

Pruning balances for one PE count (the first of ``pes``); the resulting models are then mapped
and run at every PE count of the sweep. Everything lands in a results directory and is reused on
the next invocation: the pruning run dirs resume through ``run_lottery`` (named by a hash of the
run's identity, so other options give another dir, not an error), and mapped files and run
reports are named by a hash of their inputs (source bytes, map and hardware options, data).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import uticompile
from uticompile.compare.config import (
    BASELINE,
    PAPER_PLACEMENT,
    SWEEP_VARIANT,
    CompareConfig,
    sweep_applies,
)
from uticompile.datasets import Dataset, load_dataset
from uticompile.errors import MappingFormatError, UticompileError
from uticompile.fileio import atomic_write_bytes, atomic_write_text
from uticompile.hardware import HardwareConfig, load_hardware
from uticompile.ir import Graph
from uticompile.mapfile import Mapping, decode_mapping, encode_mapping
from uticompile.onnx_import import read_graph
from uticompile.passes.lottery import (
    LayerBudgets,
    LotteryEvent,
    PruneConfig,
    budgets_from_reports,
    run_identity,
    run_lottery,
)
from uticompile.passes.pipeline import calibrated, input_bound
from uticompile.runtime.inputs import check_samples, quantized_test_batches
from uticompile.runtime.simulate import simulate
from uticompile.shrink import ShrinkEvent
from uticompile.workflow.calibrated_map import map_calibrated

_ROUND0_FILES = ("masks.npz", "trained.onnx", "report.json", "done")  # "done" last


@dataclass(frozen=True)
class CompareEvent:
    """Progress for callers (the CLI draws it; the library never prints).

    ``kind``: ``prune`` (``lottery`` holds run_lottery's event; ``reused`` when the round was
    finished earlier), ``round0_shared`` (round 0 copied from the baseline's identical run),
    ``jobs`` (``total`` map+run jobs follow), ``map`` and ``run`` (``index`` of ``total``,
    ``reused`` when read from the results dir), ``write`` (``path``, relative to the results dir),
    ``shrink`` (``shrink`` holds run_shrink's event, for the spatio-temporal variant).
    """

    kind: str
    variant: str = ""
    round: int = -1
    pes: int = 0
    lottery: LotteryEvent | None = None
    reused: bool = False
    index: int = 0
    total: int = 0
    path: str = ""
    shrink: ShrinkEvent | None = None


@dataclass
class CompareResult:
    results: dict[str, Any]
    results_dir: Path
    files: list[str] = field(default_factory=list)
    plots_skipped: bool = False

    def summary(self) -> dict[str, Any]:
        """What ``--json`` prints: the headline tables and where everything is."""
        r = self.results
        return {
            "results_dir": str(self.results_dir),
            "files": self.files,
            "plots_skipped": self.plots_skipped,
            "primary_pes": r["primary_pes"],
            "method": r["method"],
            "search_timesteps": r["search_timesteps"],
            "baseline": r["baseline"],
            "variants": {
                v: {
                    "table1": d["table1"],
                    "table2": d["table2"],
                    "energy_pj": d["energy_pj"]["total"],
                    "energy_reduction": d["energy_reduction"],
                    "counts_differ": d["counts_differ"],
                }
                for v, d in r["variants"].items()
            },
            **({"combined": r["combined"]} if "combined" in r else {}),
        }


def digest(obj: Any) -> str:
    """SHA-256 of a JSON-able object (sorted keys): the cache key of a job's inputs."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def limit_train(data: Dataset, n: int | None) -> Dataset:
    """``data`` with only its first ``n`` training images (all when ``n`` is None)."""
    if n is None or n >= data.x_train.shape[0]:
        return data
    return data.head(train=n)


def _share_round0(donor: Path, run_dir: Path, identity: dict[str, Any]) -> bool:
    """Seed a fresh run dir with the baseline's round 0: it does not depend on the balance mode.

    Round 0 trains the dense model with the seed of (seed, 0) only, so copying it is what the
    run would compute itself, minus the time. The copy is byte for byte, ``done`` last.
    """
    src = donor / "round_00"
    if run_dir.exists() or not (src / "done").exists() or not (donor / "rewind.onnx").exists():
        return False
    text = json.dumps(identity, indent=2, sort_keys=True) + "\n"
    atomic_write_text(run_dir / "config.json", text)
    atomic_write_bytes(run_dir / "rewind.onnx", (donor / "rewind.onnx").read_bytes())
    if (donor / "timesteps.json").exists():  # the ET criterion ran in round 0
        atomic_write_bytes(run_dir / "timesteps.json", (donor / "timesteps.json").read_bytes())
    for name in _ROUND0_FILES:
        atomic_write_bytes(run_dir / "round_00" / name, (src / name).read_bytes())
    return True


@dataclass(frozen=True)
class _Job:
    variant: str  # the row key (``row_key``)
    round: int
    pes: int
    source: Path
    placement: str = PAPER_PLACEMENT


class _Runner:
    """Maps and runs one model at one PE count, reusing earlier results keyed by their inputs."""

    def __init__(
        self, out: Path, config: CompareConfig, data: Dataset, hw: HardwareConfig, bound: float
    ) -> None:
        self.out, self.config, self.data, self.hw, self.bound = out, config, data, hw, bound
        self.data_id = {
            "name": data.name,
            "test": int(data.x_test.shape[0]),
            "input_shape": list(data.input_shape),
            "mean": list(data.mean),
            "std": list(data.std),
        }

    def __call__(
        self, job: _Job, emit: Callable[[CompareEvent], None], index: int, total: int
    ) -> dict[str, Any]:
        cfg = self.config
        src = job.source.read_bytes()
        mc = cfg.map_config(job.pes, job.placement)
        hw = self.hw.with_pes(job.pes)
        map_key = digest(
            {
                "source": hashlib.sha256(src).hexdigest(),
                "map": asdict(mc),
                "hardware": asdict(hw),
                "input_bound": self.bound,
                "calibration_data": self.data_id if calibrated(mc) else None,
                "version": uticompile.__version__,
            }
        )
        run_key = digest(
            {
                "mapping": map_key,
                "data": self.data_id,
                "samples": cfg.samples,
                "batch_size": cfg.run_batch_size,
            }
        )
        label = f"{job.variant}-r{job.round:02d}-pes{job.pes}"
        map_path = self.out / "mapped" / f"{label}-{map_key[:16]}.map"
        rep_path = self.out / "reports" / f"{label}-{run_key[:16]}.json"

        def event(kind: str, reused: bool) -> None:
            emit(CompareEvent(kind, job.variant, job.round, job.pes, None, reused, index, total))

        if rep_path.exists():
            try:
                report: dict[str, Any] = json.loads(rep_path.read_text())
                event("map", True)
                event("run", True)
                return report
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass  # a damaged report is redone
        mapping: Mapping | None = None
        if map_path.exists():
            try:
                mapping = decode_mapping(map_path.read_bytes())
            except MappingFormatError:
                mapping = None
        event("map", mapping is not None)
        if mapping is None:
            graph = read_graph(job.source)
            _, mapping = map_calibrated(graph, mc, hw, self.bound, src, self.data)
            atomic_write_bytes(map_path, encode_mapping(mapping))
        sim = simulate(
            mapping, quantized_test_batches(mapping, self.data, cfg.samples, cfg.run_batch_size), hw
        )
        payload = sim.report.to_json()
        payload["accuracy"] = sim.accuracy
        text = json.dumps(payload, indent=1, sort_keys=True) + "\n"
        atomic_write_text(rep_path, text)
        event("run", False)
        result: dict[str, Any] = json.loads(text)  # the same numbers a reused run reads back
        return result


def _jobs(config: CompareConfig, runs: dict[str, Path]) -> list[_Job]:
    """Every (variant, round, PE count) to map and run, without repeats."""
    final = config.rounds

    def model(v: str, r: int) -> Path:
        return runs[v] / f"round_{r:02d}" / "trained.onnx"

    jobs = [
        _Job(key, final, n, model(b, final), p) for key, b, p in config.rows() for n in config.pes
    ]
    if sweep_applies(config):
        for v in (BASELINE, SWEEP_VARIANT):
            jobs += [_Job(v, r, config.primary_pes, model(v, r)) for r in range(final + 1)]
    seen: set[tuple[str, int, int]] = set()
    unique = []
    for j in jobs:
        if (j.variant, j.round, j.pes) not in seen:
            seen.add((j.variant, j.round, j.pes))
            unique.append(j)
    return unique


def load_inputs(model_path: Path, config: CompareConfig) -> tuple[Graph, Dataset, Dataset]:
    """The model, its dataset, and the (possibly limited) training data pruning uses."""
    graph = read_graph(model_path)
    c, h, w = graph.input_shape
    if h != w:
        raise UticompileError(f"{model_path}: non-square input {h}x{w} is not supported")
    data = load_dataset(config.dataset, data_dir=config.data_dir, size=h, channels=c)
    if data.num_classes != graph.num_classes:
        raise UticompileError(
            f"{model_path} has {graph.num_classes} classes, {config.dataset} has {data.num_classes}"
        )
    return graph, data, limit_train(data, config.train_limit)


def prune_runs(
    graph: Graph,
    train_data: Dataset,
    config: CompareConfig,
    out: Path,
    budgets: LayerBudgets | None = None,
) -> dict[str, tuple[PruneConfig, dict[str, Any], Path]]:
    """Each variant's pruning options, run identity and run directory (named by the identity),
    the baseline first: the one place that decides where a variant's run lives. ``budgets``
    (the finished baseline's per-layer counts) apply to the other variants."""
    order = [BASELINE] + [v for v in config.balance if v != BASELINE]
    runs = {}
    for variant in order:
        pc = config.prune_config(variant, budgets)
        identity = run_identity(graph, train_data, pc)
        runs[variant] = (pc, identity, out / "runs" / f"{variant}-{digest(identity)[:12]}")
    return runs


def run_compare(
    model_path: str | Path,
    config: CompareConfig,
    results_dir: str | Path,
    *,
    on_event: Callable[[CompareEvent], None] | None = None,
) -> CompareResult:
    """Run (or continue) the comparison and write results.json, results.md and the figures.

    Raises UticompileError subclasses for a bad model, dataset or option.
    """
    from uticompile.compare import spatio_temporal as st_variants
    from uticompile.compare.plots import render_plots
    from uticompile.compare.tables import build_results, markdown

    emit = on_event or (lambda _e: None)
    out = Path(results_dir)
    model_path = Path(model_path)
    graph, data, train_data = load_inputs(model_path, config)
    check_samples(config.samples, data)  # before any training
    hw = load_hardware(config.hw_path)
    bound = input_bound(data.mean, data.std)

    # 1. pruning: the baseline first, so the others can take its round 0.
    runs: dict[str, Path] = {}
    rounds: dict[str, list[dict[str, Any]]] = {}
    search: dict[str, Any] = {}
    planned = prune_runs(graph, train_data, config, out)
    for variant in planned:
        pc, identity, run_dir = planned[variant]
        if variant != BASELINE and config.match_layer_counts:
            budgets = budgets_from_reports(rounds[BASELINE])
            pc, identity, run_dir = prune_runs(graph, train_data, config, out, budgets)[variant]
        if variant != BASELINE and _share_round0(runs[BASELINE], run_dir, identity):
            emit(CompareEvent("round0_shared", variant, 0))

        def relay(e: LotteryEvent, v: str = variant) -> None:
            emit(CompareEvent("prune", v, e.round, config.primary_pes, e, e.resumed))

        result = run_lottery(graph, train_data, pc, run_dir, resume=True, on_event=relay)
        runs[variant], rounds[variant] = run_dir, result.reports
        search = {"method": result.method, "search_timesteps": result.search_timesteps}

    st = None
    if config.spatio_temporal:
        P, ST, STU = (
            config.primary_pes,
            st_variants.SPATIO_TEMPORAL,
            st_variants.SPATIO_TEMPORAL_UTICKET,
        )

        def on_shrink(e: ShrinkEvent) -> None:
            emit(CompareEvent("shrink", ST, reused=e.resumed, shrink=e))

        def on_prune(e: LotteryEvent) -> None:
            emit(CompareEvent("prune", STU, e.round, P, e, e.resumed))

        st = st_variants.run_spatio_temporal(
            graph, train_data, config, hw, out, digest, on_shrink, on_prune
        )

    # 2. map and run every model that a table or figure needs.
    runner = _Runner(out, config, data, hw, bound)
    jobs = _jobs(config, runs)
    if st is not None:
        jobs += [_Job(ST, 0, P, st.shrunk_model), _Job(STU, config.rounds, P, st.pruned_model)]
    emit(CompareEvent("jobs", total=len(jobs)))
    reports = {
        (j.variant, j.round, j.pes): runner(j, emit, i, len(jobs)) for i, j in enumerate(jobs)
    }

    # 3. tables and figures.
    model_sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
    results = build_results(
        config,
        model={"file": model_path.name, "sha256": model_sha, "name": graph.name},
        runs={v: p.relative_to(out).as_posix() for v, p in runs.items()},
        rounds=rounds,
        reports=reports,
        search=search,
    )
    if st is not None:
        results["combined"] = st_variants.combined_table(config, runs, rounds, st, reports, out)
    plots = render_plots(results, out)
    files = ["results.json", "results.md", *(plots or [])]
    text = json.dumps(results, indent=2, sort_keys=True) + "\n"
    atomic_write_text(out / "results.json", text)
    emit(CompareEvent("write", path="results.json"))
    atomic_write_text(out / "results.md", markdown(results, plots))
    emit(CompareEvent("write", path="results.md"))
    for name in plots or []:
        emit(CompareEvent("write", path=name))
    return CompareResult(json.loads(text), out, files, plots is None)
