"""CLI commands of the hardware side: ``map``, ``inspect``, ``encode-input`` and ``run``.

Thin like the rest of the CLI: parse, build a config, call the library, print or write.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from uticompile.cli.options import data_dir_option, emit, grouping_option, hw_option, json_option
from uticompile.errors import UticompileError
from uticompile.limits import MAX_PES, WEIGHT_BITS


@click.command(name="map")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--pes", type=click.IntRange(min=1, max=MAX_PES), default=16, show_default=True)
@grouping_option
@click.option(
    "--bits", type=click.IntRange(*WEIGHT_BITS), default=16, show_default=True, help="Weight bits."
)
@hw_option
@click.option(
    "--placement",
    type=click.Choice(["auto", "sorted", "contiguous"]),
    default="auto",
    show_default=True,
    help="Which PE holds which filter: contiguous = the paper's grouping; sorted = whole filters "
    "by descending cost; auto = per layer the cheapest of contiguous, sorted and channel splits "
    "on calibration spikes (never slower than contiguous on them). Weights never change.",
)
@click.option(
    "--calibration",
    type=click.IntRange(min=0),
    default=64,
    show_default=True,
    help="Training images whose spikes weigh placement costs; 0 = count nonzero weights.",
)
@click.option(
    "--weight-encoding",
    type=click.Choice(["wsp", "compact", "auto"]),
    default="wsp",
    show_default=True,
    help="How tiles store weights: wsp = bitmask + 16-bit values (the paper's format, file "
    "version 1.1); compact = Golomb-Rice coded zero runs + weight-bits values (version 1.2, "
    "docs/mapping-format.md 2.5); auto = per tile the smaller. Results and cycles never change.",
)
@click.option("--dataset", default="digits", show_default=True, help="Input range; calibration.")
@data_dir_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@json_option
def map_cmd(
    model: Path, pes: int, grouping: str, bits: int, hw_path: Path | None, placement: str,
    calibration: int, weight_encoding: str, dataset: str, data_dir: Path | None, output: Path,
    as_json: bool,
) -> None:  # fmt: skip
    """Compile a (pruned) ONNX SNN into a mapped binary for PES processing elements."""
    from uticompile.fileio import check_outputs_distinct
    from uticompile.hardware import load_hardware
    from uticompile.mapfile import write_mapping
    from uticompile.mapstats import layer_summary, size_totals
    from uticompile.onnx_import import from_onnx, load_onnx
    from uticompile.passes.pipeline import MapConfig
    from uticompile.workflow.recipes import map_for_dataset

    check_outputs_distinct({"-o": output}, {"MODEL": model, "--hw": hw_path})
    config = MapConfig(
        pes=pes, grouping=grouping, bits=bits, placement=placement, calibration=calibration,
        weight_encoding=weight_encoding,
    )  # fmt: skip
    hw = load_hardware(hw_path).with_pes(pes)
    source = model.read_bytes() if model.is_file() else b""
    graph = from_onnx(load_onnx(model))
    module, mapping = map_for_dataset(graph, config, hw, dataset, data_dir=data_dir, source=source)
    write_mapping(mapping, output)
    rows = layer_summary(mapping)
    totals = size_totals(rows)
    report = {layer.name: layer.report for layer in module.layers if layer.report}
    payload = {"output": str(output), "layers": rows, "sizes": totals, "quantization": report}
    lines = [
        f"wrote {output}: {len(mapping.layers)} layers, {len(mapping.tiles)} tiles, "
        f"{pes} PEs ({grouping}, placement {placement}), {bits}-bit weights"
    ]
    lines += [f"{'layer':<10}{'q.err':>10}{'psum bound':>12}{'overflow?':>10}"]
    for name, r in report.items():
        lines.append(
            f"{name:<10}{r['max_abs_error']:>10.2e}{r['psum_bound']:>12}"
            f"{'yes' if r['may_overflow'] else 'no':>10}"
        )
    lines.append(_sizes_text(totals))
    emit(as_json, payload, "\n".join(lines))


def _sizes_text(t: dict[str, int]) -> str:
    return (
        f"weights: {t['nonzero']} nonzero of {t['positions']}; bytes: stored {t['bytes']}, "
        f"WSP {t['bytes_wsp']}, compact {t['bytes_compact']}, dense {t['bytes_dense']}, "
        f"CSR {t['bytes_csr']}, entropy bound {t['bytes_entropy_bound']} (values at weight "
        f"bits: {t['bytes_bound_weight_bits']})"
    )


@click.command()
@click.argument("mapped", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def inspect(mapped: Path, as_json: bool) -> None:
    """Header, layers, per-PE workloads, utilization and sizes of MAPPED (checksums verified)."""
    from uticompile.mapfile import read_mapping
    from uticompile.mapstats import header, layer_list, layer_summary, size_totals

    m = read_mapping(mapped)
    head = header(m)
    rows = layer_summary(m)
    layers = layer_list(m)
    totals = size_totals(rows)
    payload = {"header": head, "layers": layers, "weight_layers": rows, "sizes": totals,
               "checksums": "ok", "meta": m.meta}  # fmt: skip
    lines = [f"{mapped}: uticompile mapping, checksums ok",
             ", ".join(f"{k} {v}" for k, v in head.items()),
             f"{'layer':<10}{'groups':>7}{'tiles':>7}{'nonzero':>9}{'min/PE':>8}{'max/PE':>8}"
             f"{'static util':>12}  {'placement':<11}{'encoding':<9}{'bytes':>9}"]  # fmt: skip
    for r in rows:
        util = "-" if r["static_utilization"] is None else f"{r['static_utilization']:.3f}"
        lines.append(
            f"{r['name']:<10}{r['groups']:>7}{r['tiles']:>7}{r['nonzero']:>9}"
            f"{r['workload_min']:>8}{r['workload_max']:>8}{util:>12}  {r['placement']:<11}"
            f"{r['encoding']:<9}{r['bytes']:>9}"
        )
    lines.append(_sizes_text(totals))
    emit(as_json, payload, "\n".join(lines))


@click.command(name="encode-input")
@click.argument("mapped", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", default="digits", show_default=True)
@data_dir_option
@click.option("--samples", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@json_option
def encode_input(
    mapped: Path, dataset: str, data_dir: Path | None, samples: int, output: Path, as_json: bool
) -> None:
    """Write the spike traces entering the PE array (after the analog layer) as CSR."""
    from uticompile.fileio import check_outputs_distinct
    from uticompile.mapfile import read_mapping
    from uticompile.runtime.budget import check_run_budget
    from uticompile.runtime.inputs import quantized_test_batches
    from uticompile.runtime.traces import first_lif, input_traces
    from uticompile.spikes import write_spikes
    from uticompile.workflow.recipes import dataset_for_mapping

    check_outputs_distinct({"-o": output}, {"MAPPED": mapped})
    m = read_mapping(mapped)
    check_run_budget(m, min(samples, 256), 0, first_lif(m))  # before the images are loaded
    data = dataset_for_mapping(m, dataset, data_dir)
    csr = input_traces(m, quantized_test_batches(m, data, samples, 256))
    layer = csr.layer
    write_spikes(csr, output)
    payload = {"output": str(output), "samples": csr.samples, "layer": layer,
               "shape": list(csr.shape), "timesteps": csr.timesteps, "nnz": csr.nnz}  # fmt: skip
    emit(
        as_json,
        payload,
        f"wrote {output}: {csr.samples} samples of layer {layer} "
        f"({m.layer_names[layer]}), {csr.nnz} nonzero activations",
    )


@click.command(name="run")
@click.argument("mapped", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", default="digits", show_default=True)
@data_dir_option
@click.option("--samples", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--spikes", "spike_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Input spike traces from encode-input instead of dataset images.")  # fmt: skip
@hw_option
@click.option(
    "--check",
    "source",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The ONNX the mapping was made from: compare every spike with onnxruntime.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--details",
    is_flag=True,
    help="With --json: per-layer output sums (layer_sums: spikes of LIF/MAXPOOL layers) and "
    "per-sample predictions, for comparing another simulator beyond the totals.",
)
@json_option
def run(
    mapped: Path, dataset: str, data_dir: Path | None, samples: int, spike_file: Path | None,
    hw_path: Path | None, source: Path | None, batch_size: int, details: bool, as_json: bool,
) -> None:  # fmt: skip
    """Execute MAPPED on the modeled accelerator and report cycles, utilization and energy."""
    from uticompile.hardware import load_hardware
    from uticompile.mapfile import read_mapping
    from uticompile.onnx_import import from_onnx, load_onnx
    from uticompile.workflow.recipes import dataset_for_mapping, run_on_dataset

    mapped_bytes = mapped.read_bytes() if mapped.is_file() else b""
    m = read_mapping(mapped)
    hw = load_hardware(hw_path).with_pes(int(m.model["num_pes"]))
    if spike_file is not None:
        if source is not None:
            raise UticompileError("--check needs dataset images, not --spikes")
        from uticompile.runtime.traces import run_traces
        from uticompile.spikes import read_spikes

        sim = run_traces(m, read_spikes(spike_file), hw, what=str(spike_file))
    else:
        check = None
        if source is not None:
            src_bytes = source.read_bytes() if source.is_file() else b""
            check = (mapped_bytes, from_onnx(load_onnx(source)), src_bytes)
        with ExitStack() as stack:
            bars: list[Any] = []

            def on_start(total: int) -> None:
                bar = click.progressbar(length=total, label="samples", file=sys.stderr)
                bars.append(stack.enter_context(bar))

            sim = run_on_dataset(
                m, lambda: dataset_for_mapping(m, dataset, data_dir), hw, samples=samples,
                batch_size=batch_size, check=check, on_start=on_start,
                on_batch=lambda n: bars[0].update(n),
            )  # fmt: skip
    r = sim.report
    payload = r.to_json(details=details)
    payload["accuracy"] = sim.accuracy
    if details:
        payload["predictions"] = [int(p) for p in sim.predictions]
    if sim.check is not None:
        payload["check"] = vars(sim.check)
    emit(as_json, payload, _run_text(r, sim.accuracy, sim.check))


def _run_text(r: Any, accuracy: float | None, check: Any) -> str:
    head = f"{r.samples} samples" + (f", accuracy {accuracy:.4f}" if accuracy is not None else "")
    lines = [
        head,
        f"{'layer':<10}{'nonzero':>9}{'work':>14}{'idle':>14}{'latency':>12}{'floor':>12}"
        f"{'lat/floor':>10}{'util':>7}{'static':>8}{'in sparsity':>12}  placement",
    ]

    def u(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for c in r.layers:
        lines.append(
            f"{c.name:<10}{c.nonzero:>9}{c.work:>14}{c.idle:>14}{c.latency:>12}{c.floor:>12}"
            f"{u(c.latency_over_floor):>10}{u(c.utilization):>7}"
            f"{u(c.static_utilization):>8}{c.input_spike_sparsity:>12.3f}  {c.placement}"
        )
    lines.append(
        f"{'total':<10}{sum(c.nonzero for c in r.layers):>9}{r.work:>14}{r.idle:>14}"
        f"{r.latency:>12}{r.floor:>12}{u(r.latency_over_floor):>10}"
        f"{u(r.utilization_weighted):>7}{u(r.static_utilization_weighted):>8}"
        f"{r.input_spike_sparsity:>12.3f}"
    )
    lines.append(
        "floor: sum over steps of ceil(the step's work / PEs); no placement of this work beats it"
    )
    lines.append(
        f"utilization (Eq. 2): weighted {u(r.utilization_weighted)}, unweighted "
        f"{u(r.utilization_unweighted)}; static weighted "
        f"{u(r.static_utilization_weighted)}, unweighted {u(r.static_utilization_unweighted)}"
    )
    e = r.energy_pj
    lines.append("energy (uJ): " + ", ".join(f"{k} {v / 1e6:.4f}" for k, v in e.items()))
    if r.saturations:
        lines.append(f"warning: {r.saturations} saturated accumulator or membrane values")
    if check is not None:
        lines.append(
            f"check: {check.spikes_compared} spikes in {check.layers} LIF layers and "
            f"{check.samples} predictions identical to onnxruntime"
        )
    return "\n".join(lines)


COMMANDS = (map_cmd, inspect, encode_input, run)
