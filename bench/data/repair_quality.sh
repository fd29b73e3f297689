#!/usr/bin/env bash
# Test accuracy and loss of the models that bench/data/run.sh merged with
# --repair (and --reset-bn), per build: REPAIR's single pass against the
# former pass per layer, on the Fashion-MNIST test set that make_data.py wrote
# (the full 10,000 images when Debian's dataset-fashion-mnist is installed).
#
#   bench/data/repair_quality.sh [OUT]      OUT: run.sh's output folder (default bench/data/out/run)
#
# Environment: ONNX_REBASIN=/path/to/binary (default: built from this tree).
set -euo pipefail
shopt -s nullglob
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
data=bench/data/out
out=${1:-$data/run}
bin=${ONNX_REBASIN:-}
if [ -z "$bin" ]; then
	bin=$(mktemp -d)/onnx-rebasin
	go build -o "$bin" ./cmd/onnx-rebasin
fi
echo "| merged model | test accuracy | test loss |"
echo "|---|---:|---:|"
for f in "$out"/*_repair.*.onnx "$out"/*_resetbn.*.onnx; do
	case ${f##*/} in resnet50_*) continue ;; esac # random-init: no labels to score
	"$bin" eval "$f" --data $data/fashion_test_x.npy --labels $data/fashion_test_y.npy --json -q |
		/usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print("| %s | %.4f | %.5f |" % (sys.argv[1], r["accuracy"], r["loss"]))' "${f##*/}"
done
