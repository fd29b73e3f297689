#!/bin/sh
# Quality table of the soup methods on testmodels/soup (see README.md).
# Usage (from the repository root): sh bench/soup/quality.sh [FULL_DIR]
# Scores the first 1000 test images of each task (committed), or with FULL_DIR the
# full 10k test sets that bench/soup/full_tests.py FULL_DIR writes.
set -e
BIN=/tmp/onnx-rebasin-soup
go build -o "$BIN" ./cmd/onnx-rebasin
T=testmodels
S=$T/soup
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for m in base ft0 ft1 ft2 ft3 task_shift task_noise; do cp $S/$m.onnx "$W/"; done
CLEAN=$T/fashion_test_x.npy SHIFT=$S/shift_test_x.npy NOISE=$S/noise_test_x.npy Y=$T/fashion_test_y.npy
if [ -n "$1" ]; then
	CLEAN=$1/clean_x.npy SHIFT=$1/shift_x.npy NOISE=$1/noise_x.npy Y=$1/y.npy
fi
acc() { # model data -> accuracy
	"$BIN" eval "$1" --data "$2" --labels "$Y" 2>/dev/null | awk '/accuracy/ {print $2}'
}
row() { # label model
	printf '| %s | %s | %s | %s |\n' "$1" "$(acc "$2" "$CLEAN")" "$(acc "$2" "$SHIFT")" "$(acc "$2" "$NOISE")"
}
cat > "$W/uniform.yaml" <<R
merge_method: linear
models: [{model: ft0.onnx}, {model: ft1.onnx}, {model: ft2.onnx}, {model: ft3.onnx}]
R
cat > "$W/greedy.yaml" <<R
merge_method: greedy
models: [{model: ft0.onnx}, {model: ft1.onnx}, {model: ft2.onnx}, {model: ft3.onnx}]
eval: {data: $PWD/$T/fashion_train_x.npy, labels: $PWD/$T/fashion_train_y.npy}
R
cat > "$W/model_stock.yaml" <<R
merge_method: model_stock
base_model: base.onnx
models: [{model: ft0.onnx}, {model: ft1.onnx}, {model: ft2.onnx}, {model: ft3.onnx}]
R
TASKS="base_model: base.onnx
models: [{model: task_shift.onnx, parameters: {weight: 1}}, {model: task_noise.onnx, parameters: {weight: 1}}]"
printf '%s\nmerge_method: task_arithmetic\nparameters: {lambda: 0.7}\n' "$TASKS" > "$W/task_arithmetic.yaml"
printf '%s\nmerge_method: ties\nparameters: {density: 0.5, lambda: 1.4}\n' "$TASKS" > "$W/ties.yaml"
printf '%s\nmerge_method: dare_linear\nparameters: {density: 0.5, lambda: 0.7}\nseed: 1\n' "$TASKS" > "$W/dare_linear.yaml"
printf '%s\nmerge_method: dare_ties\nparameters: {density: 0.5, lambda: 0.7}\nseed: 1\n' "$TASKS" > "$W/dare_ties.yaml"
printf 'merge_method: slerp\nbase_model: task_shift.onnx\nmodels: [{model: task_shift.onnx}, {model: task_noise.onnx}]\nparameters: {t: 0.5}\n' > "$W/slerp.yaml"
echo '| model | clean | shift | noise |'
echo '|---|---|---|---|'
for m in base ft0 ft1 ft2 ft3 task_shift task_noise; do row "$m" "$W/$m.onnx"; done
for r in uniform greedy model_stock task_arithmetic ties dare_linear dare_ties slerp; do
	"$BIN" soup "$W/$r.yaml" -o "$W/$r.soup.onnx" -q > "$W/$r.out"
	row "$r" "$W/$r.soup.onnx"
done
echo
echo 'greedy soup (held-out: testmodels/fashion_train_x.npy, never trained on):'
echo
cat "$W/greedy.out"
