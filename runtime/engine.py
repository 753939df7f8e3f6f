"""Bit-accurate execution of a mapped binary in numpy/scipy, layer by layer and tick-batched.

Every layer runs for all T timesteps before the next one starts (like the hardware). Values are
integers throughout (docs/mapping-format.md, section 2.2): partial sums are computed exactly, then
saturated to the ``acc_bits`` accumulator range; LIF membranes use the fixed-point leak
``(u * m) >> k`` and saturation. Weights are decoded once from the WSP tiles, sparse.

A convolution is the matrix product ``W [O, C*kh*kw] @ im2col [C*kh*kw, columns]`` over all
samples. Before multiplying, the engine counts per weight position the input spikes it meets
(``hits``, the cost model's events) and from them the matched (weight, spike) pairs; it then
picks the cheapest exact kernel (``products.py``): event-driven, sparse weights x dense spike
rows, or dense BLAS.

Activations are stored time-major with the sample innermost, [T, C, H, W, N], and handed out as
[T, N, C, H, W] views: a LIF step reads one contiguous block, and the im2col copies move runs of
OW*N contiguous values. Large scratch arrays are reused from call to call (fresh large arrays
cost page faults). Layer outputs are kept so that the cost model can count events and ``--check``
can compare spikes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from uticompile.errors import UticompileError
from uticompile.mapfile import KIND_NAMES, RESET_HARD, RESET_SUBTRACT_AFTER_LEAK, Mapping
from uticompile.mapstats import LayerWeights, layer_weights
from uticompile.runtime.budget import CHUNK_BYTES, check_run_budget
from uticompile.runtime.products import WeightMatrix, choose, product


@dataclass
class LayerOutput:
    """One layer's result for a batch: ``values`` is [T, N, C, H, W] (ENCODE: [N, C, H, W])."""

    values: np.ndarray
    saturated: int = 0


@dataclass
class Execution:
    """What a run of the mapping produced for a batch of samples.

    ``hits[i]`` (CONV and FC layers) is int64 [T, N, positions]: how many input spikes (a spike
    count c is c spikes) each weight position of layer i meets, summed over output positions.
    """

    outputs: list[LayerOutput]
    logits: np.ndarray  # int64 [T, N, classes], at the last layer's scale
    weights: dict[int, LayerWeights] = field(default_factory=dict)
    hits: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def predictions(self) -> np.ndarray:
        """argmax over classes of the logits summed over timesteps (lowest index on ties)."""
        return self.logits.sum(axis=0).argmax(axis=-1)


def _saturate(x: np.ndarray, acc_bits: int) -> tuple[np.ndarray, int]:
    hi = 2 ** (acc_bits - 1) - 1
    lo = -hi - 1
    if x.size == 0 or (x.max() <= hi and x.min() >= lo):  # two reductions, no temporaries
        return x, 0
    bad = int(np.count_nonzero((x > hi) | (x < lo)))
    return np.clip(x, lo, hi), bad


def _time_major(v: np.ndarray) -> np.ndarray:
    """[T, N, C, H, W] -> [T, C, H, W, N], a view when stored that way (else a copy)."""
    return np.ascontiguousarray(v.transpose(0, 2, 3, 4, 1))


def _logical(v: np.ndarray) -> np.ndarray:
    """[T, C, H, W, N] -> a [T, N, C, H, W] view of the same memory."""
    return v.transpose(0, 4, 1, 2, 3)


def _window_sums(padded: np.ndarray, windows: tuple[int, ...], dtype: type) -> np.ndarray:
    """int64 [T, N, C*kh*kw]: per kernel position, the sum of the inputs it meets over all
    output positions, from padded [T, C, Hp, Wp, N]: rows first, then columns (no im2col).
    ``dtype`` accumulates; the caller makes sure that it is exact for these sums."""
    kh, kw, sh, sw, oh, ow = windows
    t, c, n = padded.shape[0], padded.shape[1], padded.shape[4]
    rows = _strided_window_sums(padded, 2, kh, sh, oh, dtype)  # [T, C, kh, Wp, N]
    out = _strided_window_sums(rows, 3, kw, sw, ow, dtype)  # [T, C, kh, kw, N]
    return out.astype(np.int64).transpose(0, 4, 1, 2, 3).reshape(t, n, c * kh * kw)


def _strided_window_sums(
    x: np.ndarray, axis: int, k: int, stride: int, count: int, dtype: type
) -> np.ndarray:
    """For each offset i < k, the sum over ``axis`` of x[i : i + stride*(count-1) + 1 : stride];
    the offsets replace that axis. (Strided sums measured faster than a cumulative sum here.)"""
    parts = [
        x[(slice(None),) * axis + (slice(i, i + stride * (count - 1) + 1, stride),)].sum(
            axis=axis, dtype=dtype
        )
        for i in range(k)
    ]
    return np.stack(parts, axis=axis)


def _spike_columns(xt: np.ndarray, rec: np.void) -> sparse.csr_matrix:
    """The im2col matrix [C*kh*kw, T*OH*OW*N] of input [T, C, H, W, N] as int64 CSR, built from
    the nonzero inputs only (each meets at most kh*kw output positions): no dense columns."""
    t, c, n = xt.shape[0], xt.shape[1], xt.shape[4]
    kh, kw = int(rec["kernel"][0]), int(rec["kernel"][1])
    sh, sw = int(rec["stride"][0]), int(rec["stride"][1])
    pt, pl = int(rec["pads"][0]), int(rec["pads"][1])
    oh, ow = int(rec["out_shape"][1]), int(rec["out_shape"][2])
    flat = np.flatnonzero(xt)
    ti, ci, hi, wi, ni = np.unravel_index(flat, xt.shape)
    values = xt.ravel()[flat].astype(np.int64)
    rows, cols, data = [], [], []
    for di in range(kh):  # a loop over kernel offsets, vectorized over the spikes
        y = hi + pt - di
        y_ok = (y >= 0) & (y % sh == 0) & (y < sh * oh)
        for dj in range(kw):
            x = wi + pl - dj
            ok = y_ok & (x >= 0) & (x % sw == 0) & (x < sw * ow)
            rows.append((ci[ok] * kh + di) * kw + dj)
            cols.append(((ti[ok] * oh + y[ok] // sh) * ow + x[ok] // sw) * n + ni[ok])
            data.append(values[ok])
    shape = (c * kh * kw, t * oh * ow * n)
    coo = sparse.coo_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
                            shape=shape)  # fmt: skip
    return coo.tocsr()


def _top(x: np.ndarray) -> int:
    """The largest |value| of an input (1 for spikes), which bounds the partial sums."""
    return 1 if x.dtype == np.bool_ else max(int(np.abs(x).max(initial=0)), 1)


class Engine:
    """Executes one mapping; construct once (weights are decoded here), run many batches.

    ``memory_limit`` (bytes) bounds what one run may allocate (see ``budget.py``).
    """

    def __init__(self, mapping: Mapping, *, memory_limit: int | None = None) -> None:
        self.m = mapping
        self.memory_limit = memory_limit
        self.timesteps = int(mapping.model["timesteps"])
        self.acc_bits = int(mapping.model["acc_bits"])
        self.kinds = [KIND_NAMES[int(k)] for k in mapping.layers["kind"]]
        self.weights: dict[int, LayerWeights] = {}
        self.matrices: dict[int, WeightMatrix] = {}
        self.bias: dict[int, np.ndarray] = {}
        self._scratch: dict[str, np.ndarray] = {}
        for i, rec in enumerate(mapping.layers):
            if self.kinds[i] in ("ENCODE", "CONV", "FC"):
                self.weights[i] = layer_weights(mapping, i)
                self.matrices[i] = WeightMatrix(self.weights[i])
                first = int(rec["bias_index"])
                count = int(rec["out_shape"][0])
                if int(rec["flags"]) & 1:
                    self.bias[i] = mapping.bias[first : first + count].astype(np.int64)
                else:
                    self.bias[i] = np.zeros(count, np.int64)

    def run(self, x_q: np.ndarray, *, stop: int | None = None) -> Execution:
        """Execute on quantized input images ``x_q`` (int [N, C, H, W]), up to layer ``stop``."""
        expected = tuple(int(v) for v in self.m.model["input_shape"])
        if x_q.ndim != 4 or tuple(x_q.shape[1:]) != expected:
            raise UticompileError(
                f"input of shape {tuple(x_q.shape[1:])} does not match the mapping's {expected}"
            )
        check_run_budget(self.m, x_q.shape[0], 0, stop, self.memory_limit)
        return self._run(x_q, [], x_q.shape[0], stop)

    def check_trace(self, layer: int, samples: int, shape: tuple[int, ...]) -> None:
        """Refuse spike traces of ``samples`` x ``shape`` [C, H, W] that do not fit ``layer``.

        Called before a trace is densified, so a small file cannot ask for a huge array.
        """
        rec = self.m.layers
        if not 0 <= layer < len(rec) or self.kinds[layer] != "LIF":
            raise UticompileError(f"spike traces must come from a LIF layer, not layer {layer}")
        want = tuple(int(v) for v in rec[layer]["out_shape"])
        if tuple(shape) != want:
            raise UticompileError(
                f"spike traces of shape {tuple(shape)} do not fit layer {layer} ({want})"
            )
        later = rec[layer + 1 :]
        reads = np.concatenate([later["input0"], later["input1"][later["input1"] >= 0]])
        if np.any(reads < layer):
            raise UticompileError(f"layers after {layer} read earlier layers: cannot start there")
        check_run_budget(self.m, samples, layer, None, self.memory_limit)

    def run_from(self, layer: int, spikes: np.ndarray) -> Execution:
        """Execute from the spikes [T, N, ...] of ``layer`` on (e.g. an encode-input file)."""
        rec = self.m.layers
        if 0 <= layer < len(rec) and spikes.shape[0] != self.timesteps:
            raise UticompileError(f"spike traces of shape {spikes.shape} do not fit layer {layer}")
        self.check_trace(layer, spikes.shape[1], spikes.shape[2:])
        outs = [LayerOutput(np.zeros(0, bool)) for _ in range(layer)] + [LayerOutput(spikes)]
        return self._run(None, outs, spikes.shape[1], None)

    def _run(
        self, x_q: np.ndarray | None, outs: list[LayerOutput], n: int, stop: int | None
    ) -> Execution:
        m, T = self.m, self.timesteps
        last = len(m.layers) - 1 if stop is None else stop
        hits: dict[int, np.ndarray] = {}
        for i in range(len(outs), last + 1):
            rec = m.layers[i]
            kind = self.kinds[i]
            src = outs[int(rec["input0"])].values if kind != "ENCODE" else x_q
            assert src is not None
            sat = 0
            if kind == "ENCODE":
                y, sat, _ = self._conv(i, src[None], int(rec["shift0"]))
                y = _logical(y)[0]
            elif kind == "CONV":
                y, sat, hits[i] = self._conv(i, src)
                y = _logical(y)
            elif kind == "FC":
                y, sat, hits[i] = self._fc(i, src, n)
            elif kind == "LIF":
                saturating = self.kinds[int(rec["input0"])] in ("ENCODE", "CONV", "FC", "ADD")
                bound = 2 ** (self.acc_bits - 1) if saturating else _top(src)
                y, sat = self._lif(rec, src, n, bound)
            elif kind == "MAXPOOL":
                y = _logical(self._maxpool(rec, _time_major(src)))
            elif kind == "SUMPOOL":
                y = self._sumpool(rec, src)
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
        return Execution(outs, logits, self.weights, hits)

    def _conv(self, i: int, x: np.ndarray, shift: int = 0) -> tuple[np.ndarray, int, np.ndarray]:
        """A convolution of [T, N, C, H, W]: (int32 [T, O, OH, OW, N], saturations, hits).

        ``hits`` is int64 [T, N, K] (K = C*kh*kw, position (c*kh + i)*kw + j). The im2col
        matrix (columns (t, oh, ow, n)) is built and multiplied a few output rows of one
        timestep at a time, in one reused buffer.
        """
        rec = self.m.layers[i]
        xt = _time_major(x)
        w = self.matrices[i]
        top = _top(xt)
        dtype = w.float_type(top)
        t_, c, h, wd, n = xt.shape
        kh, kw = int(rec["kernel"][0]), int(rec["kernel"][1])
        sh, sw = int(rec["stride"][0]), int(rec["stride"][1])
        pt, pl, pb, pr = (int(p) for p in rec["pads"])
        o, oh, ow = (int(v) for v in rec["out_shape"])
        hp, wp = h + pt + pb, wd + pl + pr
        padded = self._buffer("padded", t_ * c * hp * wp * n, dtype).reshape(t_, c, hp, wp, n)
        padded[:, :, :pt] = padded[:, :, pt + h :] = 0
        padded[:, :, :, :pl] = padded[:, :, :, pl + wd :] = 0
        padded[:, :, pt : pt + h, pl : pl + wd] = xt  # converted once: the copies do not cast
        k = c * kh * kw
        windows = (kh, kw, sh, sw, oh, ow)
        exact = 2**24 if dtype == np.float32 else 2**53  # sums of values are exact below
        sum_type = dtype if oh * ow * top < exact else np.int64
        hits = _window_sums(padded, windows, sum_type)
        if xt.dtype != np.bool_:  # the kernel choice needs nonzero inputs, not their values
            nonzero = _window_sums(padded != 0, windows, np.int64).sum(axis=(0, 1))
        else:
            nonzero = hits.sum(axis=(0, 1))
        entries = int(nonzero.sum())  # nonzeros of the im2col matrix
        kernel = choose(w, dtype, t_ * oh * ow * n, int(nonzero @ w.col_nnz), entries)
        out = np.empty((t_, o, oh, ow, n), np.int32)  # acc_bits <= 32 (the reader checks)
        saturated = 0
        if kernel == "event":  # the whole layer at once, from the list of input spikes
            acc = product(w, _spike_columns(xt, rec), kernel)
            acc += self.bias[i][:, None]
            if shift:
                acc >>= shift
            acc, saturated = _saturate(acc, self.acc_bits)
            out[...] = acc.reshape(o, t_, oh, ow, n).transpose(1, 0, 2, 3, 4)
            return out, saturated, hits
        rows = max(1, CHUNK_BYTES // (k * ow * n * np.dtype(dtype).itemsize))
        for t in range(t_):  # a loop over timesteps and chunks of output rows
            for r0 in range(0, oh, rows):
                r1 = min(oh, r0 + rows)
                cols: np.ndarray = self._buffer("cols", k * (r1 - r0) * ow * n, dtype)
                cols = cols.reshape(c, kh, kw, r1 - r0, ow, n)
                for di in range(kh):  # and over kernel offsets: copies of all channels
                    for dj in range(kw):
                        y0 = di + sh * r0
                        cols[:, di, dj] = padded[
                            t,
                            :,
                            y0 : y0 + sh * (r1 - r0 - 1) + 1 : sh,
                            dj : dj + sw * (ow - 1) + 1 : sw,
                        ]
                acc = product(w, cols.reshape(k, -1), kernel)
                acc += self.bias[i][:, None]
                if shift:
                    acc >>= shift
                acc, bad = _saturate(acc, self.acc_bits)
                saturated += bad
                out[t, :, r0:r1] = acc.reshape(o, r1 - r0, ow, n)
        return out, saturated, hits

    def _buffer(self, name: str, size: int, dtype: type) -> np.ndarray:
        """``size`` elements of the scratch array ``name``, reused from call to call."""
        nbytes = size * np.dtype(dtype).itemsize
        if self._scratch.get(name, np.zeros(0, np.uint8)).size < nbytes:
            self._scratch[name] = np.empty(nbytes, np.uint8)
        return self._scratch[name][:nbytes].view(dtype)

    def _fc(self, i: int, x: np.ndarray, n: int) -> tuple[np.ndarray, int, np.ndarray]:
        flat = x.reshape(self.timesteps * n, -1)
        w = self.matrices[i]
        cols: np.ndarray = np.ascontiguousarray(flat.T, dtype=w.float_type(_top(flat)))
        nonzero = np.count_nonzero(flat, axis=0)
        kernel = choose(w, cols.dtype.type, cols.shape[1], int(nonzero @ w.col_nnz), nonzero.sum())
        out = product(w, cols, kernel).T + self.bias[i]
        y, sat = _saturate(out.reshape(self.timesteps, n, -1), self.acc_bits)
        return y, sat, flat.astype(np.int64).reshape(self.timesteps, n, -1)

    @staticmethod
    def _maxpool(rec: np.void, x: np.ndarray) -> np.ndarray:
        """OR (max, then nonzero) over each window of [T, C, H, W, N]; no padding."""
        kh, kw = int(rec["kernel"][0]), int(rec["kernel"][1])
        sh, sw = int(rec["stride"][0]), int(rec["stride"][1])
        oh, ow = int(rec["out_shape"][1]), int(rec["out_shape"][2])
        out = None
        for i in range(kh):
            for j in range(kw):
                v = x[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
                out = v.copy() if out is None else np.maximum(out, v, out=out)
        assert out is not None
        return out if out.dtype == np.bool_ else out != 0

    @staticmethod
    def _sumpool(rec: np.void, x: np.ndarray) -> np.ndarray:
        """Spike counts (int64) per window of [T, N, C, H, W]; no padding. A window of the whole
        map is the global sum (the only SUMPOOL before format 1.2, whose stride is not read)."""
        kh, kw = int(rec["kernel"][0]), int(rec["kernel"][1])
        if (kh, kw) == x.shape[3:]:
            return x.sum(axis=(3, 4), keepdims=True, dtype=np.int64)
        sh, sw = int(rec["stride"][0]), int(rec["stride"][1])
        oh, ow = int(rec["out_shape"][1]), int(rec["out_shape"][2])
        out = np.zeros((*x.shape[:3], oh, ow), np.int64)
        for i in range(kh):  # a loop over window offsets; each step adds whole tensors
            for j in range(kw):
                out += x[..., i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw]
        return out

    def _lif(self, rec: np.void, x: np.ndarray, n: int, bound: int) -> tuple[np.ndarray, int]:
        """Membranes over T timesteps; ``bound`` >= |input|. Where the leak's product and the
        sum provably fit, the membrane is int32 (half the memory traffic of int64)."""
        T = self.timesteps
        m, k = int(rec["leak_mult"]), int(rec["leak_shift"])
        theta = int(rec["threshold"])
        hard = int(rec["reset"]) == RESET_HARD
        after_leak = int(rec["reset"]) == RESET_SUBTRACT_AFTER_LEAK
        analog = x.ndim == 4  # an ENCODE output drives every timestep
        # [T, N, F] after an FC, else [T, C, H, W, N] (an ENCODE output: T = 1)
        xs = np.ascontiguousarray(x) if x.ndim == 3 else _time_major(x[None] if analog else x)
        hi = 2 ** (self.acc_bits - 1)
        reduce = theta if after_leak else 0  # subtracted before the saturation (1.2)
        narrow = hi * max(m, 1) < 2**31 and ((hi * m) >> k) + bound + reduce < 2**31
        u = np.zeros(xs.shape[1:], np.int32 if narrow else np.int64)
        fired = np.empty((T, *u.shape), bool)
        saturated = 0
        for t in range(T):
            if m != 1 << k:  # the leak, in place
                if m != 1:
                    np.multiply(u, m, out=u)
                np.right_shift(u, k, out=u)
            np.add(u, xs[0 if analog else t], out=u, casting="unsafe")  # fits: see ``narrow``
            if after_leak and t:  # the previous step's spike comes off after the decay
                np.subtract(u, theta, out=u, where=fired[t - 1])
            u, bad = _saturate(u, self.acc_bits)
            saturated += bad
            if after_leak:  # fires on >, keeps its membrane
                np.greater(u, theta, out=fired[t])
                continue
            fire = np.greater_equal(u, theta, out=fired[t])
            if hard:
                np.copyto(u, 0, where=fire)
            else:
                np.subtract(u, theta, out=u, where=fire)
        spikes = fired if x.ndim == 3 else _logical(fired)
        return spikes, saturated
