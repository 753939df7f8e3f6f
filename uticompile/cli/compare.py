"""CLI command ``compare``: thin like the rest of the CLI (parse, configure, call, print)."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from uticompile.cli.options import json_safe, search_options, step_bar
from uticompile.errors import ConfigError


def _csv(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"--{what} needs at least one value")
    return items


def _ints(value: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _csv(value, what))
    except ValueError:
        raise ConfigError(f"--{what} takes comma-separated integers, got {value!r}") from None


def _text(summary: dict[str, Any], note: str) -> str:
    def u(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = [
        f"Table II analog ({summary['primary_pes']} PEs)",
        f"{'variant':<16}{'work':>14}{'idle':>14}{'latency':>12}{'floor':>12}{'lat/floor':>10}"
        f"{'util':>7}{'static':>8}{'energy uJ':>11}{'reduction':>10}",
    ]
    for v, d in summary["variants"].items():
        t = d["table2"]
        red = d["energy_reduction"]
        lines.append(
            f"{v:<16}{t['work']:>14}{t['idle']:>14}{t['latency']:>12}{t['floor']:>12}"
            f"{u(t['latency_over_floor']):>10}{u(t['utilization']):>7}"
            f"{u(t['static_utilization']):>8}{d['energy_pj'] / 1e6:>11.4f}"
            f"{'-' if red is None else f'{100 * red:.1f}%':>10}"
            + ("  (nonzero counts differ from the baseline's)" if d["counts_differ"] else "")
        )
    lines.append(
        "energy reduction vs " + summary["baseline"] + ": "
        + ", ".join(
            f"{v} {100 * d['energy_reduction']:.1f}%"
            for v, d in summary["variants"].items()
            if v != summary["baseline"] and d["energy_reduction"] is not None
        )
    )  # fmt: skip
    lines.append(f"search: {summary['method']}")
    lines.append(note)
    lines.append(f"wrote {', '.join(summary['files'])} in {summary['results_dir']}")
    return "\n".join(lines)


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", default="digits", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pes", default="16", show_default=True,
              help="PE counts, comma-separated; pruning balances for the first.")  # fmt: skip
@click.option("--balance", default="none,uticket", show_default=True,
              help="Variants: none (baseline), uticket, magnitude, cycles.")  # fmt: skip
@click.option("--rounds", type=int, default=14, show_default=True, help="Pruning rounds.")
@click.option("--rate", type=float, default=0.25, show_default=True, help="Share pruned/round.")
@click.option("--epochs", type=int, default=5, show_default=True, help="Epochs per round.")
@click.option(
    "--dense-epochs",
    type=int,
    default=None,
    help="Epochs of the dense round 0 [default: --epochs]; 0 takes MODEL as trained.",
)
@click.option(
    "--rewind-epoch",
    type=int,
    default=0,
    show_default=True,
    help="Rewind to epoch K of the dense round (0: to MODEL; an untrained MODEL gives a "
    "lottery ticket, a trained one fine-tuning).",
)
@search_options
@click.option(
    "--grouping", type=click.Choice(["sata", "systolic"]), default="sata", show_default=True
)
@click.option(
    "--cycle-rates", type=click.Choice(["rewind", "previous"]), default="rewind",
    show_default=True, help="cycles: firing rates from the rewind point or the previous round.",
)  # fmt: skip
@click.option(
    "--match-layer-counts", is_flag=True,
    help="Prune every variant to the baseline's per-layer counts in each round (iso-sparse per "
    "layer, not only in total); runs the baseline first.",
)  # fmt: skip
@click.option("--bits", type=int, default=16, show_default=True, help="Weight bits when mapping.")
@click.option("--placement", default="contiguous,auto", show_default=True,
              help="Placements every variant is mapped with (contiguous = the paper's; others "
              "add rows such as none+auto: the same weights, another map).")  # fmt: skip
@click.option("--samples", type=int, default=100, show_default=True, help="Test samples run.")
@click.option("--train-limit", type=int, default=None, help="Use only the first N train images.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--hw", "hw_path", type=click.Path(dir_okay=False, path_type=Path), help="Hardware TOML."
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(file_okay=False, path_type=Path), default="compare_results",
    show_default=True, help="Results directory (finished work in it is reused).",
)  # fmt: skip
@click.option(
    "--spatio-temporal",
    is_flag=True,
    help="Add spatio-temporal pruning alone and followed by u-Ticket as variants.",
)
@click.option(
    "--variance",
    type=float,
    default=0.999,
    show_default=True,
    help="Spatio-temporal: PCA variance cutoff (our default).",
)
@click.option(
    "--timesteps",
    default="4,3,2,1",
    show_default=True,
    help="Spatio-temporal: decreasing T schedule.",
)
@click.option(
    "--max-drop",
    type=float,
    default=1.0,
    show_default=True,
    help="Spatio-temporal: accuracy points the kept T may lose.",
)
@click.option(
    "--pca-samples",
    type=int,
    default=256,
    show_default=True,
    help="Spatio-temporal: training images for the PCA.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--plan", "plan", is_flag=False, flag_value="-", default=None, metavar="[SCRIPT]",
    help="Print the independent pruning jobs (or write them to SCRIPT) instead of running; "
    "the same command without --plan later collects their run directories.",
)  # fmt: skip
@click.option("--nproc-per-node", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --plan: torchrun each job on this many processes.")  # fmt: skip
def compare(
    model: Path, dataset: str, data_dir: Path | None, pes: str, balance: str, placement: str,
    hw_path: Path | None, output: Path, as_json: bool, plan: str | None, nproc_per_node: int,
    timesteps: str, **options: Any,
) -> None:  # fmt: skip
    """Prune MODEL with every balance variant, map and run each, write the paper's tables."""
    from uticompile.compare import CompareConfig, CompareEvent, run_compare
    from uticompile.compare.tables import PLOTS_SKIPPED
    from uticompile.passes.timestep_schedule import parse_schedule

    config = CompareConfig(
        dataset=dataset,
        data_dir=None if data_dir is None else str(data_dir),
        pes=_ints(pes, "pes"),
        balance=tuple(_csv(balance, "balance")),
        placement=tuple(_csv(placement, "placement")),
        hw_path=None if hw_path is None else str(hw_path),
        timesteps=parse_schedule(timesteps),
        **options,
    )
    if plan is not None:
        _plan(model, config, output, plan, nproc_per_node)
        return
    from uticompile.fileio import check_writable_dir

    check_writable_dir(output)
    bars = ExitStack()
    state: dict[str, Any] = {}

    def on_event(e: CompareEvent) -> None:
        lot = e.lottery
        if e.kind == "prune" and lot is not None:
            if lot.kind == "round_start":
                bars.close()
                label = f"{e.variant} round {lot.round}/{lot.rounds} epoch"
                state["step"] = bars.enter_context(step_bar(label, True))
            elif lot.kind == "step":
                state["step"](lot.step)
            elif lot.kind == "round_end" and lot.report is not None:
                bars.close()
                r = lot.report
                click.echo(
                    f"{e.variant} round {lot.round}: sparsity {r['sparsity']:.4f}, accuracy "
                    f"{r['accuracy']:.4f}" + (" (reused)" if lot.resumed else ""),
                    err=True,
                )
        elif e.kind == "shrink" and e.shrink is not None:
            sh = e.shrink
            if sh.kind == "stage_start":
                bars.close()
                state["step"] = bars.enter_context(step_bar(f"{e.variant} {sh.stage} epoch", True))
            elif sh.kind == "step":
                state["step"](sh.step)
            elif sh.kind == "stage_end" and sh.report is not None:
                bars.close()
                click.echo(
                    f"{e.variant} {sh.stage}: T={sh.report['timesteps']}, accuracy "
                    f"{sh.report['accuracy']:.4f}" + (" (reused)" if sh.resumed else ""),
                    err=True,
                )
        elif e.kind == "jobs":
            bars.close()
            state["bar"] = bars.enter_context(
                click.progressbar(length=e.total, label="map + run", file=sys.stderr)
            )
        elif e.kind == "run" and "bar" in state:
            state["bar"].update(1)

    with bars:
        result = run_compare(model, config, output, on_event=on_event)
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(json_safe(summary), indent=2, sort_keys=True, allow_nan=False))
    else:
        note = PLOTS_SKIPPED if result.plots_skipped else result.results["note"]
        click.echo(_text(summary, note))


def _plan(model: Path, config: Any, output: Path, plan: str, nproc_per_node: int) -> None:
    from uticompile.compare.plan import plan_compare, plan_script
    from uticompile.fileio import atomic_write_text

    lines = plan_compare(model, config, output, nproc_per_node=nproc_per_node)
    if plan == "-":
        click.echo("\n".join(lines))
    else:
        atomic_write_text(Path(plan), plan_script(lines))
        click.echo(f"wrote {plan}: {len(lines)} jobs", err=True)
    click.echo(
        "then run this compare command again without --plan to collect the finished runs", err=True
    )


COMMANDS = (compare,)
