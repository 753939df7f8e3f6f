"""Spatio-temporal pruning as a resumable runner: PCA channel widths, then fewer timesteps.

1. ``original``: the input model's accuracy, size and mapped cost (the reference).
2. ``spatial`` (with ``variance``): PCA spectra of the input model's LIF layers
   (``spectrum.json``), the network rebuilt with the chosen widths (joined channels share one)
   and trained from a fresh initialization, as the paper trains its pruned network.
3. ``T{t}`` per schedule entry (with ``timesteps``): the previous stage's weights trained at T=t
   until accuracy recovers (``passes.timestep_schedule.stage_stop``): epoch by epoch, up to
   ``max_stage_epochs``, until the accuracy on a held-out slice of the training split is within
   ``max_drop`` of the reference's (the model entering this pass) or has not improved for
   ``patience`` epochs; the stage keeps its best epoch. The smallest T within ``max_drop`` of the
   reference (test accuracy, as every report gives it) is kept.

The run holds out ``validation_fraction`` of the training split (seeded) from every stage it
trains; the test split is never used to decide anything during training. Every stage writes its
folder and a ``done`` marker last; a finished stage is read back, not redone, and training
checkpoints every epoch (with the validation curve and best weights beside the checkpoint).
Seeds depend on (seed, stage) only and reports carry no wall-clock times, so a resumed run writes
byte-identical models and reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from uticompile.datasets import Dataset
from uticompile.errors import DamagedFileError, UticompileError
from uticompile.fileio import atomic_write_text
from uticompile.hardware import HardwareConfig, load_hardware
from uticompile.ir import Graph
from uticompile.models.snn import SNN
from uticompile.models.train import StepInfo, evaluate, train
from uticompile.onnx_export import save_onnx
from uticompile.onnx_import import read_graph
from uticompile.passes.lottery import graph_digest, round_seed
from uticompile.passes.pca_widths import pca_spectra
from uticompile.passes.resize_channels import resize_channels, shared_widths
from uticompile.passes.timestep_schedule import (
    best_epoch,
    check_schedule,
    choose_timesteps,
    stage_stop,
)
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
VALIDATION_SEED = 2  # seed index of the held-out validation slice
EPOCH_CAP = "epoch cap"  # why a temporal stage stopped when neither rule of stage_stop did


@dataclass(frozen=True)
class ShrinkEvent:
    """Progress for callers (the CLI draws bars from it; the library never prints).

    ``kind``: ``stage_start``, ``pca`` (``count`` images measured so far of ``total``), ``step``
    (with ``step``), ``cost`` (``count`` of ``total`` test images run on the modeled
    accelerator), ``epoch_end`` (a temporal stage's epoch ``count`` of at most ``total``, with
    its ``validation`` accuracy against ``reference``), ``stage_end`` (with ``report``;
    ``resumed`` when read back from disk), ``redo`` (with ``damaged``: a finished stage whose
    files were since damaged runs again).
    """

    kind: str
    stage: str
    step: StepInfo | None = None
    report: dict[str, Any] | None = None
    resumed: bool = False
    damaged: tuple[str, ...] = ()
    count: int = 0
    total: int = 0
    validation: float | None = None
    reference: float | None = None


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
    """Runs (or reads back) one stage at a time; shared state of one run.

    ``data`` is the training split without the held-out slice (and the whole test split);
    ``validation`` is the held-out slice.
    """

    def __init__(
        self,
        data: Dataset,
        validation: Dataset,
        config: ShrinkConfig,
        hw: HardwareConfig,
        emit: Callable[[ShrinkEvent], None],
    ) -> None:
        self.data, self.validation, self.config, self.hw, self.emit = (
            data, validation, config, hw, emit)  # fmt: skip

    def validation_accuracy(self, graph: Graph) -> float:
        return evaluate(graph, self.validation).accuracy

    def report(self, name: str, graph: Graph, training: dict[str, Any]) -> dict[str, Any]:
        ev = evaluate(graph, self.data)
        cfg = self.config
        on_batch = self._on_cost(name)
        return {
            "stage": name,
            "timesteps": graph.timesteps,
            **training,
            "accuracy": ev.accuracy,
            "validation_accuracy": self.validation_accuracy(graph),
            "spike_sparsity": ev.mean_spike_sparsity,
            **model_size(graph),
            "widths": {
                n.name: int(graph.params[n.inputs[1]].shape[0]) for n in graph.weight_nodes()
            },
            "cost": mapped_cost(
                graph, self.data, cfg.map_config(), self.hw, cfg.run_samples, on_batch
            ),
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

    def _on_cost(self, name: str) -> Callable[[int], None]:
        """``cost`` events: test images run on the modeled accelerator so far."""
        total = min(self.config.run_samples, int(self.data.x_test.shape[0]))
        seen = [0]
        self.emit(ShrinkEvent("cost", name, count=0, total=total))

        def on_batch(n: int) -> None:
            seen[0] += n
            self.emit(ShrinkEvent("cost", name, count=seen[0], total=total))

        return on_batch

    def run(
        self,
        name: str,
        paths: StagePaths,
        start: Callable[[], Graph],
        seed: int | None,
        reference: float | None = None,
    ) -> tuple[Graph, dict[str, Any]]:
        """Train ``start()`` (``seed`` None: take it as it is) into stage ``name``: for
        ``epochs``, or (a temporal stage, given the ``reference`` validation accuracy) until
        accuracy recovers."""
        self.emit(ShrinkEvent("stage_start", name))
        if paths.done.exists():
            done = self.read_back(name, paths)
            if done is not None:
                return done
        paths.root.mkdir(parents=True, exist_ok=True)
        graph = start()
        training: dict[str, Any] = {"epochs": 0}
        if seed is not None and reference is None:
            start_graph, stage_seed = graph, seed
            graph = redo_if_damaged(
                paths.checkpoint,
                lambda: train(
                    start_graph,
                    self.data,
                    self.config.train_config(stage_seed),
                    checkpoint=paths.checkpoint,
                    on_step=self._on_step(name),
                ),
            ).graph
            training = {"epochs": self.config.epochs}
        elif seed is not None:
            assert reference is not None
            graph, training = self._until_recovered(name, paths, graph, seed, reference)
        save_onnx(graph, paths.model)
        graph = read_graph(paths.model)  # what a resumed run reads: one source of truth
        report = self.report(name, graph, training)
        atomic_write_text(paths.report, _dump(report))
        write_done(paths.done, paths.root, [paths.model, paths.report])
        for leftover in (paths.checkpoint, paths.curve, paths.best):
            leftover.unlink(missing_ok=True)
        self.emit(ShrinkEvent("stage_end", name, report=report))
        return graph, report

    def _on_step(self, name: str) -> Callable[[StepInfo], None]:
        def on_step(info: StepInfo) -> None:
            self.emit(ShrinkEvent("step", name, step=info))

        return on_step

    def _until_recovered(
        self, name: str, paths: StagePaths, graph: Graph, seed: int, reference: float
    ) -> tuple[Graph, dict[str, Any]]:
        """Train epoch by epoch until ``stage_stop`` says so or the cap; keep the best epoch.

        ``curve.json`` holds the validation accuracy of every epoch trained so far and
        ``best.onnx`` the best epoch's weights, both written before the epoch's checkpoint: a
        resumed stage redoes any epoch past its checkpoint and overwrites what it wrote.
        """
        cfg = self.config
        cap = cfg.max_stage_epochs
        curve: list[float] = json.loads(paths.curve.read_text()) if paths.curve.exists() else []
        before = graph.trained_epochs

        def on_epoch_end(epoch: int, net: SNN) -> bool:
            snapshot = net.to_graph()
            accuracy = self.validation_accuracy(snapshot)
            del curve[epoch - 1 :]
            curve.append(accuracy)
            if best_epoch(curve) == epoch:
                if before is not None:
                    snapshot.trained_epochs = before + epoch
                save_onnx(snapshot, paths.best)
            atomic_write_text(paths.curve, _dump(curve))
            self.emit(ShrinkEvent("epoch_end", name, count=epoch, total=cap,
                                  validation=accuracy, reference=reference))  # fmt: skip
            return stage_stop(curve, reference, cfg.max_drop, cfg.patience) is not None

        history = redo_if_damaged(
            paths.checkpoint,
            lambda: train(
                graph,
                self.data,
                cfg.train_config(seed, cap),
                checkpoint=paths.checkpoint,
                on_step=self._on_step(name),
                on_epoch_end=on_epoch_end,
            ),
        ).history
        assert len(history) == len(curve), (len(history), len(curve))
        points = [
            {"epoch": h.epoch, "validation_accuracy": v, "train_loss": h.loss,
             "train_accuracy": h.train_accuracy, "lr": h.lr}
            for h, v in zip(history, curve, strict=True)
        ]  # fmt: skip
        return read_graph(paths.best), {
            "epochs": len(curve),
            "max_epochs": cap,
            "best_epoch": best_epoch(curve),
            "stopped": stage_stop(curve, reference, cfg.max_drop, cfg.patience) or EPOCH_CAP,
            "curve": points,
        }


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
    rest, validation = data.hold_out(
        config.validation_fraction, round_seed(config.seed, VALIDATION_SEED)
    )
    prepare_run_dir(paths.root, paths.config, shrink_identity(graph, data, config), resume)
    stages = _Stages(rest, validation, config, hw if hw is not None else load_hardware(None),
                     on_event or (lambda _e: None))  # fmt: skip
    summary: dict[str, Any] = {"config": asdict(config)}

    current, original = stages.run("original", paths.original, lambda: graph, None)
    summary["original"] = original
    summary["spatial"] = None
    if config.variance is not None:
        layers = _spectra(graph, data, config, paths, stages)  # PCA trains nothing: all images
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
        entering_report = (summary["spatial"] or {"report": original})["report"]
        reference = entering_report["accuracy"]
        reference_validation = entering_report["validation_accuracy"]
        reports: list[dict[str, Any]] = []
        for t in config.timesteps:
            prev = current
            same = t == prev.timesteps
            current, report = stages.run(
                f"T{t}",
                paths.temporal(t),
                partial(prev.with_timesteps, t),
                None if same else round_seed(config.seed, TEMPORAL_STAGE + t),
                reference_validation,
            )
            reports.append(report)
        chosen = choose_timesteps(
            {r["timesteps"]: r["accuracy"] for r in reports}, reference, config.max_drop
        )
        summary["temporal"] = {
            "schedule": list(config.timesteps),
            "entering_timesteps": entering.timesteps,
            "reference_accuracy": reference,
            "reference_validation_accuracy": reference_validation,
            "validation_images": int(validation.x_train.shape[0]),
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
