# onnx-rebasin: `make test` runs every test; `make demo` builds and runs the main job.
GO ?= go

.PHONY: test demo build ortref vet unit race arm64 fuzz

build:
	$(GO) build -o bin/onnx-rebasin ./cmd/onnx-rebasin

demo: build
	./bin/onnx-rebasin align testmodels/mlp_s0.onnx testmodels/mlp_s1.onnx -o /tmp/mlp_s1_aligned.onnx --report /tmp/align.json

# The reference runtime (ONNX Runtime from npm) that function-invariance tests compare against.
ortref: tools/ortref/node_modules/onnxruntime-node/package.json
tools/ortref/node_modules/onnxruntime-node/package.json: tools/ortref/package-lock.json
	cd tools/ortref && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

vet:
	test -z "$$(gofmt -l . | grep -v '^simd/_gen/' )" || { gofmt -l .; echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

unit: ortref
	$(GO) test -count=1 ./...

# The concurrent parts under the race detector: the GEMM worker pool, and
# weight matching's look-ahead and parallel loops (the whole suite takes
# too long with -race).
race:
	$(GO) test -race -count=1 -run '^(TestParallel|TestGemmGOMAXPROCS)$$' ./simd
	$(GO) test -race -count=1 -run '^TestLookAheadSameDescent$$' ./permute

# NEON and generic code paths of simd on arm64, under qemu-user.
arm64:
	GOARCH=arm64 $(GO) vet ./simd/...
	GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64-static ./simd/...

# Bounded runs of every fuzz target (the corpus seeds also run in `unit`),
# counted in executions, about 15 s each here: a -fuzztime duration races the
# Go 1.26 fuzz coordinator's deadline (golang/go#75804, fixed in Go 1.27) and
# can fail with "context deadline exceeded" and no failing input.
fuzz:
	$(GO) test ./onnx -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 25000x
	$(GO) test ./graph -run '^$$' -fuzz '^FuzzAnalyze$$' -fuzztime 150000x
	$(GO) test ./npy -run '^$$' -fuzz '^FuzzRead$$' -fuzztime 400000x
	$(GO) test ./lap -run '^$$' -fuzz '^FuzzSolve$$' -fuzztime 200000x
	$(GO) test ./simd -run '^$$' -fuzz '^FuzzGemm$$' -fuzztime 50000x
	$(GO) test ./simd -run '^$$' -fuzz '^FuzzVector$$' -fuzztime 300000x
	$(GO) test ./soup -run '^$$' -fuzz '^FuzzParseRecipe$$' -fuzztime 100000x

test: vet unit race arm64 fuzz
