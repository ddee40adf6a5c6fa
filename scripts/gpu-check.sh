#!/usr/bin/env bash
# The GPU check in one call: self-test, kernel throughput, model step timings, the shortcuts report, and the same
# models in PyTorch, all written under one output folder.
#
#   scripts/gpu-check.sh OUT_DIR [DEVICE]          DEVICE defaults to cuda
#   scripts/gpu-check.sh OUT_DIR cpu --dry         a fast rehearsal on a machine without a GPU
#
# Needs the build archive .gpu/engine.tar.gz (scripts/gpu-publish.sh makes it; it is unpacked into a
# temporary folder for the run) and, for the PyTorch side, python3 with torch. Every step has its own time limit so
# one slow step cannot eat the whole budget: the limits add up to 530 s, inside a device call's 10 minutes with the
# unpacking and the packing of the results. A dry run on the CPU backend (`cpu --dry`) rehearses every step in about
# a minute.
set -uo pipefail
out=${1:?usage: gpu-check.sh OUT_DIR [DEVICE] [--dry]}
device=${2:-cuda}
dry=${3:-}
here=$(cd "$(dirname "$0")/.." && pwd)
archive="$here/.gpu/engine.tar.gz"
mkdir -p "$out"
exec > >(tee -a "$out/gpu-check.log") 2>&1
if [ ! -f "$archive" ]; then
  echo "error: $archive not found: make it first with scripts/gpu-publish.sh (docs/gpu.md)."
  exit 2
fi
apps=$(mktemp -d)
trap 'rm -rf "$apps"' EXIT
tar -C "$apps" -xzf "$archive" || exit 2
bin="$apps/engine/Engine.Bench"    # the CLI
tests="$apps/engine/Engine.Tests"  # the test suite's runner

step() { # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s): $*"
  local start=$(date +%s%N)
  timeout -k 10 "$limit" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  local ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "=== $name: exit $rc in $((ms / 1000)).$(printf %03d $((ms % 1000))) s"
  tail -n 5 "$out/$name.txt"
  echo "$name,$rc" >> "$out/steps.csv"
}

echo "name,exit" > "$out/steps.csv"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$out/gpu.csv" 2>&1 || true
cat "$out/gpu.csv"

# The self-test runs as parallel parts, each its own process: a CUDA context is dead after its first illegal
# address, so one part's failure cannot hide the others' results, and the whole suite should fit the step's limit
# (on an H200 about 140 s of tests one after another, the networks' part the longest at about 55 s).
if [ "$dry" = "--dry" ]; then
  cifar_batch=8; r50_batch=1; iters=2; size=small
  selftest_parts=('Linear|Layer|Convolution')
else
  cifar_batch=128; r50_batch=32; iters=20; size=large
  selftest_parts=('^Engine\.Tests\.(Core|Distributed|Kernels|Onnx)\.' '^Engine\.Tests\.Models\.'
    '^(?!Engine\.Tests\.(Core|Distributed|Kernels|Onnx|Models)\.)')
fi

selftest() { # selftest SECONDS: every part at once, each under the limit; exit 1 when any part failed or stopped
  local limit=$1 pids=() part=0 rc=0 filter code start=$(date +%s)
  rm -f "$out"/selftest-*.txt
  for filter in "${selftest_parts[@]}"; do
    part=$((part + 1))
    timeout -k 10 "$limit" "$tests" --device "$device" --filter "$filter" > "$out/selftest-$part.txt" 2>&1 &
    pids+=($!)
  done
  part=0
  for pid in "${pids[@]}"; do
    part=$((part + 1))
    wait "$pid"
    code=$?
    [ "$code" -eq 0 ] || rc=1
    echo "selftest-$part,$code" >> "$out/steps.csv"
    echo "part $part (${selftest_parts[part - 1]}): exit $code, $(grep '^selftest ' "$out/selftest-$part.txt")"
  done
  echo "all parts done in $(($(date +%s) - start)) s"
  grep -h '^FAIL' "$out"/selftest-*.txt | head -n 20
  return $rc
}

echo "=== selftest (limit 100s, ${#selftest_parts[@]} parts at once)"
selftest 100 > "$out/selftest.txt" 2>&1
selftest_exit=$?
cat "$out/selftest.txt"
echo "selftest,$selftest_exit" >> "$out/steps.csv"
step kernels 160 "$bin" kernels --device "$device" --size "$size"
step conv-shapes 50 "$bin" kernels --conv-shapes resnet50 --batch "$r50_batch" --iters 10 --device "$device"
for mode in infer train; do
  step "resnet20-a-$mode" 20 "$bin" step --model resnet20-a --batch "$cifar_batch" --mode "$mode" --iters "$iters" --device "$device"
  step "resnet50-$mode" 30 "$bin" step --model resnet50 --batch "$r50_batch" --mode "$mode" --iters "$iters" --device "$device"
done
step shortcuts 50 "$bin" shortcuts --device "$device" --iters "$iters" --warmup 1 --out "$out/shortcuts" \
  $( [ "$dry" = "--dry" ] && echo "--cifar-batch 4 --block-batch 1 --imagenet-batch 0" )
if python3 -c "import torch" 2>/dev/null; then
  step torch-fp32 35 python3 "$here/scripts/torch_bench.py" --tf32 off --cifar-batch "$cifar_batch" --r50-batch "$r50_batch" --iters "$iters"
  step torch-default 35 python3 "$here/scripts/torch_bench.py" --tf32 default --cifar-batch "$cifar_batch" --r50-batch "$r50_batch" --iters "$iters"
else
  echo "python3 with torch not found: PyTorch side skipped" | tee "$out/torch-skipped.txt"
fi
echo "=== done; results in $out"
cat "$out/steps.csv"
