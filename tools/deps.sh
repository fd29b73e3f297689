#!/bin/sh
# Checks, and when run as root installs, the Debian packages `make test` needs:
#   libonnx-testdata   ONNX's backend node tests and models (conformance, round trips)
#   qemu-user-static   runs the arm64 (NEON) simd tests
#   nodejs, npm        run ONNX Runtime (npm onnxruntime-node), the reference runtime
#   python3-torch, python3-torchvision, python3-onnx
#                      generate the large random-init models (testmodels/large)
# A node and npm already on PATH (from NodeSource, nvm, ...) are used as they
# are: Debian's nodejs package would conflict with them.
set -eu
need=""
if ! command -v dpkg >/dev/null 2>&1; then
	echo "make deps: not a Debian system (no dpkg); install by hand: ONNX backend test data in /usr/share/libonnx-testdata, qemu-aarch64-static, node and npm, python3 with torch, torchvision and onnx" >&2
	exit 1
fi
for pkg in libonnx-testdata qemu-user-static python3-torch python3-torchvision python3-onnx; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -z "$need" ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "make deps: missing Debian packages:$need" >&2
	echo "install them as root:  sudo apt-get install$need" >&2
	exit 1
fi
echo "make deps: installing:$need" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $need
