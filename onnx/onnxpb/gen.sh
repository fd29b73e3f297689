#!/usr/bin/env bash
# Regenerates onnx-ml.pb.go from onnx-ml.proto. Run through `go generate ./onnx/onnxpb`.
#
# Pinned tools: protoc 3.21.12 (Debian bookworm package protobuf-compiler) and
# protoc-gen-go v1.36.12 (the google.golang.org/protobuf version in go.mod).
# onnx-ml.proto is Debian libonnx-dev's /usr/include/onnx/onnx.proto (ONNX 1.12,
# the proto2 onnx-ml flavour) with the proto package renamed to onnxrebasin.onnx,
# a go_package option added and the LITE_RUNTIME option dropped; `./gen.sh --refresh`
# redoes that edit from the installed header first.
set -euo pipefail
cd "$(dirname "$0")"
want_protoc="libprotoc 3.21.12"
want_gen="v1.36.12"
if [ "${1:-}" = "--refresh" ]; then
	sed -e 's/^package onnx;/package onnxrebasin.onnx;\n\noption go_package = "github.com\/onnx-rebasin\/onnx-rebasin\/onnx\/onnxpb";/' \
		-e '/^option optimize_for = LITE_RUNTIME;/d' /usr/include/onnx/onnx.proto >onnx-ml.proto
fi
have=$(protoc --version 2>/dev/null || true)
if [ "$have" != "$want_protoc" ]; then
	echo "gen.sh: need $want_protoc (apt-get install protobuf-compiler on Debian bookworm), have '${have:-none}'" >&2
	exit 1
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$want_gen"
protoc --plugin=protoc-gen-go="$bin/protoc-gen-go" --go_out=. --go_opt=paths=source_relative onnx-ml.proto
