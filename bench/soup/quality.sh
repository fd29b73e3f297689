#!/bin/sh
# Quality table of the soup methods on testmodels/soup (see README.md).
# Usage (from the repository root): sh bench/soup/quality.sh [path/to/onnx-rebasin]
set -e
BIN=${1:-/tmp/onnx-rebasin-soup}
[ -n "$1" ] || go build -o "$BIN" ./cmd/onnx-rebasin
T=testmodels
S=$T/soup
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for m in base ft0 ft1 ft2 ft3 task_shift task_noise; do cp $S/$m.onnx "$W/"; done
acc() { # model data -> accuracy
	"$BIN" eval "$1" --data "$2" --labels $T/fashion_test_y.npy 2>/dev/null | awk '/accuracy/ {print $2}'
}
row() { # label model
	printf '| %s | %s | %s | %s |\n' "$1" "$(acc "$2" $T/fashion_test_x.npy)" "$(acc "$2" $S/shift_test_x.npy)" "$(acc "$2" $S/noise_test_x.npy)"
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
