#!/usr/bin/env bash
# Weight matching alone, seed by seed: the midpoint (λ = ½) test accuracy of
# `merge --seed N` with each start and number of restarts, and of the numpy port of the
# paper's weight matching (bench/wm/wm.py --seed N --merge-out), then the
# mean and its standard error per column. The visiting orders of the two
# tools differ for the same seed, so only the means compare.
#
#   bench/quality/seeds.sh                       cnn_bn, seeds 0-31, restarts 0 and 3, the port
#   PAIR=mlp32 SEEDS="$(seq 0 63)" PORT=0 bench/quality/seeds.sh
#   PAIR=resnet STARTS="signature identity" RESTARTS="0 1" PORT=0 \
#       MERGE_FLAGS="--reset-bn testmodels/fashion_train_x.npy" bench/quality/seeds.sh
#
# Environment:
#   PAIR=cnn_bn          testmodels/<PAIR>_s0.onnx and _s1.onnx
#   SEEDS="0 1 ... 31"   seeds to run
#   STARTS="auto"        --start values; one column per start and restarts value
#   RESTARTS="0 3"       --restarts values
#   MERGE_FLAGS=""       more flags for every `merge` (e.g. --reset-bn FILE); the port's
#                        midpoint gets them too (merged with itself, --no-align)
#   PORT=1               also run the numpy port (needs /usr/bin/python3 with numpy, onnx)
#   QUALITY_SLICE=1      the committed 1,000-image test slice instead of the full test set
#
# About 1 s per seed and column for ours and 5–10 s for the port on cnn_bn.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=/usr/bin/python3
T=testmodels
pair=${PAIR:-cnn_bn}
seeds=${SEEDS:-$(seq 0 31)}
restarts=${RESTARTS:-0 3}
starts=${STARTS:-auto}
port=${PORT:-1}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/onnx-rebasin" ./cmd/onnx-rebasin
bin=$out/onnx-rebasin
. bench/quality/testset.sh
a=$T/${pair}_s0.onnx b=$T/${pair}_s1.onnx

header="| seed |" rule="|---|"
for st in $starts; do
	for r in $restarts; do
		label="ours,"
		[ "$st" = signature ] || label="$label --start $st"
		header="$header $label --restarts $r |" rule="$rule---|"
	done
done
[ "$port" = 1 ] && header="$header numpy port |" rule="$rule---|"
echo "$header"
echo "$rule"
for s in $seeds; do
	row="| $s |"
	for st in $starts; do
		for r in $restarts; do
			# shellcheck disable=SC2086 # MERGE_FLAGS is a list of flags
			"$bin" merge -q "$a" "$b" --seed "$s" --start "$st" --restarts "$r" ${MERGE_FLAGS:-} -o "$out/mid.onnx"
			row="$row $(printf %.4f "$(accuracy "$out/mid.onnx")") |"
		done
	done
	if [ "$port" = 1 ]; then
		$PY bench/wm/wm.py "$a" "$b" --seed "$s" --merge-out "$out/port.onnx" >/dev/null
		if [ -n "${MERGE_FLAGS:-}" ]; then
			# The same after-steps for the port's midpoint (e.g. its BatchNorm
			# statistics reset): merged with itself, without alignment.
			# shellcheck disable=SC2086
			"$bin" merge -q "$out/port.onnx" "$out/port.onnx" --no-align ${MERGE_FLAGS} -o "$out/port_after.onnx"
			mv "$out/port_after.onnx" "$out/port.onnx"
		fi
		row="$row $(printf %.4f "$(accuracy "$out/port.onnx")") |"
	fi
	echo "$row"
done | tee "$out/rows"
$PY - "$out/rows" <<'PY'
import math, sys
rows = [[float(v) for v in line.strip().strip("|").split("|")[1:]] for line in open(sys.argv[1])]
cols = list(zip(*rows))
def mean_se(x):
    m = sum(x) / len(x)
    se = math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1) / len(x)) if len(x) > 1 else float("nan")
    return f"{m:.4f} ± {se:.4f}"
print("| mean ± s.e. |" + "|".join(f" {mean_se(c)} " for c in cols) + "|")
PY
echo
echo "Test data: $test_name. $pair, seeds $(echo $seeds | awk '{print $1 "–" $NF}') ($(echo $seeds | wc -w) seeds)${MERGE_FLAGS:+, merge $MERGE_FLAGS}."
