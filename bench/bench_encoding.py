"""Benchmark: the bytes of a mapping's weights in WSP, in the compact encoding (format 1.2), and
CSR-style, against the entropy bound, on full-width VGG-16 magnitude-pruned to 98% sparsity.

The model is a freshly initialized zoo VGG-16 (no training) pruned by one global magnitude
threshold at 98% (``common.pruned_vgg16``, not balanced), mapped on 16 PEs at 16-bit and 8-bit
weights. Bounds (``uticompile.mapstats``; docs/mapping-format.md 2.5): the mask's ``n * H(p)`` per
layer plus either the empirical entropy of the nonzero values (``bound``) or ``weight_bits`` per
value (``bound@wb``). Also times decoding every layer's weights (what the runtime does once per
mapping) in both encodings, side by side.

Run: python bench/bench_encoding.py
"""

from __future__ import annotations

from common import pruned_vgg16, timed

from uticompile.hardware import default_hardware
from uticompile.mapfile import decode_mapping, encode_mapping
from uticompile.mapstats import layer_summary, layer_weights, size_totals
from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping

SPARSITY = 0.98
PES = 16


def _decode_all(blob: bytes) -> None:
    m = decode_mapping(blob)
    for i in range(len(m.layers)):
        if int(m.layers[i]["tile_count"]):
            layer_weights(m, i)


def main() -> None:
    graph = pruned_vgg16(balanced=False, sparsity=SPARSITY)
    hw = default_hardware()
    for bits in (16, 8):
        blobs = {}
        for enc in ("wsp", "compact", "auto"):
            config = MapConfig(pes=PES, bits=bits, placement="contiguous", weight_encoding=enc)
            blobs[enc] = encode_mapping(to_mapping(compile_graph(graph, config, hw, 2.5)))
        rows = layer_summary(decode_mapping(blobs["compact"]))
        t = size_totals(rows)
        print(
            f"\nVGG-16 full width, {t['nonzero']:,} nonzero of {t['positions']:,} weights "
            f"({1 - t['nonzero'] / t['positions']:.2%} sparse), {PES} PEs, {bits}-bit weights"
        )
        head = ("layer", "nonzero", "WSP", "compact", "CSR", "bound", "bound@wb", "cmp/bnd")
        print(f"{head[0]:<8}" + "".join(f"{h:>10}" for h in head[1:]))
        for r in [*rows, {**t, "name": "total"}]:
            ratio = r["bytes_compact"] / max(r["bytes_entropy_bound"], 1)
            print(
                f"{r['name']:<8}{r['nonzero']:>10}{r['bytes_wsp']:>10}{r['bytes_compact']:>10}"
                f"{r['bytes_csr']:>10}{r['bytes_entropy_bound']:>10}"
                f"{r['bytes_bound_weight_bits']:>10}{ratio:>10.3f}"
            )
        nnz = t["nonzero"]
        keys = {"WSP": "bytes_wsp", "compact": "bytes_compact", "CSR": "bytes_csr",
                "bound": "bytes_entropy_bound", "bound@wb": "bytes_bound_weight_bits"}  # fmt: skip
        per_nonzero = ", ".join(f"{k} {8 * t[v] / nnz:.2f}" for k, v in keys.items())
        print(f"bits per nonzero: {per_nonzero}")
        print(
            f"ratios: compact/bound {t['bytes_compact'] / t['bytes_entropy_bound']:.3f}, "
            f"compact/bound@wb {t['bytes_compact'] / t['bytes_bound_weight_bits']:.3f}, "
            f"WSP/bound {t['bytes_wsp'] / t['bytes_entropy_bound']:.3f}, "
            f"WSP/compact {t['bytes_wsp'] / t['bytes_compact']:.2f}, "
            f"CSR/compact {t['bytes_csr'] / t['bytes_compact']:.2f}"
        )
        print("whole files: " + ", ".join(f"{enc} {len(b):,} bytes" for enc, b in blobs.items()))
        _, t_wsp = timed(lambda b=blobs["wsp"]: _decode_all(b), repeats=3)
        _, t_cmp = timed(lambda b=blobs["compact"]: _decode_all(b), repeats=3)
        print(
            f"read + validate + decode all weights: WSP {t_wsp:.3f} s, compact {t_cmp:.3f} s "
            f"(ratio compact/WSP {t_cmp / t_wsp:.2f}x)"
        )


if __name__ == "__main__":
    main()
