#!/usr/bin/env bash
# Issue 16's acceptance on a CPU machine (documented, not a unit test; ~1-2 min):
#  1. `torchrun --nproc-per-node 2 uticompile prune ...` finishes, with the run directory layout of
#     a single-process run, rank agreement reported for every epoch of every round, and accuracy
#     next to the single-process run's;
#  2. kill -9 of rank 1 mid-round, then `torchrun ... --resume` completes, and its model is
#     byte-identical to an uninterrupted two-process run's.
# Run from the repository root: bash bench/torchrun_acceptance.sh [WORKDIR]
set -euo pipefail
BIN=$(realpath "${BIN:-.venv/bin}")
W=${1:-build/torchrun-acceptance}
rm -rf "$W" && mkdir -p "$W" && cd "$W"
export OMP_NUM_THREADS=1
U="$BIN/uticompile"
TR="$BIN/torchrun --nproc-per-node 2"
ARGS="--dataset digits --rounds 2"

"$U" train --model vgg_small --dataset digits --epochs 2 -o M.onnx >/dev/null
"$U" prune M.onnx $ARGS --epochs 1 -o S.onnx --json >S.json
$TR "$U" prune M.onnx $ARGS --epochs 1 -o P.onnx --json >P.json 2>P.err
echo "rank agreement lines (2 per epoch, 3 rounds x 1 epoch): $(grep -c 'identical on 2 ranks' P.err)"
grep 'masks identical' P.err
diff <(cd S.run && find . | sort) <(cd P.run && find . | sort) && echo "run directories: same layout"
"$BIN/python" - <<'PY'
import json
s, p = (json.load(open(f))["rounds"] for f in ("S.json", "P.json"))
for a, b in zip(s, p, strict=True):
    print(f"round {a['round']}: accuracy 1 process {a['accuracy']:.4f}, 2 processes "
          f"{b['accuracy']:.4f} (difference {100 * (b['accuracy'] - a['accuracy']):+.1f} points)")
PY

# Uninterrupted and killed-then-resumed two-process runs with 2 epochs per round.
$TR "$U" prune M.onnx $ARGS --epochs 2 -o U.onnx >/dev/null 2>U.err
$TR "$U" prune M.onnx $ARGS --epochs 2 -o K.onnx >/dev/null 2>K1.err &
agent=$!
until [ -e K.run/round_01/train.ckpt ]; do sleep 0.2; done
for pid in $(pgrep -P "$agent"); do
  if tr '\0' '\n' <"/proc/$pid/environ" | grep -qx 'RANK=1'; then victim=$pid; fi
done
kill -9 "$victim" && echo "killed rank 1 (pid $victim) during round 1"
if wait "$agent"; then echo "torchrun unexpectedly succeeded"; exit 1; fi
echo "torchrun exited non-zero after the kill; round 1 checkpoint: $(ls K.run/round_01)"
$TR "$U" prune M.onnx $ARGS --epochs 2 -o K.onnx --resume >/dev/null 2>K2.err
cmp K.onnx U.onnx && echo "resumed run: K.onnx is byte-identical to the uninterrupted U.onnx"
