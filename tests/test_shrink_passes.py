"""Spatio-temporal pruning's pure pieces: PCA widths, channel spaces and resize, T schedules."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from tests.conftest import dyadic_graph, dyadic_input
from uticompile.errors import ConfigError
from uticompile.ir import NEURON_PRESETS, Graph
from uticompile.models.lif import LIF
from uticompile.models.ort_eval import session
from uticompile.models.snn import SNN
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.onnx_export import OUTPUT, SPIKES_SUFFIX, to_onnx
from uticompile.passes.pca_widths import (
    channel_rows,
    cumulative_explained_variance,
    select_width,
    spectrum_of_rows,
)
from uticompile.passes.resize_channels import (
    channel_groups,
    resize_channels,
    shared_widths,
    weight_count,
)
from uticompile.passes.timestep_schedule import (
    NO_IMPROVEMENT,
    RECOVERED,
    best_epoch,
    check_schedule,
    choose_timesteps,
    parse_schedule,
    stage_stop,
)


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_pca_width_is_the_rank_of_synthetic_activations(rank: int) -> None:
    rng = np.random.default_rng(rank)
    channels, rows = 12, 2000
    basis = rng.normal(size=(rank, channels))
    x = rng.normal(size=(rows, rank)) @ basis + rng.normal(size=channels) * 5  # + an offset
    s = spectrum_of_rows("l", x, 0.999)
    assert s.width == rank
    assert s.cumulative[rank - 1] == pytest.approx(1.0, abs=1e-9)
    # noise far below the cutoff does not add components; noise above it does
    quiet = x + rng.normal(size=x.shape) * 1e-4
    assert spectrum_of_rows("l", quiet, 0.999).width == rank
    loud = x + rng.normal(size=x.shape) * 0.5
    assert spectrum_of_rows("l", loud, 0.999).width > rank


def test_cumulative_spectrum_of_known_variances() -> None:
    rng = np.random.default_rng(0)
    variances = np.array([8.0, 4.0, 2.0, 1.0, 1.0])
    x = rng.normal(size=(200_000, 5)) * np.sqrt(variances)
    x = x[:, [3, 0, 4, 2, 1]]  # the channel order does not matter
    cum = cumulative_explained_variance(len(x), x.sum(0), x.T @ x)
    np.testing.assert_allclose(cum, np.cumsum(variances) / variances.sum(), atol=5e-3)
    assert select_width(cum, 0.5) == 1
    assert select_width(cum, 0.75) == 2
    assert select_width(cum, 1.0) == 5
    constant = np.ones((10, 3))
    assert spectrum_of_rows("dead", constant, 0.999).width == 1  # no variance: one component


def test_rows_are_image_and_position_columns_are_channels() -> None:
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    rows = channel_rows(x)
    assert rows.shape == (2 * 4 * 5, 3)
    assert list(rows[7]) == [x[0, c, 1, 2] for c in range(3)]
    assert channel_rows(np.ones((4, 6))).shape == (4, 6)


def test_mean_membrane_is_before_reset_and_averaged_over_t() -> None:
    params = NEURON_PRESETS["paper"]
    lif = LIF(params, 3)
    x = torch.tensor([[0.6], [0.6], [0.6]])  # T=3, B=1, one neuron
    u, acc = 0.0, 0.0
    for _ in range(3):
        u = params.leak * u + params.gain * 0.6
        acc += u
        u = 0.0 if u >= params.threshold else u
    assert lif.mean_membrane(x).item() == pytest.approx(acc / 3, rel=1e-6)
    assert lif(x).sum().item() >= 1  # the neuron did fire: the average saw the pre-reset value


@pytest.mark.parametrize("values", [(0.0,), (1.5,), (-0.1,)])
def test_variance_outside_unit_interval_is_refused(values: tuple[float]) -> None:
    with pytest.raises(ConfigError, match="variance"):
        select_width(np.array([1.0]), values[0])


def _spec(width: float = 1.0) -> ModelSpec:
    return ModelSpec((1, 32, 32), 10, width=width, neuron=NEURON_PRESETS["paper"], seed=5)


def test_rebuilding_a_zoo_model_with_its_own_widths_is_the_zoo_model() -> None:
    for name in ("vgg_small", "resnet_small"):
        g = build_model(name, _spec())
        assert resize_channels(g, shared_widths(g, {}), seed=5).equals(g)


def test_residual_adds_share_one_width() -> None:
    g = build_model("resnet19", _spec(0.0625))  # identity shortcuts inside every stage
    groups = channel_groups(g)
    # stage 1 (block outputs lif3, lif5, lif7): the second convs and the 1x1 shortcut are one space
    assert groups["lif3"] == groups["lif5"] == groups["lif7"] == groups["conv4"] == groups["conv3"]
    assert groups["lif2"] != groups["lif3"]  # the block's inner LIF has a width of its own
    widths = shared_widths(g, {"lif3": 2, "lif5": 5, "lif7": 3, "lif2": 1})
    for conv in ("conv3", "conv4", "conv6", "conv8"):
        assert widths[conv] == 5  # the largest any joined layer asks for
    assert widths["conv2"] == 1
    assert widths["fc2"] == 10  # the classifier keeps its width
    small = resize_channels(g, widths, seed=0)
    shapes = small.shapes()
    assert shapes["lif3"][0] == shapes["lif5"][0] == shapes["lif7"][0] == 5
    assert weight_count(small) < weight_count(g)
    with torch.no_grad():
        out = SNN(small)(torch.zeros(2, 1, 32, 32))
    assert out.shape == (g.timesteps, 2, 10)
    bad = dict(widths, conv6=4)  # breaks the add of block 2
    with pytest.raises(ConfigError, match="add"):
        resize_channels(g, bad, seed=0)
    with pytest.raises(ConfigError, match="not a LIF"):
        shared_widths(g, {"conv2": 3})


@pytest.mark.parametrize("name", ["vgg_small", "resnet_small"])
def test_shrunk_model_runs_in_onnxruntime_with_parity(name: str) -> None:
    g = build_model(name, _spec())
    lifs = [n.name for n in g.lif_nodes()]
    small: Graph = dyadic_graph(
        resize_channels(g, shared_widths(g, {n: 3 + i for i, n in enumerate(lifs)}), seed=1)
    )
    assert weight_count(small) < weight_count(g)
    x = dyadic_input((3, 1, 32, 32))
    spikes: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        logits = SNN(small).eval()(torch.from_numpy(x), spikes).numpy()
    model = to_onnx(small, spike_outputs=True)
    onnx.checker.check_model(model, full_check=True)
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(names, {"input": x}), strict=True))
    np.testing.assert_allclose(outs[OUTPUT], logits, rtol=1e-4, atol=0)
    for node in small.lif_nodes():
        np.testing.assert_array_equal(outs[node.output + SPIKES_SUFFIX], spikes[node.name].numpy())


@pytest.mark.parametrize(
    ("text", "message"),
    [("2,3", "decreasing"), ("4,4", "decreasing"), ("2,0", ">= 1"), ("a,b", "integers"),
     ("", "at least one")],
)  # fmt: skip
def test_impossible_schedules(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_schedule(text)


def test_schedule_cannot_add_timesteps_and_choice_keeps_smallest_within_drop() -> None:
    assert parse_schedule("4,3,2,1") == (4, 3, 2, 1)
    with pytest.raises(ConfigError, match="above the model"):
        check_schedule((6, 4), model_timesteps=4)
    acc = {4: 0.95, 3: 0.945, 2: 0.93, 1: 0.5}
    assert choose_timesteps(acc, 0.95, 1.0) == 3
    assert choose_timesteps(acc, 0.95, 2.0) == 2
    assert choose_timesteps(acc, 0.99, 0.0) == 4  # nothing within: the largest T
    with pytest.raises(ConfigError):
        choose_timesteps(acc, 0.95, -1.0)


def test_a_stage_stops_once_recovered_or_after_patience_epochs_without_improvement() -> None:
    ref = 0.90  # reference validation accuracy; max_drop 1 point: 0.89 has recovered
    assert stage_stop([], ref, 1.0, 2) is None
    assert stage_stop([0.80], ref, 1.0, 2) is None
    assert stage_stop([0.80, 0.89], ref, 1.0, 2) == RECOVERED
    assert stage_stop([0.80, 0.889], ref, 1.0, 2) is None
    assert stage_stop([0.80, 0.889], ref, 0.0, 2) is None
    assert stage_stop([0.95], ref, 0.0, 2) == RECOVERED  # above the reference counts too
    # patience: the best epoch is `patience` epochs behind the last
    assert stage_stop([0.85, 0.84], ref, 1.0, 2) is None
    assert stage_stop([0.85, 0.84, 0.85], ref, 1.0, 2) == NO_IMPROVEMENT  # equal is no better
    assert stage_stop([0.85, 0.84, 0.86], ref, 1.0, 2) is None
    assert stage_stop([0.85, 0.84], ref, 1.0, 1) == NO_IMPROVEMENT
    assert best_epoch([0.5, 0.7, 0.7, 0.6]) == 2  # the earliest of equals, 1-based
    with pytest.raises(ValueError, match="no epochs"):
        best_epoch([])


def test_library_errors_name_options_as_fields_and_the_cli_shows_flags() -> None:
    from uticompile.cli.options import flag_message

    cases = [
        (lambda: parse_schedule("2,3"), "timesteps must be strictly decreasing"),
        (lambda: select_width(np.array([1.0]), 1.5), "variance must be in (0, 1]"),
        (lambda: choose_timesteps({1: 0.5}, 0.5, -1.0), "max_drop must be >= 0"),
    ]
    for call, text in cases:
        with pytest.raises(ConfigError) as info:
            call()
        assert str(info.value).startswith(text)
        assert flag_message(info.value).startswith("--" + text.replace("_", "-"))


def test_held_out_slice_is_training_images_only_seeded_and_disjoint() -> None:
    from uticompile.datasets import load_dataset

    d = load_dataset("digits", size=8)
    rest, held = d.hold_out(0.1, seed=7)
    n = d.x_train.shape[0]
    assert held.x_train.shape[0] == round(0.1 * n) == n - rest.x_train.shape[0]
    assert held.x_test is held.x_train  # both splits are the slice: no test image in it
    np.testing.assert_array_equal(rest.x_test, d.x_test)  # the rest keeps the test split
    mixed = np.concatenate([rest.x_train, held.x_train]).reshape(n, -1)
    assert sorted(map(bytes, mixed)) == sorted(map(bytes, d.x_train.reshape(n, -1)))
    _, held2 = d.hold_out(0.1, seed=7)
    np.testing.assert_array_equal(held2.x_train, held.x_train)  # seeded: the same slice
    assert not np.array_equal(d.hold_out(0.1, seed=8)[1].y_train, held.y_train)
    with pytest.raises(ConfigError, match="none held out"):
        d.head(train=3).hold_out(0.1, seed=0)
