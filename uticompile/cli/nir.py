"""CLI commands for NIR exchange: ``import-nir`` and ``export-nir`` (thin shells over interop)."""

from __future__ import annotations

from pathlib import Path

import click

from uticompile.cli.options import emit, json_option
from uticompile.interop.nir_time import COMPARES, DEFAULT_DT, IMPORT_RESETS

_dt_option = click.option(
    "--dt",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_DT,
    show_default=True,
    help="Time step in seconds that the NIR time constants are read at (the libraries write 1e-4).",
)


@click.command(name="import-nir")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--timesteps", "-T", type=click.IntRange(min=1), required=True)
@_dt_option
@click.option(
    "--compare",
    type=click.Choice(COMPARES),
    default="ge",
    show_default=True,
    help="Spike when v >= threshold (SpikingJelly) or v > threshold (snnTorch).",
)
@click.option(
    "--reset",
    type=click.Choice(tuple(IMPORT_RESETS)),
    default="zero",
    show_default=True,
    help="What follows a spike, which NIR files do not say: zero (SpikingJelly; snnTorch "
    'reset_mechanism="zero") or subtract (snnTorch\'s default; with --compare gt).',
)
@json_option
def import_nir_cmd(
    model: Path, output: Path, timesteps: int, dt: float, compare: str, reset: str, as_json: bool
) -> None:
    """Convert a NIR graph (SpikingJelly, snnTorch, ...) into a uticompile ONNX model."""
    from uticompile.interop.nir_import import import_nir
    from uticompile.onnx_export import save_onnx

    graph = import_nir(model, timesteps=timesteps, dt=dt, compare=compare, reset=reset)
    save_onnx(graph, output)
    neurons = sum(1 for _ in graph.lif_nodes())
    summary = {
        "output": str(output),
        "nodes": len(graph.nodes),
        "neurons": neurons,
        "input_shape": list(graph.input_shape),
        "outputs": graph.num_classes,
        "timesteps": timesteps,
    }
    emit(
        as_json,
        summary,
        f"wrote {output}: {len(graph.nodes)} nodes, {neurons} spiking layers, "
        f"input {tuple(graph.input_shape)}, {graph.num_classes} outputs, T={timesteps}",
    )


@click.command(name="export-nir")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_dt_option
def export_nir_cmd(model: Path, output: Path, dt: float) -> None:
    """Write a uticompile ONNX model as a NIR graph (BatchNorm folded, LIF in float64)."""
    from uticompile.interop.nir_export import export_nir
    from uticompile.onnx_import import read_graph
    from uticompile.passes.fold_batchnorm import FoldBatchNorm

    export_nir(FoldBatchNorm()(read_graph(model)).module, output, dt=dt)
    click.echo(f"wrote {output}")


COMMANDS = (import_nir_cmd, export_nir_cmd)
