"""The papers' figures that sections print beside the measured numbers (one place for them).

From /work/shared/notes/reference-facts.md (u-Ticket paper, DAC'23, and the LTH-SNN paper).
"""

from __future__ import annotations

from typing import Any

PAPER: dict[str, Any] = {
    # Table I, VGG-16 on CIFAR-10
    "table1": {
        "lth_accuracy": 0.910,
        "lth_sparsity": 0.982,
        "uticket_accuracy": 0.907,
        "uticket_sparsity": 0.984,
    },
    # Table II, VGG-16 on CIFAR-10, 16 PEs: latency 0.11e8 -> 0.06e8
    "table2": {"lth_util": 0.59, "ut_util": 1.00, "latency_change": 0.06 / 0.11 - 1.0},
    "energy_reduction_vgg16": 0.418,  # CIFAR-10 (35.4% FMNIST, 37.2% SVHN)
    # Table III, u-Ticket VGG-16: latency normalized to 2 PEs
    "table3_latency": {2: 1.0, 4: 0.49, 8: 0.25, 16: 0.12, 32: 0.06, 64: 0.03},
    # LTH-SNN paper: the ET ticket saves up to 38% of the search time
    "et_saving": 0.38,
}


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]
