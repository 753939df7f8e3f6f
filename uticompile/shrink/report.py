"""The shrink summary as text: the CLI prints it, the results docs are generated from it."""

from __future__ import annotations

from typing import Any


def _spectrum_cells(cumulative: list[float]) -> str:
    """Cumulative explained variance at 1, 2, 4, 8, ... components and at the full width."""
    ks = sorted({*(k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256) if k < len(cumulative)),
                 len(cumulative)})  # fmt: skip
    return " ".join(f"{k}:{cumulative[k - 1]:.4f}" for k in ks)


def stage_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage: what it is, its epochs, size, T, accuracy and mapped cost."""
    reports = [summary["original"]]
    if summary["spatial"] is not None:
        reports.append(summary["spatial"]["report"])
    if summary["temporal"] is not None:
        reports += summary["temporal"]["stages"]
    base = summary["original"]
    rows = []
    for r in reports:
        c = r["cost"]
        rows.append(
            {
                "stage": r["stage"],
                "timesteps": r["timesteps"],
                "epochs": r["epochs"],
                "stopped": r.get("stopped"),  # a temporal stage that trained until recovery
                "parameters": r["parameters"],
                "compression": base["parameters"] / r["parameters"],
                "accuracy": r["accuracy"],
                "cycles_per_step": c["cycles_per_step"],
                "latency": c["latency"],
                "latency_floor": c["latency_floor"],
                "latency_reduction": base["cost"]["latency"] / c["latency"]
                if c["latency"]
                else None,
                "energy_pj": c["energy_pj"],
            }
        )
    return rows


def text_report(summary: dict[str, Any]) -> str:
    """Spectrum and widths per layer, then every stage's accuracy, size and latency."""
    lines: list[str] = []
    sp = summary["spatial"]
    if sp is not None:
        lines.append(
            f"PCA of the mean membrane potential on {sp['samples']} training images, "
            f"variance cutoff {sp['variance']}"
        )
        lines.append(f"{'layer':<10}{'channels':>9}{'width':>7}  cumulative explained variance")
        for layer in sp["layers"]:
            lines.append(
                f"{layer['layer']:<10}{layer['channels']:>9}{layer['width']:>7}  "
                f"{_spectrum_cells(layer['cumulative'])}"
            )
        widths = sp["report"]["widths"]
        lines.append("rebuilt widths (joined channels share one): "
                     + ", ".join(f"{k} {v}" for k, v in widths.items()))  # fmt: skip
    pes = summary["original"]["cost"]["pes"]
    lines.append(
        f"{'stage':<10}{'T':>3}{'epochs':>7}{'params':>10}{'compr.':>8}{'accuracy':>10}"
        f"{'cyc/step':>11}{'latency':>12}{'floor':>11}{'speedup':>9}{'energy uJ':>11}"
        "  stopped"
    )
    for r in stage_rows(summary):
        red = "-" if r["latency_reduction"] is None else f"{r['latency_reduction']:.2f}x"
        energy = "-" if r["energy_pj"] is None else f"{r['energy_pj'] / 1e6:.4f}"
        lines.append(
            f"{r['stage']:<10}{r['timesteps']:>3}{r['epochs']:>7}{r['parameters']:>10}"
            f"{r['compression']:>7.2f}x{r['accuracy']:>10.4f}{r['cycles_per_step']:>11.1f}"
            f"{r['latency']:>12.1f}{r['latency_floor']:>11.1f}{red:>9}{energy:>11}"
            f"  {r['stopped'] or '-'}"
        )
    lines.append(f"latency: cycles per sample on {pes} PEs (floor: work / PEs)")
    t = summary["temporal"]
    if t is not None:
        if "reference_validation_accuracy" in t:
            lines.append(
                f"timestep stages train until their accuracy on {t['validation_images']} held-out "
                f"training images is within {t['max_drop']} points of "
                f"{t['reference_validation_accuracy']:.4f} (or stops improving)"
            )
        lines.append(
            f"kept T={t['chosen']}: the smallest within {t['max_drop']} points of "
            f"{t['reference_accuracy']:.4f}"
        )
    f = summary["final"]
    lines.append(
        f"final: {f['stage']}, T={f['timesteps']}, {f['parameters']} parameters "
        f"({f['compression']:.2f}x smaller), accuracy {f['accuracy']:.4f}, latency "
        f"{f['latency']:.1f} cycles"
        + ("" if f["latency_reduction"] is None else f" ({f['latency_reduction']:.2f}x lower)")
    )
    return "\n".join(lines)
