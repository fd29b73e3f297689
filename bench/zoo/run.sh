#!/bin/bash
# Times `onnx-rebasin align` on random-init torchvision pairs (seeds 0 and 1).
#
#   bench/zoo/run.sh                     every model: resnet18 resnet50 mobilenet_v2 efficientnet_b0
#                                        convnext_tiny densenet121 vgg11_bn
#   bench/zoo/run.sh resnet50 vgg11_bn   only these
#
# Environment:
#   BIN=/path/to/binary   the binary to time (default: build /tmp/onnx-rebasin from this tree)
#   ZOO_RUNS=1            timed runs per model; the table gives the median wall and that run's figures
#   ZOO_SEED=0            --seed of align
#   ZOO_NICE=10           niceness of the timed runs (0: none)
#
# Models: bench/zoo/models/<arch>_s{0,1}.onnx (git-ignored), written on first use by
# `/usr/bin/python3 testmodels/make_models.py --zoo bench/zoo/models --arch <arch>`.
# Results: bench/zoo/out/ (git-ignored): <arch>.json (align --report), <arch>.time (GNU time),
# results.md (the table).
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
ZOO=bench/zoo
MODELS=$ZOO/models
OUT=$ZOO/out
PY=/usr/bin/python3
RUNS=${ZOO_RUNS:-1}
SEED=${ZOO_SEED:-0}
NICE=${ZOO_NICE:-10}
mkdir -p "$OUT"

ARCHS=()
for a in "$@"; do
  case "$a" in
    resnet18|resnet50|mobilenet_v2|efficientnet_b0|convnext_tiny|densenet121|vgg11_bn) ARCHS+=("$a") ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done
[ ${#ARCHS[@]} -eq 0 ] && ARCHS=(resnet18 resnet50 mobilenet_v2 efficientnet_b0 convnext_tiny densenet121 vgg11_bn)

if [ ! -x /usr/bin/time ]; then
  echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2
  exit 1
fi

BIN=${BIN:-}
if [ -z "$BIN" ]; then
  BIN=/tmp/onnx-rebasin
  echo "building $BIN ..." >&2
  go build -o "$BIN" ./cmd/onnx-rebasin || exit 1
fi

for arch in "${ARCHS[@]}"; do
  if [ ! -f "$MODELS/${arch}_s0.onnx" ] || [ ! -f "$MODELS/${arch}_s1.onnx" ]; then
    $PY testmodels/make_models.py --zoo "$MODELS" --arch "$arch" >&2 || exit 1
  fi
done

echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); binary $BIN" >&2
for arch in "${ARCHS[@]}"; do
  : >"$OUT/$arch.runs"
  for run in $(seq "$RUNS"); do
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "== $arch: run $run of $RUNS (load avg $load)" >&2
    # %e wall, %U user, %S system seconds, %M peak RSS in KiB
    nice -n "$NICE" /usr/bin/time -f "%e %U %S %M %x" -o "$OUT/$arch.time" \
      "$BIN" align "$MODELS/${arch}_s0.onnx" "$MODELS/${arch}_s1.onnx" -o "$OUT/${arch}_aligned.onnx" \
      --seed "$SEED" --report "$OUT/$arch.json" -q 2>"$OUT/$arch.err"
    rc=$?
    [ $rc -ne 0 ] && { echo "align failed (rc $rc):" >&2; cat "$OUT/$arch.err" >&2; }
    sha=$(sha256sum "$OUT/${arch}_aligned.onnx" 2>/dev/null | cut -c1-16)
    rm -f "$OUT/${arch}_aligned.onnx"
    echo "$(tail -n1 "$OUT/$arch.time") $sha ${load// /,}" >>"$OUT/$arch.runs"
  done
done

$PY - "$OUT" "${ARCHS[@]}" <<'PYEOF' | tee "$OUT/results.md"
import json, os, sys
out, archs = sys.argv[1], sys.argv[2:]
print("| model | wall | CPU (user+sys) | busy cores | peak RSS | sweeps | objective | output sha256 | load avg |")
print("|---|---|---|---|---|---|---|---|---|")
for a in archs:
    runs = []
    for line in open(os.path.join(out, a + ".runs")):
        f = line.split()
        if len(f) >= 7 and f[4] == "0":
            runs.append((float(f[0]), float(f[1]) + float(f[2]), int(f[3]), f[5], f[6]))
    if not runs:
        print(f"| {a} | failed | | | | | | | |")
        continue
    runs.sort()
    wall, cpu, rss, sha, load = runs[len(runs) // 2]
    spread = f" ({runs[0][0]:.2f}–{runs[-1][0]:.2f}, {len(runs)} runs)" if len(runs) > 1 else ""
    try:
        r = json.load(open(os.path.join(out, a + ".json")))
        sweeps, obj = len(r["sweeps"]), f"{r['objective_after']:.10g}"
    except (OSError, ValueError, KeyError):
        sweeps, obj = "—", "—"
    print(f"| {a} | {wall:.2f} s{spread} | {cpu:.2f} s | {cpu / wall:.2f} | {rss / 1024:.0f} MB | {sweeps} | {obj} | {sha} | {load.replace(',', ' ')} |")
PYEOF
