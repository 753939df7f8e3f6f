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
    grouping_option,
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
              help="Accuracy points a timestep stage may lose: it stops training once within "
              "them, and the smallest T within them is kept.")  # fmt: skip
@click.option("--epochs", type=int, default=5, show_default=True,
              help="Epochs of the rebuilt (spatial) network.")  # fmt: skip
@click.option("--max-stage-epochs", type=int, default=10, show_default=True,
              help="Most epochs of a timestep stage; it stops earlier once its validation "
              "accuracy has recovered (--max-drop) or stopped improving (--patience).")  # fmt: skip
@click.option(
    "--patience",
    type=int,
    default=2,
    show_default=True,
    help="Epochs without a better validation accuracy before a timestep stage stops.",
)
@click.option("--validation-fraction", type=float, default=0.1, show_default=True,
              help="Share of the training split held out from training to decide when a "
              "timestep stage stops (never the test split).")  # fmt: skip
@click.option("--samples", type=int, default=256, show_default=True,
              help="Training images for the PCA.")  # fmt: skip
@click.option("--run-samples", type=int, default=100, show_default=True,
              help="Test images run on the accelerator to cost each stage.")  # fmt: skip
@click.option("--train-limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N train images.")  # fmt: skip
@click.option("--pes", type=int, default=16, show_default=True)
@grouping_option
@click.option("--bits", type=int, default=16, show_default=True, help="Weight bits when mapping.")
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
    as_json: bool, train_limit: int | None, **options: Any,
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

    def counted_bar(key: str, label: str, e: ShrinkEvent) -> None:
        """A bar fed with running counts (PCA images, test images run)."""
        if as_json:
            return
        if key not in state:
            state[key] = bars.enter_context(
                click.progressbar(length=e.total, label=label, file=sys.stderr)
            )
            state[key + "_seen"] = 0
        state[key].update(e.count - state[key + "_seen"])
        state[key + "_seen"] = e.count

    def on_event(e: ShrinkEvent) -> None:
        if e.kind == "stage_start":
            bars.close()
            state.clear()
            state["step"] = bars.enter_context(step_bar(f"{e.stage} epoch", not as_json))
        elif e.kind == "pca":
            counted_bar("pca", "PCA images", e)
        elif e.kind == "step":
            state["step"](e.step)
        elif e.kind == "redo":
            warn_redo(f"stage {e.stage}", e.damaged)
        elif e.kind == "epoch_end":
            bars.close()  # ends the epoch's bar before the line below
            if not as_json:
                assert e.validation is not None and e.reference is not None
                click.echo(
                    f"{e.stage} epoch {e.count}/{e.total}: validation accuracy "
                    f"{e.validation:.4f} (reference {e.reference:.4f})",
                    err=True,
                )
            state["step"] = bars.enter_context(step_bar(f"{e.stage} epoch", not as_json))
        elif e.kind == "cost":
            if "cost" not in state:
                bars.close()  # the training bars end before the costing bar starts
                state.pop("step", None)
            counted_bar("cost", f"{e.stage}: map + run test images", e)
        elif e.kind == "stage_end" and e.report is not None:
            bars.close()
            state.clear()
            if not as_json:
                r = e.report
                trained = (
                    f", {r['epochs']} epochs ({r['stopped']}, kept epoch {r['best_epoch']})"
                    if r.get("stopped")
                    else ""
                )
                click.echo(
                    f"{e.stage}: T={r['timesteps']}, {r['parameters']} parameters, accuracy "
                    f"{r['accuracy']:.4f}, latency {r['cost']['latency']:.1f} cycles{trained}"
                    + (" (reused)" if e.resumed else ""),
                    err=True,
                )

    with bars:
        result = run(model, output, config, run_dir=run_dir, data_dir=data_dir, hw_path=hw_path,
                     resume=resume, train_limit=train_limit, on_event=on_event)  # fmt: skip
    if as_json:
        payload = {"model": str(model), "output": str(output), "run_dir": str(result.run_dir),
                   **result.summary}  # fmt: skip
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(text_report(result.summary))
        click.echo(f"wrote {output}; stages in {result.run_dir}")


COMMANDS = (shrink,)
