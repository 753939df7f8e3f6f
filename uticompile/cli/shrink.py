"""CLI command ``shrink``: thin like the rest of the CLI (parse, configure, call, print)."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from uticompile.cli.options import (
    data_dir_option,
    device_option,
    hw_option,
    json_option,
    step_bar,
    warn_redo,
)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", default="digits", show_default=True)
@data_dir_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Stage artifacts and reports [default: OUTPUT_STEM.run beside the output].",
)
@click.option(
    "--variance",
    type=float,
    default=None,
    help="Spatial pass: PCA variance cutoff in (0, 1] [default 0.999, our choice].",
)
@click.option("--timesteps", default=None,
              help="Temporal pass: decreasing T schedule, e.g. 4,3,2,1 [default 4,3,2,1]. "
              "Give only --variance or only --timesteps to run one pass alone.")  # fmt: skip
@click.option("--max-drop", type=float, default=1.0, show_default=True,
              help="Keep the smallest T within this many accuracy points.")  # fmt: skip
@click.option("--epochs", type=int, default=5, show_default=True, help="Epochs per stage.")
@click.option("--samples", type=int, default=256, show_default=True,
              help="Training images for the PCA.")  # fmt: skip
@click.option("--run-samples", type=int, default=100, show_default=True,
              help="Test images run on the accelerator to cost each stage.")  # fmt: skip
@click.option("--pes", type=int, default=16, show_default=True)
@click.option("--placement", type=click.Choice(["contiguous", "sorted", "auto"]),
              default="contiguous", show_default=True,
              help="How stages are mapped to cost them (map --placement).")  # fmt: skip
@hw_option
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@click.option("--resume/--no-resume", default=False, help="Continue an interrupted run.")
@json_option
def shrink(
    model: Path, dataset: str, data_dir: Path | None, output: Path, run_dir: Path | None,
    variance: float | None, timesteps: str | None, hw_path: Path | None, resume: bool,
    as_json: bool, **options: Any,
) -> None:  # fmt: skip
    """Spatio-temporal pruning: PCA channel widths, then fewer timesteps; writes SMALL.onnx."""
    from uticompile.fileio import check_outputs_distinct, check_target
    from uticompile.passes.pca_widths import DEFAULT_VARIANCE
    from uticompile.passes.timestep_schedule import DEFAULT_SCHEDULE, parse_schedule
    from uticompile.shrink import ShrinkConfig, ShrinkEvent
    from uticompile.shrink import shrink as run
    from uticompile.shrink.api import default_run_dir
    from uticompile.shrink.report import text_report

    schedule = None if timesteps is None else parse_schedule(timesteps)
    if variance is None and schedule is None:
        variance, schedule = DEFAULT_VARIANCE, DEFAULT_SCHEDULE
    config = ShrinkConfig(dataset=dataset, variance=variance, timesteps=schedule, **options)
    run_path = run_dir if run_dir is not None else default_run_dir(output)
    check_outputs_distinct({"-o": output, "--run-dir": run_path},
                           {"MODEL": model, "--hw": hw_path})  # fmt: skip
    check_target(output)
    bars = ExitStack()
    state: dict[str, Any] = {}

    def on_event(e: ShrinkEvent) -> None:
        if e.kind == "stage_start":
            bars.close()
            state.clear()
            state["step"] = bars.enter_context(step_bar(f"{e.stage} epoch", not as_json))
        elif e.kind == "pca" and not as_json:
            if "pca" not in state:
                state["pca"] = bars.enter_context(
                    click.progressbar(length=e.total, label="PCA images", file=sys.stderr)
                )
                state["pca_seen"] = 0
            state["pca"].update(e.count - state["pca_seen"])
            state["pca_seen"] = e.count
        elif e.kind == "step":
            state["step"](e.step)
        elif e.kind == "redo":
            warn_redo(f"stage {e.stage}", e.damaged)
        elif e.kind == "stage_end" and e.report is not None:
            bars.close()
            state.clear()
            if not as_json:
                r = e.report
                click.echo(
                    f"{e.stage}: T={r['timesteps']}, {r['parameters']} parameters, accuracy "
                    f"{r['accuracy']:.4f}, latency {r['cost']['latency']:.1f} cycles"
                    + (" (reused)" if e.resumed else ""),
                    err=True,
                )

    with bars:
        result = run(model, output, config, run_dir=run_dir, data_dir=data_dir,
                     hw_path=hw_path, resume=resume, on_event=on_event)  # fmt: skip
    if as_json:
        payload = {"model": str(model), "output": str(output), "run_dir": str(result.run_dir),
                   **result.summary}  # fmt: skip
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(text_report(result.summary))
        click.echo(f"wrote {output}; stages in {result.run_dir}")


COMMANDS = (shrink,)
