#!/usr/bin/env bash
# Loss barriers of every trained Fashion-MNIST pair: naive, weight matching,
# activation matching, weight matching + BN reset, weight matching + REPAIR.
# Usage: bench/barrier/run.sh [steps]   (from the repository root)
# Test loss on testmodels/fashion_test_x.npy; activation matching, BN reset
# and REPAIR use the separate training slice testmodels/fashion_train_x.npy.
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-11}
out=$(mktemp -d)
go build -o "$out/onnx-rebasin" ./cmd/onnx-rebasin
T=testmodels
echo "| pair | naive | weight matching | activation matching | WM + BN reset | AM + BN reset | WM + REPAIR |"
echo "|---|---|---|---|---|---|---|"
for pair in mlp mlp32 cnn_bn cnn_fold resnet transformer; do
	train="$T/fashion_train_x.npy"
	common=("$T/${pair}_s0.onnx" "$T/${pair}_s1.onnx" --data "$T/fashion_test_x.npy" --labels "$T/fashion_test_y.npy"
		--steps "$steps" --json -q)
	bn=()
	case $pair in cnn_bn | resnet) bn=(--reset-bn "$train") ;; esac
	"$out/onnx-rebasin" barrier "${common[@]}" --repair "$train" "${bn[@]+"${bn[@]}"}" --method weight >"$out/w.json"
	"$out/onnx-rebasin" barrier "${common[@]}" --align-data "$train" "${bn[@]+"${bn[@]}"}" --method activation >"$out/a.json"
	/usr/bin/python3 - "$pair" "$out/w.json" "$out/a.json" <<'PY'
import json, sys
pair, w, a = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
def get(doc, prefix):
    for p in doc["paths"]:
        if p["name"].startswith(prefix):
            mid = p["accuracy"][len(p["accuracy"]) // 2]
            return f'{p["barrier"]:.3f} ({100*mid:.1f}%)'
    return "n/a (no BatchNorm)"
def rep(doc):
    return get(doc, "aligned + REPAIR").replace("no BatchNorm", "no layer to repair")
print(f'| {pair} | {get(w, "naive")} | {get(w, "aligned (weight)")} | {get(a, "aligned (activation)")} | {get(w, "aligned + BN reset")} | {get(a, "aligned + BN reset")} | {rep(w)} |')
PY
done
echo
echo "Each cell: loss barrier max_λ L(λ) − ½(L(0)+L(1)) over $steps points (midpoint test accuracy)."
rm -rf "$out"
