"""The ``uticompile`` command line: parse, build a config, call the library, print or write.

Every error a user can cause ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

import uticompile
from uticompile.errors import UticompileError

EXIT_USER_ERROR = 2


def _emit(as_json: bool, payload: dict[str, Any], text: Callable[[], str]) -> None:
    """Print ``payload`` as JSON (machine-readable) or the human text."""
    if as_json:
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(text())


@contextmanager
def _step_bar(label: str, enabled: bool) -> Iterator[Callable[[Any], None]]:
    """Training progress on stderr: a bar per epoch on a terminal, else one line per epoch."""
    state: dict[str, Any] = {}
    tty = sys.stderr.isatty()

    def finish() -> None:
        info = state.get("info")
        if info is None:
            return
        if state.get("bar") is not None:
            state["bar"].render_finish()
        else:
            click.echo(
                f"{label} {info.epoch}/{info.epochs}: loss {info.loss:.4f} "
                f"train accuracy {info.accuracy:.4f}",
                err=True,
            )

    def on_step(info: Any) -> None:
        if not enabled:
            return
        if state.get("epoch") != info.epoch:
            finish()
            state["bar"] = None
            if tty:
                state["bar"] = click.progressbar(
                    length=info.steps,
                    file=sys.stderr,
                    show_pos=True,
                    label=f"{label} {info.epoch}/{info.epochs}",
                )
            state["epoch"] = info.epoch
        state["info"] = info
        if state["bar"] is not None:
            state[
                "bar"
            ].label = (
                f"{label} {info.epoch}/{info.epochs} loss {info.loss:.3f} acc {info.accuracy:.3f}"
            )
            state["bar"].update(1)

    yield on_step
    if enabled:
        finish()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(uticompile.__version__, prog_name="uticompile")
def cli() -> None:
    """uticompile: train, prune, map and run workload-balanced sparse spiking neural networks."""


@cli.command()
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
@click.option("--timesteps", "-T", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--width",
    type=click.FloatRange(min=0, min_open=True),
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
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option(
    "--augment/--no-augment",
    default=True,
    show_default=True,
    help="The dataset's training augmentation.",
)
@click.option(
    "--size", type=click.IntRange(min=8), default=32, show_default=True, help="Input image side."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--resume/--no-resume",
    default=False,
    help="Continue from OUTPUT.ckpt if a run was interrupted.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
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
    from uticompile.ir import NEURON_PRESETS
    from uticompile.models.train import TrainConfig, evaluate
    from uticompile.models.train import train as train_model
    from uticompile.models.zoo import ModelSpec, build_model
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
    data = load_dataset(dataset, data_dir=data_dir, size=size)
    spec = ModelSpec(
        data.input_shape,
        data.num_classes,
        width=width,
        timesteps=timesteps,
        neuron=NEURON_PRESETS[neuron],
        seed=seed,
    )
    graph = build_model(model_name, spec)
    ckpt = output.with_name(output.name + ".ckpt")
    if ckpt.exists() and not resume:
        ckpt.unlink()
    with _step_bar("epoch", not as_json) as on_step:
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
    _emit(
        as_json,
        payload,
        lambda: (
            f"wrote {output}: {model_name} on {dataset}, "
            f"test accuracy {ev.accuracy:.4f}, mean spike sparsity {ev.mean_spike_sparsity:.4f}"
        ),
    )


@cli.command(name="eval")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", default="digits", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def eval_(model: Path, dataset: str, data_dir: Path | None, batch_size: int, as_json: bool) -> None:
    """Accuracy and per-layer spike sparsity of MODEL, run in onnxruntime."""
    from uticompile.datasets import load_dataset_for
    from uticompile.models.ort_eval import evaluate_onnx
    from uticompile.onnx_import import from_onnx, load_onnx

    proto = load_onnx(model)
    graph = from_onnx(proto)
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

    _emit(as_json, payload, text)


def _round_row(report: dict[str, Any]) -> str:
    """One line of the per-round table."""

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    return (
        f"{report['round']:>5} {report['sparsity']:>9.4f} {report['accuracy']:>9.4f} "
        f"{report['spike_sparsity']:>9.4f} {fmt(report['utilization_weighted']):>9} "
        f"{fmt(report['utilization_unweighted']):>9} {report['train_seconds']:>8.1f} "
        f"{report['balance_seconds']:>9.3f}"
    )


_ROUND_HEADER = (
    f"{'round':>5} {'sparsity':>9} {'accuracy':>9} {'spk.spars':>9} {'util.wtd':>9} "
    f"{'util.mean':>9} {'train s':>8} {'balance s':>9}"
)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", default="digits", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Round artifacts and reports [default: OUTPUT_STEM.run beside the output].",
)
@click.option("--rounds", type=int, default=14, show_default=True, help="Pruning rounds.")
@click.option("--rate", type=float, default=0.25, show_default=True, help="Share pruned/round.")
@click.option("--epochs", type=int, default=5, show_default=True)
@click.option(
    "--dense-epochs",
    type=int,
    default=None,
    help="Epochs of the dense round 0 [default: --epochs]; 0 takes MODEL as trained.",
)
@click.option("--rewind-epoch", type=int, default=0, show_default=True, help="Late rewinding K.")
@click.option(
    "--rewind",
    type=click.Choice(["weights", "lr"]),
    default="weights",
    show_default=True,
    help="weights: rewind survivors to epoch K; lr: keep trained weights, rewind the schedule.",
)
@click.option(
    "--balance",
    type=click.Choice(["none", "uticket", "magnitude", "activity"]),
    default="uticket",
    show_default=True,
)
@click.option("--pes", type=int, default=16, show_default=True, help="PEs per group.")
@click.option(
    "--grouping", type=click.Choice(["sata", "systolic"]), default="sata", show_default=True
)
@click.option("--search-timesteps", type=int, default=None, help="ET ticket: T of search rounds.")
@click.option(
    "--paper-compat",
    is_flag=True,
    help="Public code's scope: skip the first conv and linears; network = unweighted mean.",
)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--weight-decay", type=float, default=5e-4, show_default=True)
@click.option("--augment/--no-augment", default=True, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--resume/--no-resume", default=False, help="Continue an interrupted run.")
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON.")
def prune(
    model: Path,
    dataset: str,
    data_dir: Path | None,
    output: Path,
    run_dir: Path | None,
    resume: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Lottery-ticket pruning with PE workload balancing (u-Ticket) of an ONNX SNN."""
    from contextlib import ExitStack

    from uticompile.datasets import load_dataset_for
    from uticompile.onnx_export import save_onnx
    from uticompile.onnx_import import read_graph
    from uticompile.passes.lottery import LotteryEvent, PruneConfig, run_lottery

    config = PruneConfig(dataset=dataset, **options)
    graph = read_graph(model)
    data = load_dataset_for(
        dataset, input_shape=graph.input_shape, num_classes=graph.num_classes, data_dir=data_dir
    )
    run = run_dir if run_dir is not None else output.with_name(output.stem + ".run")
    bars = ExitStack()
    state: dict[str, Any] = {"header": False}

    def on_event(event: LotteryEvent) -> None:
        if event.kind == "round_start":
            bars.close()
            state["step"] = bars.enter_context(
                _step_bar(f"round {event.round}/{event.rounds} epoch", not as_json)
            )
        elif event.kind == "step":
            state["step"](event.step)
        elif event.kind == "round_end" and event.report is not None:
            bars.close()
            if not as_json:
                if not state["header"]:
                    click.echo(_ROUND_HEADER)
                    state["header"] = True
                click.echo(_round_row(event.report))

    with bars:
        result = run_lottery(graph, data, config, run, resume=resume, on_event=on_event)
    save_onnx(result.graph, output)
    final = result.reports[-1]
    payload = {
        "model": str(model),
        "output": str(output),
        "run_dir": str(run),
        "config": asdict(config),
        **result.summary(),
    }

    def text() -> str:
        u = final["utilization_network"]
        util = "-" if u is None else f"{u:.4f}"
        lines = [
            f"wrote {output}: sparsity {final['sparsity']:.4f}, accuracy {final['accuracy']:.4f}, "
            f"network utilization {util}; reports in {run}"
        ]
        if result.timing is not None:
            t = result.timing
            lines.append(
                f"ET ticket: measured step-time ratio T={t['search_timesteps']}/T={t['timesteps']} "
                f"{t['measured_ratio']:.3f}, estimated search time saved "
                f"{100 * t['estimated_saving']:.1f}% (an estimate)"
            )
        return "\n".join(lines)

    _emit(as_json, payload, text)


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def show(path: Path) -> None:
    """Print an ONNX model's IR or a mapped binary (.utm) as stable text."""
    from uticompile.mapfile import MAGIC_UTM, read_mapping
    from uticompile.onnx_import import read_graph
    from uticompile.printer import format_graph, format_mapping

    with open(path, "rb") if path.is_file() else _missing(path) as handle:
        head = handle.read(len(MAGIC_UTM))
    if head == MAGIC_UTM:
        click.echo(format_mapping(read_mapping(path)), nl=False)
    else:
        click.echo(format_graph(read_graph(path), digests=True), nl=False)


def _missing(path: Path) -> Any:
    raise UticompileError(f"{path}: no such file")


def _register_hardware_commands() -> None:
    from uticompile.cli_compare import COMMANDS as _COMPARE
    from uticompile.cli_hw import COMMANDS

    for command in (*COMMANDS, *_COMPARE):
        cli.add_command(command)


_register_hardware_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning every user error into one line and an exit code."""
    try:
        result = cli.main(args=argv, prog_name="uticompile", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("uticompile: aborted", err=True)
        return 130
    except click.ClickException as exc:
        click.echo(f"uticompile: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except UticompileError as exc:
        click.echo(f"uticompile: error: {exc}", err=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        click.echo("uticompile: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
