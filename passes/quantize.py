"""Quantize: fixed-point weights, biases, thresholds and leaks with power-of-two scales.

The hardware shifts, it never multiplies by a scale, so every scale is a power of two:
- ``CONV``/``FC`` weights: ``bits``-bit signed, ``W_q = rint(W * 2^s)`` with the largest ``s``
  that fits; layers whose partial sums meet in an ``ADD`` share one ``s`` so the adder needs no
  rescaling. A nonzero weight never rounds to 0 (it becomes +-1): the pruned workload survives.
  Outputs (partial sums, membranes) are in units of ``2^-s``; biases ``rint(b * 2^s)``.
- ``ENCODE`` (analog first layer): ``input_bits``-bit input (``rint(x * 2^s_in)``, ``s_in`` from
  the largest normalized input) and ``input_bits``-bit weights; products summed exactly, then
  shifted right by ``r`` so the result leaves a bit of headroom in the membrane.
- ``LIF``: ``threshold_q = rint(theta * 2^f)`` (at least 1) in its input's units; the leak as
  ``m / 2^k`` (``k <= 16``, reduced: 0.5 is 1/2), applied as ``(u * m) >> k``.
- ``ADD``: an identity shortcut carries spikes, shifted left by the partial sums' ``s``.

Per weight layer the report holds the quantization error and the static bound of a partial sum,
and whether that bound can saturate the ``acc_bits`` accumulators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from uticompile.errors import PassError
from uticompile.hwir import PSUM_KINDS, HwLayer, HwModule
from uticompile.limits import WEIGHT_BITS
from uticompile.passes.base import PassResult

LEAK_SHIFT = 16


def frac_bits_for(max_abs: float, bits: int) -> int:
    """Largest s with max_abs * 2^s <= 2^(bits-1) - 1 (0 for an all-zero tensor)."""
    if max_abs <= 0 or not math.isfinite(max_abs):
        return 0
    s = math.floor(math.log2((2 ** (bits - 1) - 1) / max_abs))
    while max_abs * 2.0**s > 2 ** (bits - 1) - 1:  # guard the log's rounding
        s -= 1
    return s


def quantize_weights(w: np.ndarray, s: int, bits: int) -> np.ndarray:
    limit = 2 ** (bits - 1) - 1
    q = np.clip(np.rint(w.astype(np.float64) * 2.0**s), -limit, limit)
    q = np.where((q == 0) & (w != 0), np.sign(w), q)
    return q.astype(np.int16)


def leak_fixed_point(leak: float) -> tuple[int, int]:
    m, k = round(leak * 2**LEAK_SHIFT), LEAK_SHIFT
    while k > 0 and m % 2 == 0:
        m, k = m // 2, k - 1
    return m, k


def _scale_groups(layers: list[HwLayer]) -> list[int]:
    """Union-find root per layer: weight layers whose partial sums meet in an ADD share a root."""
    parent = list(range(len(layers)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, layer in enumerate(layers):
        if layer.kind == "ADD":
            psums = [j for j in layer.inputs if layers[j].kind in PSUM_KINDS]
            for j in psums[1:]:
                parent[find(j)] = find(psums[0])
            if psums:
                parent[find(i)] = find(psums[0])
    return [find(i) for i in range(len(layers))]


@dataclass(frozen=True)
class Quantize:
    bits: int = 16
    input_bits: int = 8
    acc_bits: int = 24
    options: dict[str, int] = field(default_factory=dict)

    name: ClassVar[str] = "quantize"

    def __call__(self, module: HwModule) -> PassResult:
        if module.quantized:
            return PassResult(module, False)
        lo, hi = WEIGHT_BITS
        if not lo <= self.bits <= hi:
            raise PassError(f"bits must lie in {lo}..{hi}, got {self.bits}", option="bits")
        layers = module.layers
        roots = _scale_groups(layers)
        want: dict[int, int] = {}
        thresholds = _consumer_thresholds(layers)
        for i, layer in enumerate(layers):
            if layer.kind in ("CONV", "FC"):
                assert layer.weight is not None and layer.bias is not None
                s = frac_bits_for(float(np.abs(layer.weight).max(initial=0.0)), self.bits)
                # the threshold and the biases must fit a quarter of the accumulator range, or
                # tiny weights (a linear head) would push them past it
                value = max(float(np.abs(layer.bias).max(initial=0.0)), thresholds.get(i, 0.0))
                s = min(s, frac_bits_for(value, self.acc_bits - 2)) if value > 0 else s
                want[roots[i]] = min(want.get(roots[i], s), s)
        acc_max = 2 ** (self.acc_bits - 1) - 1
        s_in = frac_bits_for(module.input_bound, self.input_bits)
        module.input_frac_bits = s_in
        for i, layer in enumerate(layers):
            src = [layers[j] for j in layer.inputs if j >= 0]
            if layer.kind == "ENCODE":
                self._encode(layer, s_in, acc_max)
            elif layer.kind in ("CONV", "FC"):
                assert layer.weight is not None
                assert layer.bias is not None
                w = layer.weight
                s = want[roots[i]]
                q = quantize_weights(w, s, self.bits)
                max_in = _count_bound(layers, layer)
                self._finish_weight_layer(layer, w, q, s, s, max_in, acc_max)
            elif layer.kind == "LIF":
                f = src[0].frac_bits  # membranes are in the input's units; outputs are spikes
                layer.threshold_q = max(1, round(layer.threshold * 2.0**f))
                layer.leak_mult, layer.leak_shift = leak_fixed_point(layer.leak)
            elif layer.kind == "ADD":
                fracs = {s.frac_bits for s in src if s.kind in PSUM_KINDS}
                if len(fracs) > 1:
                    raise PassError(f"ADD {layer.name!r}: operands at different scales {fracs}")
                f = fracs.pop() if fracs else 0
                layer.frac_bits = f
                shift = tuple(0 if s.kind in PSUM_KINDS else f for s in src)
                layer.shifts = (shift[0], shift[1])
        module.quantized = True
        return PassResult(module, True)

    def _encode(self, layer: HwLayer, s_in: int, acc_max: int) -> None:
        assert layer.weight is not None
        assert layer.bias is not None
        w = layer.weight
        s_w = frac_bits_for(float(np.abs(w).max(initial=0.0)), self.input_bits)
        q = quantize_weights(w, s_w, self.input_bits)
        frac = s_in + s_w
        bias_q = np.rint(layer.bias.astype(np.float64) * 2.0**frac).astype(np.int64)
        max_in = 2 ** (self.input_bits - 1)
        bound = int(
            (np.abs(q.astype(np.int64)).reshape(len(q), -1).sum(1) * max_in + np.abs(bias_q)).max(
                initial=0
            )
        )
        shift = max(0, bound.bit_length() - (self.acc_bits - 2))  # one bit of membrane headroom
        layer.shifts = (shift, 0)
        self._finish_weight_layer(layer, w, q, s_w, frac - shift, max_in, acc_max, bias_q=bias_q)
        layer.weight_bits = self.input_bits
        layer.report["input_frac_bits"] = s_in
        layer.report["output_shift"] = shift

    def _finish_weight_layer(
        self,
        layer: HwLayer,
        w: np.ndarray,
        q: np.ndarray,
        s: int,
        out_frac: int,
        max_in: int,
        acc_max: int,
        *,
        bias_q: np.ndarray | None = None,
    ) -> None:
        assert layer.bias is not None
        if bias_q is None:
            bias_q = np.rint(layer.bias.astype(np.float64) * 2.0**s).astype(np.int64)
        if np.any(np.abs(bias_q) > 2**31 - 1):
            raise PassError(f"{layer.name!r}: a bias does not fit 32 bits at scale 2^-{s}")
        err = np.abs(q.astype(np.float64) * 2.0**-s - w.astype(np.float64))
        nz = w != 0
        bound = int(
            (np.abs(q.astype(np.int64)).reshape(len(q), -1).sum(1) * max_in + np.abs(bias_q)).max(
                initial=0
            )
        )
        if layer.kind == "ENCODE":
            bound >>= layer.shifts[0]
        layer.weight, layer.bias = q, bias_q
        layer.weight_frac, layer.frac_bits, layer.weight_bits = s, out_frac, self.bits
        rms = float(np.sqrt(np.mean(w[nz].astype(np.float64) ** 2))) if nz.any() else 0.0
        layer.report.update(
            weight_frac_bits=s,
            max_abs_error=float(err.max(initial=0.0)),
            relative_rms_error=float(np.sqrt(np.mean(err[nz] ** 2)) / rms) if rms else 0.0,
            psum_bound=bound,
            may_overflow=bool(bound > acc_max),
            nonzero=int(nz.sum()),
        )


def _consumer_thresholds(layers: list[HwLayer]) -> dict[int, float]:
    """Weight layer -> threshold of the LIF its partial sums reach (directly or through an ADD)."""
    out: dict[int, float] = {}
    for layer in layers:
        if layer.kind != "LIF":
            continue
        stack = [layer.inputs[0]]
        while stack:
            j = stack.pop()
            if layers[j].kind == "ADD":
                stack.extend(k for k in layers[j].inputs if layers[k].kind in PSUM_KINDS)
            elif layers[j].kind in ("CONV", "FC"):
                out[j] = max(out.get(j, 0.0), layer.threshold)
    return out


def _count_bound(layers: list[HwLayer], layer: HwLayer) -> int:
    """Largest input value of a CONV/FC: the spike count of a SUMPOOL window, else a spike (1)."""
    src = layers[layer.inputs[0]]
    while src.kind == "FLATTEN":
        src = layers[src.inputs[0]]
    return src.kernel[0] * src.kernel[1] if src.kind == "SUMPOOL" else 1
