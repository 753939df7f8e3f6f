"""The spatio-temporal variants of ``compare``: shrink the model, then u-Ticket-prune the result.

``spatio-temporal`` is the model ``run_shrink`` keeps (PCA widths, then the smallest T within the
drop); ``spatio-temporal+uticket`` prunes that model with the u-Ticket variant's options. Both
are mapped and run like every other variant, and one table puts every variant side by side:
parameters, nonzeros, T, accuracy, latency (with its floor) and energy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from uticompile.compare.config import SWEEP_VARIANT, CompareConfig
from uticompile.datasets import Dataset
from uticompile.hardware import HardwareConfig
from uticompile.ir import Graph
from uticompile.onnx_import import read_graph
from uticompile.passes.lottery import LotteryEvent, run_lottery
from uticompile.shrink import ShrinkEvent, ShrinkPaths, run_shrink
from uticompile.shrink.cost import model_size
from uticompile.shrink.runner import shrink_identity

SPATIO_TEMPORAL = "spatio-temporal"
SPATIO_TEMPORAL_UTICKET = "spatio-temporal+uticket"


@dataclass(frozen=True)
class SpatioTemporalRuns:
    """Where the two variants' models are, and what their runs reported."""

    shrink_dir: Path
    prune_dir: Path
    shrunk_model: Path
    pruned_model: Path
    shrink_summary: dict[str, Any]
    prune_rounds: list[dict[str, Any]]


def spatio_temporal_dirs(
    graph: Graph, data: Dataset, config: CompareConfig, out: Path, digest: Callable[[Any], str]
) -> tuple[Path, Path]:
    """The shrink run's directory and the u-Ticket run's after it: the one place that decides
    where they live. Both are named by what they depend on, known before anything runs (the
    prune run by the shrink run's identity and its own options, since the shrunk model is a
    function of them), so ``compare --plan`` can name them for a job that runs elsewhere."""
    shrink = shrink_identity(graph, data, config.shrink_config())
    prune = {"shrunk_by": shrink, "prune": asdict(config.prune_config(SWEEP_VARIANT))}
    runs = out / "runs"
    return (
        runs / f"{SPATIO_TEMPORAL}-{digest(shrink)[:12]}",
        runs / f"{SPATIO_TEMPORAL_UTICKET}-{digest(prune)[:12]}",
    )


def run_spatio_temporal(
    graph: Graph,
    data: Dataset,
    config: CompareConfig,
    hw: HardwareConfig,
    out: Path,
    digest: Callable[[Any], str],
    on_shrink: Callable[[ShrinkEvent], None],
    on_prune: Callable[[LotteryEvent], None],
) -> SpatioTemporalRuns:
    """Shrink ``graph`` (resumable run dir keyed by its identity), then u-Ticket-prune it."""
    shrink_dir, prune_dir = spatio_temporal_dirs(graph, data, config, out, digest)
    sc = config.shrink_config()
    shrunk = run_shrink(graph, data, sc, shrink_dir, resume=True, hw=hw, on_event=on_shrink)
    paths = ShrinkPaths(shrink_dir)
    t = shrunk.summary["temporal"]
    shrunk_model = paths.temporal(t["chosen"]).model if t is not None else paths.spatial.model
    pc = config.prune_config(SWEEP_VARIANT)
    pruned = run_lottery(shrunk.graph, data, pc, prune_dir, resume=True, on_event=on_prune)
    return SpatioTemporalRuns(
        shrink_dir,
        prune_dir,
        shrunk_model,
        prune_dir / f"round_{config.rounds:02d}" / "trained.onnx",
        shrunk.summary,
        pruned.reports,
    )


def _row(
    source: Path, accuracy: float, report: dict[str, Any], pes: int, run_dir: str
) -> dict[str, Any]:
    g = read_graph(source)
    n = max(report["samples"], 1)
    return {
        **model_size(g),
        "timesteps": g.timesteps,
        "accuracy": accuracy,
        "accuracy_mapped": report["accuracy"],
        "latency": report["latency"] / n,
        "latency_floor": report["work"] / n / pes,
        "energy_pj": report["energy_pj"]["total"] / n,
        "run_dir": run_dir,
    }


def combined_table(
    config: CompareConfig,
    runs: dict[str, Path],
    rounds: dict[str, list[dict[str, Any]]],
    st: SpatioTemporalRuns,
    reports: dict[tuple[str, int, int], dict[str, Any]],
    out: Path,
) -> dict[str, dict[str, Any]]:
    """Every variant at the primary PE count: size, T, accuracy, latency per sample, energy."""
    R, P = config.rounds, config.primary_pes
    table = {
        v: _row(runs[v] / f"round_{R:02d}" / "trained.onnx", rounds[v][-1]["accuracy"],
                reports[(v, R, P)], P, runs[v].relative_to(out).as_posix())
        for v in config.balance
    }  # fmt: skip
    table[SPATIO_TEMPORAL] = _row(
        st.shrunk_model,
        st.shrink_summary["final"]["accuracy"],
        reports[(SPATIO_TEMPORAL, 0, P)],
        P,
        st.shrink_dir.relative_to(out).as_posix(),
    )
    table[SPATIO_TEMPORAL_UTICKET] = _row(
        st.pruned_model,
        st.prune_rounds[-1]["accuracy"],
        reports[(SPATIO_TEMPORAL_UTICKET, R, P)],
        P,
        st.prune_dir.relative_to(out).as_posix(),
    )
    return table


def combined_markdown(table: dict[str, dict[str, Any]], pes: int) -> list[str]:
    """The combined table's markdown section."""
    lines = [
        "",
        f"## Spatio-temporal pruning with and without u-Ticket ({pes} PEs)",
        "",
        "Parameters: conv and linear weights; latency: cycles per sample (the sum over timesteps "
        "of the busiest PE), beside its floor (work / PEs); energy per sample. The "
        "spatio-temporal model is rebuilt with PCA widths and runs at its own T.",
        "",
        "| variant | parameters | nonzeros | T | accuracy | latency | latency floor | "
        "energy (uJ) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for v, r in table.items():
        lines.append(
            f"| {v} | {r['parameters']} | {r['nonzeros']} | {r['timesteps']} | "
            f"{100 * r['accuracy']:.1f}% | {r['latency']:.0f} | {r['latency_floor']:.0f} | "
            f"{r['energy_pj'] / 1e6:.4f} |"
        )
    return lines
