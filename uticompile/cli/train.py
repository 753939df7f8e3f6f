"""``train`` and ``eval``: the PyTorch side (build, train, evaluate in onnxruntime)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from uticompile.cli.options import FiniteFloat, emit, fast_path_options, step_bar
from uticompile.limits import MAX_TIMESTEPS


@click.command()
@click.option(
    "--model",
    "model_name",
    required=True,
    help="Zoo model: vgg16, resnet19, vgg_small, resnet_small.",
)
@click.option(
    "--dataset", default="digits", show_default=True, help="digits, cifar10, fmnist or svhn."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the dataset files are.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="0 writes a freshly initialized model.",
)
@click.option(
    "--timesteps", "-T", type=click.IntRange(1, MAX_TIMESTEPS), default=4, show_default=True
)
@click.option(
    "--width",
    type=FiniteFloat(min=0, max=16, min_open=True),
    default=1.0,
    show_default=True,
    help="Channel width multiplier.",
)
@click.option(
    "--neuron",
    type=click.Choice(["paper", "spikingjelly", "sata"]),
    default="paper",
    show_default=True,
    help="LIF preset: paper Eq. 1; the public code's SpikingJelly neuron; SATA's 0.9375 leak.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--lr", type=FiniteFloat(min=0, max=10, min_open=True), default=0.1, show_default=True
)
@click.option("--weight-decay", type=FiniteFloat(min=0, max=1), default=5e-4, show_default=True)
@click.option(
    "--augment/--no-augment",
    default=True,
    show_default=True,
    help="The dataset's training augmentation.",
)
@click.option(
    "--size", type=click.IntRange(8, 512), default=32, show_default=True, help="Input image side."
)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--resume/--no-resume",
    default=False,
    help="Continue from OUTPUT.ckpt if a run was interrupted.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@fast_path_options
def train(
    model_name: str,
    dataset: str,
    data_dir: Path | None,
    epochs: int,
    timesteps: int,
    width: float,
    neuron: str,
    batch_size: int,
    lr: float,
    weight_decay: float,
    augment: bool,
    size: int,
    seed: int,
    device: str,
    resume: bool,
    output: Path,
    as_json: bool,
) -> None:
    """Train a zoo SNN and write it as ONNX."""
    from uticompile.datasets import load_dataset
    from uticompile.models.train import TrainConfig, evaluate
    from uticompile.models.train import train as train_model
    from uticompile.models.zoo import build_for_dataset
    from uticompile.onnx_export import save_onnx

    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        device=device,
        augment=augment,
    )
    from uticompile.fileio import check_target, check_writable_dir

    check_target(output)
    check_writable_dir(output.parent)
    check_target(output.with_name(output.name + ".ckpt"))
    data = load_dataset(dataset, data_dir=data_dir, size=size)
    graph = build_for_dataset(
        model_name, data, width=width, timesteps=timesteps, neuron=neuron, seed=seed
    )
    ckpt = output.with_name(output.name + ".ckpt")
    if ckpt.exists() and not resume:
        ckpt.unlink()
    with step_bar("epoch", not as_json) as on_step:
        result = train_model(
            graph, data, config, checkpoint=ckpt if epochs else None, on_step=on_step
        )
    ev = evaluate(result.graph, data)
    save_onnx(result.graph, output)
    ckpt.unlink(missing_ok=True)
    payload = {
        "model": model_name,
        "dataset": dataset,
        "output": str(output),
        "config": asdict(config),
        "timesteps": timesteps,
        "width": width,
        "neuron": neuron,
        "history": result.to_json(),
        "test_accuracy": ev.accuracy,
        "spike_sparsity": ev.spike_sparsity,
    }
    emit(
        as_json,
        payload,
        lambda: (
            f"wrote {output}: {model_name} on {dataset}, "
            f"test accuracy {ev.accuracy:.4f}, mean spike sparsity {ev.mean_spike_sparsity:.4f}"
        ),
    )


@click.command(name="eval")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", default="digits", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def eval_(model: Path, dataset: str, data_dir: Path | None, batch_size: int, as_json: bool) -> None:
    """Accuracy and per-layer spike sparsity of MODEL, run in onnxruntime."""
    from uticompile.datasets import load_dataset_for
    from uticompile.models.ort_eval import evaluate_onnx
    from uticompile.onnx_import import read_model

    proto, graph = read_model(model)
    data = load_dataset_for(
        dataset, input_shape=graph.input_shape, num_classes=graph.num_classes, data_dir=data_dir
    )
    ev = evaluate_onnx(proto, graph, data, batch_size=batch_size)
    payload = {
        "model": str(model),
        "dataset": dataset,
        "accuracy": ev.accuracy,
        "samples": ev.samples,
        "spike_sparsity": ev.spike_sparsity,
        "mean_spike_sparsity": ev.mean_spike_sparsity,
    }

    def text() -> str:
        lines = [
            f"{model}: accuracy {ev.accuracy:.4f} on {ev.samples} {dataset} test samples",
            f"{'layer':<12}{'spike sparsity':>16}",
        ]
        lines += [f"{k:<12}{v:>16.4f}" for k, v in ev.spike_sparsity.items()]
        lines.append(f"{'mean':<12}{ev.mean_spike_sparsity:>16.4f}")
        return "\n".join(lines)

    emit(as_json, payload, text)


COMMANDS = (train, eval_)
