"""Benchmark: the reference runtime against onnxruntime on full-width VGG-16 at 98.2% sparsity.

Both run the same quantized network on the same samples in this one run: the runtime (bit-exact
fixed point, plus event counting) and onnxruntime executing the quantized reference model (the
one ``run --check`` uses), each in its own process so that their peak memory can be told apart.

Run: python bench/bench_runtime.py [--samples 16]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp

import numpy as np
from common import peak_rss_mib, pruned_vgg16, timed

from uticompile.hardware import default_hardware
from uticompile.mapfile import decode_mapping, encode_mapping
from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping


def _inputs(samples: int) -> np.ndarray:
    from uticompile.runtime.engine import quantize_input

    return quantize_input(np.random.default_rng(0).normal(0, 1, (samples, 3, 32, 32)), 5, 8)


def _runtime(blob: bytes, samples: int, out: mp.Queue) -> None:
    from uticompile.runtime.cost import EventCounter
    from uticompile.runtime.engine import Engine

    m = decode_mapping(blob)
    x = _inputs(samples)
    base = peak_rss_mib()

    def go() -> int:
        counter = EventCounter(m, default_hardware())
        counter.add(Engine(m).run(x))
        return counter.report().work

    work, seconds = timed(go)
    out.put(("runtime", seconds, peak_rss_mib(), base, work))


def _onnxruntime(samples: int, out: mp.Queue) -> None:
    import onnxruntime as ort

    from uticompile.onnx_export import serialize
    from uticompile.runtime.reference import INPUT, reference_model

    module = compile_graph(pruned_vgg16(balanced=True), MapConfig(pes=16), default_hardware(), 2.5)
    session = ort.InferenceSession(serialize(reference_model(module)[0]))
    x = _inputs(samples).astype(np.float32)
    base = peak_rss_mib()
    session.run(None, {INPUT: x[:1]})  # warm-up
    _, seconds = timed(lambda: session.run(None, {INPUT: x}), repeats=2)
    out.put(("onnxruntime", seconds, peak_rss_mib(), base, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()
    module = compile_graph(pruned_vgg16(balanced=True), MapConfig(pes=16), default_hardware(), 2.5)
    blob = encode_mapping(to_mapping(module))
    ctx = mp.get_context("spawn")
    results = {}
    for target, extra in ((_runtime, (blob,)), (_onnxruntime, ())):
        queue: mp.Queue = ctx.Queue()
        proc = ctx.Process(target=target, args=(*extra, args.samples, queue))
        proc.start()
        name, seconds, peak, base, work = queue.get()
        proc.join()
        results[name] = (seconds, peak, base, work)
    rt, ox = results["runtime"], results["onnxruntime"]
    print(
        f"VGG-16 full width, 98.2% sparse, u-Ticket balanced, 16 PEs, {args.samples} samples, T=4"
    )
    print(
        f"runtime (execute + count events): {rt[0]:8.2f} s, peak RSS {rt[1]:7.0f} MiB "
        f"(+{rt[1] - rt[2]:.0f} MiB over its start), {rt[3]:,} work cycles"
    )
    print(
        f"onnxruntime (quantized reference): {ox[0]:8.2f} s, peak RSS {ox[1]:7.0f} MiB "
        f"(+{ox[1] - ox[2]:.0f} MiB over its start)"
    )
    print(
        f"ratio runtime / onnxruntime: time {rt[0] / ox[0]:.2f}x, peak memory {rt[1] / ox[1]:.2f}x"
    )


if __name__ == "__main__":
    main()
