"""Fair balancing at 98.2% sparsity: LTH, u-Ticket and cycle-aware balancing, each mapped with
the paper's contiguous placement and with ``auto``, for vgg_small and VGG-16 on digits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sections import Section
from sections.paper import PAPER, pct, table

SAMPLES = 360  # the whole digits test split
NETS: dict[str, dict[str, str]] = {
    # key: (zoo model and width, lottery schedule)
    "vs": {
        "label": "vgg_small (width 1)",
        "train": "--model vgg_small",
        "schedule": "--epochs 3 --dense-epochs 5 --rewind-epoch 0",
        "search": "lottery ticket from the initialization: a dense round of 5 epochs, then every "
        "round rewinds to the untrained weights and trains 3 epochs",
    },
    "v16": {
        "label": "VGG-16 (width 0.125)",
        "train": "--model vgg16 --width 0.125",
        "schedule": "--epochs 10 --dense-epochs 10 --rewind-epoch 2",
        "search": "lottery ticket with late rewinding: a dense round of 10 epochs, then every "
        "round rewinds to dense epoch 2 and trains 8 epochs",
    },
}
VARIANTS = ("none", "uticket", "magnitude", "cycles")
PLACEMENTS = ("contiguous", "auto")
ROWS = (  # (label, variant, placement)
    ("LTH", "none", "contiguous"),
    ("LTH + placement", "none", "auto"),
    ("u-Ticket", "uticket", "contiguous"),
    ("u-Ticket + placement", "uticket", "auto"),
    ("magnitude", "magnitude", "contiguous"),
    ("magnitude + placement", "magnitude", "auto"),
    ("cycles", "cycles", "contiguous"),
    ("cycles + placement", "cycles", "auto"),
)
BALANCE = {
    "none": "--balance none",
    "uticket": "--balance uticket --layer-counts-from {n}_none.run",
    "magnitude": "--balance magnitude --layer-counts-from {n}_none.run",
    "cycles": "--balance cycles --cycle-rates previous --layer-counts-from {n}_none.run",
}


def _prune(n: str, v: str) -> str:
    """One lottery run; one torch thread each (two run side by side on two cores), which also
    fixes the summation order that training's numbers depend on."""
    net = NETS[n]
    return (
        f"OMP_NUM_THREADS=1 uticompile prune {n}_init.onnx --dataset digits --rounds 14 "
        f"--rate 0.25 {net['schedule']} {BALANCE[v].format(n=n)} --pes 16 --seed 0 -o {n}_{v}.onnx "
        f"--run-dir {n}_{v}.run --resume --json > {n}_{v}.json"
    )


def _parallel(*jobs: str) -> str:
    """Jobs side by side; one ``wait -n`` per job fails if any fails."""
    return " & ".join(jobs) + " & " + " && ".join("wait -n" for _ in jobs)


COMMANDS = (
    *(
        f"uticompile train {net['train']} --dataset digits --epochs 0 --seed 0 -o {n}_init.onnx"
        for n, net in NETS.items()
    ),
    _parallel(_prune("vs", "none"), _prune("v16", "none")),
    _parallel(*(_prune("vs", v) for v in VARIANTS[1:])),
    _parallel(*(_prune("v16", v) for v in VARIANTS[1:])),
    f"for n in vs v16; do for v in {' '.join(VARIANTS)}; do for p in contiguous auto; do "
    "uticompile map $n_$v.onnx --pes 16 --dataset digits --placement $p -o $n_$v.$p.utm && "
    f"uticompile run $n_$v.$p.utm --dataset digits --samples {SAMPLES} --json > $n_$v.$p.json"
    "; done; done; done".replace("$n_$v", "${n}_${v}"),
)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _uj(pj: float) -> str:
    return f"{pj / 1e6:.2f}"


def _change(new: float, old: float) -> str:
    return f"{100 * (new / old - 1):+.1f}%" if old else "-"


def _verdict(runs: dict[tuple[str, str], dict[str, Any]], acc: dict[str, float]) -> list[str]:
    """Each balanced variant against LTH, and against LTH + placement (no weight changed)."""
    out = []
    for v, name in (("uticket", "u-Ticket"), ("magnitude", "magnitude"), ("cycles", "cycles")):
        for p, base_p, what in (
            ("contiguous", "contiguous", "LTH, both with the paper's placement"),
            ("auto", "auto", "LTH + placement, both placed by `auto`"),
        ):
            r, b = runs[(v, p)], runs[("none", base_p)]
            e, e0 = r["energy_pj"]["total"], b["energy_pj"]["total"]
            wins = r["latency"] < b["latency"] and e < e0
            drop = 100 * (acc["none"] - acc[v])
            caveat = (
                f" at equal sparsity, but {drop:.1f} points less accurate: not a like-for-like win"
                if wins and drop > 1.0
                else ""
            )
            out.append(
                f"- {name} against {what}: latency {_change(r['latency'], b['latency'])}, energy "
                f"{_change(e, e0)}, work {_change(r['work'], b['work'])}, accuracy "
                f"{100 * (acc[v] - acc['none']):+.1f} points: "
                + ("**beats it in latency and energy**" if wins else "**does not beat it**")
                + caveat
                + "."
            )
    return out


def _net_table(workdir: Path, n: str) -> list[str]:
    runs = {(v, p): _load(workdir / f"{n}_{v}.{p}.json") for v in VARIANTS for p in PLACEMENTS}
    prunes = {v: _load(workdir / f"{n}_{v}.json") for v in VARIANTS}
    base = runs[("none", "contiguous")]
    acc = {v: prunes[v]["rounds"][-1]["accuracy"] for v in VARIANTS}
    rows = []
    for label, v, p in ROWS:
        r, final = runs[(v, p)], prunes[v]["rounds"][-1]
        e, e0 = r["energy_pj"]["total"], base["energy_pj"]["total"]
        rows.append(
            [label, pct(final["sparsity"]), pct(final["accuracy"]), pct(r["accuracy"]),
             f"{r['work']:,}", f"{r['latency']:,}", f"{r['floor']:,}",
             f"{r['latency_over_floor']:.2f}", f"{r['utilization_weighted']:.3f}",
             f"{r['static_utilization_weighted']:.3f}", _uj(e),
             *((["-", "-"]) if (v, p) == ("none", "contiguous")
               else [_change(r["latency"], base["latency"]), _change(e, e0)])]
        )  # fmt: skip
    out = table(
        ["variant", "weight sparsity", "accuracy (float, test)", f"accuracy (mapped, {SAMPLES})",
         "work (cycles)", "latency (cycles)", "floor", "latency / floor", "util. (cycles)",
         "util. (static)", "energy (µJ)", "latency vs LTH", "energy vs LTH"],
        rows,
    )  # fmt: skip
    counts = {v: prunes[v]["rounds"][-1]["layer_counts"] for v in VARIANTS}
    same = all(
        {k: c["balanced"] for k, c in counts[v].items()}
        == {k: c["balanced"] for k, c in counts["none"].items()}
        for v in VARIANTS
    )
    layers = [x["name"] for x in base["layers"] if x["name"] in counts["none"]]
    layers = [k for k in counts["none"] if k not in layers] + layers  # unmapped (ENCODE) first
    best = max(ROWS, key=lambda row: runs[(row[1], row[2])]["utilization_weighted"])
    u = runs[(best[1], best[2])]["utilization_weighted"]
    out += ["", *_verdict(runs, acc)]
    out += [
        f"- Cycle utilization: best {u:.3f} ({best[0]}); the goal of 0.95 is "
        + ("met." if u >= 0.95 else "not met (why, measured: docs/balance-98.md).")
    ]
    out += [
        "",
        "Per-layer nonzero counts after round 14 "
        + ("(identical for the three variants: iso-sparse per layer): " if same else ": ")
        + ", ".join(f"{k} {counts['none'][k]['balanced']}" for k in layers)
        + ".",
        "",
        "Per layer, latency / latency over floor / cycle utilization:",
        "",
    ]
    head = ["variant", *(r["name"] for r in base["layers"])]
    rows = []
    for label, v, p in ROWS:
        rows.append(
            [label] + [
                f"{x['latency']:,} / {x['latency_over_floor']:.2f} / "
                + ("-" if x["utilization"] is None else f"{x['utilization']:.2f}")
                for x in runs[(v, p)]["layers"]
            ]
        )  # fmt: skip
    return out + table(head, rows)


def _body(workdir: Path) -> str:
    t2 = PAPER["table2"]
    out = [
        "Every variant is a lottery ticket of the same seed, at 14 rounds of 25% global magnitude "
        "pruning (98.2% weight sparsity), balanced for 16 PEs. The baseline (LTH, `--balance "
        "none`) prunes by global magnitude; the balanced variants prune every layer "
        "to the baseline's count in each round (`--layer-counts-from`) and balancing keeps every "
        "group's count (iso-sparse), so all variants hold exactly the same number of weights in "
        "every layer. `uticket` moves randomly chosen positions (Algorithm 1), `magnitude` "
        "regrows the largest pruned and removes the smallest kept weights, and `cycles` "
        "balances expected cycles per PE, with firing rates measured on the "
        "previous round's trained model under the new mask (`--cycle-rates previous`). Each "
        "model is mapped with the paper's contiguous placement and with `--placement auto` (the "
        "same weights, placed by calibrated cost; spikes and predictions are identical), and run "
        f"on the whole test split ({SAMPLES} images). Floor = work / 16 PEs per step, summed; "
        "latency / floor = 1 is perfect balance. Energy is Eq. 3 with the SATA table "
        "(`uticompile/hw_default.toml`).",
        "",
        "The wall time above is that of the run behind these tables, which overlapped the jobs "
        "more than the command list does (the VGG-16 baseline ran beside the vgg_small "
        "variants; each VGG-16 variant took its round 0 as a byte copy of the baseline's, which "
        "is what it computes: round 0 does not depend on the balancing; the `magnitude` runs were "
        "added after the others had finished, and the figure adds their time). Training wall "
        "time per "
        "run, from the reports: "
        + ", ".join(
            f"{n} {v} {_load(workdir / f'{n}_{v}.json')['search_seconds']['total'] / 60:.0f} min"
            for n in NETS
            for v in VARIANTS
        )
        + ".",
        "",
    ]
    for n, net in NETS.items():
        out += [f"### {net['label']}: {net['search']}", ""]
        out += _net_table(workdir, n)
        out.append("")
    out += [
        f"Paper (VGG-16, CIFAR-10, 16 PEs, Table II): utilization {t2['lth_util']:.2f} -> "
        f"{t2['ut_util']:.2f}, latency {pct(t2['latency_change'])}, energy "
        f"-{pct(PAPER['energy_reduction_vgg16'])}. The paper's utilization counts weights per "
        "PE (our static utilization); its latency unit is one PE handling one input spike, as "
        "our cycles are. Its LTH and u-Ticket are not at equal sparsity (98.2% against 98.4%) "
        "and its balancing regrows to ceil(mean) per group; here the variants are equal in "
        "every layer.",
    ]
    return "\n".join(out)


SECTION = Section(
    name="balance-98",
    title="Fair balancing at 98.2% sparsity: LTH, u-Ticket, cycles, and placement",
    commands=COMMANDS,
    render=_body,
    cost="1-2 h",
)
