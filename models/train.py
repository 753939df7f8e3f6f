"""Training and evaluation of IR graphs in PyTorch.

SGD with momentum and weight decay passed by keyword (the public code's positional third argument
is dampening, which silently turned its weight decay off), a cosine schedule stepped per epoch,
loss = mean over timesteps of the per-timestep cross-entropy. Optional masks hold pruned weights at
exactly zero: their gradients are zeroed before the step and the weights re-masked after it, so
neither momentum nor weight decay can revive them.

A checkpoint after every epoch (model, optimizer, schedule and RNG state, loaded with
``weights_only=True``) lets an interrupted run resume to the same result as an uninterrupted one.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from uticompile.datasets import Dataset
from uticompile.errors import ConfigError, DamagedFileError, TrainingDivergedError
from uticompile.fileio import atomic_write_bytes
from uticompile.ir import Graph
from uticompile.models import distributed, fastpath
from uticompile.models.batches import iterate_batches, num_batches
from uticompile.models.snn import SNN, predict
from uticompile.rundir import unreadable


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run; the CLI and saved run configs are built from these fields."""

    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "cpu"
    augment: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if self.weight_decay < 0 or not (0 <= self.momentum < 1):
            raise ConfigError("weight decay must be >= 0 and momentum in [0, 1)")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device cuda: no CUDA device is available", option="device")


@dataclass(frozen=True)
class StepInfo:
    """Reported after every optimizer step, for progress bars (loss and accuracy: epoch so far)."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    accuracy: float


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    train_accuracy: float
    lr: float
    seconds: float


@dataclass
class TrainResult:
    graph: Graph
    history: list[EpochRecord] = field(default_factory=list)

    def to_json(self) -> list[dict[str, float]]:
        return [asdict(r) for r in self.history]


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def timestep_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over timesteps of the cross-entropy of each timestep's logits [T, B, K]."""
    T = logits.shape[0]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.repeat(T))


def apply_masks(net: SNN, masks: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Zero pruned weights in place; returns the masks as tensors on the weights' device."""
    layers = net.weight_layers()
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, mask in masks.items():
            w = layers[name].weight
            m = torch.as_tensor(mask, dtype=w.dtype, device=w.device)
            if m.shape != w.shape:
                raise ConfigError(
                    f"mask for {name} has shape {tuple(m.shape)}, weight {tuple(w.shape)}"
                )
            w.mul_(m)
            out[name] = m
    return out


def _save_checkpoint(path: Path, state: dict) -> None:
    """Serialize in memory first: torch's own writer turns a full disk into an opaque error."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path: Path, where: torch.device) -> dict:
    """A checkpoint ``_save_checkpoint`` wrote; DamagedFileError (naming it) for anything else,
    a zero-byte file cut short by a full disk included."""
    try:
        state = torch.load(path, map_location=where, weights_only=True)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        raise unreadable(path, exc) from None
    if not isinstance(state, dict):
        raise DamagedFileError(path, "not a training checkpoint")
    return state


def train(
    graph: Graph,
    data: Dataset,
    config: TrainConfig,
    *,
    masks: Mapping[str, np.ndarray] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch_end: Callable[[int, SNN], bool | None] | None = None,
) -> TrainResult:
    """Train ``graph`` on ``data``; returns the trained graph (a new object) and the history.

    With ``checkpoint``, state is saved there after every epoch and, if the file exists when
    training starts, training resumes from it. ``on_epoch_end(epoch, net)`` is called after each
    epoch (1-based), e.g. to snapshot weights for late rewinding; returning True stops training
    after that epoch (``config.epochs`` is then a cap). A stopping epoch writes no checkpoint, so
    a run interrupted before its caller saved the result redoes that epoch and stops again.
    Under torchrun this process is rank 0: it hands the job to the other ranks and trains
    data-parallel with them.
    """
    if tuple(data.input_shape) != tuple(graph.input_shape):
        raise ConfigError(
            f"dataset images are {data.input_shape}, the model expects {graph.input_shape}"
        )
    if data.num_classes != graph.num_classes:
        raise ConfigError(f"dataset has {data.num_classes} classes, the model {graph.num_classes}")
    fast = fastpath.current()
    fast.check(config.device)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    group = distributed.current()
    state = None
    if ckpt is not None and ckpt.exists():
        where = torch.device(config.device) if group is None else torch.device("cpu")
        state = _load_checkpoint(ckpt, where)
        if state.get("config") != asdict(config):
            raise ConfigError(f"{ckpt}: checkpoint was written with other options; remove it")
    if group is None:
        return _train(graph, data, config, masks or {}, state, fast, ckpt, on_step, on_epoch_end)
    if config.batch_size < group.size:
        raise ConfigError(
            f"batch_size {config.batch_size} is smaller than the {group.size} processes",
            option="batch_size",
        )
    job = {"graph": graph, "data": data, "config": config, "masks": dict(masks or {})}
    group.send({**job, "state": state, "fast": fast})
    group.busy = True  # stays set if training fails: the other ranks are then mid-collective
    result = _train(
        graph, data, config, masks or {}, state, fast, ckpt, on_step, on_epoch_end, group
    )
    group.busy = False
    return result


def serve(group: distributed.Group) -> TrainResult | None:
    """The other ranks' side of ``train``: train every job rank 0 sends until it says stop.

    Returns the last job's result (nothing is written here; tests compare ranks with it).
    """
    result = None
    while (job := group.receive()) is not None:
        group.busy = True
        result = _train(
            job["graph"],
            job["data"],
            job["config"],
            job["masks"],
            job["state"],
            job["fast"],
            None,
            None,
            None,
            group,
        )
        group.busy = False
    return result


def _train(
    graph: Graph,
    data: Dataset,
    config: TrainConfig,
    masks: Mapping[str, np.ndarray],
    state: dict | None,
    fast: fastpath.FastPaths,
    ckpt: Path | None,
    on_step: Callable[[StepInfo], None] | None,
    on_epoch_end: Callable[[int, SNN], bool | None] | None,
    group: distributed.Group | None = None,
) -> TrainResult:
    """The training loop shared by a single process and every rank of a data-parallel job."""
    gen = seed_everything(config.seed)
    device = torch.device(config.device) if group is None else group.device(config.device)
    net = SNN(graph).to(device)
    fast.prepare(net)
    mask_t = apply_masks(net, masks)
    opt = torch.optim.SGD(
        net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.epochs, 1))
    result = TrainResult(graph=graph)
    start = 0
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["epoch"])
        result.history = [EpochRecord(**r) for r in state["history"]]
    model: torch.nn.Module = net
    if group is not None:
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
    if fast.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    steps = num_batches(data, "train", config.batch_size)
    layers = net.weight_layers()
    trained = config.epochs
    for epoch in range(start, config.epochs):
        net.train()
        t0 = time.perf_counter()
        total_loss, correct, seen = 0.0, 0, 0
        lr = opt.param_groups[0]["lr"]
        for step, (x, y) in enumerate(
            iterate_batches(
                data,
                "train",
                config.batch_size,
                shuffle=True,
                augment=config.augment,
                generator=gen,
            )
        ):
            weight = 1.0
            if group is not None:
                if len(y) < group.size:  # a last batch too small to give every rank a sample
                    continue
                part = distributed.shard(len(y), group.size, group.rank)
                weight = (part.stop - part.start) * group.size / len(y)
                x, y = x[part], y[part]
            x, y = fast.inputs(x.to(device)), y.to(device)
            with fast.autocast(device):
                logits = model(x)
                loss = timestep_loss(logits, y)
            opt.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks; weighting by slice size makes the average the
            # gradient of the global batch's mean loss even when slices differ in size.
            (loss if weight == 1.0 else loss * weight).backward()
            for name, m in mask_t.items():
                grad = layers[name].weight.grad
                if grad is not None:
                    grad.mul_(m)
            opt.step()
            if mask_t:
                with torch.no_grad():
                    for name, m in mask_t.items():
                        layers[name].weight.mul_(m)
            total_loss += float(loss.detach()) * len(y)
            correct += int((predict(logits.detach()) == y).sum())
            seen += len(y)
            if on_step is not None:
                on_step(
                    StepInfo(
                        epoch + 1,
                        config.epochs,
                        step + 1,
                        steps,
                        total_loss / seen,
                        correct / seen,
                    )
                )
        sched.step()
        if group is not None:
            total_loss, sum_correct, sum_seen = group.sum([total_loss, correct, seen], device)
            correct, seen = int(sum_correct), int(sum_seen)
            _check_ranks_agree(group, net, mask_t)
        if not math.isfinite(total_loss):  # after the all-reduce: every rank stops together
            raise TrainingDivergedError(
                f"training diverged: loss is {total_loss} in epoch {epoch + 1} "
                f"(lr {config.lr:g}, weight decay {config.weight_decay:g})"
            )
        result.history.append(
            EpochRecord(epoch + 1, total_loss / seen, correct / seen, lr, time.perf_counter() - t0)
        )
        stop = bool(on_epoch_end(epoch + 1, net)) if on_epoch_end is not None else False
        if group is not None:  # only rank 0 has the callback: every rank stops with it
            stop = group.sum([float(stop)], device)[0] > 0
        if stop:
            trained = epoch + 1
            break
        if ckpt is not None:
            _save_checkpoint(
                ckpt,
                {
                    "config": asdict(config),
                    "epoch": epoch + 1,
                    "model": net.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "generator": gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": [asdict(r) for r in result.history],
                },
            )
    net.cpu().eval()
    result.graph = net.to_graph()
    if graph.trained_epochs is not None:
        result.graph.trained_epochs = graph.trained_epochs + trained
    return result


def _check_ranks_agree(
    group: distributed.Group, net: SNN, mask_t: Mapping[str, torch.Tensor]
) -> None:
    """Every rank trained the same mask and holds the same weights (else raise on all ranks)."""
    group.check_same("masks", distributed.tensors_digest(m.bool() for m in mask_t.values()))
    group.check_same("weights", distributed.tensors_digest(p for p in net.parameters()))


@dataclass(frozen=True)
class Evaluation:
    """Accuracy and per-layer spike sparsity (fraction of zeros in each LIF's output)."""

    accuracy: float
    samples: int
    spike_sparsity: dict[str, float]

    @property
    def mean_spike_sparsity(self) -> float:
        values = list(self.spike_sparsity.values())
        return float(np.mean(values)) if values else 0.0


@torch.no_grad()
def evaluate(
    graph: Graph, data: Dataset, *, batch_size: int = 256, split: str = "test"
) -> Evaluation:
    """Accuracy and spike sparsity of ``graph`` computed in PyTorch."""
    net = SNN(graph).eval()
    correct = seen = 0
    zeros: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for x, y in iterate_batches(
        data, split, batch_size, shuffle=False, augment=False, generator=None
    ):
        spikes: dict[str, torch.Tensor] = {}
        correct += int((predict(net(x, spikes)) == y).sum())
        seen += len(y)
        for k, v in spikes.items():
            zeros[k] = zeros.get(k, 0.0) + float((v == 0).sum())
            sizes[k] = sizes.get(k, 0) + v.numel()
    return Evaluation(correct / max(seen, 1), seen, {k: zeros[k] / sizes[k] for k in zeros})
