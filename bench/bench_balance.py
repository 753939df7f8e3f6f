"""Benchmark: u-Ticket balancing of full-width VGG-16 (16 PEs) against one training epoch.

Both are measured side by side in this one run on this machine. The masks are a realistic 98.2%
sparse lottery ticket shape: a global magnitude threshold over the reference (kaiming) init, so
per-layer sparsity varies as it does in LTH. The training epoch on digits (1437 images, 32x32,
T=4, batch 64) is estimated from a few measured steps, because a whole full-width epoch takes
minutes on 2 CPU cores. The paper reports balancing at 0.11% of one LTH *round* (a round is the
200-300 epochs of a full training), on an RTX 2080 Ti.

Run: python bench/bench_balance.py [--steps 2] [--pes 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from uticompile.datasets import load_dataset
from uticompile.grouping import _build_layout, group_layout
from uticompile.models.batches import iterate_batches
from uticompile.models.snn import SNN
from uticompile.models.train import timestep_loss
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.passes.balance import balance_mask, check_cycles_balanced, check_iso_balanced

SPARSITY = 1 - 0.75**14


def lottery_masks(graph_params: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    scores = np.concatenate([np.abs(graph_params[n]).ravel() for n in names])
    threshold = np.quantile(scores, SPARSITY)
    return {n: np.abs(graph_params[n]) > threshold for n in names}


def synthetic_costs(masks: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Expected cycles per position for ``cycles``: lognormal per-channel rates x positions."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, m in masks.items():
        rate = rng.lognormal(0.0, 1.0, (1, m.shape[1]) + (1,) * (m.ndim - 2))
        out[k] = rate * rng.integers(4, 10, (1, 1, *m.shape[2:])) if m.ndim == 4 else rate
    return out


def time_balancing(
    masks: dict[str, np.ndarray], pes: int, repeats: int, mode: str = "uticket"
) -> tuple[float, float]:
    """(first run incl. building the PE layouts, best of ``repeats`` warm runs) in seconds."""
    times = []
    costs = synthetic_costs(masks)
    scores = {k: np.random.default_rng(1).standard_normal(m.shape) for k, m in masks.items()}
    for r in range(repeats + 1):
        if r == 0:
            _build_layout.cache_clear()
        rng = np.random.default_rng(r)
        t0 = time.perf_counter()
        for name, mask in masks.items():
            layout = group_layout(mask.shape, pes, "sata")
            out = balance_mask(mask, layout, mode, rng=rng, scores=scores[name], cost=costs[name])
        times.append(time.perf_counter() - t0)
        check_iso_balanced(out, mask, layout)
        if mode == "cycles":
            check_cycles_balanced(out, mask, layout, costs[name])
    return times[0], min(times[1:])


def time_training_steps(steps: int) -> tuple[float, int]:
    """(seconds per optimizer step of full-width VGG-16, steps per digits epoch)."""
    data = load_dataset("digits", channels=3)
    graph = build_model("vgg16", ModelSpec(data.input_shape, data.num_classes))
    net = SNN(graph).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    batches = iterate_batches(data, "train", 64, shuffle=True, augment=True, generator=None)
    durations = []
    for _, (x, y) in zip(range(steps + 1), batches, strict=False):
        t0 = time.perf_counter()
        loss = timestep_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        durations.append(time.perf_counter() - t0)
    per_step = float(np.median(durations[1:]))  # the first step pays allocator warm-up
    return per_step, -(-len(data.y_train) // 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="training steps to time")
    parser.add_argument("--pes", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    graph = build_model("vgg16", ModelSpec((3, 32, 32), 10))
    names = [graph.param_names(n)[0] for n in graph.weight_nodes()]
    masks = lottery_masks(graph.params, names)
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.size for m in masks.values())
    cold, warm = time_balancing(masks, args.pes, args.repeats)
    cyc_cold, cyc_warm = time_balancing(masks, args.pes, args.repeats, "cycles")
    step, steps_per_epoch = time_training_steps(args.steps)
    epoch = step * steps_per_epoch

    print(
        f"VGG-16 full width: {len(masks)} prunable layers, {total:,} weights, "
        f"sparsity {1 - kept / total:.4f}, {args.pes} PEs (sata grouping)"
    )
    print(f"balancing (uticket), first run incl. layouts: {cold * 1e3:9.1f} ms")
    print(f"balancing (uticket), warm (best of {args.repeats}):    {warm * 1e3:9.1f} ms")
    print(f"balancing (cycles), first run incl. layouts:  {cyc_cold * 1e3:9.1f} ms")
    print(f"balancing (cycles), warm (best of {args.repeats}):     {cyc_warm * 1e3:9.1f} ms")
    print(f"training step (batch 64, T=4, median of {args.steps}):  {step:9.2f} s")
    print(f"training epoch on digits ({steps_per_epoch} steps, estimated): {epoch:9.1f} s")
    print(f"ratio balancing / one epoch:      {cold / epoch:.2e} ({100 * cold / epoch:.4f}%)")
    print(
        f"ratio balancing / 300-epoch round: {cold / (300 * epoch):.2e} "
        f"({100 * cold / (300 * epoch):.6f}%)  paper: 0.11% of one round (GPU)"
    )
    print(f"ratio cycles balancing / one epoch: {cyc_cold / epoch:.2e}")


if __name__ == "__main__":
    main()
