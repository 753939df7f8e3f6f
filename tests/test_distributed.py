"""Data-parallel training: two gloo processes average their gradients like one big batch.

The model has no BatchNorm (its batch statistics are per rank by design, as in plain DDP), so one
step on two shards must equal one single-process step on the whole batch up to float rounding.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch.multiprocessing as mp

from uticompile.datasets import Dataset, load_dataset
from uticompile.errors import ConfigError
from uticompile.ir import NEURON_PRESETS, Graph
from uticompile.models import distributed
from uticompile.models.builder import GraphBuilder
from uticompile.models.train import TrainConfig, serve, train

# 7 samples in one batch: shards of 4 and 3, so the slice-size weighting of the loss matters.
SAMPLES = 7
CONFIG = TrainConfig(epochs=1, batch_size=SAMPLES, lr=0.5, seed=5, augment=False)


def _graph() -> Graph:
    b = GraphBuilder("nobn", (1, 8, 8), 10, timesteps=2, neuron=NEURON_PRESETS["paper"], seed=1)
    x = b.lif(b.encode(b.conv("input", 4)))
    x = b.lif(b.conv(b.maxpool(x), 6))
    return b.build(b.linear(b.flatten(x), 10))


def _data() -> Dataset:
    ds = load_dataset("digits", size=8)
    return dataclasses.replace(ds, x_train=ds.x_train[:SAMPLES], y_train=ds.y_train[:SAMPLES])


def _masks(g: Graph) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {n.name: rng.random(g.params[n.inputs[1]].shape) < 0.6 for n in g.weight_nodes()}


def _rank(rank: int, port: int, out: str, stop_after: int | None = None) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
        OMP_NUM_THREADS="1",
    )
    g = _graph()
    with distributed.session() as group:
        assert group is not None
        if rank == 0 and stop_after is not None:  # only rank 0 decides; every rank stops
            config = dataclasses.replace(CONFIG, epochs=3)
            result = train(g, _data(), config, on_epoch_end=lambda e, _n: e == stop_after)
        elif rank == 0:
            result = train(g, _data(), CONFIG, masks=_masks(g))
        else:
            result = serve(group)
    assert result is not None
    Path(out, f"rank{rank}.pkl").write_bytes(pickle.dumps(result.graph.params))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_ranks_average_gradients_like_one_batch(tmp_path: Path) -> None:
    mp.spawn(_rank, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in (0, 1)]
    g = _graph()
    single = train(g, _data(), CONFIG, masks=_masks(g)).graph.params
    moved = 0
    for name, before in g.params.items():
        assert np.array_equal(ranks[0][name], ranks[1][name]), name  # bit-equal on both ranks
        np.testing.assert_allclose(ranks[0][name], single[name], rtol=1e-5, atol=1e-6)
        moved += int(not np.array_equal(single[name], before))
    assert moved >= 4  # every weight and the final bias took a step


def test_shards_cover_the_batch_once() -> None:
    for n in (2, 7, 64):
        parts = [distributed.shard(n, 3, r) for r in range(3)]
        assert [i for p in parts for i in range(n)[p]] == list(range(n))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_single_process_has_no_group() -> None:
    assert distributed.world().size == 1 or os.environ.get("WORLD_SIZE")
    with distributed.session() as group:
        assert group is None


def test_amp_is_refused_on_cpu() -> None:
    from uticompile.cli.options import flag_message
    from uticompile.models import fastpath

    with pytest.raises(ConfigError, match="amp needs device cuda") as refused:
        fastpath.FastPaths(amp=True).check("cpu")
    assert flag_message(refused.value).startswith("--amp needs device cuda")


def test_an_early_stop_on_rank_0_stops_every_rank(tmp_path: Path) -> None:
    """``on_epoch_end`` runs on rank 0 only; its stop reaches the other ranks (no hang), and
    both hold what a single process stopping at the same epoch holds."""
    mp.spawn(_rank, args=(_free_port(), str(tmp_path), 2), nprocs=2, join=True)
    ranks = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in (0, 1)]
    config = dataclasses.replace(CONFIG, epochs=3)
    stopped = train(_graph(), _data(), config, on_epoch_end=lambda e, _n: e == 2)
    assert len(stopped.history) == 2
    assert stopped.graph.trained_epochs == 2
    full = train(_graph(), _data(), config).graph.params
    for name, value in stopped.graph.params.items():
        assert np.array_equal(ranks[0][name], ranks[1][name]), name
        np.testing.assert_allclose(ranks[0][name], value, rtol=1e-5, atol=1e-6)
    assert any(not np.array_equal(full[k], v) for k, v in stopped.graph.params.items())
