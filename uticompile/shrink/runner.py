"""Spatio-temporal pruning as a resumable runner: PCA channel widths, then fewer timesteps.

1. ``original``: the input model's accuracy, size and mapped cost (the reference).
2. ``spatial`` (with ``variance``): PCA spectra of the input model's LIF layers
   (``spectrum.json``), the network rebuilt with the chosen widths (joined channels share one)
   and trained from a fresh initialization, as the paper trains its pruned network.
3. ``T{t}`` per schedule entry (with ``timesteps``): the previous stage's weights trained at T=t.
   The smallest T within ``max_drop`` of the model entering this pass is kept.

Every stage writes its folder and a ``done`` marker last; a finished stage is read back, not
redone, and training checkpoints every epoch. Seeds depend on (seed, stage) only and reports
carry no wall-clock times, so a resumed run writes byte-identical models and reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from uticompile.datasets import Dataset
from uticompile.errors import ConfigError, DamagedFileError, UticompileError
from uticompile.fileio import atomic_write_text
from uticompile.hardware import HardwareConfig, load_hardware
from uticompile.ir import Graph
from uticompile.models.train import StepInfo, evaluate, train
from uticompile.onnx_export import save_onnx
from uticompile.onnx_import import read_graph
from uticompile.passes.lottery import graph_digest, round_seed
from uticompile.passes.pca_widths import pca_spectra
from uticompile.passes.resize_channels import resize_channels, shared_widths
from uticompile.passes.timestep_schedule import check_schedule, choose_timesteps
from uticompile.rundir import (
    damaged_files,
    prepare_run_dir,
    read_json,
    redo_if_damaged,
    remove,
    write_done,
)
from uticompile.runtime.inputs import check_samples
from uticompile.shrink.config import ShrinkConfig
from uticompile.shrink.cost import mapped_cost, model_size
from uticompile.shrink.paths import ShrinkPaths, StagePaths

SPATIAL_STAGE = 1  # seed index of the spatial stage; temporal stage t uses TEMPORAL_STAGE + t
TEMPORAL_STAGE = 100


@dataclass(frozen=True)
class ShrinkEvent:
    """Progress for callers (the CLI draws bars from it; the library never prints).

    ``kind``: ``stage_start``, ``pca`` (``count`` images measured so far of ``total``), ``step``
    (with ``step``), ``stage_end`` (with ``report``; ``resumed`` when read back from disk),
    ``redo`` (with ``damaged``: a finished stage whose files were since damaged runs again).
    """

    kind: str
    stage: str
    step: StepInfo | None = None
    report: dict[str, Any] | None = None
    resumed: bool = False
    damaged: tuple[str, ...] = ()
    count: int = 0
    total: int = 0


@dataclass
class ShrinkResult:
    """The kept model (a normal uticompile graph) and the run's summary (``report.json``)."""

    graph: Graph
    summary: dict[str, Any]
    run_dir: Path

    @property
    def timesteps(self) -> int:
        """The kept model's T."""
        return self.graph.timesteps

    @property
    def accuracy(self) -> float:
        """The kept model's test accuracy (PyTorch, whole test split)."""
        return float(self.summary["final"]["accuracy"])

    @property
    def compression(self) -> float:
        """Conv/linear weights of the input model over those of the kept model."""
        return float(self.summary["final"]["compression"])

    @property
    def widths(self) -> dict[str, int]:
        """Output channels of every conv/linear layer of the kept model."""
        return {n.name: int(self.graph.params[n.inputs[1]].shape[0])
                for n in self.graph.weight_nodes()}  # fmt: skip


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def shrink_identity(graph: Graph, data: Dataset, config: ShrinkConfig) -> dict[str, Any]:
    """What a run directory's results depend on: options, model and data digests."""
    return {
        "kind": "shrink",
        "config": asdict(config),
        "model_sha256": graph_digest(graph),
        "data": {
            "name": data.name,
            "train": int(data.x_train.shape[0]),
            "test": int(data.x_test.shape[0]),
            "input_shape": list(data.input_shape),
        },
    }


class _Stages:
    """Runs (or reads back) one stage at a time; shared state of one run."""

    def __init__(
        self,
        data: Dataset,
        config: ShrinkConfig,
        hw: HardwareConfig,
        emit: Callable[[ShrinkEvent], None],
    ) -> None:
        self.data, self.config, self.hw, self.emit = data, config, hw, emit

    def report(self, name: str, graph: Graph, epochs: int) -> dict[str, Any]:
        ev = evaluate(graph, self.data)
        cfg = self.config
        return {
            "stage": name,
            "timesteps": graph.timesteps,
            "epochs": epochs,
            "accuracy": ev.accuracy,
            "spike_sparsity": ev.mean_spike_sparsity,
            **model_size(graph),
            "widths": {
                n.name: int(graph.params[n.inputs[1]].shape[0]) for n in graph.weight_nodes()
            },
            "cost": mapped_cost(graph, self.data, cfg.map_config(), self.hw, cfg.run_samples),
        }

    def read_back(self, name: str, paths: StagePaths) -> tuple[Graph, dict[str, Any]] | None:
        """A stage an earlier process finished; None (its files removed, so it runs again)
        when one of them is missing, damaged or changed."""
        bad = damaged_files(paths.done, paths.root)
        if not bad:
            try:
                report = read_json(paths.report)
                if not isinstance(report, dict):
                    raise DamagedFileError(paths.report, "not a stage report")
                graph = read_graph(paths.model)
            except UticompileError:  # a marker of older runs, which lists no checksums
                bad = [paths.model, paths.report]
            else:
                self.emit(ShrinkEvent("stage_end", name, report=report, resumed=True))
                return graph, report
        remove([*bad, paths.model, paths.report, paths.checkpoint, paths.done])
        self.emit(ShrinkEvent("redo", name, damaged=tuple(str(p) for p in bad)))
        return None

    def run(
        self,
        name: str,
        paths: StagePaths,
        start: Callable[[], Graph],
        seed: int | None,
    ) -> tuple[Graph, dict[str, Any]]:
        """Train ``start()`` (``seed`` None: take it as it is) into stage ``name``."""
        self.emit(ShrinkEvent("stage_start", name))
        if paths.done.exists():
            done = self.read_back(name, paths)
            if done is not None:
                return done
        paths.root.mkdir(parents=True, exist_ok=True)
        graph = start()
        epochs = 0
        if seed is not None:

            def on_step(info: StepInfo) -> None:
                self.emit(ShrinkEvent("step", name, step=info))

            epochs = self.config.epochs
            start_graph = graph
            graph = redo_if_damaged(
                paths.checkpoint,
                lambda: train(
                    start_graph,
                    self.data,
                    self.config.train_config(seed),
                    checkpoint=paths.checkpoint,
                    on_step=on_step,
                ),
            ).graph
        save_onnx(graph, paths.model)
        graph = read_graph(paths.model)  # what a resumed run reads: one source of truth
        report = self.report(name, graph, epochs)
        atomic_write_text(paths.report, _dump(report))
        write_done(paths.done, paths.root, [paths.model, paths.report])
        paths.checkpoint.unlink(missing_ok=True)
        self.emit(ShrinkEvent("stage_end", name, report=report))
        return graph, report


def _spectra(
    graph: Graph, data: Dataset, config: ShrinkConfig, paths: ShrinkPaths, stages: _Stages
) -> list[dict[str, Any]]:
    if paths.spectrum.exists():
        try:
            layers: list[dict[str, Any]] = read_json(paths.spectrum)["layers"]
            return layers
        except (DamagedFileError, TypeError, KeyError):
            remove([paths.spectrum])  # measured again below
    assert config.variance is not None
    seen = [0]

    def on_batch(n: int) -> None:
        seen[0] += n
        stages.emit(ShrinkEvent("pca", "spatial", count=seen[0], total=config.samples))

    spectra = pca_spectra(graph, data, variance=config.variance, samples=config.samples,
                          batch_size=config.batch_size, on_batch=on_batch)  # fmt: skip
    layers = [asdict(s) for s in spectra.values()]
    paths.spectrum.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.spectrum, _dump({"variance": config.variance, "layers": layers}))
    return layers


def run_shrink(
    graph: Graph,
    data: Dataset,
    config: ShrinkConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    hw: HardwareConfig | None = None,
    on_event: Callable[[ShrinkEvent], None] | None = None,
) -> ShrinkResult:
    """Run (or continue, with ``resume``) spatio-temporal pruning of ``graph``.

    Raises ConfigError for impossible options, a schedule starting above the model's T, a
    non-empty run directory without ``resume`` or one holding another run.
    """
    graph.validate()
    if config.timesteps is not None:
        check_schedule(config.timesteps, graph.timesteps)
    check_samples(config.run_samples, data, option="run_samples")
    paths = ShrinkPaths(Path(run_dir))
    if not resume and paths.root.is_dir() and any(paths.root.iterdir()):
        raise ConfigError(
            f"run directory {paths.root} is not empty: pass --resume to continue it "
            "or choose another directory"
        )
    prepare_run_dir(paths.root, paths.config, shrink_identity(graph, data, config), resume)
    stages = _Stages(data, config, hw if hw is not None else load_hardware(None), on_event or (
        lambda _e: None))  # fmt: skip
    summary: dict[str, Any] = {"config": asdict(config)}

    current, original = stages.run("original", paths.original, lambda: graph, None)
    summary["original"] = original
    summary["spatial"] = None
    if config.variance is not None:
        layers = _spectra(graph, data, config, paths, stages)
        widths = shared_widths(graph, {s["layer"]: s["width"] for s in layers})
        seed = round_seed(config.seed, SPATIAL_STAGE)
        current, report = stages.run(
            "spatial",
            paths.spatial,
            lambda: resize_channels(graph, widths, seed=seed),
            seed,
        )
        summary["spatial"] = {
            "variance": config.variance,
            "samples": config.samples,
            "layers": layers,
            "report": report,
        }

    summary["temporal"] = None
    if config.timesteps is not None:
        entering = current
        reference = (summary["spatial"] or {"report": original})["report"]["accuracy"]
        reports: list[dict[str, Any]] = []
        for t in config.timesteps:
            prev = current
            same = t == prev.timesteps
            current, report = stages.run(
                f"T{t}",
                paths.temporal(t),
                partial(prev.with_timesteps, t),
                None if same else round_seed(config.seed, TEMPORAL_STAGE + t),
            )
            reports.append(report)
        chosen = choose_timesteps(
            {r["timesteps"]: r["accuracy"] for r in reports}, reference, config.max_drop
        )
        summary["temporal"] = {
            "schedule": list(config.timesteps),
            "entering_timesteps": entering.timesteps,
            "reference_accuracy": reference,
            "max_drop": config.max_drop,
            "stages": reports,
            "chosen": chosen,
        }
        current = read_graph(paths.temporal(chosen).model)

    final = _final(summary, current)
    summary["final"] = final
    atomic_write_text(paths.summary, _dump(summary))
    return ShrinkResult(current, summary, paths.root)


def _final(summary: dict[str, Any], graph: Graph) -> dict[str, Any]:
    """The kept model against the original: compression and latency reduction."""
    original = summary["original"]
    if summary["temporal"] is not None:
        t = summary["temporal"]
        kept = next(r for r in t["stages"] if r["timesteps"] == t["chosen"])
    else:
        kept = summary["spatial"]["report"]
    latency = kept["cost"]["latency"]
    ratio = original["cost"]["latency"] / latency if latency else None
    return {
        "stage": kept["stage"],
        "timesteps": graph.timesteps,
        "accuracy": kept["accuracy"],
        "parameters": kept["parameters"],
        "compression": original["parameters"] / kept["parameters"],
        "latency": kept["cost"]["latency"],
        "latency_reduction": ratio,
        "energy_pj": kept["cost"]["energy_pj"],
    }
