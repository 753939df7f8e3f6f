"""Generate the golden test vectors of docs/mapping-format.md (section 8) into a directory.

    python docs/vectors/generate.py [OUT_DIR]     (default: this file's directory)

Each case is a tiny zoo network with deterministic random sparse weights, mapped by the same
pipeline as ``uticompile map`` (no training, no dataset): ``CASE.utm``, ``CASE.uts`` (the spike
traces of its first LIF layer for 4 random input images) and ``CASE.json``, the figures
``uticompile run CASE.utm --spikes CASE.uts --json --details`` reports plus the logits. Same
code, same bytes: tests/test_vectors.py regenerates them and fails on any drift.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from uticompile.hardware import default_hardware
from uticompile.ir import LIFParams
from uticompile.mapfile import decode_mapping, encode_mapping
from uticompile.models.zoo import ModelSpec, build_model
from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping
from uticompile.runtime.engine import Engine
from uticompile.runtime.traces import input_traces, run_traces
from uticompile.spikes import decode_spikes, spikes_to_bytes

SAMPLES = 4


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    input_shape: tuple[int, int, int]
    width: float
    pes: int
    grouping: str
    placement: str
    covers: str
    saturate: bool = False
    scratchpad_words: int = 0  # 0: the default hardware's
    weight_encoding: str = "wsp"
    average_pools: bool = False  # the max pools as average pools (windowed SUMPOOL, 1.2)
    reset: str = "hard"  # the neurons' reset ("subtract-after-leak" is LIF reset 2, 1.2)


CASES = (
    Case("vgg_sata", "vgg_small", (1, 16, 16), 0.25, 4, "sata", "contiguous",
         "ENCODE, CONV, LIF, MAXPOOL, FLATTEN, FC; sata; clock-gated PEs"),
    Case("vgg_systolic", "vgg_small", (1, 16, 16), 0.25, 4, "systolic", "contiguous",
         "systolic grouping"),
    Case("vgg_spatial", "vgg_small", (1, 40, 40), 0.25, 4, "sata", "contiguous",
         "spatial tiles (20 x 20 = 400 output positions > 256 accumulators)"),
    Case("vgg_placed", "vgg_small", (1, 16, 16), 0.25, 16, "sata", "auto",
         "version-1.1 placements (sorted or split filters) chosen by auto"),
    Case("resnet_sata", "resnet19", (3, 8, 8), 0.0625, 4, "sata", "contiguous",
         "ADD (residual blocks), SUMPOOL (global pooling)"),
    Case("vgg_passes", "vgg_small", (1, 16, 16), 0.25, 4, "sata", "contiguous",
         "several tiles (weight passes) per PE: 8-word scratchpads", scratchpad_words=8),
    Case("vgg_saturate", "vgg_small", (1, 16, 16), 0.25, 4, "sata", "contiguous",
         "saturation (the classifier's biases set to the accumulator bound)", saturate=True),
    Case("vgg_compact", "vgg_small", (1, 16, 16), 0.25, 4, "sata", "contiguous",
         "version-1.2 compact weight encoding (auto: 60 compact and 25 WSP tiles; ENCODE's "
         "values at 8 bits), several tiles per PE", scratchpad_words=12, weight_encoding="auto"),
    Case("vgg_avgpool", "vgg_small", (1, 16, 16), 0.25, 4, "sata", "contiguous",
         "version-1.2 SUMPOOL windows: 2x2 average pools (spike counts), their 1/4 folded into "
         "the CONV/FC that reads them", average_pools=True),
    Case("vgg_after_leak", "vgg_small", (1, 16, 16), 0.25, 4, "sata", "contiguous",
         "version-1.2 LIF reset 2 (subtract after the leak, fires on >), snnTorch's neuron",
         reset="subtract-after-leak"),
)  # fmt: skip


def build_case(case: Case) -> tuple[bytes, bytes, dict]:
    """The .utm bytes, .uts bytes and expected figures of one case."""
    neuron = LIFParams(reset=case.reset)
    spec = ModelSpec(case.input_shape, 10, width=case.width, timesteps=4, neuron=neuron)
    g = build_model(case.model, spec)
    if case.average_pools:
        for node in g.nodes:
            if node.op == "MaxPool":
                node.op = "AveragePool"
                node.attrs = {**node.attrs, "pads": (0, 0, 0, 0)}
    rng = np.random.default_rng(0)
    for node in g.weight_nodes():  # 80% sparse, scaled up so that every layer spikes
        w = g.params[node.inputs[1]]
        keep = rng.random(w.shape) < 0.2
        g.params[node.inputs[1]] = np.where(keep, w * 8, 0).astype(np.float32)
    hw = default_hardware()
    if case.scratchpad_words:
        hw = replace(hw, scratchpad_words=case.scratchpad_words)
    config = MapConfig(
        pes=case.pes,
        grouping=case.grouping,
        placement=case.placement,
        weight_encoding=case.weight_encoding,
    )
    m = to_mapping(compile_graph(g, config, hw.with_pes(case.pes), 2.5))
    if case.saturate:
        last = m.layers[-1]
        first = int(last["bias_index"])
        count = int(last["out_shape"][0])
        m.bias[first : first + count] = 2 ** (int(m.model["acc_bits"]) - 1) - 1
    utm = encode_mapping(m)
    m = decode_mapping(utm)
    x_q = rng.integers(-128, 128, size=(SAMPLES, *case.input_shape), dtype=np.int64)
    labels = rng.integers(0, 10, size=SAMPLES)
    csr = input_traces(m, [(x_q, labels)])
    uts = spikes_to_bytes(csr)
    sim = run_traces(m, csr, hw.with_pes(case.pes))
    execution = Engine(m).run_from(csr.layer, decode_spikes(csr).swapaxes(0, 1))
    expected = {
        "format_version": "{}.{}".format(*m.version),  # the file's version
        "covers": case.covers,
        "trace_layer": csr.layer,
        "run": sim.report.to_json(details=True),
        "predictions": [int(p) for p in sim.predictions],
        "accuracy": sim.accuracy,
        "logits": execution.logits.astype(int).tolist(),  # [T][sample][class]
    }
    return utm, uts, expected


def generate(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for case in CASES:
        utm, uts, expected = build_case(case)
        for suffix, data in ((".utm", utm), (".uts", uts)):
            (out / f"{case.name}{suffix}").write_bytes(data)
        text = json.dumps(expected, indent=1, sort_keys=True) + "\n"
        (out / f"{case.name}.json").write_text(text)
        written += [out / f"{case.name}{s}" for s in (".utm", ".uts", ".json")]
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for path in generate(target):
        sys.stdout.write(f"{path}\n")
