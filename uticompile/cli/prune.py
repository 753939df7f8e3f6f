"""``prune``: lottery-ticket pruning with PE workload balancing."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from uticompile.cli.options import (
    emit,
    fast_path_options,
    search_options,
    step_bar,
    warn_redo,
)


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


@click.command()
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
    type=click.Choice(["none", "uticket", "magnitude", "cycles"]),
    default="uticket",
    show_default=True,
    help="Which positions balancing moves: random (uticket), by magnitude, or magnitude plus "
    "swaps that equalize each PE's expected cycles (cycles). Counts are kept (iso-sparse).",
)
@click.option(
    "--cycle-rates",
    type=click.Choice(["rewind", "previous"]),
    default="rewind",
    show_default=True,
    help="cycles: firing rates from the rewind point (the model the mask trains from) or from "
    "the previous round's trained model, each with the new mask.",
)
@click.option(
    "--layer-counts-from",
    type=click.Path(file_okay=False, path_type=Path),
    help="A finished run directory (the baseline): prune every layer to its count in each "
    "round, so the runs are iso-sparse per layer, not only in total.",
)
@click.option("--pes", type=int, default=16, show_default=True, help="PEs per group.")
@click.option(
    "--grouping", type=click.Choice(["sata", "systolic"]), default="sata", show_default=True
)
@search_options
@click.option(
    "--paper-compat",
    is_flag=True,
    help="Public code's scope (skip the first conv and linears; network = unweighted mean) and "
    "its ceil(mean) targets, which regrow weights (not iso-sparse).",
)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--weight-decay", type=float, default=5e-4, show_default=True)
@click.option("--augment/--no-augment", default=True, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--train-limit", type=click.IntRange(min=1), help="Use only the first N train images."
)
@click.option("--resume/--no-resume", default=False, help="Continue an interrupted run.")
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON.")
@fast_path_options
def prune(
    model: Path,
    dataset: str,
    data_dir: Path | None,
    output: Path,
    run_dir: Path | None,
    resume: bool,
    as_json: bool,
    train_limit: int | None,
    layer_counts_from: Path | None,
    **options: Any,
) -> None:
    """Lottery-ticket pruning with PE workload balancing (u-Ticket) of an ONNX SNN."""
    from contextlib import ExitStack

    from uticompile.compare.experiment import limit_train
    from uticompile.datasets import load_dataset_for
    from uticompile.fileio import check_outputs_distinct, check_target, check_writable_dir
    from uticompile.onnx_export import save_onnx
    from uticompile.onnx_import import read_graph
    from uticompile.passes.lottery import LotteryEvent, PruneConfig, read_budgets, run_lottery

    if layer_counts_from is not None:
        options["layer_budgets"] = read_budgets(layer_counts_from, options["rounds"])
    config = PruneConfig(dataset=dataset, **options)
    run = run_dir if run_dir is not None else output.with_name(output.stem + ".run")
    check_outputs_distinct({"-o": output, "--run-dir": run}, {"MODEL": model})
    check_target(output)
    check_writable_dir(output.parent)
    check_writable_dir(run_dir if run_dir is not None else output.parent)
    graph = read_graph(model)
    data = load_dataset_for(
        dataset, input_shape=graph.input_shape, num_classes=graph.num_classes, data_dir=data_dir
    )
    data = limit_train(data, train_limit)
    bars = ExitStack()
    state: dict[str, Any] = {"header": False}

    def on_event(event: LotteryEvent) -> None:
        if event.kind == "round_start":
            bars.close()
            state["step"] = bars.enter_context(
                step_bar(f"round {event.round}/{event.rounds} epoch", not as_json)
            )
        elif event.kind == "step":
            state["step"](event.step)
        elif event.kind == "redo":
            warn_redo(f"round {event.round}", event.damaged)
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
            f"network utilization {util}; reports in {run}",
            f"search: {result.method['text']}",
        ]
        secs = result.summary()["search_seconds"]
        if result.search_timesteps is not None:
            c = result.search_timesteps
            kl = ", ".join(f"t={t}: {v:.3f}" for t, v in c["normalized_kl"].items())
            lines.append(
                f"ET ticket (auto): search rounds at T={c['timesteps']} of {c['full_timesteps']} "
                f"(normalized KL {kl or 'no candidate below T'}; threshold {c['threshold']})"
            )
        lines.append(
            f"training wall time: dense {secs['dense']:.1f} s, search rounds {secs['search']:.1f}"
            f" s, final round {secs['final']:.1f} s (measured)"
        )
        if result.timing is not None:
            t = result.timing
            lines.append(
                f"ET ticket: measured step-time ratio T={t['search_timesteps']}/T={t['timesteps']} "
                f"{t['measured_ratio']:.3f}, estimated search time saved "
                f"{100 * t['estimated_saving']:.1f}% (an estimate)"
            )
        return "\n".join(lines)

    emit(as_json, payload, text)


COMMANDS = (prune,)
