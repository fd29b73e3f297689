#!/bin/sh
# Peak memory of streamed soup builds on large external-data models (see README.md).
# Usage (from the repository root): sh bench/soup/memory.sh DIR
# Writes 8 float32 models of 1 GiB and 4 float16 models of 512 MiB under DIR (12 GiB),
# then times soup builds with /usr/bin/time -v. Takes 10-20 minutes on 2 shared cores.
set -e
DIR=${1:?usage: memory.sh DIR}
BIN=$DIR/onnx-rebasin
go build -o "$BIN" -ldflags "-X main.version=$(git rev-parse --short HEAD)" ./cmd/onnx-rebasin
[ -f "$DIR/f32/ft7.onnx" ] || nice -n 10 /usr/bin/python3 bench/soup/make_large.py "$DIR/f32" --models 8
[ -f "$DIR/f16/ft3.onnx" ] || nice -n 10 /usr/bin/python3 bench/soup/make_large.py "$DIR/f16" --models 4 --dtype float16
FT7='models: [{model: ft1.onnx}, {model: ft2.onnx}, {model: ft3.onnx}, {model: ft4.onnx}, {model: ft5.onnx}, {model: ft6.onnx}, {model: ft7.onnx}]'
FT3='models: [{model: ft1.onnx}, {model: ft2.onnx}, {model: ft3.onnx}]'
printf 'merge_method: linear\nmodels: [{model: base.onnx}, {model: ft1.onnx}, {model: ft2.onnx}, {model: ft3.onnx}, {model: ft4.onnx}, {model: ft5.onnx}, {model: ft6.onnx}, {model: ft7.onnx}]\n' > "$DIR/f32/linear.yaml"
printf "merge_method: task_arithmetic\nbase_model: base.onnx\n$FT7\nparameters: {lambda: 0.5}\n" > "$DIR/f32/task_arithmetic.yaml"
printf "merge_method: task_arithmetic\nbase_model: base.onnx\nmodels: [{model: ft1.onnx}]\nparameters: {lambda: 0.5}\n" > "$DIR/f32/ta2.yaml"
printf "merge_method: ties\nbase_model: base.onnx\n$FT7\nparameters: {density: 0.5}\n" > "$DIR/f32/ties.yaml"
printf "merge_method: task_arithmetic\nbase_model: base.onnx\n$FT3\nparameters: {lambda: 0.5}\n" > "$DIR/f16/task_arithmetic.yaml"
printf "merge_method: model_stock\nbase_model: base.onnx\n$FT3\n" > "$DIR/f16/model_stock.yaml"
printf "merge_method: slerp\nbase_model: base.onnx\nmodels: [{model: ft1.onnx}]\nparameters: {t: 0.3}\n" > "$DIR/f16/slerp.yaml"
for r in f32/linear f32/task_arithmetic f32/ta2 f32/ties f16/task_arithmetic f16/model_stock f16/slerp; do
	nice -n 10 /usr/bin/time -v "$BIN" soup "$DIR/$r.yaml" -o "$DIR/out.onnx" -q 2> "$DIR/time.txt"
	printf '%s: ' "$r"
	awk -F': ' '/Maximum resident/ {rss=$2} /Elapsed/ {el=$2} /User time/ {u=$2} /System time/ {s=$2} END {printf "peak RSS %d MiB, wall %s, user %ss, sys %ss\n", rss/1024, el, u, s}' "$DIR/time.txt"
	rm -f "$DIR/out.onnx" "$DIR"/out.onnx.*.data
done
