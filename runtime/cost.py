"""The cost model: events counted in one place, then cycles, utilization and energy.

Events, per PE-mapped weight layer (``CONV``, ``FC``; the analog ``ENCODE`` runs on the host):
- work: one matched operation per (nonzero weight, input spike) pair, ``per_match`` cycles each.
  A spike count c (after a sum-pool) is c spikes. For a conv, the spikes each weight position
  meets over all output positions (``Execution.hits``) are counted by the engine, which needs
  them anyway to choose its product kernel.
- steps: the PEs of a group synchronize at every timestep of every sample (tick-batched); a step
  lasts as long as its busiest PE; idle = what the other active PEs wait. PEs that hold no filter
  (the tail of a partial group) are clock-gated: neither work nor idle.
- latency: the sum over steps of the busiest PE (groups run one after the other on the array);
  floor: the sum over steps of ceil(the step's work / n), what no placement of the same work on
  the n PEs can beat (both rules in ``uticompile.placement``, which placement optimizes).
- utilization: the paper's Eq. 2 per group with T_max = the group's latency and T_avg = the mean
  busy time of its active PEs; n = 1 gives 1, a group without work is skipped (NaN).
- LIF updates: one per neuron and timestep; scratchpad reads: one per matched operation.

Energy (pJ): power figures (mW) from the hardware config over the clock give per-cycle energies.
Paper Eq. 3, E = N_work (E_d (1 - S_in) + E_l) + N_idle E_l, charges E_l on every cycle a PE is
clocked, working or waiting, and E_d only for the work itself. With the SATA table that is:
E_l = the ungated dynamic power (the clock keeps toggling a waiting PE) plus the leakage of its
MAC, LIF and scratchpad units, and E_d = the gated dynamic power of MAC and scratchpad. Eq. 3
assumes N_work counts every weight slot; here N_work already counts only spiking inputs, so its
N_work (1 - S_in) is our matched-operation count and E = N_work (E_d + E_l) + N_idle E_l, plus
each LIF update's gated dynamic energy. The breakdown follows the paper's Fig. 8: *_dynamic is the
work's own energy, *_static what a clocked PE burns per cycle (ungated dynamic + leakage).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from uticompile.hardware import HardwareConfig
from uticompile.mapfile import KIND_NAMES, PLACEMENT_NAMES, Mapping
from uticompile.mapstats import LayerWeights, pe_active, pe_workloads
from uticompile.metrics import eq2, eq2_latency
from uticompile.placement import group_latency, step_floor
from uticompile.runtime.engine import Execution


def _mean(x: np.ndarray) -> float | None:
    ok = ~np.isnan(x)
    return float(x[ok].mean()) if ok.any() else None


@dataclass
class LayerCost:
    layer: int
    name: str
    kind: str
    params: int
    groups: int
    work: int
    idle: int
    latency: int
    utilization: float | None
    static_utilization: float | None
    input_spike_sparsity: float
    scratchpad_reads: int
    group_utilization: list[float | None] = field(default_factory=list)
    pe_work: list[list[int]] = field(default_factory=list)  # [group][pe] work cycles
    floor: int = 0  # sum over steps of ceil(work / num_pes): no placement beats it
    latency_over_floor: float | None = None
    nonzero: int = 0  # nonzero weights of the layer
    placement: str = "contiguous"


@dataclass
class CostReport:
    samples: int
    layers: list[LayerCost]
    lif_updates: int
    work: int = 0
    idle: int = 0
    latency: int = 0
    floor: int = 0
    latency_over_floor: float | None = None
    utilization_weighted: float | None = None
    utilization_unweighted: float | None = None
    static_utilization_weighted: float | None = None
    static_utilization_unweighted: float | None = None
    input_spike_sparsity: float = 0.0
    energy_pj: dict[str, float] = field(default_factory=dict)
    idle_energy_pj: float = 0.0  # the part of the static energy burnt waiting (in the total)
    saturations: int = 0
    # per layer (all kinds, LAYR order): the sum of its output values over samples and timesteps
    # (spikes for LIF/MAXPOOL, spike counts for SUMPOOL); ``run --details`` emits it
    layer_sums: list[int] = field(default_factory=list)

    def to_json(self, *, details: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not details:
            del out["layer_sums"]
        return out


def _slot_matrix(m: Mapping, i: int, w: LayerWeights) -> sparse.csr_matrix:
    """[positions, slots] 0/1: which nonzero weight positions each PE slot (group*n + pe) holds."""
    rec = m.layers[i]
    t = m.tiles[int(rec["tile_first"]) : int(rec["tile_first"]) + int(rec["tile_count"])]
    n = int(m.model["num_pes"])
    slots = (t["group"].astype(np.int64) * n + t["pe"])[w.tile]
    shape = (w.shape[1], int(rec["groups"]) * n)
    ones = np.ones(len(slots), np.int64)
    return sparse.csr_matrix((ones, (w.position, slots)), shape=shape)


@dataclass
class _LayerEvents:
    busy: np.ndarray  # [G, n] work cycles per PE
    latency: np.ndarray  # [G] sum over steps of the busiest PE
    idle: int = 0
    floor: int = 0
    zeros: int = 0  # zero input activations (x timesteps)
    inputs: int = 0


class EventCounter:
    """Accumulates the events of executions batch by batch; ``report`` turns them into figures."""

    def __init__(self, m: Mapping, hw: HardwareConfig) -> None:
        self.m, self.hw = m, hw
        self.n = int(m.model["num_pes"])
        self.kinds = [KIND_NAMES[int(k)] for k in m.layers["kind"]]
        self.events: dict[int, _LayerEvents] = {}
        self.slots: dict[int, sparse.csr_matrix] = {}
        self.lif_updates = 0
        self.samples = 0
        self.saturations = 0
        self.layer_sums = [0] * len(m.layers)

    def add(self, execution: Execution) -> None:
        outs = execution.outputs
        for i, rec in enumerate(self.m.layers):
            if self.kinds[i] == "LIF":
                self.lif_updates += int(outs[i].values.size)
            if self.kinds[i] not in ("CONV", "FC"):
                continue
            x = outs[int(rec["input0"])].values
            T, N = x.shape[0], x.shape[1]
            hits = execution.hits[i]  # [T, N, positions], counted by the engine
            if i not in self.slots:
                self.slots[i] = _slot_matrix(self.m, i, execution.weights[i])
            groups = int(rec["groups"])
            work = np.asarray(self.slots[i].T @ hits.reshape(T * N, -1).T).T
            work = work.astype(np.int64).reshape(T, N, groups, self.n)
            work *= self.hw.per_match
            active = pe_active(self.m, i)
            work = np.where(active, work, 0)
            step_max = work.max(axis=3)  # [T, N, G]: one step per timestep
            ev = self.events.setdefault(
                i, _LayerEvents(np.zeros((groups, self.n), np.int64), np.zeros(groups, np.int64))
            )
            ev.busy += work.sum(axis=(0, 1))
            ev.latency += group_latency(work)
            ev.floor += step_floor(work, self.n)
            ev.idle += int(np.where(active, step_max[..., None] - work, 0).sum())
            ev.zeros += int(x.size - np.count_nonzero(x))
            ev.inputs += int(x.size)
        self.samples += outs[-1].values.shape[1]
        self.saturations += sum(o.saturated for o in outs)
        for i, o in enumerate(outs):
            self.layer_sums[i] += int(o.values.sum(dtype=np.int64))

    def report(self) -> CostReport:
        layers = []
        for i, ev in sorted(self.events.items()):
            rec = self.m.layers[i]
            active = pe_active(self.m, i)
            mu = eq2_latency(ev.latency, ev.busy, active)
            work = int(ev.busy.sum())
            layers.append(
                LayerCost(
                    layer=i,
                    name=self.m.layer_names[i],
                    kind=self.kinds[i],
                    params=_params(rec),
                    groups=int(rec["groups"]),
                    work=work,
                    idle=ev.idle,
                    latency=int(ev.latency.sum()),
                    utilization=_mean(mu),
                    static_utilization=_static(pe_workloads(self.m, i), active),
                    input_spike_sparsity=ev.zeros / max(ev.inputs, 1),
                    scratchpad_reads=work // self.hw.per_match,
                    group_utilization=[None if np.isnan(v) else float(v) for v in mu],
                    pe_work=ev.busy.tolist(),
                    floor=ev.floor,
                    latency_over_floor=_ratio(int(ev.latency.sum()), ev.floor),
                    nonzero=int(pe_workloads(self.m, i).sum()),
                    placement=PLACEMENT_NAMES[int(rec["placement"])],
                )
            )
        report = CostReport(samples=self.samples, layers=layers, lif_updates=self.lif_updates)
        _totals(report, self.hw)
        report.saturations = self.saturations
        report.layer_sums = list(self.layer_sums)
        return report


def _ratio(latency: int, floor: int) -> float | None:
    return latency / floor if floor else None


def _params(rec: np.void) -> int:
    """Weight positions of a layer: out channels x in channels x kernel."""
    o, c = int(rec["out_shape"][0]), int(rec["in_shape"][0])
    if KIND_NAMES[int(rec["kind"])] == "FC":
        return o * c * int(rec["in_shape"][1]) * int(rec["in_shape"][2])
    return o * c * int(rec["kernel"][0]) * int(rec["kernel"][1])


def count_events(m: Mapping, execution: Execution, hw: HardwareConfig) -> CostReport:
    """Events and figures of a single execution."""
    counter = EventCounter(m, hw)
    counter.add(execution)
    return counter.report()


def _static(workloads: np.ndarray, active: np.ndarray) -> float | None:
    return _mean(eq2(workloads, active))


def _weighted(layers: list[LayerCost], attr: str) -> tuple[float | None, float | None]:
    pairs = [(getattr(c, attr), c.params) for c in layers if getattr(c, attr) is not None]
    if not pairs:
        return None, None
    values = np.array([p[0] for p in pairs])
    weights = np.array([p[1] for p in pairs], np.float64)
    return float((values * weights).sum() / weights.sum()), float(values.mean())


def _totals(r: CostReport, hw: HardwareConfig) -> None:
    r.work = sum(c.work for c in r.layers)
    r.idle = sum(c.idle for c in r.layers)
    r.latency = sum(c.latency for c in r.layers)
    r.floor = sum(c.floor for c in r.layers)
    r.latency_over_floor = _ratio(r.latency, r.floor)
    r.utilization_weighted, r.utilization_unweighted = _weighted(r.layers, "utilization")
    r.static_utilization_weighted, r.static_utilization_unweighted = _weighted(
        r.layers, "static_utilization"
    )
    total_params = sum(c.params for c in r.layers) or 1
    r.input_spike_sparsity = sum(c.input_spike_sparsity * c.params for c in r.layers) / total_params
    pj = 1000.0 / hw.clock_mhz  # pJ per cycle for 1 mW
    cycles = r.work + r.idle
    reads = sum(c.scratchpad_reads for c in r.layers)
    e = {
        "mac_dynamic": r.work * hw.mac_dynamic * pj,
        "mem_dynamic": reads * hw.scratchpad_dynamic * pj,
        "lif_dynamic": r.lif_updates * hw.lif_dynamic * pj,
        "mac_static": cycles * (hw.mac_dynamic_ungated + hw.mac_leakage) * pj,
        "lif_static": cycles * (hw.lif_dynamic_ungated + hw.lif_leakage) * pj,
        "mem_static": cycles * (hw.scratchpad_dynamic_ungated + hw.scratchpad_leakage) * pj,
    }
    e["total"] = sum(e.values())
    r.idle_energy_pj = r.idle * (
        hw.mac_dynamic_ungated + hw.mac_leakage + hw.lif_dynamic_ungated + hw.lif_leakage
        + hw.scratchpad_dynamic_ungated + hw.scratchpad_leakage
    ) * pj  # fmt: skip
    r.energy_pj = e
