#!/usr/bin/env bash
# Benchmark package infer against ONNX Runtime (CPU, onnxruntime-node via
# tools/ortref/run.js) on the test models at batch 1 and 256, with 1 and 2
# threads on both sides; prints markdown tables (see README.md).
#
#   bench/infer/run.sh                          # everything (~3 min on 2 cores)
#   bench/infer/run.sh -models cnn_bn -batches 256 -threads 1
#   bench/infer/run.sh -opt all                 # skip the "disabled" column
#   bench/infer/run.sh -breakdown -models resnet   # our time per node
#   bench/infer/run.sh -hash > before.txt       # bit-identity check of a change
#
# Needs `node` and `cd tools/ortref && npm ci --ignore-scripts` (not for
# -breakdown, -hash or -opt ''). On a shared machine, look at the load
# averages printed before and after, and prefer the CPU-time table when they
# are high.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/inferbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && ${GO:-go} build -o "$tmp/inferbench" ./bench/infer)
echo "# uptime: $(uptime)"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) online; flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o 'avx512f\|avx2\|fma' | sort -u | tr '\n' ' ')"
cd "$root"
"$tmp/inferbench" -root "$root" "$@"
echo "# uptime after: $(uptime)"
