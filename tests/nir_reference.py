"""An independent numpy evaluator of NIR graphs: the reference the NIR tests compare against.

It reads NIR's equations literally, in float64, with forward Euler at step ``dt`` and the input
held static for T steps; it shares no code with ``uticompile.interop``:

- LIF: ``v += dt/tau * ((v_leak - v) + r*I)``; IF: ``v += dt * r * I``; CubaLIF: first
  ``i_syn += dt/tau_syn * (w_in*I - i_syn)``, then the LIF update driven by ``i_syn``;
- a neuron spikes when ``v >= v_threshold`` (``compare="gt"``: ``>``) and then resets to
  ``v_reset``; membranes start at ``v_reset``;
- the input of a node is the sum of all its incoming edges.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _pair(v: Any) -> tuple[int, int]:
    a = np.atleast_1d(np.asarray(v)).astype(int).ravel()
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _windows(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int]):
    """[N, C, H, W] -> [N, C, H', W', kh, kw] views of the zero-padded input."""
    x = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    v = np.lib.stride_tricks.sliding_window_view(x, k, axis=(2, 3))
    return v[:, :, :: s[0], :: s[1]]


def _conv(node: Any, x: np.ndarray) -> np.ndarray:
    w = np.asarray(node.weight, np.float64)
    pad = node.padding
    p = (
        (w.shape[2] // 2, w.shape[3] // 2)
        if str(pad) == "same"
        else _pair(0 if str(pad) == "valid" else pad)
    )
    win = _windows(x, (w.shape[2], w.shape[3]), _pair(node.stride), p)
    y = np.einsum("nchwij,ocij->nohw", win, w)
    return y + np.asarray(node.bias, np.float64)[None, :, None, None]


class NIREvaluator:
    """Runs ``graph`` on a static input [N, ...] for ``timesteps`` steps; returns [T, N, ...]."""

    def __init__(self, graph: Any, *, dt: float = 1e-4, compare: str = "ge") -> None:
        self.g, self.dt, self.compare = graph, dt, compare
        self.preds: dict[str, list[str]] = {k: [] for k in graph.nodes}
        for a, b in graph.edges:
            self.preds[b].append(a)
        self.order: list[str] = []
        seen: set[str] = set()

        def visit(k: str) -> None:
            if k in seen:
                return
            seen.add(k)
            for p in self.preds[k]:
                visit(p)
            self.order.append(k)

        for k in graph.nodes:
            visit(k)

    def run(self, x: np.ndarray, timesteps: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(the Output node's values [T, N, ...], every neuron's spikes [T, N, ...])."""
        state: dict[str, dict[str, np.ndarray]] = {}
        outs, spikes = [], {}
        for _ in range(timesteps):
            vals: dict[str, np.ndarray] = {}
            for k in self.order:
                node = self.g.nodes[k]
                kind = type(node).__name__
                if kind == "Input":
                    vals[k] = np.asarray(x, np.float64)
                    continue
                i = sum(vals[p] for p in self.preds[k])
                vals[k] = self._node(k, kind, node, i, state)
                if kind in ("LIF", "IF", "CubaLIF"):
                    spikes.setdefault(k, []).append(vals[k])
            out = next(k for k in self.g.nodes if type(self.g.nodes[k]).__name__ == "Output")
            outs.append(vals[out])
        return np.stack(outs), {k: np.stack(v) for k, v in spikes.items()}

    def _node(self, k: str, kind: str, node: Any, i: np.ndarray, state: dict) -> np.ndarray:
        dt = self.dt
        f = lambda name: np.asarray(getattr(node, name), np.float64)  # noqa: E731
        if kind == "Output":
            return i
        if kind == "Conv2d":
            return _conv(node, i)
        if kind == "Affine":
            return i @ f("weight").T + f("bias")
        if kind == "Linear":
            return i @ f("weight").T
        if kind == "Flatten":
            return i.reshape(len(i), -1)
        if kind in ("AvgPool2d", "SumPool2d"):
            k2 = _pair(node.kernel_size)
            win = _windows(i, k2, _pair(node.stride), _pair(node.padding))
            total = win.sum(axis=(4, 5))
            return total / (k2[0] * k2[1]) if kind == "AvgPool2d" else total
        if kind in ("LIF", "IF", "CubaLIF"):
            s = state.setdefault(k, {"v": np.broadcast_to(f("v_reset"), i.shape).copy()})
            v = s["v"]
            if kind == "IF":
                v = v + dt * f("r") * i
            elif kind == "LIF":
                v = v + dt / f("tau") * ((f("v_leak") - v) + f("r") * i)
            else:
                syn = s.get("i", np.zeros_like(i))
                syn = syn + dt / f("tau_syn") * (f("w_in") * i - syn)
                s["i"] = syn
                v = v + dt / f("tau_mem") * ((f("v_leak") - v) + f("r") * syn)
            th = f("v_threshold")
            fire = v > th if self.compare == "gt" else v >= th
            s["v"] = np.where(fire, f("v_reset"), v)
            return fire.astype(np.float64)
        raise NotImplementedError(kind)
