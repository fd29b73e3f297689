#!/usr/bin/env bash
# Do two builds write the same bytes? Runs activation and hybrid alignment on
# every trained test pair (testmodels/fashion_train_x.npy), on cnn_bn and
# resnet at 500, 2,000 and 8,000 images (bench/data/out, from make_data.py),
# and merges with REPAIR and with a BN reset, with each build, and cmp's the
# outputs; R50=1 adds activation matching of the ResNet-50 pair at 64 images
# (about a minute per build).
#
#   bench/data/compare.sh /path/old/onnx-rebasin /path/new/onnx-rebasin
#
# Prints each case that differs and "N cases, M differ"; exits 1 if any do.
set -euo pipefail
old=$1 new=$2
cd "$(dirname "$0")/../.."
T=testmodels D=bench/data/out
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 bad=0
check() {
	"$old" "$@" -o "$tmp/old.onnx" -q
	"$new" "$@" -o "$tmp/new.onnx" -q
	n=$((n + 1))
	if ! cmp -s "$tmp/old.onnx" "$tmp/new.onnx"; then
		bad=$((bad + 1))
		echo "differ: $*"
	fi
}
for p in mlp mlp32 cnn_bn cnn_fold resnet transformer; do
	for m in activation hybrid; do
		check align $T/${p}_s0.onnx $T/${p}_s1.onnx --method $m --data $T/fashion_train_x.npy
	done
done
for p in cnn_bn resnet; do
	for s in 500 2000 8000; do
		for m in activation hybrid; do
			check align $T/${p}_s0.onnx $T/${p}_s1.onnx --method $m --data $D/fashion_$s.npy
		done
	done
	check merge $T/${p}_s0.onnx $T/${p}_s1.onnx --method activation --data $T/fashion_train_x.npy --repair $T/fashion_train_x.npy
	check merge $T/${p}_s0.onnx $T/${p}_s1.onnx --reset-bn $T/fashion_train_x.npy
done
if [ "${R50:-0}" = 1 ]; then
	check align $D/resnet50_s0.onnx $D/resnet50_s1.onnx --method activation --data $D/images224_64.npy --batch 32
fi
echo "$n cases, $bad differ"
[ "$bad" = 0 ]
