"""The numbers of a comparison as one JSON-able dict, and the markdown tables made from it.

Everything here is a pure function of its inputs (no times, no absolute paths), so the same runs
give byte-identical ``results.json`` and ``results.md``.
"""

from __future__ import annotations

from typing import Any

from uticompile.compare.config import BASELINE, SWEEP_VARIANT, CompareConfig, sweep_applies

PLOTS_SKIPPED = "Plots skipped: matplotlib is not installed (pip install 'uticompile[plot]')."
_ROUND_KEYS = ("round", "sparsity", "accuracy", "spike_sparsity", "utilization_network")
_LAYER_KEYS = (
    "name",
    "kind",
    "params",
    "groups",
    "work",
    "idle",
    "latency",
    "utilization",
    "static_utilization",
    "input_spike_sparsity",
    "nonzero",
    "floor",
    "latency_over_floor",
    "placement",
)


def _reduction(base: float, value: float) -> float | None:
    """(E_base - E) / E_base, the paper's energy reduction against the LTH baseline."""
    return (base - value) / base if base else None


def _table2(rep: dict[str, Any], pes: int) -> dict[str, Any]:
    return {
        "pes": pes,
        "work": rep["work"],
        "idle": rep["idle"],
        "latency": rep["latency"],
        "floor": rep["floor"],
        "latency_over_floor": rep["latency_over_floor"],
        "utilization": rep["utilization_weighted"],
        "utilization_unweighted": rep["utilization_unweighted"],
        "static_utilization": rep["static_utilization_weighted"],
        "static_utilization_unweighted": rep["static_utilization_unweighted"],
    }


def build_results(
    config: CompareConfig,
    *,
    model: dict[str, Any],
    runs: dict[str, str],
    rounds: dict[str, list[dict[str, Any]]],
    reports: dict[tuple[str, int, int], dict[str, Any]],
    search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every number of the comparison; ``reports[(variant, round, pes)]`` are run reports.

    ``search``: the lottery runner's ``method`` (lottery ticket or fine-tuning) and the ET
    criterion's ``search_timesteps`` choice, the same for every variant.
    """
    search = search or {}
    R, P = config.rounds, config.primary_pes
    base_energy = reports[(BASELINE, R, P)]["energy_pj"]["total"]
    variants: dict[str, Any] = {}
    base_counts = [c["nonzero"] for c in reports[(BASELINE, R, P)]["layers"]]
    for v, balance, placement in config.rows():
        final = rounds[balance][-1]
        rep = reports[(v, R, P)]
        counts = [c["nonzero"] for c in rep["layers"]]
        first = reports[(v, R, config.pes[0])]
        sweep = []
        for n in config.pes:
            r = reports[(v, R, n)]
            sweep.append(
                {
                    "pes": n,
                    "latency": r["latency"],
                    "energy_pj": r["energy_pj"]["total"],
                    "latency_norm": r["latency"] / first["latency"] if first["latency"] else None,
                    "energy_norm": r["energy_pj"]["total"] / first["energy_pj"]["total"]
                    if first["energy_pj"]["total"]
                    else None,
                    "work": r["work"],
                    "idle": r["idle"],
                    "static_utilization": r["static_utilization_weighted"],
                    "utilization": r["utilization_weighted"],
                }
            )
        variants[v] = {
            "balance": balance,
            "placement": placement,
            "run_dir": runs[balance],
            "rounds": [{k: x[k] for k in _ROUND_KEYS} for x in rounds[balance]],
            "nonzero": counts,
            "counts_differ": counts != base_counts,
            "table1": {
                "accuracy": final["accuracy"],
                "accuracy_mapped": rep["accuracy"],
                "weight_sparsity": final["sparsity"],
                "spike_sparsity": final["spike_sparsity"],
                "input_spike_sparsity_mapped": rep["input_spike_sparsity"],
            },
            "table2": _table2(rep, P),
            "energy_pj": rep["energy_pj"],
            "idle_energy_pj": rep["idle_energy_pj"],
            "energy_reduction": _reduction(base_energy, rep["energy_pj"]["total"]),
            "layers": [{k: c[k] for k in _LAYER_KEYS} for c in rep["layers"]],
            "pes_sweep": sweep,
        }
    sparsity_sweep = None
    if sweep_applies(config):
        sparsity_sweep = []
        for k in range(R + 1):
            e_none = reports[(BASELINE, k, P)]["energy_pj"]["total"]
            e_bal = reports[(SWEEP_VARIANT, k, P)]["energy_pj"]["total"]
            sparsity_sweep.append(
                {
                    "round": k,
                    "sparsity": rounds[SWEEP_VARIANT][k]["sparsity"],
                    "sparsity_baseline": rounds[BASELINE][k]["sparsity"],
                    "energy_pj_baseline": e_none,
                    "energy_pj": e_bal,
                    "energy_reduction": _reduction(e_none, e_bal),
                }
            )
    return {
        "model": model,
        "config": config.to_json(),
        "baseline": BASELINE,
        "primary_pes": P,
        "samples": reports[(BASELINE, R, P)]["samples"],
        "note": (
            f"Pruning balanced the workloads for {P} PEs (the first --pes); the same pruned "
            "models were mapped and run at every PE count of the sweep."
        ),
        "method": search.get("method", {}).get("text", ""),
        "method_kind": search.get("method", {}).get("kind", ""),
        "search_timesteps": search.get("search_timesteps"),
        "variants": variants,
        "sparsity_sweep": sparsity_sweep,
    }


# --- markdown ---------------------------------------------------------------------------------


def _search_t(choice: dict[str, Any] | None) -> str:
    if not choice:
        return ""
    kl = ", ".join(f"t={t}: {v:.3f}" for t, v in choice["normalized_kl"].items())
    return (
        f" ET ticket: search rounds ran at T={choice['timesteps']} of {choice['full_timesteps']} "
        f"(normalized KL after dense epoch {choice['after_epoch']}: {kl}; threshold "
        f"{choice['threshold']})."
    )


def _f(v: Any, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(results: dict[str, Any], plots: list[str] | None) -> str:
    """The tables with short captions naming the paper's counterpart of each."""
    cfg, V = results["config"], results["variants"]
    P = results["primary_pes"]
    lines = [
        f"# u-Ticket comparison: {results['model']['file']} on {cfg['dataset']}",
        "",
        f"Variants: {', '.join(V)} (baseline `{results['baseline']}` = the lottery ticket; "
        "`+auto`/`+sorted`: the same pruned weights mapped with that placement); "
        f"{cfg['rounds']} pruning rounds of {cfg['rate']:.0%}, {cfg['epochs']} epochs each, "
        f"seed {cfg['seed']}; hardware runs on {results['samples']} test samples. "
        + results["note"],
        "",
        f"Search: {results.get('method') or 'not recorded'}."
        + _search_t(results.get("search_timesteps")),
        "",
        "## Table I analog: accuracy and sparsity",
        "",
        "Paper Table I. Accuracy and spike sparsity of the trained model on the whole test split "
        "(float); 'mapped' columns come from the quantized model on the modeled accelerator.",
        "",
    ]
    lines += _table(
        ["variant", "accuracy", "accuracy (mapped)", "weight sparsity", "spike sparsity",
         "input spike sparsity (mapped)"],
        [[v, _pct(d["table1"]["accuracy"]), _pct(d["table1"]["accuracy_mapped"]),
          _pct(d["table1"]["weight_sparsity"]), _pct(d["table1"]["spike_sparsity"]),
          _pct(d["table1"]["input_spike_sparsity_mapped"])] for v, d in V.items()],
    )  # fmt: skip
    lines += [
        "",
        f"## Table II analog: work, idle, latency, utilization ({P} PEs)",
        "",
        "Paper Table II. Cycles summed over every PE and layer for all samples; latency = sum "
        "of the busiest PE per step; utilization is Eq. 2, weighted by layer parameters: "
        "'spike' from the cycles actually spent on spikes, 'static' from nonzero weights only "
        "(the paper's and the public code's measure). Floor = sum over steps of ceil(the step's "
        "work / PEs), what no placement of the same work beats; latency / floor = 1 is perfect.",
        "",
    ]
    lines += _table(
        ["variant", "work", "idle", "latency", "floor", "latency / floor", "utilization (spike)",
         "utilization (static)"],
        [[v, str(t["work"]), str(t["idle"]), str(t["latency"]), str(t["floor"]),
          _f(t["latency_over_floor"], ".3f"), _f(t["utilization"]), _f(t["static_utilization"])]
         for v, t in ((v, d["table2"]) for v, d in V.items())],
    )  # fmt: skip
    lines += [
        "",
        "## Fair comparison: nonzero weights per layer",
        "",
        "Equal sparsity is the condition of a fair comparison: a variant whose per-layer "
        f"nonzero counts differ from the baseline `{results['baseline']}`'s is flagged.",
        "",
    ]
    names = [c["name"] for c in next(iter(V.values()))["layers"]]
    lines += _table(
        ["variant", *names, "total", "same counts as baseline"],
        [[v, *(str(x) for x in d["nonzero"]), str(sum(d["nonzero"])),
          "**no: not iso-sparse**" if d["counts_differ"] else "yes"] for v, d in V.items()],
    )  # fmt: skip
    lines += [
        "",
        "## Energy and its reduction against the baseline (Fig. 7a analog)",
        "",
        "Paper Fig. 7a and Fig. 8. Energy in uJ from the cost model (paper Eq. 3 with the SATA "
        "power figures); reduction = (E_none - E) / E_none; the columns are Fig. 8's breakdown.",
        "",
    ]
    keys = [k for k in next(iter(V.values()))["energy_pj"] if k != "total"]
    lines += _table(
        ["variant", "energy (uJ)", "reduction", "idle energy (uJ)", *keys],
        [[v, _f(d["energy_pj"]["total"] / 1e6), _pct(d["energy_reduction"]),
          _f(d["idle_energy_pj"] / 1e6), *(_f(d["energy_pj"][k] / 1e6) for k in keys)]
         for v, d in V.items()],
    )  # fmt: skip
    if len(cfg["pes"]) >= 2:
        pes = cfg["pes"]
        lines += [
            "",
            "## Table III analog: latency and energy against the PE count",
            "",
            f"Paper Table III. Latency and energy normalized to {pes[0]} PEs, for each variant. "
            + results["note"],
            "",
        ]
        rows = []
        for v, d in V.items():
            rows.append([v, "latency", *(_f(s["latency_norm"], ".3f") for s in d["pes_sweep"])])
            rows.append([v, "energy", *(_f(s["energy_norm"], ".3f") for s in d["pes_sweep"])])
        lines += _table(["variant", "normalized", *(str(n) for n in pes)], rows)
    if results["sparsity_sweep"]:
        lines += [
            "",
            f"## Energy reduction against weight sparsity (Fig. 7b analog, {P} PEs)",
            "",
            f"Paper Fig. 7b. Every round's trained model of `{BASELINE}` and `{SWEEP_VARIANT}`, "
            "mapped and run; reduction = (E_none - E_uticket) / E_none.",
            "",
        ]
        lines += _table(
            ["round", "sparsity (uticket)", "sparsity (none)", "energy none (uJ)",
             "energy uticket (uJ)", "reduction"],
            [[str(s["round"]), _pct(s["sparsity"]), _pct(s["sparsity_baseline"]),
              _f(s["energy_pj_baseline"] / 1e6), _f(s["energy_pj"] / 1e6),
              _pct(s["energy_reduction"])] for s in results["sparsity_sweep"]],
        )  # fmt: skip
    lines += [
        "",
        f"## Layer-wise work, idle, latency, utilization (Fig. 6 analog, {P} PEs)",
        "",
        "Paper Fig. 6. One row per PE-mapped layer and variant.",
        "",
    ]
    lines += _table(
        ["layer", "variant", "nonzero", "work", "idle", "latency", "floor", "latency / floor",
         "utilization (spike)", "utilization (static)", "input spike sparsity", "placement"],
        [[c["name"], v, str(c["nonzero"]), str(c["work"]), str(c["idle"]), str(c["latency"]),
          str(c["floor"]), _f(c["latency_over_floor"], ".3f"), _f(c["utilization"]),
          _f(c["static_utilization"]), _f(c["input_spike_sparsity"]), c["placement"]]
         for i in range(len(next(iter(V.values()))["layers"]))
         for v, d in V.items() for c in (d["layers"][i],)],
    )  # fmt: skip
    if results.get("combined"):
        from uticompile.compare.spatio_temporal import combined_markdown

        lines += combined_markdown(results["combined"], P)
    lines += ["", "## Figures", ""]
    if plots is None:
        lines.append(PLOTS_SKIPPED)
    else:
        lines += [f"![{name}]({name})" for name in plots]
    return "\n".join(lines) + "\n"
