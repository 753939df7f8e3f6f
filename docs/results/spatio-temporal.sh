#!/usr/bin/env bash
# Reproduce docs/results/spatio-temporal.md: train, shrink (spatio-temporal pruning), prune with
# LTH / u-Ticket (14 rounds), map + run every model on 16 PEs, then generate the markdown.
# Usage: docs/results/spatio-temporal.sh RUNS_DIR [MODEL...]   (MODEL: vgg_small, vgg16_w025)
# Every step is skipped when its output exists (shrink and prune also resume their run dirs).
set -euo pipefail
UTI=${UTI:-.venv/bin/uticompile}
PY=${PY:-.venv/bin/python}
R=${1:?RUNS_DIR}
shift
MODELS=("${@:-vgg_small}")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DS=(--dataset digits)

step() { # step OUTPUT CMD...: run CMD unless OUTPUT exists (stdout discarded)
  local out=$1
  shift
  [[ -e $out ]] || "$@" > /dev/null
}
json_step() { # json_step OUTPUT CMD...: run CMD unless OUTPUT exists, its stdout into OUTPUT
  local out=$1
  shift
  [[ -e $out ]] || { "$@" > "$out.tmp" && mv "$out.tmp" "$out"; }
}

for m in "${MODELS[@]}"; do
  case $m in
    vgg_small) train=(--model vgg_small --epochs 10) epochs=10 sched=4,3,2,1 prune=yes TAUS=0.95 ;;
    # VGG-16 trains ~0.5-2.5 min/epoch here (2 shared cores): fewer stages.
    vgg16_w025) train=(--model vgg16 --width 0.25 --epochs 5) epochs=5 sched=4,2,1 prune=yes TAUS= ;;
    *) echo "unknown model $m" >&2; exit 2 ;;
  esac
  step "$R/$m.onnx" "$UTI" train "${train[@]}" "${DS[@]}" -o "$R/$m.onnx"
  json_step "$R/$m.shrunk.json" "$UTI" shrink "$R/$m.onnx" "${DS[@]}" -o "$R/$m.shrunk.onnx" \
    --variance 0.999 --timesteps "$sched" --max-drop 1.0 --epochs "$epochs" \
    --max-stage-epochs "$epochs" \
    --samples 256 --run-samples 100 --resume --json
  # The spatial pass alone at lower cutoffs (the paper's own cutoff is not known).
  for tau in ${TAUS:-}; do
    json_step "$R/$m.spatial-$tau.json" "$UTI" shrink "$R/$m.onnx" "${DS[@]}" \
      -o "$R/$m.spatial-$tau.onnx" --variance "$tau" --epochs "$epochs" --samples 256 \
      --run-samples 100 --resume --json
  done
  [[ $prune == yes ]] || continue
  for v in lth uticket st_uticket; do
    src=$R/$m.onnx balance=uticket
    [[ $v == lth ]] && balance=none
    [[ $v == st_uticket ]] && src=$R/$m.shrunk.onnx
    step "$R/$m.$v.onnx" "$UTI" prune "$src" "${DS[@]}" -o "$R/$m.$v.onnx" --balance $balance \
      --rounds 14 --epochs "${PRUNE_EPOCHS:-1}" --dense-epochs 0 --resume --json
    step "$R/$m.$v.map" "$UTI" map "$R/$m.$v.onnx" "${DS[@]}" --pes 16 --placement contiguous \
      -o "$R/$m.$v.map"
    json_step "$R/$m.$v.cost.json" "$UTI" run "$R/$m.$v.map" "${DS[@]}" --samples 100 --json
    # and at (about) equal accuracy: the last round within 1 point of round 0
    kept=$("$PY" docs/results/spatio_temporal.py --kept-round "$R/$m.$v.run")
    step "$R/$m.$v-kept.map" "$UTI" map "$kept" "${DS[@]}" --pes 16 \
      --placement contiguous -o "$R/$m.$v-kept.map"
    json_step "$R/$m.$v-kept.cost.json" "$UTI" run "$R/$m.$v-kept.map" "${DS[@]}" --samples 100 \
      --json
  done
done
"$PY" docs/results/spatio_temporal.py "$R" "${MODELS[@]}" -o docs/results/spatio-temporal.md
