"""``run --check``: the quantized reference network in onnxruntime, compared spike by spike.

The caller first redoes the mapping from the source ONNX (``passes.pipeline.recompile``), which
must give this very file; the checker then runs that module's reference model on the same inputs
and requires identical spikes in every LIF layer and identical predictions. The first mismatch is
reported with layer, sample, timestep and position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from uticompile.errors import CheckError
from uticompile.hwir import HwModule
from uticompile.onnx_export import serialize
from uticompile.runtime.engine import Execution
from uticompile.runtime.reference import INPUT, reference_model

__all__ = ["CheckError", "CheckResult", "Checker"]


@dataclass
class CheckResult:
    samples: int = 0
    layers: int = 0
    spikes_compared: int = 0
    predictions_equal: bool = True


class Checker:
    """Runs the quantized reference in onnxruntime and compares batch by batch."""

    def __init__(self, module: HwModule) -> None:
        model, self.lif_layers = reference_model(module)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            serialize(model), options, providers=["CPUExecutionProvider"]
        )
        self.result = CheckResult(layers=len(self.lif_layers))

    def compare(self, x_q: np.ndarray, execution: Execution, names: list[str], first: int) -> None:
        outs = self.session.run(None, {INPUT: x_q.astype(np.float32)})
        for j, i in enumerate(self.lif_layers):
            mine = execution.outputs[i].values
            ref = outs[1 + j].reshape(mine.shape).astype(bool)
            bad = np.argwhere(ref != mine)
            if bad.size:
                t, n, *pos = (int(v) for v in bad[0])
                raise CheckError(
                    f"spike mismatch in layer {i} ({names[i]}) at sample {first + n}, "
                    f"timestep {t}, position {tuple(pos)}: runtime {int(mine[tuple(bad[0])])}, "
                    f"onnxruntime {int(ref[tuple(bad[0])])}"
                )
            self.result.spikes_compared += int(mine.size)
        ref_pred = outs[0].sum(axis=0).argmax(axis=-1)
        diff = np.flatnonzero(ref_pred != execution.predictions)
        if diff.size:
            n = int(diff[0])
            raise CheckError(
                f"prediction mismatch at sample {first + n}: runtime {execution.predictions[n]}, "
                f"onnxruntime {ref_pred[n]}"
            )
        self.result.samples += len(x_q)
