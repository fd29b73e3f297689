#!/usr/bin/env bash
# Merge quality of every trained Fashion-MNIST pair in testmodels/, per method:
# midpoint (λ = ½) test accuracy and loss barrier, naive and aligned, and the
# numpy port of the paper's weight matching (bench/wm/wm.py) beside ours.
#
#   bench/quality/run.sh            from the repository root (or anywhere)
#
# Environment:
#   STEPS=5          points on each interpolation path (endpoints included)
#   SEED=0           seed of both weight matchings (their visiting orders differ)
#   QUALITY_SLICE=1  test on the committed 1,000-image slice even when Debian's
#                    dataset-fashion-mnist (the full 10,000-image t10k set) is installed
#
# Activation matching, BN reset and REPAIR use testmodels/fashion_train_x.npy
# (1,000 training images), never the test images. Accuracy and loss come from
# the built-in interpreter (`onnx-rebasin barrier` and `eval`). Needs Go,
# /usr/bin/python3 with numpy and onnx (scipy optional, see wm.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${STEPS:-5}
seed=${SEED:-0}
PY=/usr/bin/python3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/onnx-rebasin" ./cmd/onnx-rebasin
bin=$out/onnx-rebasin
T=testmodels
fit=$T/fashion_train_x.npy
. bench/quality/testset.sh

echo "| pair | endpoints (mean) | method | midpoint accuracy | loss barrier | numpy port WM midpoint |"
echo "|---|---|---|---|---|---|"
for pair in mlp mlp32 cnn_bn cnn_fold resnet transformer; do
	a=$T/${pair}_s0.onnx b=$T/${pair}_s1.onnx
	bn=()
	case $pair in cnn_bn | resnet) bn=(--reset-bn "$fit") ;; esac
	common=("$a" "$b" --data "$test_x" --labels "$test_y" --steps "$steps" --seed "$seed" --json -q)
	"$bin" barrier "${common[@]}" --method weight --repair "$fit" ${bn[@]+"${bn[@]}"} >"$out/weight.json" 2>"$out/err" || { cat "$out/err" >&2; exit 1; }
	"$bin" barrier "${common[@]}" --method activation --align-data "$fit" --repair "$fit" >"$out/activation.json" 2>"$out/err" || { cat "$out/err" >&2; exit 1; }
	"$bin" barrier "${common[@]}" --method hybrid --align-data "$fit" --repair "$fit" >"$out/hybrid.json" 2>"$out/err" || { cat "$out/err" >&2; exit 1; }
	ref=- refReset=-
	case $pair in
	transformer) ;; # no spec in wm.py (attention)
	*)
		$PY bench/wm/wm.py "$a" "$b" --seed "$seed" --merge-out "$out/ref.onnx" >/dev/null
		ref=$(accuracy "$out/ref.onnx")
		if [ ${#bn[@]} -gt 0 ]; then
			# the numpy port's midpoint with its BatchNorm statistics reset by the same code as ours
			"$bin" merge -q "$out/ref.onnx" "$out/ref.onnx" --no-align --reset-bn "$fit" -o "$out/ref_reset.onnx"
			refReset=$(accuracy "$out/ref_reset.onnx")
		fi
		;;
	esac
	$PY - "$pair" "$out" "$ref" "$refReset" <<'PY'
import json, sys
pair, out, ref, ref_reset = sys.argv[1:]
docs = {m: json.load(open(f"{out}/{m}.json")) for m in ("weight", "activation", "hybrid")}
def row(method, doc, name, numpy="—"):
    for p in doc["paths"]:
        if p["name"] == name:
            acc = p["accuracy"]
            ends = f'{acc[0]:.3f} / {acc[-1]:.3f} ({(acc[0] + acc[-1]) / 2:.3f})'
            numpy = numpy if numpy == "—" else f"{float(numpy):.3f}"
            print(f'| {pair} | {ends} | {method} | {acc[len(acc) // 2]:.3f} | {p["barrier"]:.3f} | {numpy} |')
row("naive", docs["weight"], "naive")
row("weight", docs["weight"], "aligned (weight)", ref if ref != "-" else "—")
row("weight + BN reset", docs["weight"], "aligned + BN reset", ref_reset if ref_reset != "-" else "—")
row("weight + REPAIR", docs["weight"], "aligned + REPAIR")
row("activation", docs["activation"], "aligned (activation)")
row("activation + REPAIR", docs["activation"], "aligned + REPAIR")
row("hybrid", docs["hybrid"], "aligned (hybrid)")
row("hybrid + REPAIR", docs["hybrid"], "aligned + REPAIR")
PY
done
echo
echo "Test data: $test_name. Midpoint = λ ½; loss barrier = max over $steps points of L(λ) − ½(L(0) + L(1)),"
echo "test cross-entropy. Activation/hybrid matching, BN reset and REPAIR fit on $fit. Seed $seed."
echo "numpy port: bench/wm/wm.py (the paper's weight matching, trainable parameters scored; its midpoint"
echo "written by --merge-out), on the weight + BN reset row with its statistics reset by \`merge --no-align --reset-bn\`."
