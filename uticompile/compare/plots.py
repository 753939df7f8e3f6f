"""The comparison's figures as PNG (Figs. 6, 7a, 7b and Table III of the paper).

matplotlib is optional: without it ``render_plots`` returns None and the caller writes the tables
with a note. Figures are rendered to memory and written atomically; stale figures of an earlier
invocation that this one does not draw are removed so the directory matches results.json.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from uticompile.fileio import atomic_write_bytes

FIG6 = "fig6_layers.png"
FIG7A = "fig7a_energy.png"
FIG7B = "fig7b_energy_vs_sparsity.png"
TABLE3 = "table3_pes.png"
ALL_PLOTS = (FIG6, FIG7A, FIG7B, TABLE3)


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _fig6(Figure: Any, results: dict[str, Any]) -> Any:
    V = results["variants"]
    names = [c["name"] for c in next(iter(V.values()))["layers"]]
    fig = Figure(figsize=(max(8.0, 0.9 * len(names) * 2), 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    panels = (
        ("work", "(a) work cycles"),
        ("idle", "(b) idle cycles"),
        ("latency", "(c) latency (cycles)"),
        ("utilization", "(d) utilization (Eq. 2, spike-weighted)"),
    )
    width = 0.8 / len(V)
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        for k, (v, d) in enumerate(V.items()):
            xs = [i + (k - (len(V) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, [_nan(c[key]) for c in d["layers"]], width, label=v)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(title)
        if key == "utilization":
            ax.set_ylim(0, 1.05)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"Layer-wise comparison at {results['primary_pes']} PEs (paper Fig. 6 analog)")
    return fig


def _fig7a(Figure: Any, results: dict[str, Any]) -> Any:
    V = results["variants"]
    keys = [k for k in next(iter(V.values()))["energy_pj"] if k != "total"]
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    bottoms = [0.0] * len(V)
    for key in keys:
        vals = [d["energy_pj"][key] / 1e6 for d in V.values()]
        ax.bar(list(V), vals, 0.6, bottom=bottoms, label=key)
        bottoms = [b + x for b, x in zip(bottoms, vals, strict=True)]
    for i, d in enumerate(V.values()):
        red = d["energy_reduction"]
        text = (
            "baseline"
            if red is None or i == list(V).index(results["baseline"])
            else (f"{100 * red:.1f}% less")
        )
        ax.annotate(text, (i, bottoms[i]), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("energy (uJ)")
    ax.set_ylim(0, max(bottoms) * 1.15 if max(bottoms) > 0 else 1)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(
        f"Energy per variant at {results['primary_pes']} PEs, breakdown as Fig. 8 "
        "(paper Fig. 7a analog)",
        fontsize=10,
    )
    return fig


def _fig7b(Figure: Any, results: dict[str, Any]) -> Any:
    sweep = results["sparsity_sweep"]
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    xs = [100 * s["sparsity"] for s in sweep]
    ys = [100 * _nan(s["energy_reduction"]) for s in sweep]
    ax.plot(xs, ys, marker="o")
    for s, x, y in zip(sweep, xs, ys, strict=True):
        ax.annotate(f"r{s['round']}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.set_xlabel("weight sparsity of the u-Ticket round (%)")
    ax.set_ylabel("energy reduction vs LTH (%)")
    ax.set_title(
        "(E_none - E_uticket) / E_none per pruning round (paper Fig. 7b analog)", fontsize=10
    )
    return fig


def _table3(Figure: Any, results: dict[str, Any]) -> Any:
    V = results["variants"]
    pes = results["config"]["pes"]
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax_l, ax_e = fig.subplots(1, 2)
    for v, d in V.items():
        ax_l.plot(pes, [_nan(s["latency_norm"]) for s in d["pes_sweep"]], marker="o", label=v)
        ax_e.plot(pes, [_nan(s["energy_norm"]) for s in d["pes_sweep"]], marker="o", label=v)
    for ax, what in ((ax_l, "latency"), (ax_e, "energy")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(pes, [str(n) for n in pes])
        ax.set_xlabel("PEs")
        ax.set_ylabel(f"{what} / {what} at {pes[0]} PEs")
        ax.set_title(f"normalized {what}")
        ax.legend(fontsize=8)
    ax_l.set_yscale("log", base=2)
    fig.suptitle(
        f"PE sweep (paper Table III analog); pruned for {results['primary_pes']} PEs", fontsize=10
    )
    return fig


def render_plots(results: dict[str, Any], out: Path) -> list[str] | None:
    """Write the figures that apply; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        for name in ALL_PLOTS:
            (out / name).unlink(missing_ok=True)
        return None
    todo = [(FIG6, _fig6), (FIG7A, _fig7a)]
    if results["sparsity_sweep"]:
        todo.append((FIG7B, _fig7b))
    if len(results["config"]["pes"]) >= 2:
        todo.append((TABLE3, _table3))
    written = []
    for name, draw in todo:
        _save(draw(Figure, results), out / name)
        written.append(name)
    for name in ALL_PLOTS:
        if name not in written:
            (out / name).unlink(missing_ok=True)
    return written
