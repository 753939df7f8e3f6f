"""Generate docs/results/spatio-temporal.md from the run directories spatio-temporal.sh fills.

Usage: python docs/results/spatio_temporal.py RUNS_DIR MODEL... -o docs/results/spatio-temporal.md

Every number comes from a file a command wrote (shrink's report.json, prune's report.jsonl, run's
JSON); nothing is typed in. Models missing from RUNS_DIR are reported as not measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from uticompile.fileio import atomic_write_text
from uticompile.onnx_import import read_graph
from uticompile.passes.pca_widths import select_width
from uticompile.shrink.cost import model_size
from uticompile.shrink.report import stage_rows

PAPER_COMPRESSION = (10.0, 14.0)  # spatial pruning, CIFAR-10/100 VGG (paper abstract)
PAPER_LATENCY = (3.0, 30.0)  # lower latency than other SNNs (paper abstract)
OTHER_TAUS = (0.99, 0.95, 0.9)  # widths the same spectrum gives at other cutoffs (not trained)
PES = 16
KEPT_DROP = 1.0  # accuracy points: the "equal accuracy" rule of the kept rounds
VARIANTS = {
    "lth": "LTH (14 rounds)",
    "uticket": "u-Ticket (14 rounds)",
    "st_uticket": "spatio-temporal + u-Ticket (14 rounds)",
}
LABELS = {"vgg_small": "vgg_small", "vgg16_w025": "VGG-16 at width 0.25"}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _cost(path: Path) -> dict[str, float]:
    r = json.loads(path.read_text())
    n = max(r["samples"], 1)
    return {
        "latency": r["latency"] / n,
        "floor": r["work"] / n / PES,
        "energy": r["energy_pj"]["total"] / n / 1e6,
    }


def kept_round(run_dir: Path, max_drop: float) -> int:
    """The last pruning round whose accuracy is within ``max_drop`` points of round 0's: the
    rule that puts every variant at (about) equal accuracy."""
    reports = [json.loads(line) for line in (run_dir / "report.jsonl").read_text().splitlines()]
    ok = [r["round"] for r in reports if r["accuracy"] >= reports[0]["accuracy"] - max_drop / 100]
    return max(ok)


def _variant_row(runs: Path, model: str, variant: str, kept: bool = False) -> list[str] | None:
    run = runs / f"{model}.{variant}.run"
    suffix = "-kept" if kept else ""
    cost = runs / f"{model}.{variant}{suffix}.cost.json"
    if not (cost.exists() and (run / "report.jsonl").exists()):
        return None
    reports = [json.loads(line) for line in (run / "report.jsonl").read_text().splitlines()]
    r = kept_round(run, KEPT_DROP) if kept else len(reports) - 1
    g = read_graph(run / f"round_{r:02d}" / "trained.onnx")
    size = model_size(g)
    last = reports[r]
    c = _cost(cost)
    label = VARIANTS[variant]
    if kept:
        label = f"{label.split(' (')[0]}, round {r} (last within {KEPT_DROP} point)"
    return [
        label,
        str(size["parameters"]),
        str(size["nonzeros"]),
        str(g.timesteps),
        f"{last['accuracy']:.4f}",
        f"{c['latency']:.0f}",
        f"{c['floor']:.0f}",
        f"{c['energy']:.3f}",
    ]


def _cutoff_section(runs: Path, model: str, main: dict[str, Any]) -> list[str]:
    """The spatial pass alone at other cutoffs (``MODEL.spatial-TAU.json``), beside the main one."""
    found = sorted(runs.glob(f"{model}.spatial-*.json"))
    if not found or main["spatial"] is None:
        return []
    rows = []
    for path in [None, *found]:
        s = main if path is None else json.loads(path.read_text())
        sp, o = s["spatial"], s["original"]
        r = sp["report"]
        rows.append(
            [
                str(sp["variance"]),
                ", ".join(str(v) for v in r["widths"].values()),
                str(r["parameters"]),
                f"{o['parameters'] / r['parameters']:.2f}x",
                f"{r['accuracy']:.4f}",
                f"{r['cost']['latency']:.0f}",
                f"{o['cost']['latency'] / r['cost']['latency']:.2f}x",
            ]
        )
    lines = ["", "### The spatial pass at other cutoffs (trained, T unchanged)", ""]
    return lines + _table(
        [
            "cutoff",
            "widths",
            "parameters",
            "compression",
            "accuracy",
            "latency",
            "latency reduction",
        ],
        rows,
    )


def _until_recovered(summary: dict[str, Any]) -> bool:
    """Whether the report's timestep stages trained until accuracy recovered (the current
    ``shrink``) rather than a fixed number of epochs (reports made before that change)."""
    t = summary["temporal"]
    return t is not None and "reference_validation_accuracy" in t


def _recovery_section(runs: Path, model: str, main: dict[str, Any]) -> list[str]:
    """How the timestep stages trained: per stage, the epochs used, why training stopped, and
    the validation accuracy curve. From the main report when it has them, else from
    ``MODEL.recover.json`` (the same shrink command run again after the change)."""
    t = main["temporal"]
    if t is None:
        return []
    epochs = sorted({r["epochs"] for r in t["stages"] if r["epochs"]})
    s = main
    if not _until_recovered(main):
        old = [
            "",
            "The timestep stages above were made before stages trained until accuracy "
            f"recovered: each trained a fixed {', '.join(map(str, epochs))} epochs, and "
            "nothing was held out of the training split.",
        ]
        path = runs / f"{model}.recover.json"
        if not path.exists() or not path.read_text().strip():
            return old
        s = json.loads(path.read_text())
        c = s["config"]
        source = (
            f"`uticompile shrink {model}.onnx --dataset {c['dataset']} --variance "
            f"{c['variance']} --timesteps {','.join(map(str, c['timesteps']))} --max-drop "
            f"{c['max_drop']} --epochs {c['epochs']} --max-stage-epochs {c['max_stage_epochs']} "
            f"--samples {c['samples']} --run-samples {c['run_samples']}` (patience "
            f"{c['patience']}, the default; the spatial stage is retrained too, on the training "
            "split without the held-out slice)"
        )
        lines = [*old, "", "### Timestep stages trained until accuracy recovers", ""]
        lines += [f"Measured with the current `shrink`: {source}.", ""]
        lines += _table(
            ["stage", "T", "parameters", "accuracy", "latency (cycles/sample)",
             "latency reduction"],
            [[r["stage"], str(r["timesteps"]), str(r["parameters"]), f"{r['accuracy']:.4f}",
              f"{r['latency']:.0f}",
              "-" if r["latency_reduction"] is None else f"{r['latency_reduction']:.2f}x"]
             for r in stage_rows(s)],
        )  # fmt: skip
        lines.append("")
    else:
        lines = ["", "### How the timestep stages trained", ""]
    t = s["temporal"]
    lines += [
        f"Each timestep stage trains from the previous stage's weights, epoch by epoch up to "
        f"{s['config']['max_stage_epochs']}, until its accuracy on {t['validation_images']} "
        "training images held out of all training (never the test split) is within "
        f"{t['max_drop']} points of the model entering the pass "
        f"({t['reference_validation_accuracy']:.4f}) or has not improved for "
        f"{s['config']['patience']} epochs; it keeps its best epoch. The kept T is still chosen "
        "on test accuracy, as in every table here.",
        "",
    ]
    rows = []
    for r in t["stages"]:
        curve = r.get("curve") or []
        rows.append(
            [
                r["stage"],
                str(r["epochs"]) + (f" of {r['max_epochs']}" if curve else ""),
                r.get("stopped") or "not trained (the entering T)",
                str(r.get("best_epoch") or "-"),
                " ".join(f"{c['validation_accuracy']:.3f}" for c in curve) or "-",
                f"{r['validation_accuracy']:.4f}",
                f"{r['accuracy']:.4f}",
            ]
        )
    lines += _table(
        ["stage", "epochs", "stopped", "kept epoch", "validation accuracy per epoch",
         "validation (kept)", "test accuracy"],
        rows,
    )  # fmt: skip
    if s is not main:
        lines += [
            "",
            f"Kept T={t['chosen']}: {s['final']['compression']:.2f}x fewer weights, latency "
            f"{s['final']['latency']:.0f} cycles/sample, test accuracy "
            f"{s['final']['accuracy']:.4f}.",
        ]
    return lines


def model_section(runs: Path, model: str) -> tuple[list[str], dict[str, Any] | None]:
    """The markdown of one model and its headline numbers (None when it was not measured)."""
    label = LABELS.get(model, model)
    path = runs / f"{model}.shrunk.json"
    lines = [f"## {label} on digits", ""]
    if not path.exists() or not path.read_text().strip():
        return [*lines, "Not measured (no shrink report in the runs directory).", ""], None
    s = json.loads(path.read_text())
    sp, t, f = s["spatial"], s["temporal"], s["final"]
    lines += [f"Options: `{json.dumps(s['config'], sort_keys=True)}`", ""]
    if sp is not None:
        lines += [
            f"### PCA spectrum and widths (cutoff {sp['variance']}, {sp['samples']} "
            "training images)",
            "",
            "Cumulative explained variance of the mean membrane potential at k components; "
            f"the widths at {', '.join(map(str, OTHER_TAUS))} come from the same spectrum "
            "(not trained).",
            "",
        ]
        rows = []
        for layer in sp["layers"]:
            cum = layer["cumulative"]
            ks = [k for k in (1, 2, 4, 8, 16, 32) if k < len(cum)]
            rows.append(
                [
                    layer["layer"],
                    str(layer["channels"]),
                    f"**{layer['width']}**",
                    *(str(select_width(np.array(cum), tau)) for tau in OTHER_TAUS),
                    " ".join(f"{k}:{cum[k - 1]:.3f}" for k in ks),
                ]
            )
        lines += _table(
            [
                "LIF layer",
                "channels",
                f"width @{sp['variance']}",
                *(f"@{tau}" for tau in OTHER_TAUS),
                "cumulative variance at k",
            ],
            rows,
        )
        widths = sp["report"]["widths"]
        lines += [
            "",
            "Rebuilt output channels (channels joined by an add share one): "
            + ", ".join(f"{k} {v}" for k, v in widths.items()),
            "",
        ]
    lines += ["### Every stage (accuracy: full test split; cost: 100 test images on 16 PEs)", ""]
    rows = []
    for r in stage_rows(s):
        red = "-" if r["latency_reduction"] is None else f"{r['latency_reduction']:.2f}x"
        rows.append(
            [
                r["stage"],
                str(r["timesteps"]),
                str(r["epochs"]) + ("" if r["stopped"] is None else f" ({r['stopped']})"),
                str(r["parameters"]),
                f"{r['compression']:.2f}x",
                f"{r['accuracy']:.4f}",
                f"{r['cycles_per_step']:.0f}",
                f"{r['latency']:.0f}",
                f"{r['latency_floor']:.0f}",
                red,
                f"{r['energy_pj'] / 1e6:.3f}",
            ]
        )
    lines += _table(
        [
            "stage",
            "T",
            "epochs",
            "parameters",
            "compression",
            "accuracy",
            "cycles/step",
            "latency (cycles/sample)",
            "floor (work/PEs)",
            "latency reduction",
            "energy µJ/sample",
        ],
        rows,
    )
    if t is not None:
        lines += [
            "",
            f"Kept T={t['chosen']}: the smallest T within {t['max_drop']} points of the "
            f"accuracy entering the temporal pass ({t['reference_accuracy']:.4f}).",
        ]
    lines += _recovery_section(runs, model, s)
    lines += _cutoff_section(runs, model, s)
    lines += ["", "### With unstructured pruning (14 rounds of 25%, 1 epoch each, 16 PEs)", ""]
    o = s["original"]
    oc = o["cost"]
    rows = [
        [
            "dense (input model)",
            str(o["parameters"]),
            str(o["nonzeros"]),
            str(o["timesteps"]),
            f"{o['accuracy']:.4f}",
            f"{oc['latency']:.0f}",
            f"{oc['latency_floor']:.0f}",
            f"{oc['energy_pj'] / 1e6:.3f}",
        ]
    ]
    kept = next(r for r in stage_rows(s) if r["stage"] == f["stage"])
    rows.append(
        [
            "spatio-temporal",
            str(f["parameters"]),
            str(f["parameters"]),
            str(f["timesteps"]),
            f"{f['accuracy']:.4f}",
            f"{kept['latency']:.0f}",
            f"{kept['latency_floor']:.0f}",
            f"{kept['energy_pj'] / 1e6:.3f}",
        ]
    )
    missing = []
    for kept in (False, True):
        for v in VARIANTS:
            row = _variant_row(runs, model, v, kept)
            if row is None:
                missing.append(VARIANTS[v] + (" (kept round)" if kept else ""))
            else:
                rows.append(row)
    lines += _table(
        [
            "variant",
            "parameters",
            "nonzeros",
            "T",
            "accuracy",
            "latency (cycles/sample)",
            "floor",
            "energy µJ/sample",
        ],
        rows,
    )
    if missing:
        lines += ["", "Not measured: " + ", ".join(missing) + "."]
    lines.append("")
    kind = "temporal alone" if sp is None else f"spatio-temporal at {sp['variance']}"
    return lines, {
        "label": f"{label}, {kind}",
        "compression": f["compression"],
        "latency_reduction": f["latency_reduction"],
        "accuracy": f["accuracy"],
        "original_accuracy": o["accuracy"],
        "timesteps": f["timesteps"],
    }


def render(runs: Path, models: list[str]) -> str:
    lines = [
        "# Spatio-temporal pruning: measured results",
        "",
        "Generated by `docs/results/spatio-temporal.sh RUNS_DIR "
        + " ".join(models)
        + "` (which runs every command, then "
        "`docs/results/spatio_temporal.py`); do not edit by hand.",
        "",
        "The variance cutoff 0.999 is our choice: the paper's own cutoff is not in the text "
        "available here; 0.999 follows the same group's PCA-based design work.",
        "",
    ]
    heads = []
    for m in models:
        section, head = model_section(runs, m)
        lines += section
        if head is not None:
            heads.append(head)
        for path in sorted(runs.glob(f"{m}.spatial-*.json")):
            c = json.loads(path.read_text())
            cf = c["final"]
            heads.append(
                {
                    "label": f"{LABELS.get(m, m)}, spatial alone at {c['spatial']['variance']}",
                    "compression": cf["compression"],
                    "latency_reduction": cf["latency_reduction"],
                    "accuracy": cf["accuracy"],
                    "original_accuracy": c["original"]["accuracy"],
                    "timesteps": cf["timesteps"],
                }
            )
    lines += ["## Beside the paper's claims", ""]
    rows = [
        [
            h["label"],
            f"{h['compression']:.2f}x",
            "-" if h["latency_reduction"] is None else f"{h['latency_reduction']:.2f}x",
            f"T={h['timesteps']}",
            f"{h['original_accuracy']:.4f} -> {h['accuracy']:.4f}",
        ]
        for h in heads
    ]
    rows.append(
        [
            "paper (CIFAR-10/100 VGG)",
            f"{PAPER_COMPRESSION[0]:.0f}-{PAPER_COMPRESSION[1]:.0f}x",
            f"{PAPER_LATENCY[0]:.0f}-{PAPER_LATENCY[1]:.0f}x vs other SNNs",
            "-",
            "-",
        ]
    )
    lines += _table(
        [
            "model",
            "compression (weights)",
            "latency reduction (vs dense T=4)",
            "kept T",
            "accuracy",
        ],
        rows,
    )
    notes = Path(__file__).with_name("spatio-temporal-notes.md")
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    if sys.argv[1:2] == ["--kept-round"]:  # used by spatio-temporal.sh: the kept round's model
        run = Path(sys.argv[2])
        print(run / f"round_{kept_round(run, KEPT_DROP):02d}" / "trained.onnx")
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", type=Path)
    parser.add_argument("models", nargs="+")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    atomic_write_text(args.output, render(args.runs, args.models))


if __name__ == "__main__":
    main()
