"""The phases of one lottery round, each a function: masks, starting weights, training, report.

``run_lottery`` strings them together; each reads what earlier rounds left in the run directory
(``lottery_paths``) and depends only on its arguments and ``(seed, round)``, which is what makes
a resumed run byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uticompile.datasets import Dataset
from uticompile.errors import DamagedFileError, UticompileError
from uticompile.fileio import atomic_write_text
from uticompile.grouping import group_layout
from uticompile.ir import Graph
from uticompile.models.batches import iterate_batches
from uticompile.models.snn import SNN
from uticompile.models.train import StepInfo, evaluate, timestep_loss, train
from uticompile.onnx_export import save_onnx, serialize, to_onnx
from uticompile.onnx_import import read_graph
from uticompile.passes.balance_layers import balance_masks, layer_weights, scope_layers
from uticompile.passes.firing_rates import expected_cycles
from uticompile.passes.lottery_config import AUTO, PruneConfig
from uticompile.passes.lottery_paths import RoundPaths, RunPaths, load_masks, save_masks
from uticompile.passes.magnitude_prune import global_magnitude_prune, layer_magnitude_prune
from uticompile.passes.timestep_criterion import (
    CRITERION_EPOCH,
    CRITERION_SAMPLES,
    TimestepChoice,
    choose_timesteps,
)
from uticompile.passes.utilization import layer_stats, network_utilization
from uticompile.rundir import (
    damaged_files,
    existing,
    read_json,
    redo_if_damaged,
    remove,
    write_done,
)

TIMING_STEPS = 3  # batches timed at T and at the search T for the ET-ticket estimate

Masks = dict[str, np.ndarray]


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


def search_timing(
    graph: Graph, data: Dataset, config: PruneConfig, paths: RunPaths
) -> dict[str, Any] | None:
    """The ET-ticket estimate of ``et_timing`` (fixed search T), measured once per run directory."""
    if not isinstance(config.search_timesteps, int):
        return None
    if paths.timing.exists():
        try:
            timing: dict[str, Any] = read_json(paths.timing)
            if isinstance(timing, dict):
                return timing
        except DamagedFileError:
            pass  # a measurement, not a result: measure it again
    timing = et_timing(graph, data, config)
    atomic_write_text(paths.timing, json.dumps(timing, indent=2, sort_keys=True) + "\n")
    return timing


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


def record_choice(
    graph: Graph, data: Dataset, config: PruneConfig, paths: RunPaths, epoch: int
) -> dict[str, Any]:
    """Run the criterion on ``graph`` (at the full T) and save its choice as ``timesteps.json``."""
    found = choose_search_timesteps(graph, data, config)
    record = {**found.to_json(), "after_epoch": epoch}
    atomic_write_text(paths.timesteps, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def search_choice(
    r: int,
    data: Dataset,
    config: PruneConfig,
    paths: RunPaths,
    prev: Graph | None,
    timesteps: int,
) -> dict[str, Any] | None:
    """``auto``: the criterion's choice for round ``r`` (None in the dense round, or without auto).

    The dense round saves it after its 2nd epoch (``train_round``); a dense round of fewer
    epochs decides here on its trained model. A resumed run reads the same file.
    """
    if config.search_timesteps != AUTO or r == 0:
        return None
    if paths.timesteps.exists():
        choice: dict[str, Any] = read_json(paths.timesteps)
        if not isinstance(choice, dict) or not isinstance(choice.get("timesteps"), int):
            raise DamagedFileError(paths.timesteps, "not a timestep choice")
        return choice
    assert prev is not None
    return record_choice(prev.with_timesteps(timesteps), data, config, paths, config.round0_epochs)


def round_masks(
    r: int,
    graph: Graph,
    data: Dataset,
    config: PruneConfig,
    paths: RunPaths,
    prev: Graph | None,
    prev_masks: Masks | None,
    chosen: int | None = None,
) -> tuple[Masks, Masks, dict[str, Any], float]:
    """Phase 1: (masks, magnitude-pruned masks, per-layer balance changes, balance seconds).

    Dense in round 0; else magnitude pruning of the previous round's trained weights (global, or
    to the round's ``layer_budgets``), then balancing. Masks already on disk (a resumed round)
    are reused.
    """
    T = graph.timesteps
    rp = paths.round(r)
    scope = scope_layers(graph, paper_compat=config.paper_compat)
    balance_seconds = 0.0
    balance_info: dict[str, Any] = {}
    loaded = _saved_masks(rp, graph)
    if loaded is not None:
        masks, pruned = loaded
    elif r == 0:
        masks = {n: np.ones(w.shape, dtype=bool) for n, w in layer_weights(graph).items()}
        pruned = masks
        save_masks(rp.masks, masks, pruned)
    else:
        assert prev is not None
        assert prev_masks is not None
        trained_w = layer_weights(prev)
        budget = config.round_budget(r)
        pruned = (
            global_magnitude_prune(trained_w, prev_masks, config.rate)
            if budget is None
            else layer_magnitude_prune(trained_w, prev_masks, budget)
        )
        masks = pruned
        if config.balance != "none":
            t0 = time.perf_counter()
            costs = None
            if config.balance == "cycles":
                # rates of the model the mask will be trained from (or, with ``previous``, of
                # the last trained model), with the new mask applied
                from_rewind = config.rewind == "weights" and config.cycle_rates == "rewind"
                src = read_graph(paths.rewind) if from_rewind else prev
                Tr = config.round_timesteps(r, T, chosen)
                costs = expected_cycles(masked_graph(src, pruned).with_timesteps(Tr), data, scope)
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
                targets="ceil" if config.paper_compat else "iso",
            )
            balance_seconds = time.perf_counter() - t0
            balance_info = {k: asdict(v) for k, v in info.items()}
        save_masks(rp.masks, masks, pruned)
    if r > 0 and not balance_info and config.balance != "none":
        # masks came from disk: recompute the (cheap) per-layer change counts.
        balance_info = {
            n: {
                "regrown": int((masks[n] & ~pruned[n]).sum()),
                "removed": int((pruned[n] & ~masks[n]).sum()),
                "before": int(pruned[n].sum()),
                "after": int(masks[n].sum()),
            }
            for n in scope
        }
    return masks, pruned, balance_info, balance_seconds


def _saved_masks(rp: RoundPaths, graph: Graph) -> tuple[Masks, Masks] | None:
    """The masks a resumed round saved before it was cut short; None (and the file removed, so
    they are made again) when there are none or they do not fit the model."""
    if not rp.masks.exists():
        return None
    try:
        masks, pruned = load_masks(rp.masks)
    except DamagedFileError:
        remove([rp.masks])
        return None
    shapes = {n: w.shape for n, w in layer_weights(graph).items()}
    if {n: m.shape for n, m in masks.items()} != shapes:
        remove([rp.masks])
        return None
    return masks, pruned


def start_weights(
    r: int,
    graph: Graph,
    config: PruneConfig,
    paths: RunPaths,
    masks: Masks,
    prev: Graph | None,
    prev_masks: Masks | None,
    chosen: int | None = None,
) -> Graph:
    """Phase 2: the round's starting weights, masked, at the round's T.

    Round 0 starts from ``graph``; later rounds from the rewind point (weights rewinding) or
    from the last round's weights with regrown positions taken from the rewind point (lr).
    """
    if r == 0:
        start = graph
    else:
        rewind = read_graph(paths.rewind)
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
    Tr = config.round_timesteps(r, graph.timesteps, chosen)
    return masked_graph(start, masks).with_timesteps(Tr)


def train_round(
    r: int,
    start: Graph,
    data: Dataset,
    config: PruneConfig,
    paths: RunPaths,
    masks: Masks,
    timesteps: int,
    on_step: Callable[[StepInfo], None],
    trained_epochs: int | None = None,
) -> tuple[Graph, float, float]:
    """Phase 3: train with pruned weights held at zero; (trained masked graph, wall and CPU s).

    Round 0 saves the rewind point at epoch ``rewind_epoch`` (at the model's full T, labelled
    with ``trained_epochs`` of the input plus the epochs run), and with ``auto`` the ET
    criterion's choice after its 2nd epoch, before that epoch's checkpoint, so a resumed run
    reads the same t.
    """
    epochs = config.round_epochs(r)
    rp = paths.round(r)

    def on_epoch_end(epoch: int, net: SNN) -> None:
        if r == 0 and epoch == config.rewind_epoch:
            snapshot = net.to_graph().with_timesteps(timesteps)
            if trained_epochs is not None:
                snapshot.trained_epochs = trained_epochs + epoch
            save_onnx(snapshot, paths.rewind)
        auto = config.search_timesteps == AUTO
        if r == 0 and auto and epoch == min(CRITERION_EPOCH, config.round0_epochs):
            record_choice(net.to_graph().with_timesteps(timesteps), data, config, paths, epoch)

    t0, c0 = time.perf_counter(), time.process_time()
    if epochs > 0:
        result = redo_if_damaged(
            rp.checkpoint,
            lambda: train(
                start,
                data,
                config.train_config(r, epochs),
                masks=masks,
                checkpoint=rp.checkpoint,
                on_step=on_step,
                on_epoch_end=on_epoch_end,
            ),
        )
        trained = result.graph
    else:
        trained = start
    train_seconds = time.perf_counter() - t0
    train_cpu_seconds = time.process_time() - c0
    return masked_graph(trained, masks), train_seconds, train_cpu_seconds


def finish_round(
    rp: RoundPaths, paths: RunPaths, trained: Graph, report: dict[str, Any], timesteps: int
) -> None:
    """Phase 5: write the round's model and report, then ``done`` (last) with the sha256 of the
    round's files and of the run's files it read or made, drop the checkpoint."""
    save_onnx(trained.with_timesteps(timesteps), rp.trained)
    atomic_write_text(rp.report, json.dumps(report, indent=2, sort_keys=True) + "\n")
    made = (rp.masks, rp.trained, rp.report, paths.rewind, paths.timesteps)
    write_done(rp.done, paths.root, existing(made))
    rp.checkpoint.unlink(missing_ok=True)


def load_round(
    rp: RoundPaths, paths: RunPaths
) -> tuple[tuple[Graph, Masks, dict[str, Any]] | None, list[Path]]:
    """A finished round as an earlier process left it: ((trained graph, masks, report), []).

    ``(None, damaged files)`` when a file it wrote is missing, damaged or changed: those files
    and the round's own are removed, so the round runs again (and, being deterministic, writes
    the same bytes).
    """
    bad = damaged_files(rp.done, paths.root)
    if not bad:
        try:
            trained = read_graph(rp.trained)
            masks, _ = load_masks(rp.masks)
            report = read_json(rp.report)
            if not isinstance(report, dict):
                raise DamagedFileError(rp.report, "not a round report")
            return (trained, masks, report), []
        except UticompileError:  # a marker of older runs, which lists no checksums
            bad = [rp.trained, rp.masks, rp.report]
    remove([*bad, *rp.artifacts])
    return None, bad


def round_report(
    r: int,
    graph: Graph,
    data: Dataset,
    masks: Mapping[str, np.ndarray],
    pruned: Mapping[str, np.ndarray],
    config: PruneConfig,
    *,
    epochs: int,
    train_seconds: float,
    balance_seconds: float,
    balance_info: Mapping[str, Any],
) -> dict[str, Any]:
    """Sparsity, accuracy, spike sparsity and static utilization of one round's trained model.

    ``layer_counts`` gives every layer's nonzero count as magnitude pruning left it and after
    balancing: equal under the default ``iso`` targets.
    """
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
        "layer_counts": {
            n: {"pruned": int(np.count_nonzero(pruned[n])), "balanced": kept[n]} for n in weights
        },
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
