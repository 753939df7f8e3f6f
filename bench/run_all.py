"""Run every benchmark in bench/ one after the other and print all their ratios.

Run: python bench/run_all.py   (about 10 minutes on 2 CPU cores)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    ("balancing vs one training epoch", "bench_balance.py", []),
    ("mapping vs loading the ONNX file; mapped size", "bench_map.py", []),
    ("weight encodings: WSP, compact, CSR vs the entropy bound", "bench_encoding.py", []),
    ("runtime vs onnxruntime", "bench_runtime.py", ["--samples", "16"]),
    ("zoo training step vs a plain per-timestep loop", "bench_train_step.py", []),
    ("training throughput: 1 process vs 2 (gloo DDP)", "bench_ddp.py", ["--epochs", "2"]),
]


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = 0
    for title, script, args in BENCHMARKS:
        sys.stdout.write(f"\n== {title} ({script}) ==\n")
        sys.stdout.flush()
        proc = subprocess.run([sys.executable, str(here / script), *args], cwd=here, check=False)
        failed += proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
