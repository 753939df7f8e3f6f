"""Benchmark: mapping full-width VGG-16 (98.2% sparse, u-Ticket balanced, 16 PEs) against loading
its ONNX file, and the size of the mapping against dense, CSR-style and entropy-bound storage.

Run: python bench/bench_map.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import pruned_vgg16, timed

from uticompile.hardware import default_hardware
from uticompile.mapfile import encode_mapping
from uticompile.mapstats import layer_summary, size_totals
from uticompile.onnx_export import save_onnx
from uticompile.onnx_import import read_graph
from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping


def main() -> None:
    graph = pruned_vgg16(balanced=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vgg16.onnx"
        save_onnx(graph, path)
        loaded, t_load = timed(lambda: read_graph(path), repeats=3)
        hw = default_hardware()

        def compile_and_encode() -> bytes:
            module = compile_graph(loaded, MapConfig(pes=16), hw, 2.5)
            return encode_mapping(to_mapping(module))

        blob, t_map = timed(compile_and_encode, repeats=3)
    from uticompile.mapfile import decode_mapping

    rows = layer_summary(decode_mapping(blob))
    totals = size_totals(rows)
    print(
        f"VGG-16 full width, {totals['nonzero']:,} nonzero of {totals['positions']:,} weights, "
        "16 PEs, 16-bit"
    )
    print(f"load ONNX (read + import to IR): {t_load:8.3f} s")
    print(f"map (fold, lower, quantize, place, WSP, encode): {t_map:8.3f} s")
    print(f"ratio map / load: {t_map / t_load:.1f}x")
    print(f"{'layer':<8}{'nonzero':>9}{'WSP':>10}{'dense':>11}{'CSR':>10}{'entropy':>10}")
    for r in rows:
        print(
            f"{r['name']:<8}{r['nonzero']:>9}{r['bytes_wsp']:>10}{r['bytes_dense']:>11}"
            f"{r['bytes_csr']:>10}{r['bytes_entropy_bound']:>10}"
        )
    t = totals
    print(
        f"{'total':<8}{t['nonzero']:>9}{t['bytes_wsp']:>10}{t['bytes_dense']:>11}"
        f"{t['bytes_csr']:>10}{t['bytes_entropy_bound']:>10}"
    )
    print(
        f"ratios: WSP/dense {t['bytes_wsp'] / t['bytes_dense']:.4f}, WSP/CSR "
        f"{t['bytes_wsp'] / t['bytes_csr']:.3f}, WSP/entropy bound "
        f"{t['bytes_wsp'] / t['bytes_entropy_bound']:.3f}; whole file {len(blob):,} bytes"
    )


if __name__ == "__main__":
    main()
