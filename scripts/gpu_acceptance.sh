#!/usr/bin/env bash
# One command that checks a GPU machine end to end (issue 19), in at most 8 minutes on one GPU:
#   1. the CUDA tests (tests/test_gpu_path.py, tests/test_sru_fused.py);
#   2. bench/train_step.py --device cuda --precision bf16 for the three models (SRU-NER and TabERT-CNN,
#      each timed against the baseline), with MiniLM and with a random BERT-large-shaped encoder;
#   3. bench/step_ops.py --device cuda (kernels per SRU-NER loop step, peak GPU memory);
#   4. a 300-step experiment=mt6_cpu trainer=gpu run of SRU-NER, validated at its last step (dev F1);
#   5. tagging throughput in bf16 (bench/predict_scale.py): that model and a 100-step baseline.
# Each part runs under its own `timeout`; a part that fails or times out is reported and the next one
# runs. Results go to bench/results/*-cuda.json, the summary to bench/results/gpu_acceptance-cuda.{json,md}
# (and, with $OUT set, everything is copied there too).
#
# On a machine with network and the project installed (`make setup`):
#   scripts/gpu_acceptance.sh
# On an offline GPU machine: pack what it lacks on a machine with network, copy the checkout over, then
#   ../shared/tools/device-pack && scripts/gpu_acceptance.sh --pack-pytest     # here
#   scripts/gpu_acceptance.sh                                                  # there (sources the pack)
# Check every command without a GPU (printed, scripts compiled, flags and config keys checked):
#   scripts/gpu_acceptance.sh --dry-run
#
# Environment: DATA_ROOT (default /tmp/corpora when the pack is set up, else ../shared/data or data/),
# ENCODER (default /tmp/minilm when the pack is set up, else the bundled MiniLM), PYTHON (python3).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  --pack-pytest)  # pytest and its pure-Python dependencies next to the device pack's wheels
    mkdir -p .device-pack/wheels
    python3 -m pip download -q --no-deps --only-binary=:all: -d .device-pack/wheels \
      pytest pluggy iniconfig packaging
    ls .device-pack/wheels | grep -E '^(pytest|pluggy|iniconfig|packaging)-'
    exit 0 ;;
  "") ;;
  *) echo "error: unknown option $1 (use --dry-run or --pack-pytest)" >&2; exit 2 ;;
esac

PYTHON=${PYTHON:-python3}
if [ "$DRY" = 0 ] && [ -f .device-pack/setup.sh ] && [ ! -d /tmp/site ]; then
  # shellcheck disable=SC1091
  source .device-pack/setup.sh
fi
if [ -z "${DATA_ROOT:-}" ]; then
  for candidate in /tmp/corpora ../shared/data data; do
    [ -d "$candidate/BC5CDR" ] && DATA_ROOT=$candidate && break
  done
  DATA_ROOT=${DATA_ROOT:-data}
fi
if [ -z "${ENCODER:-}" ]; then
  if [ -f /tmp/minilm/config.json ]; then ENCODER=/tmp/minilm; else ENCODER=bundled; fi
fi
ENCODER_ARG=()
ENCODER_KEY=()
if [ "$ENCODER" != bundled ]; then ENCODER_ARG=(--encoder "$ENCODER"); ENCODER_KEY=("encoder.name=$ENCODER"); fi
RUN_DIR=${RUN_DIR:-/tmp/gpu-acceptance-run}
STATUS=bench/results/gpu_acceptance-status.txt
mkdir -p bench/results
[ "$DRY" = 1 ] || : > "$STATUS"

# part NAME SECONDS COMMAND...: runs COMMAND under `timeout SECONDS`, records "NAME rc seconds"
part() {
  local name=$1 seconds=$2
  shift 2
  echo "== $name (timeout ${seconds}s): $*"
  if [ "$DRY" = 1 ]; then
    check "$@"
    return
  fi
  local started=$SECONDS
  timeout --kill-after=10 "$seconds" "$@"
  local rc=$?
  echo "$name $rc $((SECONDS - started))" >> "$STATUS"
  [ "$rc" = 0 ] || echo "!! $name: exit $rc$([ "$rc" = 124 ] && echo ' (timed out)')"
}

# the dry run's check of one command: scripts compile, flags exist, config overrides compose
check() {
  local script=${2:-}
  case "$script" in
    -m)  # python -m pytest FILES...: collected (imports and parametrisation) without running
      "$PYTHON" -m pytest --collect-only -q "${@:4}" > /dev/null || { echo "!! collection failed"; FAILED=1; } ;;
    train.py)
      "$PYTHON" - "${@:3}" <<'PY' || { echo "!! train.py overrides do not compose"; FAILED=1; }
import sys
from configs.compose import compose
from configs.validation import config_problems
overrides = [o for o in sys.argv[1:] if not o.startswith(("data.root=", "encoder.name="))]
problems = [p for p in config_problems(compose(overrides)) if "data.root" not in p]
if problems:
    sys.exit("; ".join(problems))
PY
      ;;
    *.py)
      "$PYTHON" -m py_compile "$script" || { echo "!! $script does not compile"; FAILED=1; }
      local help
      help=$("$PYTHON" "$script" --help 2>&1) || { echo "!! $script --help failed"; FAILED=1; }
      for arg in "${@:3}"; do
        if [[ $arg == --* ]] && ! grep -q -- "${arg%%=*}" <<< "$help"; then
          echo "!! $script has no option $arg"; FAILED=1
        fi
      done ;;
  esac
}

FAILED=0
if [ "$DRY" = 1 ]; then
  bash -n "$0" || FAILED=1
  echo "dry run: nothing runs on a GPU; DATA_ROOT=$DATA_ROOT ENCODER=$ENCODER"
else
  "$PYTHON" - <<'PY' || { echo "error: no CUDA device visible to torch" >&2; exit 2; }
import torch, sys
sys.exit(0 if torch.cuda.is_available() else 1)
PY
  "$PYTHON" -c "import pytest" 2>/dev/null || echo "!! pytest is missing: run scripts/gpu_acceptance.sh --pack-pytest where there is network"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi

part cuda_tests 75 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_gpu_path.py tests/test_sru_fused.py
for model in sru_ner tabert_cnn; do  # each run also times the baseline on the same batch
  part "train_step_${model}_minilm" 30 "$PYTHON" bench/train_step.py --data-root "$DATA_ROOT" \
    "${ENCODER_ARG[@]}" --device cuda --precision bf16 --model "$model"
  part "train_step_${model}_bert_large" 45 "$PYTHON" bench/train_step.py --data-root "$DATA_ROOT" \
    "${ENCODER_ARG[@]}" --device cuda --precision bf16 --model "$model" --shape bert-large --steps 10
done
part step_ops 30 "$PYTHON" bench/step_ops.py --device cuda
part mt6_run 165 "$PYTHON" train.py experiment=mt6_cpu trainer=gpu model=sru_ner "data.root=$DATA_ROOT" \
  "${ENCODER_KEY[@]}" logger=csv "run_dir=$RUN_DIR" trainer.max_steps=300 data.samples_per_epoch=4800 \
  test_after_fit=false
# tagging throughput in bf16 (issue 30): the SRU-NER run above and a short baseline run, 10x 200 abstracts
part baseline_run 90 "$PYTHON" train.py experiment=mt6_cpu trainer=gpu model=baseline "data.root=$DATA_ROOT" \
  "${ENCODER_KEY[@]}" logger=csv "run_dir=$RUN_DIR-baseline" trainer.max_steps=100 data.samples_per_epoch=1600 \
  test_after_fit=false
for model in sru_ner baseline; do
  run_dir=$RUN_DIR; [ "$model" = baseline ] && run_dir=$RUN_DIR-baseline
  part "predict_${model}" 60 "$PYTHON" bench/predict_scale.py --model "$run_dir/checkpoints/best.ckpt" \
    --device cuda --documents 200 --chunk-documents 2000 --processes 1 --tag "$model"
done

if [ "$DRY" = 1 ]; then
  "$PYTHON" -m py_compile scripts/gpu_acceptance_summary.py || FAILED=1
  [ "$FAILED" = 0 ] && echo "dry run: every command checked" || echo "dry run: problems above"
  exit "$FAILED"
fi
"$PYTHON" scripts/gpu_acceptance_summary.py --status "$STATUS" --run-dir "$RUN_DIR"
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/bench/results" "$OUT/docs"
  cp bench/results/*-cuda.json bench/results/gpu_acceptance-* "$OUT/bench/results/" 2>/dev/null
  cp docs/benchmarks.md "$OUT/docs/" 2>/dev/null
  cp "$RUN_DIR"/metrics.csv "$OUT/" 2>/dev/null
fi
! grep -qv ' 0 [0-9]*$' "$STATUS"  # non-zero when a part failed
