"""Bit-accurate execution of a mapped binary, layer by layer and tick-batched.

Every layer runs for all T timesteps before the next one starts (like the hardware). Values are
integers throughout (docs/mapping-format.md, section 2.2): convolutions and linear layers are
computed as float64 tensor products, which are exact for these integers (every sum stays far below
2^53), then saturated to the ``acc_bits`` accumulator range; LIF membranes are int64 with the
fixed-point leak ``(u * m) >> k`` and saturation. Weights come from the WSP tiles, decoded once.
Layer outputs are kept so that the cost model can count events and ``--check`` can compare spikes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from uticompile.errors import UticompileError
from uticompile.mapfile import KIND_NAMES, Mapping
from uticompile.mapstats import dense_weights


@dataclass
class LayerOutput:
    """One layer's result for a batch: ``values`` is [T, N, C, H, W] (ENCODE: [N, C, H, W])."""

    values: np.ndarray
    saturated: int = 0


@dataclass
class Execution:
    """What a run of the mapping produced for a batch of samples."""

    outputs: list[LayerOutput]
    logits: np.ndarray  # int64 [T, N, classes], at the last layer's scale
    weights: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        """argmax over classes of the logits summed over timesteps (lowest index on ties)."""
        return self.logits.sum(axis=0).argmax(axis=-1)


def quantize_input(x: np.ndarray, frac_bits: int, bits: int) -> np.ndarray:
    """Normalized float images -> the mapping's ``bits``-bit fixed-point input (int64)."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.rint(np.asarray(x, np.float64) * 2.0**frac_bits), lo, hi).astype(np.int64)


def _saturate(x: np.ndarray, acc_bits: int) -> tuple[np.ndarray, int]:
    hi = 2 ** (acc_bits - 1) - 1
    lo = -hi - 1
    bad = int(np.count_nonzero((x > hi) | (x < lo)))
    return (np.clip(x, lo, hi) if bad else x), bad


def _exact(t: torch.Tensor) -> np.ndarray:
    return t.numpy().round().astype(np.int64)


class Engine:
    """Executes one mapping; construct once (weights are decoded here), run many batches."""

    def __init__(self, mapping: Mapping) -> None:
        self.m = mapping
        self.timesteps = int(mapping.model["timesteps"])
        self.acc_bits = int(mapping.model["acc_bits"])
        self.kinds = [KIND_NAMES[int(k)] for k in mapping.layers["kind"]]
        self.weights: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.bias: dict[int, np.ndarray] = {}
        for i, rec in enumerate(mapping.layers):
            if self.kinds[i] in ("ENCODE", "CONV", "FC"):
                values, mask = dense_weights(mapping, i)
                self.weights[i] = (values.astype(np.int64), mask)
                first = int(rec["bias_index"])
                count = int(rec["out_shape"][0])
                if int(rec["flags"]) & 1:
                    self.bias[i] = mapping.bias[first : first + count].astype(np.int64)
                else:
                    self.bias[i] = np.zeros(count, np.int64)

    def _conv(self, i: int, x: np.ndarray) -> np.ndarray:
        rec = self.m.layers[i]
        values = self.weights[i][0]
        c, kh, kw = int(rec["in_shape"][0]), int(rec["kernel"][0]), int(rec["kernel"][1])
        w = torch.from_numpy(values.reshape(len(values), c, kh, kw).astype(np.float64))
        pt, pl, pb, pr = (int(p) for p in rec["pads"])
        xt = F.pad(torch.from_numpy(x.astype(np.float64)), (pl, pr, pt, pb))
        stride = (int(rec["stride"][0]), int(rec["stride"][1]))
        out = _exact(F.conv2d(xt, w, stride=stride))
        return out + self.bias[i][None, :, None, None]

    def run(self, x_q: np.ndarray, *, stop: int | None = None) -> Execution:
        """Execute on quantized input images ``x_q`` (int [N, C, H, W]), up to layer ``stop``."""
        expected = tuple(int(v) for v in self.m.model["input_shape"])
        if x_q.ndim != 4 or tuple(x_q.shape[1:]) != expected:
            raise UticompileError(
                f"input of shape {tuple(x_q.shape[1:])} does not match the mapping's {expected}"
            )
        return self._run(x_q, [], x_q.shape[0], stop)

    def run_from(self, layer: int, spikes: np.ndarray) -> Execution:
        """Execute from the spikes [T, N, ...] of ``layer`` on (e.g. an encode-input file)."""
        rec = self.m.layers
        if not 0 <= layer < len(rec) or self.kinds[layer] != "LIF":
            raise UticompileError(f"spike traces must come from a LIF layer, not layer {layer}")
        want = (self.timesteps, spikes.shape[1], *(int(v) for v in rec[layer]["out_shape"]))
        if spikes.shape != want:
            raise UticompileError(f"spike traces of shape {spikes.shape} do not fit layer {layer}")
        later = rec[layer + 1 :]
        reads = np.concatenate([later["input0"], later["input1"][later["input1"] >= 0]])
        if np.any(reads < layer):
            raise UticompileError(f"layers after {layer} read earlier layers: cannot start there")
        outs = [LayerOutput(np.zeros(0, bool)) for _ in range(layer)] + [LayerOutput(spikes)]
        return self._run(None, outs, spikes.shape[1], None)

    def _run(
        self, x_q: np.ndarray | None, outs: list[LayerOutput], n: int, stop: int | None
    ) -> Execution:
        m, T = self.m, self.timesteps
        last = len(m.layers) - 1 if stop is None else stop
        for i in range(len(outs), last + 1):
            rec = m.layers[i]
            kind = self.kinds[i]
            src = outs[int(rec["input0"])].values if kind != "ENCODE" else x_q
            assert src is not None
            sat = 0
            if kind == "ENCODE":
                y, sat = _saturate(self._conv(i, src) >> int(rec["shift0"]), self.acc_bits)
            elif kind == "CONV":
                flat = src.reshape(T * n, *src.shape[2:])
                y = self._conv(i, flat)
                y, sat = _saturate(y.reshape(T, n, *y.shape[1:]), self.acc_bits)
            elif kind == "FC":
                flat = src.reshape(T * n, -1).astype(np.float64)
                y = (flat @ self.weights[i][0].T.astype(np.float64)).round().astype(np.int64)
                y, sat = _saturate(y.reshape(T, n, -1) + self.bias[i], self.acc_bits)
            elif kind == "LIF":
                y, sat = self._lif(rec, src, n)
            elif kind == "MAXPOOL":
                k = (int(rec["kernel"][0]), int(rec["kernel"][1]))
                s = (int(rec["stride"][0]), int(rec["stride"][1]))
                t = torch.from_numpy(src.reshape(T * n, *src.shape[2:]).astype(np.float32))
                y = F.max_pool2d(t, k, s).numpy().astype(bool)
                y = y.reshape(T, n, *y.shape[1:])
            elif kind == "SUMPOOL":
                y = src.astype(np.int64).sum(axis=(3, 4), keepdims=True)
            elif kind == "ADD":
                a = src.astype(np.int64) << int(rec["shift0"])
                b = outs[int(rec["input1"])].values.astype(np.int64) << int(rec["shift1"])
                y, sat = _saturate(a + b, self.acc_bits)
            elif kind == "FLATTEN":
                y = src.reshape(T, n, -1)
            else:  # pragma: no cover - the reader rejects unknown kinds
                raise UticompileError(f"layer {i}: unknown kind {kind}")
            outs.append(LayerOutput(y, sat))
        logits = outs[-1].values
        if stop is None and logits.ndim != 3:
            raise UticompileError("the mapping's last layer is not a classifier")
        return Execution(outs, logits, self.weights)

    def _lif(self, rec: np.void, x: np.ndarray, n: int) -> tuple[np.ndarray, int]:
        T = self.timesteps
        m, k = int(rec["leak_mult"]), int(rec["leak_shift"])
        theta = int(rec["threshold"])
        hard = int(rec["reset"]) == 0
        analog = x.ndim == 4  # an ENCODE output drives every timestep
        shape = x.shape if analog else x.shape[1:]
        u = np.zeros(shape, np.int64)
        spikes = np.zeros((T, *shape), bool)
        saturated = 0
        for t in range(T):
            u, bad = _saturate(((u * m) >> k) + (x if analog else x[t]), self.acc_bits)
            saturated += bad
            fire = u >= theta
            spikes[t] = fire
            u = np.where(fire, 0 if hard else u - theta, u)
        return spikes, saturated
