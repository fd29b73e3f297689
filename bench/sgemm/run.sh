#!/usr/bin/env bash
# Compare simd.Gemm with OpenBLAS sgemm (through Debian's numpy) and gonum,
# on C = A·B, float32, 1024×1024×1024, with 1 thread and with all cores
# (GOMAXPROCS / OPENBLAS_NUM_THREADS = nproc: 2 on the project machines),
# in one go.
#
#   bench/sgemm/run.sh            # N=1024, ROUNDS=5
#   N=2048 ROUNDS=3 bench/sgemm/run.sh
#
# Each side is measured ROUNDS times, alternating, and the best GFLOP/s of
# each is kept: on a shared machine the best run is the one least disturbed
# by other processes. Load averages are printed before and after; rerun if
# they are high.
#
# OpenBLAS runs twice: as configured in this environment (which may set
# OPENBLAS_CORETYPE, e.g. Haswell = AVX2 kernels, and OPENBLAS_L2_SIZE), and
# with both variables removed for that one command, which is what a plain
# numpy install does: its own CPU detection then picks the kernel (on an
# AVX-512 CPU, SkylakeX or Cooperlake). The kernel name is printed.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${N:-1024}
ROUNDS=${ROUNDS:-5}
PY=/usr/bin/python3
GO=${GO:-go}
NP=$(nproc)
THREADS=(1 "$NP")

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

bin=$(mktemp -d)/simd.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
$GO test -c -o "$bin" ./simd

# ours PATH THREADS: best GFLOP/s of one benchmark run (5 products).
ours() {
	ONNX_REBASIN_SIMD=$1 "$bin" -test.run '^$' -test.bench "^BenchmarkSgemm\$/^NN\$/^n=${N}\$/^threads=$2\$" \
		-test.benchtime 5x -test.count 1 | awk '/GFLOP\/s/ {print $(NF-1)}'
}
blas() { # blas MODE THREADS
	if [ "$1" = native ]; then
		env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$2 $PY bench/sgemm/sgemm.py "$N" 5
	else
		OPENBLAS_NUM_THREADS=$2 $PY bench/sgemm/sgemm.py "$N" 5
	fi
}
best() { awk -v a="$1" -v b="$2" 'BEGIN {print (a+0 > b+0) ? a : b}'; }

path=$(ONNX_REBASIN_SIMD= "$bin" -test.run '^TestPathNames$' -test.v | sed -n 's/.*active path \([a-z0-9]*\).*/\1/p')
declare -A R
for t in "${THREADS[@]}"; do
	tl=$t; [ "$t" = "$NP" ] && tl=all
	for r in $(seq "$ROUNDS"); do
		for p in "$path" avx2; do
			R[ours,$p,$t]=$(best "${R[ours,$p,$t]:-0}" "$(ours "$p" "$tl")")
		done
		for mode in env native; do
			read -r g core _ < <(blas "$mode" "$t")
			R[blas,$mode,$t]=$(best "${R[blas,$mode,$t]:-0}" "$g")
			R[core,$mode]=$core
		done
	done
done
gonum=$("$bin" -test.run '^$' -test.bench "^BenchmarkGonumSgemm\$/^NN\$/^n=${N}\$/" -test.benchtime 1x | awk '/GFLOP\/s/ {print $(NF-1)}' | paste -sd' ')
read -r g1 g2 <<<"$gonum"

echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf 'sgemm %d³, best of %d, GFLOP/s\n' "$N" "$ROUNDS"
printf '%-44s %10s %10s\n' "" "1 thread" "$NP threads"
printf '%-44s %10s %10s\n' "simd.Gemm ($path)" "${R[ours,$path,1]}" "${R[ours,$path,$NP]}"
printf '%-44s %10s %10s\n' "simd.Gemm (avx2)" "${R[ours,avx2,1]}" "${R[ours,avx2,$NP]}"
printf '%-44s %10s %10s\n' "OpenBLAS native (${R[core,native]})" "${R[blas,native,1]}" "${R[blas,native,$NP]}"
printf '%-44s %10s %10s\n' "OpenBLAS as configured (${R[core,env]})" "${R[blas,env,1]}" "${R[blas,env,$NP]}"
printf '%-44s %10s %10s\n' "gonum Sgemm" "$g1" "$g2"
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
for t in "${THREADS[@]}"; do
	echo "$t thread(s): $path/OpenBLAS-native $(ratio "${R[ours,$path,$t]}" "${R[blas,native,$t]}")," \
		"avx2/OpenBLAS-${R[core,env]} $(ratio "${R[ours,avx2,$t]}" "${R[blas,env,$t]}")," \
		"$path/gonum $(ratio "${R[ours,$path,$t]}" "$([ "$t" = 1 ] && echo "$g1" || echo "$g2")")"
done
