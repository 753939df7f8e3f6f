"""The public Python API: build or load -> train -> prune -> map -> run -> compare, from Python.

A thin shell over the library, like the CLI: each step calls the library function the matching
command calls and returns a typed, frozen result. Nothing needs a run directory unless the caller
passes one (steps that need one use a temporary directory, removed afterwards). Errors are
``uticompile.errors`` exceptions naming options as these functions spell them.

Heavy modules (torch, onnxruntime) are imported inside the steps that need them, so importing
this module, and running a mapping, needs no torch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uticompile.datasets import Dataset, load_dataset
from uticompile.errors import ConfigError
from uticompile.hardware import HardwareConfig, load_hardware
from uticompile.ir import Graph
from uticompile.mapfile import Mapping as MappedModel
from uticompile.mapfile import read_mapping, write_mapping

if TYPE_CHECKING:
    from uticompile.compare import CompareEvent
    from uticompile.hwir import HwModule
    from uticompile.models.train import EpochRecord, StepInfo
    from uticompile.passes.lottery import LotteryEvent
    from uticompile.passes.pruner import Pruner, PruneStep
    from uticompile.runtime.simulate import Simulation

PathLike = str | os.PathLike[str]
ModelLike = Graph | PathLike
DatasetLike = str | Dataset

__all__ = [
    "Comparison",
    "Dataset",
    "Graph",
    "Mapped",
    "MappedModel",
    "PruneRound",
    "PruneStep",
    "Pruned",
    "Pruner",
    "Trained",
    "VariantResult",
    "build_model",
    "compare_variants",
    "load_dataset",
    "load_mapping",
    "load_model",
    "map_model",
    "prune",
    "run",
    "save_mapping",
    "save_model",
    "train",
]

_LAZY = {
    "Pruner": "uticompile.passes.pruner",
    "PruneStep": "uticompile.passes.pruner",
}


def __getattr__(name: str) -> Any:
    """``Pruner`` and ``PruneStep`` need torch: imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- build, load, save ------------------------------------------------------------------------


def load_model(path: PathLike) -> Graph:
    """Read an ONNX SNN (written by uticompile or following its conventions) as an IR graph."""
    from uticompile.onnx_import import read_graph

    return read_graph(path)


def save_model(graph: Graph, path: PathLike) -> None:
    """Write ``graph`` as ONNX (atomically)."""
    from uticompile.onnx_export import save_onnx

    save_onnx(graph, path)


def load_mapping(path: PathLike) -> MappedModel:
    """Read a mapped binary (``.utm``), checksums verified."""
    return read_mapping(path)


def save_mapping(mapped: Mapped | MappedModel, path: PathLike) -> None:
    """Write a mapping (or ``map_model``'s result) as a ``.utm`` file (atomically)."""
    write_mapping(mapped.mapping if isinstance(mapped, Mapped) else mapped, path)


def _dataset(data: DatasetLike, graph: Graph, data_dir: str | Path | None) -> Dataset:
    """``data`` itself, or the dataset of that name shaped for ``graph``."""
    if isinstance(data, Dataset):
        return data
    from uticompile.datasets import load_dataset_for

    return load_dataset_for(
        data, input_shape=graph.input_shape, num_classes=graph.num_classes, data_dir=data_dir
    )


def _graph(model: ModelLike) -> Graph:
    return model if isinstance(model, Graph) else load_model(model)


def build_model(
    name: str,
    dataset: DatasetLike = "digits",
    *,
    data_dir: str | Path | None = None,
    size: int = 32,
    width: float = 1.0,
    timesteps: int = 4,
    neuron: str = "paper",
    seed: int = 0,
) -> Graph:
    """A freshly initialized zoo model (vgg16, resnet19, vgg_small, resnet_small) for ``dataset``.

    The dataset gives the input shape and class count; ``size`` is its image side when loaded by
    name. ``neuron``: a LIF preset (paper, spikingjelly, sata).
    """
    from uticompile.models.zoo import build_for_dataset

    data = dataset
    if not isinstance(data, Dataset):
        data = load_dataset(data, data_dir=data_dir, size=size)
    return build_for_dataset(name, data, width=width, timesteps=timesteps, neuron=neuron, seed=seed)


# --- train ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    """A trained model, its per-epoch history and its test accuracy and spike sparsity."""

    graph: Graph
    history: tuple[EpochRecord, ...]
    accuracy: float
    spike_sparsity: Mapping[str, float]

    @property
    def mean_spike_sparsity(self) -> float:
        """Mean over LIF layers of the fraction of zeros in their outputs."""
        values = list(self.spike_sparsity.values())
        return sum(values) / len(values) if values else 0.0


def train(
    model: ModelLike,
    dataset: DatasetLike = "digits",
    *,
    data_dir: str | Path | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 0.1,
    weight_decay: float = 5e-4,
    augment: bool = True,
    seed: int = 0,
    device: str = "cpu",
    on_step: Callable[[StepInfo], None] | None = None,
) -> Trained:
    """Train ``model`` on ``dataset`` (surrogate gradients, SGD + cosine schedule), then test it."""
    from uticompile.models.train import TrainConfig, evaluate
    from uticompile.models.train import train as train_graph

    graph = _graph(model)
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
        device=device, augment=augment,
    )  # fmt: skip
    data = _dataset(dataset, graph, data_dir)
    result = train_graph(graph, data, config, on_step=on_step)
    ev = evaluate(result.graph, data)
    return Trained(result.graph, tuple(result.history), ev.accuracy, dict(ev.spike_sparsity))


# --- prune ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneRound:
    """One round of the lottery search: the trained model's sparsity, accuracy and balance."""

    round: int
    sparsity: float
    accuracy: float
    spike_sparsity: float
    utilization: float | None
    train_seconds: float
    balance_seconds: float

    @classmethod
    def from_report(cls, r: Mapping[str, Any]) -> PruneRound:
        return cls(
            r["round"], r["sparsity"], r["accuracy"], r["spike_sparsity"],
            r["utilization_network"], r["train_seconds"], r["balance_seconds"],
        )  # fmt: skip


@dataclass(frozen=True)
class Pruned:
    """The final round's pruned model and every round's summary.

    ``reports`` are the rounds' full reports (as saved in the run directory); ``run_dir`` is
    None when the search ran in a temporary directory.
    """

    graph: Graph
    rounds: tuple[PruneRound, ...]
    reports: tuple[Mapping[str, Any], ...]
    run_dir: Path | None
    et_ticket: Mapping[str, Any] | None = None

    @property
    def final(self) -> PruneRound:
        return self.rounds[-1]


def prune(
    model: ModelLike,
    dataset: DatasetLike = "digits",
    *,
    data_dir: str | Path | None = None,
    run_dir: PathLike | None = None,
    resume: bool = False,
    on_event: Callable[[LotteryEvent], None] | None = None,
    **options: Any,
) -> Pruned:
    """The lottery-ticket search with PE workload balancing (u-Ticket) of ``model``.

    ``options`` are ``PruneConfig``'s fields: rounds, rate, epochs, dense_epochs, rewind_epoch,
    rewind, balance (none, uticket, magnitude, cycles), pes, grouping, search_timesteps,
    paper_compat, batch_size, lr, weight_decay, augment, seed, device. With ``run_dir`` every
    round is kept there (and ``resume`` continues an interrupted run); without, a temporary
    directory is used and removed.
    """
    from uticompile.passes.lottery import PruneConfig, run_lottery

    graph = _graph(model)
    name = dataset.name if isinstance(dataset, Dataset) else dataset
    config = PruneConfig(dataset=name, **options)
    data = _dataset(dataset, graph, data_dir)
    with tempfile.TemporaryDirectory(prefix="uticompile-prune-") as tmp:
        run = Path(run_dir) if run_dir is not None else Path(tmp) / "run"
        result = run_lottery(graph, data, config, run, resume=resume, on_event=on_event)
    return Pruned(
        graph=result.graph,
        rounds=tuple(PruneRound.from_report(r) for r in result.reports),
        reports=tuple(result.reports),
        run_dir=None if run_dir is None else Path(run_dir),
        et_ticket=result.timing,
    )


# --- map --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapped:
    """A compiled model: the mapped binary's records and the compiler's hardware IR."""

    mapping: MappedModel
    module: HwModule

    @property
    def quantization(self) -> dict[str, Any]:
        """Per weight layer: quantization error and partial-sum bound of the chosen format."""
        return {layer.name: layer.report for layer in self.module.layers if layer.report}

    def to_bytes(self) -> bytes:
        """The ``.utm`` file's bytes."""
        from uticompile.mapfile import encode_mapping

        return encode_mapping(self.mapping)

    def save(self, path: PathLike) -> None:
        save_mapping(self, path)


def _hardware(hw: HardwareConfig | PathLike | None) -> HardwareConfig:
    return hw if isinstance(hw, HardwareConfig) else load_hardware(hw)


def map_model(
    model: ModelLike,
    *,
    pes: int = 16,
    grouping: str = "sata",
    bits: int = 16,
    placement: str = "auto",
    calibration: int = 64,
    weight_encoding: str = "wsp",
    hw: HardwareConfig | PathLike | None = None,
    dataset: str = "digits",
    data_dir: str | Path | None = None,
) -> Mapped:
    """Compile a (pruned) model for ``pes`` PEs; ``dataset`` sets the input's range.

    ``placement`` (auto, sorted, contiguous) decides which PE holds which filter; ``auto`` and
    ``sorted`` weigh costs on the spikes of the first ``calibration`` training images of
    ``dataset`` (0: nonzero weight counts). ``weight_encoding`` (wsp, compact, auto) is how
    tiles store weights (docs/mapping-format.md 2.5; results never change). ``hw``: a
    HardwareConfig, a hardware TOML path, or None for the defaults. The model's ONNX bytes are
    hashed into the mapping, so ``run(..., check=model)`` can verify it.
    """
    from uticompile.onnx_export import serialize, to_onnx
    from uticompile.onnx_import import from_onnx, load_onnx
    from uticompile.passes.pipeline import MapConfig
    from uticompile.workflow.recipes import map_for_dataset

    config = MapConfig(
        pes=pes, grouping=grouping, bits=bits, placement=placement, calibration=calibration,
        weight_encoding=weight_encoding,
    )  # fmt: skip
    if isinstance(model, Graph):
        graph, source = model, serialize(to_onnx(model))
    else:
        path = Path(model)
        source = path.read_bytes() if path.is_file() else b""
        graph = from_onnx(load_onnx(path))
    module, mapping = map_for_dataset(
        graph, config, _hardware(hw).with_pes(pes), dataset, data_dir=data_dir, source=source
    )
    return Mapped(mapping, module)


# --- run --------------------------------------------------------------------------------------


def run(
    mapped: Mapped | MappedModel | PathLike,
    dataset: DatasetLike = "digits",
    *,
    data_dir: str | Path | None = None,
    samples: int = 100,
    batch_size: int = 50,
    hw: HardwareConfig | PathLike | None = None,
    check: ModelLike | None = None,
) -> Simulation:
    """Execute a mapping on the first ``samples`` test images; count cycles, utilization, energy.

    Returns the runtime's ``Simulation``: ``report`` (a ``CostReport``: per-layer work, idle,
    latency, utilization Eq. 2, energy Eq. 3), ``predictions``, ``accuracy``. With ``check`` (the
    model the mapping was made from) every spike is compared with onnxruntime and a mismatch
    raises ``CheckError``.
    """
    from uticompile.mapfile import encode_mapping
    from uticompile.onnx_export import serialize, to_onnx
    from uticompile.onnx_import import from_onnx, load_onnx
    from uticompile.workflow.recipes import dataset_for_mapping, run_on_dataset

    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}", option="samples")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}", option="batch_size")
    if isinstance(mapped, Mapped):
        m = mapped.mapping
    elif isinstance(mapped, MappedModel):
        m = mapped
    else:
        m = read_mapping(mapped)
    hardware = _hardware(hw).with_pes(int(m.model["num_pes"]))
    data: Dataset | Callable[[], Dataset]
    if isinstance(dataset, Dataset):
        data = dataset
    else:
        name = dataset

        def data() -> Dataset:  # loaded once the memory budget allows the run
            return dataset_for_mapping(m, name, data_dir)

    check_args = None
    if check is not None:
        if isinstance(check, Graph):
            graph, source = check, serialize(to_onnx(check))
        else:
            path = Path(check)
            source = path.read_bytes() if path.is_file() else b""
            graph = from_onnx(load_onnx(path))
        check_args = (encode_mapping(m), graph, source)
    return run_on_dataset(
        m, data, hardware, samples=samples, batch_size=batch_size, check=check_args
    )


# --- compare ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantResult:
    """One row of a comparison (the paper's Tables I and II at the first PE count): a balance
    variant under a placement. ``floor`` is the physical floor no placement beats."""

    name: str
    balance: str
    placement: str
    accuracy: float
    accuracy_mapped: float | None
    weight_sparsity: float
    spike_sparsity: float
    work: int
    idle: int
    latency: int
    floor: int
    utilization: float | None
    energy_pj: float
    energy_reduction: float | None


@dataclass(frozen=True)
class Comparison:
    """Every variant pruned, mapped (under every placement) and run on the same samples;
    ``variants`` is keyed by table row (``uticket``, ``uticket+auto``); ``results`` is
    results.json."""

    baseline: str
    pes: int
    samples: int
    variants: Mapping[str, VariantResult]
    results: Mapping[str, Any]
    results_dir: Path | None


def compare_variants(
    model: ModelLike,
    dataset: str = "digits",
    *,
    balance: Sequence[str] = ("none", "uticket"),
    pes: Sequence[int] = (16,),
    results_dir: PathLike | None = None,
    on_event: Callable[[CompareEvent], None] | None = None,
    **options: Any,
) -> Comparison:
    """Prune ``model`` with every balance variant, map and run each, and compare them.

    ``options`` are ``CompareConfig``'s other fields: rounds, rate, epochs, grouping, bits,
    placement, samples, batch_size, run_batch_size, train_limit, seed, data_dir, hw_path,
    device. With
    ``results_dir`` the tables, figures and every run are kept there (finished work is reused);
    without, a temporary directory is used and removed.
    """
    from uticompile.compare import CompareConfig, run_compare

    config = CompareConfig(dataset=dataset, balance=tuple(balance), pes=tuple(pes), **options)
    with tempfile.TemporaryDirectory(prefix="uticompile-compare-") as tmp:
        if isinstance(model, Graph):
            model_path: Path = Path(tmp) / "model.onnx"
            save_model(model, model_path)
        else:
            model_path = Path(model)
        out = Path(results_dir) if results_dir is not None else Path(tmp) / "results"
        result = run_compare(model_path, config, out, on_event=on_event)
    r = result.results
    variants = {}
    for name, v in r["variants"].items():
        t1, t2 = v["table1"], v["table2"]
        variants[name] = VariantResult(
            name=name, balance=v["balance"], placement=v["placement"],
            accuracy=t1["accuracy"], accuracy_mapped=t1["accuracy_mapped"],
            weight_sparsity=t1["weight_sparsity"], spike_sparsity=t1["spike_sparsity"],
            work=t2["work"], idle=t2["idle"], latency=t2["latency"], floor=t2["floor"],
            utilization=t2["utilization"], energy_pj=v["energy_pj"]["total"],
            energy_reduction=v["energy_reduction"],
        )  # fmt: skip
    return Comparison(
        baseline=r["baseline"],
        pes=r["primary_pes"],
        samples=r["samples"],
        variants=variants,
        results=r,
        results_dir=None if results_dir is None else Path(results_dir),
    )
