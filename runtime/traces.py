"""Spike traces entering the PE array: recording them (``encode-input``) and running from them.

The first LIF after the analog encoder produces the binary spikes the PE array consumes; a
simulator author can take those traces as the accelerator's input instead of images. Running
from a trace checks its header against the mapping and the memory budget before the CSR is
densified, so that a small file cannot ask for a huge array.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from uticompile.errors import UticompileError
from uticompile.hardware import HardwareConfig
from uticompile.mapfile import KIND_NAMES, Mapping
from uticompile.runtime.cost import EventCounter
from uticompile.runtime.engine import Engine
from uticompile.runtime.simulate import Simulation
from uticompile.spikes import SpikeCSR, decode_spikes, encode_spikes


def first_lif(m: Mapping) -> int:
    """Index of the LIF that reads the analog encoder: its spikes enter the PE array."""
    for i, k in enumerate(m.layers["kind"]):
        if KIND_NAMES[int(k)] == "LIF":
            return i
    raise UticompileError("the mapping has no LIF layer")


def input_traces(m: Mapping, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> SpikeCSR:
    """Run quantized input batches ``(x_q, labels)`` up to the first LIF and keep its spikes."""
    layer = first_lif(m)
    engine = Engine(m)
    spikes, labels = [], []
    for x_q, y in batches:
        spikes.append(engine.run(x_q, stop=layer).outputs[layer].values.swapaxes(0, 1))
        labels.append(y)
    return encode_spikes(np.concatenate(spikes), layer=layer, labels=np.concatenate(labels))


def run_traces(
    m: Mapping, csr: SpikeCSR, hw: HardwareConfig, *, what: str = "traces"
) -> Simulation:
    """Run the mapping from recorded spike traces and count every event from there on."""
    if csr.layer < 0 or csr.timesteps != int(m.model["timesteps"]):
        raise UticompileError(f"{what}: spike traces do not belong to this mapping")
    engine = Engine(m)
    engine.check_trace(csr.layer, csr.samples, tuple(csr.shape))  # before densifying
    execution = engine.run_from(csr.layer, decode_spikes(csr).swapaxes(0, 1))
    counter = EventCounter(m, hw)
    counter.add(execution)
    return Simulation(counter.report(), execution.predictions, csr.labels)
