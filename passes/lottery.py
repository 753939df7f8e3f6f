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
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uticompile.datasets import Dataset
from uticompile.errors import ConfigError
from uticompile.fileio import atomic_open, atomic_write_text
from uticompile.grouping import GROUPINGS, group_layout
from uticompile.ir import Graph
from uticompile.models.batches import iterate_batches
from uticompile.models.snn import SNN
from uticompile.models.train import StepInfo, TrainConfig, evaluate, timestep_loss, train
from uticompile.onnx_export import save_onnx, serialize, to_onnx
from uticompile.onnx_import import read_graph
from uticompile.passes.balance import BALANCE_MODES
from uticompile.passes.balance_layers import (
    balance_masks,
    layer_weights,
    scope_layers,
)
from uticompile.passes.magnitude_prune import global_magnitude_prune
from uticompile.passes.timestep_criterion import (
    CRITERION_EPOCH,
    CRITERION_SAMPLES,
    DEFAULT_CANDIDATES,
    DEFAULT_THRESHOLD,
    TimestepChoice,
    choose_timesteps,
)
from uticompile.passes.utilization import layer_stats, network_utilization

BALANCE_CHOICES: tuple[str, ...] = ("none", *BALANCE_MODES)
AUTO = "auto"  # --search-timesteps auto: the ET ticket's KL criterion picks the search T
REWIND_CHOICES: tuple[str, ...] = ("weights", "lr")
MIN_RATE = 1e-3  # floor of the activity cost: balance_mask needs strictly positive costs
ACTIVITY_SAMPLES = 256  # training images used to measure firing rates
TIMING_STEPS = 3  # batches timed at T and at the search T for the ET-ticket estimate


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
    batch_size: int = 64
    lr: float = 0.1
    weight_decay: float = 5e-4
    augment: bool = True
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        """Reject impossible options before any work (one-line ConfigError)."""
        if not (0.0 < self.rate < 1.0):
            raise ConfigError(f"--rate must be in (0, 1), got {self.rate}")
        if self.rounds < 0:
            raise ConfigError(f"--rounds must be >= 0, got {self.rounds}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.dense_epochs is not None and self.dense_epochs < 0:
            raise ConfigError(f"--dense-epochs must be >= 0, got {self.dense_epochs}")
        if self.rewind_epoch < 0 or self.rewind_epoch > self.epochs:
            raise ConfigError(
                f"--rewind-epoch must be in [0, --epochs={self.epochs}], got {self.rewind_epoch}"
            )
        if self.rewind_epoch > self.round0_epochs:
            raise ConfigError(
                f"--rewind-epoch {self.rewind_epoch} is past the dense round's "
                f"{self.round0_epochs} epochs: there is no such rewind point"
            )
        if self.rewind not in REWIND_CHOICES:
            raise ConfigError(f"--rewind must be one of {', '.join(REWIND_CHOICES)}")
        if self.balance not in BALANCE_CHOICES:
            raise ConfigError(f"--balance must be one of {', '.join(BALANCE_CHOICES)}")
        if self.pes < 1:
            raise ConfigError(f"--pes must be >= 1, got {self.pes}")
        if self.grouping not in GROUPINGS:
            raise ConfigError(f"--grouping must be one of {', '.join(GROUPINGS)}")
        object.__setattr__(self, "search_candidates", tuple(self.search_candidates))
        if isinstance(self.search_timesteps, str) and self.search_timesteps != AUTO:
            raise ConfigError(
                f"--search-timesteps must be an integer or {AUTO!r}, got {self.search_timesteps!r}"
            )
        if isinstance(self.search_timesteps, int) and self.search_timesteps < 1:
            raise ConfigError(f"--search-timesteps must be >= 1, got {self.search_timesteps}")
        if not (0.0 < self.search_threshold <= 1.0):
            raise ConfigError(f"--search-threshold must be in (0, 1], got {self.search_threshold}")
        if not self.search_candidates or min(self.search_candidates) < 1:
            raise ConfigError("--search-candidates needs timesteps >= 1")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")
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


def round_seed(seed: int, r: int) -> int:
    """A seed that depends on (seed, round) only, so nothing depends on process history."""
    return int(np.random.SeedSequence([seed, r]).generate_state(1, dtype=np.uint32)[0])


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


# --- helpers ----------------------------------------------------------------------------------


def graph_digest(graph: Graph) -> str:
    return hashlib.sha256(serialize(to_onnx(graph))).hexdigest()


def masked_graph(graph: Graph, masks: Mapping[str, np.ndarray]) -> Graph:
    """A copy with pruned weights set to +0.0 (training's multiply can leave -0.0)."""
    g = graph.copy()
    for node in g.weight_nodes():
        m = masks.get(node.name)
        if m is not None:
            w = g.params[node.inputs[1]]
            g.params[node.inputs[1]] = np.where(m, w, np.float32(0)).astype(np.float32)
    return g


def save_masks(
    path: Path, masks: Mapping[str, np.ndarray], pruned: Mapping[str, np.ndarray]
) -> None:
    """Masks in layer order under index keys (node names need not be valid zip names)."""
    names = list(masks)
    arrays: dict[str, np.ndarray] = {"layers": np.array(names, dtype=np.str_)}
    for i, name in enumerate(names):
        arrays[f"mask_{i}"] = np.asarray(masks[name], dtype=bool)
        arrays[f"pruned_{i}"] = np.asarray(pruned[name], dtype=bool)
    with atomic_open(path) as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]


def load_masks(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(masks, magnitude-pruned masks before balancing) saved by ``save_masks``."""
    with np.load(path, allow_pickle=False) as data:
        names = [str(n) for n in data["layers"]]
        masks = {n: data[f"mask_{i}"] for i, n in enumerate(names)}
        pruned = {n: data[f"pruned_{i}"] for i, n in enumerate(names)}
    return masks, pruned


@torch.no_grad()
def input_firing_rates(
    graph: Graph, data: Dataset, layers: list[str], *, samples: int = ACTIVITY_SAMPLES
) -> dict[str, np.ndarray]:
    """Activity cost per weight position: the firing rate of the input channel it reads.

    Measured on the first ``samples`` training images (no augmentation) with ``graph``. A layer
    reading the analog image (the first conv) gets cost 1; rates are clamped to ``MIN_RATE``.
    """
    net = SNN(graph).eval()
    wl = net.weight_layers()
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    handles = []
    direct = {n.name for n in graph.weight_nodes() if n.inputs[0] == graph.input_name}

    def hook_for(name: str) -> Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(_mod: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].double()
            dims = [d for d in range(x.dim()) if d != 1]
            s = x.sum(dim=dims)
            sums[name] = sums[name] + s if name in sums else s
            counts[name] = counts.get(name, 0) + x.numel() // x.shape[1]

        return hook

    for name in layers:
        if name not in direct:
            handles.append(wl[name].register_forward_pre_hook(hook_for(name)))
    try:
        seen = 0
        for x, _ in iterate_batches(
            data, "train", 64, shuffle=False, augment=False, generator=None
        ):
            net(x)
            seen += len(x)
            if seen >= samples:
                break
    finally:
        for h in handles:
            h.remove()
    out: dict[str, np.ndarray] = {}
    for name in layers:
        w = graph.params[graph.node(name).inputs[1]]
        if name in direct or name not in sums:
            out[name] = np.ones((1,) * w.ndim)
            continue
        rate = np.maximum((sums[name] / counts[name]).numpy(), MIN_RATE)
        out[name] = rate.reshape((1, -1) + (1,) * (w.ndim - 2))
    return out


@torch.no_grad()
def criterion_logits(graph: Graph, data: Dataset, samples: int = CRITERION_SAMPLES) -> np.ndarray:
    """Per-timestep logits [T, N, classes] of the first ``samples`` training images (one batch).

    Inference mode (BatchNorm's running statistics, no augmentation), so the network is causal
    in time and the first t steps are the t-timestep network's (``choose_timesteps``).
    """
    net = SNN(graph).eval()
    x, _ = next(
        iterate_batches(data, "train", samples, shuffle=False, augment=False, generator=None)
    )
    return net(x).double().numpy()


def choose_search_timesteps(graph: Graph, data: Dataset, config: PruneConfig) -> TimestepChoice:
    """The ET ticket's criterion on ``graph`` (the dense model after its second epoch)."""
    return choose_timesteps(
        criterion_logits(graph, data),
        candidates=config.search_candidates,
        threshold=config.search_threshold,
    )


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
            "text": "pruning at initialization (no dense training: --dense-epochs 0)",
        }
    return {
        "kind": "fine-tuning",
        "text": f"fine-tuning, not a lottery ticket: every round rewinds to the input, {history} "
        "(start from `train --epochs 0` or pass --rewind-epoch K for a lottery ticket)",
    }


def _step_seconds(graph: Graph, data: Dataset, config: PruneConfig, timesteps: int) -> float:
    """Mean seconds of one training step at ``timesteps`` (after one warm-up step)."""
    device = torch.device(config.device)
    net = SNN(graph.with_timesteps(timesteps)).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-6)
    gen = torch.Generator()
    gen.manual_seed(0)
    times: list[float] = []
    for i, (x, y) in enumerate(
        iterate_batches(
            data, "train", config.batch_size, shuffle=True, augment=False, generator=gen
        )
    ):
        if i > TIMING_STEPS:
            break
        t0 = time.perf_counter()
        loss = timestep_loss(net(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:
            times.append(time.perf_counter() - t0)
    return float(np.mean(times)) if times else float("nan")


def et_timing(graph: Graph, data: Dataset, config: PruneConfig) -> dict[str, Any]:
    """Measured step-time ratio T2/T and the estimated share of search time it saves."""
    assert isinstance(config.search_timesteps, int)
    t_full = _step_seconds(graph, data, config, graph.timesteps)
    t_search = _step_seconds(graph, data, config, config.search_timesteps)
    ratio = t_search / t_full if t_full > 0 else float("nan")
    epochs = [config.round_epochs(r) for r in range(config.rounds + 1)]
    cost = sum(
        e * (ratio if config.round_timesteps(r, graph.timesteps) != graph.timesteps else 1.0)
        for r, e in enumerate(epochs)
    )
    total = sum(epochs)
    return {
        "timesteps": graph.timesteps,
        "search_timesteps": config.search_timesteps,
        "step_seconds": t_full,
        "search_step_seconds": t_search,
        "measured_ratio": ratio,
        "estimated_saving": (1.0 - cost / total) if total else 0.0,
        "note": f"estimate from {TIMING_STEPS} timed training steps at each T, scaled by epochs",
    }


def round_report(
    r: int,
    graph: Graph,
    data: Dataset,
    masks: Mapping[str, np.ndarray],
    config: PruneConfig,
    *,
    epochs: int,
    train_seconds: float,
    balance_seconds: float,
    balance_info: Mapping[str, Any],
) -> dict[str, Any]:
    """Sparsity, accuracy, spike sparsity and static utilization of one round's trained model."""
    ev = evaluate(graph, data)
    weights = layer_weights(graph)
    sizes = {n: int(w.size) for n, w in weights.items()}
    kept = {n: int(np.count_nonzero(masks[n])) for n in weights}
    scope = scope_layers(graph, paper_compat=config.paper_compat)
    stats = {
        n: layer_stats(
            masks[n],
            group_layout(tuple(weights[n].shape), config.pes, config.grouping),
            ceil_avg=config.paper_compat,
        )
        for n in scope
    }
    weighted, unweighted = network_utilization(list(stats.values()))
    return {
        "round": r,
        "timesteps": graph.timesteps,
        "epochs": epochs,
        "sparsity": 1.0 - sum(kept.values()) / max(sum(sizes.values()), 1),
        "layer_sparsity": {n: 1.0 - kept[n] / sizes[n] for n in weights},
        "accuracy": ev.accuracy,
        "spike_sparsity": ev.mean_spike_sparsity,
        "layer_spike_sparsity": ev.spike_sparsity,
        "utilization": {n: s.utilization for n, s in stats.items()},
        "utilization_weighted": weighted,
        "utilization_unweighted": unweighted,
        "utilization_network": unweighted if config.paper_compat else weighted,
        "balance": dict(balance_info),
        "train_seconds": train_seconds,
        "balance_seconds": balance_seconds,
    }


# --- the runner -------------------------------------------------------------------------------


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


def _prepare_run_dir(run_dir: Path, identity: dict[str, Any], resume: bool) -> None:
    cfg = run_dir / "config.json"
    text = json.dumps(identity, indent=2, sort_keys=True) + "\n"
    if run_dir.exists() and any(run_dir.iterdir()):
        if not resume:
            raise ConfigError(
                f"run directory {run_dir} is not empty: pass --resume to continue it "
                "or choose another directory"
            )
        if not cfg.exists() or json.loads(cfg.read_text()) != json.loads(text):
            raise ConfigError(
                f"run directory {run_dir} holds a run with other options (or another model or "
                "dataset); choose another directory"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg, text)


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
    run = Path(run_dir)
    graph.validate()
    _prepare_run_dir(run, run_identity(graph, data, config), resume)
    emit = on_event or (lambda _e: None)
    T = graph.timesteps
    scope = scope_layers(graph, paper_compat=config.paper_compat)

    timing: dict[str, Any] | None = None
    if isinstance(config.search_timesteps, int):
        tpath = run / "timing.json"
        if tpath.exists():
            timing = json.loads(tpath.read_text())
        else:
            timing = et_timing(graph, data, config)
            atomic_write_text(tpath, json.dumps(timing, indent=2, sort_keys=True) + "\n")

    rewind_path = run / "rewind.onnx"
    if config.rewind_epoch == 0 and not rewind_path.exists():
        save_onnx(graph, rewind_path)

    # ET ticket, auto: the criterion runs once, after the dense round's 2nd epoch; its choice
    # is saved before that epoch's checkpoint, so a resumed run reads the same t.
    auto = config.search_timesteps == AUTO
    choice_path = run / "timesteps.json"
    choice: dict[str, Any] | None = None

    def choose(model: Graph, epoch: int) -> dict[str, Any]:
        found = choose_search_timesteps(model.with_timesteps(T), data, config)
        record = {**found.to_json(), "after_epoch": epoch}
        atomic_write_text(choice_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
        return record

    reports: list[dict[str, Any]] = []
    prev: Graph | None = None
    prev_masks: dict[str, np.ndarray] | None = None
    for r in range(config.rounds + 1):
        rdir = run / f"round_{r:02d}"
        rdir.mkdir(exist_ok=True)
        emit(LotteryEvent("round_start", r, config.rounds))
        if (rdir / "done").exists():
            prev = read_graph(rdir / "trained.onnx")
            prev_masks, _ = load_masks(rdir / "masks.npz")
            report = json.loads((rdir / "report.json").read_text())
            reports.append(report)
            emit(LotteryEvent("round_end", r, config.rounds, report=report, resumed=True))
            continue
        if auto and r > 0 and choice is None:
            if choice_path.exists():
                choice = json.loads(choice_path.read_text())
            else:  # the dense round trained fewer than 2 epochs (or none): decide on its model
                assert prev is not None
                choice = choose(prev, config.round0_epochs)
        chosen = None if choice is None else int(choice["timesteps"])
        Tr = config.round_timesteps(r, T, chosen)
        epochs = config.round_epochs(r)

        # 1. masks: dense in round 0, else prune the previous round's trained weights + balance.
        balance_seconds = 0.0
        balance_info: dict[str, Any] = {}
        mpath = rdir / "masks.npz"
        if mpath.exists():
            masks, pruned = load_masks(mpath)
        elif r == 0:
            masks = {n: np.ones(w.shape, dtype=bool) for n, w in layer_weights(graph).items()}
            pruned = masks
            save_masks(mpath, masks, pruned)
        else:
            assert prev is not None
            assert prev_masks is not None
            trained_w = layer_weights(prev)
            pruned = global_magnitude_prune(trained_w, prev_masks, config.rate)
            masks = pruned
            if config.balance != "none":
                t0 = time.perf_counter()
                costs = (
                    input_firing_rates(
                        prev.with_timesteps(config.round_timesteps(r - 1, T, chosen)), data, scope
                    )
                    if config.balance == "activity"
                    else None
                )
                rng = np.random.default_rng([config.seed, r, 1])
                masks, info = balance_masks(
                    graph,
                    pruned,
                    mode=config.balance,
                    n=config.pes,
                    grouping=config.grouping,
                    rng=rng,
                    scope=scope,
                    scores=trained_w,
                    costs=costs,
                )
                balance_seconds = time.perf_counter() - t0
                balance_info = {k: asdict(v) for k, v in info.items()}
            save_masks(mpath, masks, pruned)
        if r > 0 and not balance_info and config.balance != "none":
            # masks came from disk: recompute the (cheap) per-layer change counts.
            balance_info = {
                n: {
                    "regrown": int((masks[n] & ~pruned[n]).sum()),
                    "removed": int((pruned[n] & ~masks[n]).sum()),
                }
                for n in scope
            }

        # 2. the starting weights: rewind point (weights) or last round's weights (lr rewinding).
        if r == 0:
            start = graph
        else:
            rewind = read_graph(rewind_path)
            if config.rewind == "weights":
                start = rewind
            else:
                assert prev is not None
                assert prev_masks is not None
                start = prev.copy()
                for node in start.weight_nodes():
                    key = node.inputs[1]
                    regrown = masks[node.name] & ~prev_masks[node.name]
                    start.params[key] = np.where(regrown, rewind.params[key], start.params[key])
        start = masked_graph(start, masks).with_timesteps(Tr)

        # 3. train with pruned weights held at zero.
        def on_step(info: StepInfo, r: int = r) -> None:
            emit(LotteryEvent("step", r, config.rounds, step=info))

        def on_epoch_end(epoch: int, net: SNN, r: int = r) -> None:
            if r == 0 and epoch == config.rewind_epoch:
                snapshot = net.to_graph().with_timesteps(T)
                if graph.trained_epochs is not None:
                    snapshot.trained_epochs = graph.trained_epochs + epoch
                save_onnx(snapshot, rewind_path)
            if r == 0 and auto and epoch == min(CRITERION_EPOCH, config.round0_epochs):
                choose(net.to_graph(), epoch)

        t0, c0 = time.perf_counter(), time.process_time()
        if epochs > 0:
            result = train(
                start,
                data,
                config.train_config(r, epochs),
                masks=masks,
                checkpoint=rdir / "train.ckpt",
                on_step=on_step,
                on_epoch_end=on_epoch_end,
            )
            trained = result.graph
        else:
            trained = start
        train_seconds = time.perf_counter() - t0
        train_cpu_seconds = time.process_time() - c0
        trained = masked_graph(trained, masks)
        report = round_report(
            r,
            trained,
            data,
            masks,
            config,
            epochs=epochs,
            train_seconds=train_seconds,
            balance_seconds=balance_seconds,
            balance_info=balance_info,
        )
        report["train_cpu_seconds"] = train_cpu_seconds
        save_onnx(trained.with_timesteps(T), rdir / "trained.onnx")
        atomic_write_text(rdir / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
        atomic_write_text(rdir / "done", "")
        (rdir / "train.ckpt").unlink(missing_ok=True)
        reports.append(report)
        atomic_write_text(
            run / "report.jsonl", "".join(json.dumps(x, sort_keys=True) + "\n" for x in reports)
        )
        prev, prev_masks = trained, masks
        emit(LotteryEvent("round_end", r, config.rounds, report=report))

    atomic_write_text(
        run / "report.jsonl", "".join(json.dumps(x, sort_keys=True) + "\n" for x in reports)
    )
    assert prev is not None
    if auto and choice is None and choice_path.exists():
        choice = json.loads(choice_path.read_text())  # rounds == 0: chosen, never used
    return LotteryResult(
        graph=prev.with_timesteps(T),
        reports=reports,
        timing=timing,
        method=search_method(config, graph),
        search_timesteps=choice,
    )
