"""Benchmark: training throughput of one process against two data-parallel processes (gloo, CPU).

Every configuration runs the real ``train`` path (two processes: rank 0 ``train``, rank 1
``serve``, exactly what ``torchrun`` starts) on the same model, data, global batch and seed, each
in fresh processes, side by side in this run. Throughput is training samples per second of an
epoch after the first (warm-up) one; rank 0's epoch time covers the whole data-parallel step.
With as many processes as cores, 1 process x 2 threads is the fair single-process rival.

Run: OMP_NUM_THREADS=1 python bench/bench_ddp.py [--model vgg_small] [--epochs 3] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp

from uticompile.datasets import load_dataset
from uticompile.models import distributed
from uticompile.models.train import TrainConfig, serve, train
from uticompile.models.zoo import ModelSpec, build_model


def _worker(
    rank: int, world: int, threads: int, port: int, args: argparse.Namespace, out: str
) -> None:
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                          WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(threads)
    data = load_dataset("digits", size=args.size)
    graph = build_model(args.model, ModelSpec(data.input_shape, data.num_classes, timesteps=4))
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=0.05, seed=0)
    with distributed.session() as group:
        if group is not None and rank != 0:
            serve(group)
            return
        result = train(graph, data, config)
    seconds = [r.seconds for r in result.history[1:]]
    rate = data.x_train.shape[0] * len(seconds) / sum(seconds)
    Path(out).write_text(f"{rate} {result.history[-1].train_accuracy}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg_small")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    configs = [(1, 1), (1, 2), (2, 1)]  # (processes, threads per process)
    rates: dict[tuple[int, int], float] = {}
    accuracy: dict[tuple[int, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for world, threads in configs:
            out = str(Path(tmp, f"{world}x{threads}"))
            mp.spawn(_worker, args=(world, threads, _free_port(), args, out), nprocs=world)
            rate, acc = Path(out).read_text().split()
            rates[(world, threads)], accuracy[(world, threads)] = float(rate), float(acc)
    print(
        f"{args.model} on digits {args.size}x{args.size}, T=4, global batch {args.batch}, "
        f"mean of epochs 2..{args.epochs}, {os.cpu_count()} cores"
    )
    print(f"{'processes x threads':<22}{'samples/s':>10}{'vs 1x1':>8}{'last-epoch train acc':>22}")
    for key in configs:
        label = f"{key[0]} x {key[1]}" + (" (gloo DDP)" if key[0] > 1 else "")
        print(
            f"{label:<22}{rates[key]:>10.1f}{rates[key] / rates[(1, 1)]:>7.2f}x"
            f"{accuracy[key]:>22.4f}"
        )


if __name__ == "__main__":
    main()
