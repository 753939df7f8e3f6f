"""The public Python API: typed results, neutral error messages, and the own-loop Pruner."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import uticompile
from uticompile import api
from uticompile.cli.options import flag_message
from uticompile.datasets import Dataset, load_dataset
from uticompile.errors import ConfigError, DatasetError, UticompileError
from uticompile.ir import Graph
from uticompile.models.snn import SNN
from uticompile.passes.lottery import PruneConfig, load_masks, run_lottery


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    return load_dataset("digits", size=16).head(train=64, test=32)


@pytest.fixture(scope="module")
def vgg(small_graphs: dict[str, Graph]) -> Graph:
    return small_graphs["vgg_small"]


def test_lazy_reexport_resolves_the_api() -> None:
    assert uticompile.map_model is api.map_model
    assert uticompile.Pruner.__module__ == "uticompile.passes.pruner"
    assert set(uticompile.__all__) - {"__version__"} <= set(dir(uticompile))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = uticompile.nope  # type: ignore[attr-defined]


def test_import_uticompile_is_torch_free_until_a_torch_step() -> None:
    code = (
        "import sys, uticompile\n"
        "assert 'torch' not in sys.modules and 'uticompile.api' not in sys.modules\n"
        "uticompile.map_model, uticompile.run, uticompile.Mapped\n"
        "assert 'torch' not in sys.modules, 'the API module imports torch at import time'\n"
        "uticompile.Pruner\n"
        "assert 'torch' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_results_are_frozen_and_typed(vgg: Graph, tiny: Dataset, tmp_path: Path) -> None:
    mapped = api.map_model(vgg, pes=4)
    assert isinstance(mapped, api.Mapped)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mapped.mapping = mapped.mapping  # type: ignore[misc]
    assert set(mapped.quantization) == {n.name for n in vgg.weight_nodes()}
    sim = api.run(mapped, tiny, samples=8, check=vgg)
    assert sim.report.samples == 8
    assert sim.check is not None
    assert sim.check.samples == 8
    assert sim.accuracy is not None
    assert 0.0 <= sim.accuracy <= 1.0
    # a mapping saved and read back runs to the same counts; the file holds to_bytes()
    path = tmp_path / "m.utm"
    api.save_mapping(mapped, path)
    assert path.read_bytes() == mapped.to_bytes()
    assert api.load_mapping(path).name == mapped.mapping.name
    again = api.run(path, tiny, samples=8)
    assert again.report.latency == sim.report.latency


def test_prune_needs_no_run_dir_and_keeps_one_when_given(
    vgg: Graph, tiny: Dataset, tmp_path: Path
) -> None:
    options = {"rounds": 1, "epochs": 1, "dense_epochs": 0, "batch_size": 32, "pes": 4}
    pruned = api.prune(vgg, tiny, **options)
    assert pruned.run_dir is None
    assert [r.round for r in pruned.rounds] == [0, 1]
    assert isinstance(pruned.final, api.PruneRound)
    assert pruned.final.sparsity == pytest.approx(pruned.reports[-1]["sparsity"])
    kept = api.prune(vgg, tiny, run_dir=tmp_path / "run", **options)
    assert kept.run_dir == tmp_path / "run"
    assert (tmp_path / "run" / "round_01" / "done").exists()
    # same inputs, same seed: the temporary and the kept run give the same model
    for key, value in pruned.graph.params.items():
        np.testing.assert_array_equal(value, kept.graph.params[key])


@pytest.mark.parametrize(
    ("call", "message", "flag"),
    [
        (lambda g, d: api.prune(g, d, rounds=-1), "rounds must be >= 0, got -1", "--rounds"),
        (lambda g, d: api.prune(g, d, rate=1.5), "rate must be in (0, 1), got 1.5", "--rate"),
        (lambda g, d: api.map_model(g, pes=0), "pes must be >= 1, got 0", "--pes"),
        (lambda g, d: api.map_model(g, bits=40), "bits must lie in", "--bits"),
        (lambda g, d: api.run(api.map_model(g, pes=2), d, samples=0), "samples must", "--samples"),
        (lambda g, d: api.Pruner(g, balance="x"), "balance must be one of", "--balance"),
        (
            lambda g, d: api.compare_variants(g, pes=(4, 4)),
            "pes lists a PE count twice",
            "--pes",
        ),
        (lambda g, d: api.train(g, d, device="tpu"), "device must be cpu or cuda", None),
        (
            lambda g, d: api.build_model("vgg_small", d, neuron="x"),
            "neuron must be one of",
            "--neuron",
        ),
    ],
)
def test_errors_name_options_not_flags(
    call: object, message: str, flag: str | None, vgg: Graph, tiny: Dataset
) -> None:
    with pytest.raises(UticompileError) as info:
        call(vgg, tiny)  # type: ignore[operator]
    text = str(info.value)
    assert text.startswith(message)
    assert "--" not in text
    if flag is not None:  # the CLI shows the same error with the flag's name
        assert flag_message(info.value).startswith(flag + " ")


def test_a_missing_dataset_is_a_dataset_error(vgg: Graph) -> None:
    with pytest.raises(DatasetError, match="data_dir is needed for cifar10"):
        api.train(vgg, "cifar10", epochs=1)


def test_pruner_step_matches_a_lottery_round(vgg: Graph, tiny: Dataset, tmp_path: Path) -> None:
    """A Pruner step on the same weights and seed gives the lottery's round-1 masks exactly."""
    config = PruneConfig(rounds=1, epochs=1, dense_epochs=0, batch_size=32, pes=4, rate=0.5)
    run_lottery(vgg, tiny, config, tmp_path / "run")
    expected, _ = load_masks(tmp_path / "run" / "round_01" / "masks.npz")
    pruner = api.Pruner(vgg, rate=0.5, balance="uticket", pes=4)
    step = pruner.step()
    assert isinstance(step, api.PruneStep)
    assert step.step == 1
    assert set(pruner.masks) == set(expected)
    for name, mask in expected.items():
        np.testing.assert_array_equal(pruner.masks[name], mask)
    assert 0.45 < step.sparsity < 0.55
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.sparsity = 0.0  # type: ignore[misc]


def test_pruner_apply_holds_pruned_weights_at_zero(vgg: Graph, tiny: Dataset) -> None:
    net = SNN(vgg)
    pruner = api.Pruner(net, rate=0.5, balance="uticket", pes=4)
    pruner.step(net)
    pruner.apply(net)
    layers = net.weight_layers()
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(4, 1, 16, 16)), dtype=torch.float32)
    for _ in range(3):
        loss = net(x).square().mean()
        opt.zero_grad()
        loss.backward()
        for name, layer in layers.items():
            assert layer.weight.grad is not None
            assert (layer.weight.grad[~torch.as_tensor(pruner.masks[name])] == 0).all()
        opt.step()
    net(x)  # the forward pre-hook re-zeroes what momentum moved
    graph = pruner.pruned_graph(net)
    for node in graph.weight_nodes():
        w = graph.params[node.inputs[1]]
        assert (w[~pruner.masks[node.name]] == 0).all()
    # a second step prunes further from the trained survivors; remove() detaches the hooks
    second = pruner.step(net)
    assert second.step == 2
    assert second.sparsity > 0.7
    pruner.remove()
    assert all(not layer._forward_pre_hooks for layer in layers.values())


def test_pruner_rejects_another_model(vgg: Graph, small_graphs: dict[str, Graph]) -> None:
    pruner = api.Pruner(vgg, rate=0.5)
    with pytest.raises(ConfigError, match="weight layers"):
        pruner.step(small_graphs["resnet_small"])
    with pytest.raises(ConfigError, match=r"^costs are needed"):
        api.Pruner(vgg, balance="cycles").step()
