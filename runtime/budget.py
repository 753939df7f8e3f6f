"""How much memory a run implies, computed from the mapping before anything is allocated.

A mapped file of a few bytes may declare 65535 x 65535 feature maps (the format allows it), and a
small trace may declare millions of samples. Before a run the engine adds up, per layer, the
activations it keeps (every layer's output stays alive for the cost model and ``--check``) and
the largest temporaries of that layer (padded input, one chunk of im2col columns and its
product), at their widest types, and refuses the run with one line naming the layer and the figure
if it exceeds the limit: by default the machine's physical memory, overridable with the
``UTICOMPILE_MEMORY_LIMIT`` environment variable (bytes, or a number with K, M, G or T) or the
``memory_limit`` argument of ``Engine``.
"""

from __future__ import annotations

import os

from uticompile.errors import UticompileError
from uticompile.mapfile import KIND_NAMES, Mapping

ENV = "UTICOMPILE_MEMORY_LIMIT"
CHUNK_BYTES = 2**21  # the engine multiplies im2col columns in chunks of about this size
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def default_limit() -> int:
    """The machine's physical memory (16 GiB where it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def memory_limit(limit: int | None = None) -> int:
    """``limit`` if given, else ``UTICOMPILE_MEMORY_LIMIT``, else ``default_limit()``."""
    if limit is not None:
        return limit
    raw = os.environ.get(ENV, "").strip().upper().removesuffix("B")
    if not raw:
        return default_limit()
    unit = raw[-1] if raw[-1] in _UNITS else ""
    try:
        value = float(raw[: len(raw) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise UticompileError(f"{ENV}={os.environ[ENV]!r} is not a size such as 8G") from None
    if not value > 0 or value == float("inf"):
        raise UticompileError(f"{ENV}={os.environ[ENV]!r} is not a positive size")
    return int(value)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def layer_bytes(m: Mapping, samples: int) -> list[tuple[int, int]]:
    """Per layer, (bytes of its output, bytes of its temporaries) for ``samples`` samples.

    Mirrors the engine: convolution outputs are int32, spikes bool, other values int64; a
    convolution's temporaries are its padded input and row sums (at most float64) and one chunk
    of im2col columns with its product.
    """
    t = int(m.model["timesteps"])
    out = []
    for rec in m.layers:
        kind = KIND_NAMES[int(rec["kind"])]
        c_in, h, w = (int(v) for v in rec["in_shape"])
        o, oh, ow = (int(v) for v in rec["out_shape"])
        steps = 1 if kind == "ENCODE" else t  # ENCODE runs once per image
        values = steps * samples * o * oh * ow
        if kind in ("CONV", "ENCODE"):
            kh, kw = (int(v) for v in rec["kernel"])
            pt, pl, pb, pr = (int(v) for v in rec["pads"])
            padded = steps * samples * c_in * (h + pt + pb) * (w + pl + pr)
            row_sums = steps * samples * c_in * kh * (w + pl + pr)
            k = c_in * kh * kw
            columns = max(CHUNK_BYTES // 4 // max(k, 1), ow * samples)  # >= one output row
            chunk = k * columns + 2 * o * columns
            out.append((4 * values, 8 * (padded + row_sums + chunk) + 8 * values))
        elif kind == "FC":
            out.append((8 * values, 8 * (steps * samples * c_in * h * w + 2 * values)))
        elif kind in ("LIF", "MAXPOOL"):
            out.append((values, 8 * 3 * values))
        else:
            out.append((8 * values, 8 * values))
    return out


def check_run_budget(
    m: Mapping, samples: int, start: int, stop: int | None, limit: int | None = None
) -> None:
    """Refuse a run of layers ``start..stop`` on ``samples`` samples that needs over the limit."""
    cap = memory_limit(limit)
    last = len(m.layers) - 1 if stop is None else stop
    kept = 0
    for i, (out, temp) in enumerate(layer_bytes(m, samples)[: last + 1]):
        if i < start:
            continue
        if kept + out + temp > cap:
            raise UticompileError(
                f"layer {i} ({m.layer_names[i]}): {samples} samples need "
                f"{_size(kept + out + temp)} of memory, over the limit of {_size(cap)} ({ENV})"
            )
        kept += out
