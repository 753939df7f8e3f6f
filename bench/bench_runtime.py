"""Benchmark: the runtime against onnxruntime on full-width VGG-16 at 98.2% sparsity.

Both run the same quantized network on the same samples in this one run: the runtime (numpy/
scipy, bit-exact fixed point, plus event counting) and onnxruntime executing the quantized
reference model (the one ``run --check`` uses). Each runs in its own fresh process, so that its
peak memory can be told apart; peak memory is reported as the increase of the process's peak
resident set over its resident set just before the engine (or session) is built (the peak is
reset there, so that import-time peaks do not hide it). Both processes live
side by side: after one warm-up run each, they run in turn ``--repeats`` times (so that both see
the same load on a shared machine) and the best wall time of each is compared, with the same
number of threads (``--threads``: onnxruntime's intra-op threads and numpy's BLAS threads).

Run: python bench/bench_runtime.py [--samples 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from multiprocessing import Queue

import numpy as np
from common import peak_rss_mib, pruned_vgg16, reset_peak

from uticompile.hardware import default_hardware
from uticompile.mapfile import decode_mapping, encode_mapping
from uticompile.passes.pipeline import MapConfig, compile_graph, to_mapping


def _inputs(samples: int) -> np.ndarray:
    from uticompile.runtime.inputs import quantize_input

    return quantize_input(np.random.default_rng(0).normal(0, 1, (samples, 3, 32, 32)), 5, 8)


def _serve(name: str, run: Callable[[], object], base: float, cmd: Queue, out: Queue) -> None:
    """Warm up, then time one run per command until told to stop; report time and memory."""
    run()
    out.put("ready")
    while cmd.get() == "run":
        t0 = time.perf_counter()
        result = run()
        out.put((time.perf_counter() - t0, result))
    out.put((name, peak_rss_mib() - base))


def _runtime(blob: bytes, samples: int, cmd: Queue, out: Queue) -> None:
    from uticompile.runtime.cost import EventCounter
    from uticompile.runtime.engine import Engine

    m = decode_mapping(blob)
    x = _inputs(samples)
    base = reset_peak()
    engine = Engine(m)

    def go() -> int:
        counter = EventCounter(m, default_hardware())
        counter.add(engine.run(x))
        return counter.report().work

    _serve("runtime", go, base, cmd, out)


def _onnxruntime(model: bytes, samples: int, threads: int, cmd: Queue, out: Queue) -> None:
    import onnxruntime as ort

    from uticompile.runtime.reference import INPUT

    x = _inputs(samples).astype(np.float32)
    base = reset_peak()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    _serve("onnxruntime", lambda: session.run(None, {INPUT: x}), base, cmd, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # inherited by the spawned processes
    from uticompile.onnx_export import serialize
    from uticompile.runtime.reference import reference_model

    module = compile_graph(pruned_vgg16(balanced=True), MapConfig(pes=16), default_hardware(), 2.5)
    blob = encode_mapping(to_mapping(module))
    model = serialize(reference_model(module)[0])
    ctx = mp.get_context("spawn")
    workers = {}
    for name, target, extra in (
        ("runtime", _runtime, (blob, args.samples)),
        ("onnxruntime", _onnxruntime, (model, args.samples, args.threads)),
    ):
        cmd, out = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=target, args=(*extra, cmd, out))
        proc.start()
        assert out.get() == "ready"
        workers[name] = (proc, cmd, out)
    best = {name: float("inf") for name in workers}
    work = 0
    for _ in range(args.repeats):  # alternate, so that both see the same load on the machine
        for name, (_, cmd, out) in workers.items():
            cmd.put("run")
            seconds, result = out.get()
            best[name] = min(best[name], seconds)
            if name == "runtime":
                work = int(result)
    peak = {}
    for name, (proc, cmd, out) in workers.items():
        cmd.put("stop")
        peak[name] = out.get()[1]
        proc.join()
    rt, ox = best["runtime"], best["onnxruntime"]
    print(
        f"VGG-16 full width, 98.2% sparse, u-Ticket balanced, 16 PEs, {args.samples} samples, "
        f"T=4, {args.threads} thread(s), best of {args.repeats} alternated runs after a warm-up"
    )
    print(
        f"runtime (execute + count events): {rt:8.3f} s, "
        f"peak memory +{peak['runtime']:.0f} MiB, {work:,} work cycles"
    )
    print(
        f"onnxruntime (quantized reference): {ox:8.3f} s, "
        f"peak memory +{peak['onnxruntime']:.0f} MiB"
    )
    print(
        f"ratio runtime / onnxruntime: time {rt / ox:.2f}x, "
        f"peak memory {peak['runtime'] / peak['onnxruntime']:.2f}x"
    )


if __name__ == "__main__":
    main()
