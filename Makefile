# onnx-rebasin: `make test` checks (as root: installs) what the tests need and
# runs every test; `make demo` builds the tool and runs the main job.
GO ?= go
PYTHON ?= /usr/bin/python3

.PHONY: test demo build deps large ortref vet unit race arm64 fuzz

build:
	$(GO) build -o bin/onnx-rebasin ./cmd/onnx-rebasin

# Align the two shipped MLPs (trained from different seeds), then show what
# that buys: the accuracy of the midpoint ½(s0 + s1) on the shipped
# 1000-image test slice, averaged as trained and after alignment.
DEMO := bin/demo
DEMO_EVAL = ./bin/onnx-rebasin eval -q $(1) --data testmodels/fashion_test_x.npy --labels testmodels/fashion_test_y.npy | awk '$$1 == "accuracy:" { print $$2; found = 1 } END { exit !found }'
demo: build
	@mkdir -p $(DEMO)
	@echo "aligning testmodels/mlp_s1.onnx to testmodels/mlp_s0.onnx (weight matching)..."
	@./bin/onnx-rebasin align -q testmodels/mlp_s0.onnx testmodels/mlp_s1.onnx -o $(DEMO)/mlp_s1_aligned.onnx --report $(DEMO)/align.json
	@echo "wrote $(DEMO)/mlp_s1_aligned.onnx (mlp_s1 with its hidden units reordered: the same function)"
	@echo "and the report $(DEMO)/align.json (units moved per group, the sweeps of the search)"
	@./bin/onnx-rebasin merge -q --no-align testmodels/mlp_s0.onnx testmodels/mlp_s1.onnx -o $(DEMO)/naive_midpoint.onnx
	@./bin/onnx-rebasin merge -q --no-align testmodels/mlp_s0.onnx $(DEMO)/mlp_s1_aligned.onnx -o $(DEMO)/aligned_midpoint.onnx
	@echo "test accuracy of the average ½(mlp_s0 + mlp_s1), on testmodels/fashion_test_*.npy (1000 images):"
	@acc=$$($(call DEMO_EVAL,$(DEMO)/naive_midpoint.onnx)) && echo "  naive   (weights averaged as trained): $$acc"
	@acc=$$($(call DEMO_EVAL,$(DEMO)/aligned_midpoint.onnx)) && echo "  aligned (averaged after align):        $$acc"

# The Debian packages the tests need: checks them, and installs the missing
# ones when run as root (tools/deps.sh names them and why).
deps:
	@sh tools/deps.sh

# The large random-init structure models (resnet18, mobilenet_v2, densenet121,
# a ViT, RegNet and ResNeXt with grouped convolutions), too big to commit:
# generated with PyTorch from Debian.
LARGE := $(addprefix testmodels/large/,resnet18.onnx resnet18_bn.onnx mobilenet_v2.onnx densenet121.onnx vit_tiny.onnx regnet_x_400mf.onnx resnext50_32x4d.onnx)
large: $(LARGE)
$(LARGE) &:
	$(PYTHON) testmodels/make_models.py --large

# The reference runtime (ONNX Runtime from npm) that function-invariance tests compare against.
ortref: tools/ortref/node_modules/onnxruntime-node/package.json
tools/ortref/node_modules/onnxruntime-node/package.json: tools/ortref/package-lock.json
	cd tools/ortref && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# errcheck: every returned error is handled or visibly discarded (_ =),
# except for the calls tools/errcheck.excludes lists with its reasons.
ERRCHECK := github.com/kisielk/errcheck@v1.9.0
vet:
	test -z "$$(gofmt -l . | grep -v '^simd/_gen/' )" || { gofmt -l .; echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags noasm ./simd/... ./lap/...
	$(GO) run $(ERRCHECK) -exclude tools/errcheck.excludes ./...

unit: ortref
	$(GO) test -count=1 ./...

# The concurrent parts under the race detector: the GEMM worker pool, and
# weight matching's look-ahead, parallel loops and concurrent signature
# start, the two models' concurrent data passes, concurrent first runs of a
# fused program, and tensors permuted concurrently (the whole suite takes
# too long with -race).
race: ortref
	$(GO) test -race -count=1 -run '^(TestParallel|TestGemmGOMAXPROCS)$$' ./simd
	$(GO) test -race -count=1 -run '^(TestSameDescentAsPlain|TestAheadOfSkipsQueuedNeighbours|TestSignatureStartSameOnAnyThreads)$$' ./match
	$(GO) test -race -count=1 -run '^(TestSitePairingOrders|TestStreamedStatisticsMatchCapture)$$' ./activation
	$(GO) test -race -count=1 -run '^TestFusionBuiltOnFirstUse$$' ./infer
	$(GO) test -race -count=1 -run '^TestPermuteKeepsFunction$$' ./permute

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

test: deps ortref large vet unit race arm64 fuzz
