"""Training: masks hold pruned weights at zero, runs are reproducible and resume exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from uticompile.datasets import Dataset, load_dataset
from uticompile.errors import ConfigError
from uticompile.ir import Graph
from uticompile.models.ort_eval import evaluate_onnx
from uticompile.models.train import TrainConfig, evaluate, train
from uticompile.onnx_export import to_onnx


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    ds = load_dataset("digits", size=16)
    return dataclasses.replace(
        ds,
        x_train=ds.x_train[:96],
        y_train=ds.y_train[:96],
        x_test=ds.x_test[:64],
        y_test=ds.y_test[:64],
    )


CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=11)


def test_masks_hold_pruned_weights_at_zero(tiny: Dataset, small_graphs: dict[str, Graph]) -> None:
    g = small_graphs["vgg_small"]
    rng = np.random.default_rng(0)
    masks = {n.name: rng.random(g.params[n.inputs[1]].shape) < 0.3 for n in g.weight_nodes()}
    out = train(g, tiny, CONFIG, masks=masks).graph
    for n in out.weight_nodes():
        w = out.params[n.inputs[1]]
        assert np.all(w[~masks[n.name]] == 0), n.name
        assert np.count_nonzero(w[masks[n.name]]) > 0.9 * masks[n.name].sum()


def test_same_seed_same_weights(tiny: Dataset, small_graphs: dict[str, Graph]) -> None:
    g = small_graphs["resnet_small"]
    assert train(g, tiny, CONFIG).graph.equals(train(g, tiny, CONFIG).graph)


def test_training_counts_epochs_on_the_graph(tiny: Dataset, small_graphs: dict[str, Graph]) -> None:
    """Provenance: a fresh init has 0 epochs, training adds its epochs, unknown stays unknown."""
    g = small_graphs["vgg_small"]
    once = train(g, tiny, CONFIG).graph
    assert (g.trained_epochs, once.trained_epochs) == (0, 2)
    assert train(once, tiny, CONFIG).graph.trained_epochs == 4
    unknown = g.copy()
    unknown.trained_epochs = None
    assert train(unknown, tiny, CONFIG).graph.trained_epochs is None


def test_interrupted_run_resumes_to_the_same_result(
    tmp_path: Path, tiny: Dataset, small_graphs: dict[str, Graph]
) -> None:
    g = small_graphs["vgg_small"]
    config = dataclasses.replace(CONFIG, epochs=3)
    straight = train(g, tiny, config)

    class Killed(Exception):
        pass

    ckpt = tmp_path / "run.ckpt"

    def die_in_second(epoch: int, _net: object) -> None:
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train(g, tiny, config, checkpoint=ckpt, on_epoch_end=die_in_second)
    resumed = train(g, tiny, config, checkpoint=ckpt)
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    assert resumed.graph.equals(straight.graph)


def test_an_early_stop_writes_no_checkpoint_so_a_resumed_run_stops_there_again(
    tmp_path: Path, tiny: Dataset, small_graphs: dict[str, Graph]
) -> None:
    g = small_graphs["vgg_small"]
    config = dataclasses.replace(CONFIG, epochs=3)
    ckpt = tmp_path / "run.ckpt"
    seen: list[int] = []

    def stop_at_second(epoch: int, _net: object) -> bool:
        seen.append(epoch)
        return epoch == 2

    first = train(g, tiny, config, checkpoint=ckpt, on_epoch_end=stop_at_second)
    assert [r.epoch for r in first.history] == [1, 2]
    assert first.graph.trained_epochs == g.trained_epochs + 2
    again = train(g, tiny, config, checkpoint=ckpt, on_epoch_end=stop_at_second)
    assert seen == [1, 2, 2]  # resumed from epoch 1's checkpoint: epoch 2 redone, stopped again
    assert again.graph.equals(first.graph)


def test_checkpoint_of_other_options_is_refused(
    tmp_path: Path, tiny: Dataset, small_graphs: dict[str, Graph]
) -> None:
    ckpt = tmp_path / "run.ckpt"
    train(small_graphs["vgg_small"], tiny, dataclasses.replace(CONFIG, epochs=1), checkpoint=ckpt)
    with pytest.raises(ConfigError, match="other options"):
        train(small_graphs["vgg_small"], tiny, CONFIG, checkpoint=ckpt)


def test_torch_and_onnxruntime_agree_on_a_trained_model(
    tiny: Dataset, small_graphs: dict[str, Graph]
) -> None:
    g = train(small_graphs["resnet_small"], tiny, CONFIG).graph
    a = evaluate(g, tiny)
    b = evaluate_onnx(to_onnx(g), g, tiny)
    assert a.samples == b.samples == 64
    assert a.accuracy == b.accuracy
    assert a.spike_sparsity.keys() == b.spike_sparsity.keys()
    for k in a.spike_sparsity:
        assert a.spike_sparsity[k] == pytest.approx(b.spike_sparsity[k], abs=2e-3), k


def test_impossible_options() -> None:
    with pytest.raises(ConfigError):
        TrainConfig(epochs=-1)
    with pytest.raises(ConfigError):
        TrainConfig(lr=0)
    with pytest.raises(ConfigError):
        TrainConfig(batch_size=0)
