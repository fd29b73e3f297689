#!/bin/bash
# Times `onnx-rebasin align` on random-init torchvision pairs (seeds 0 and 1).
#
#   bench/zoo/run.sh                     every model: resnet18 resnet50 mobilenet_v2 efficientnet_b0
#                                        convnext_tiny densenet121 vgg11_bn
#   bench/zoo/run.sh resnet50 vgg11_bn   only these
#
# Environment:
#   BIN=/path/to/binary   the binary to time (default: build /tmp/onnx-rebasin from this tree)
#   BASE=/path/to/binary  also time this binary, alternating with BIN run by run, and compare:
#                         the table then has both and whether the outputs are the same bytes
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
# timed_align TAG BINARY: one timed run of BINARY on the current pair, appended to $OUT/$arch.TAG.runs
timed_align() {
  local tag=$1 bin=$2 load rc sha
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "== $arch: $tag run $run of $RUNS (load avg $load)" >&2
  # %e wall, %U user, %S system seconds, %M peak RSS in KiB
  nice -n "$NICE" /usr/bin/time -f "%e %U %S %M %x" -o "$OUT/$arch.time" \
    "$bin" align "$MODELS/${arch}_s0.onnx" "$MODELS/${arch}_s1.onnx" -o "$OUT/${arch}_aligned.onnx" \
    --seed "$SEED" --report "$OUT/$arch.$tag.json" -q 2>"$OUT/$arch.err"
  rc=$?
  [ $rc -ne 0 ] && { echo "align failed (rc $rc):" >&2; cat "$OUT/$arch.err" >&2; }
  sha=$(sha256sum "$OUT/${arch}_aligned.onnx" 2>/dev/null | cut -c1-16)
  rm -f "$OUT/${arch}_aligned.onnx"
  echo "$(tail -n1 "$OUT/$arch.time") $sha ${load// /,}" >>"$OUT/$arch.$tag.runs"
}

TAGS=(bin)
[ -n "${BASE:-}" ] && TAGS=(base bin)
for arch in "${ARCHS[@]}"; do
  for tag in "${TAGS[@]}"; do : >"$OUT/$arch.$tag.runs"; done
  for run in $(seq "$RUNS"); do
    [ -n "${BASE:-}" ] && timed_align base "$BASE"
    timed_align bin "$BIN"
  done
done

$PY - "$OUT" "${BASE:+base}" "${ARCHS[@]}" <<'PYEOF' | tee "$OUT/results.md"
import json, os, sys
out, with_base, archs = sys.argv[1], sys.argv[2] == "base", sys.argv[3:]

def median_run(a, tag):
    """The run with the median wall time: (wall, cpu, rss KiB, sha, load), the wall range, the report."""
    runs = []
    try:
        for line in open(os.path.join(out, f"{a}.{tag}.runs")):
            f = line.split()
            if len(f) >= 7 and f[4] == "0":
                runs.append((float(f[0]), float(f[1]) + float(f[2]), int(f[3]), f[5], f[6]))
    except OSError:
        pass
    if not runs:
        return None, "", None
    runs.sort()
    spread = f" ({runs[0][0]:.2f}–{runs[-1][0]:.2f})" if len(runs) > 1 else ""
    try:
        rep = json.load(open(os.path.join(out, f"{a}.{tag}.json")))
    except (OSError, ValueError):
        rep = None
    return runs[len(runs) // 2], spread, rep

def cells(r, spread, rep):
    if r is None:
        return ["failed", "", "", "", "", ""]
    wall, cpu, rss, sha, load = r
    sweeps = len(rep["sweeps"]) if rep else "—"
    obj = f"{rep['objective_after']:.10g}" if rep else "—"
    return [f"{wall:.2f} s{spread}", f"{cpu:.2f} s", f"{cpu / wall:.2f}", f"{rss / 1024:.0f} MB", str(sweeps), obj]

head = ["wall", "CPU (user+sys)", "busy cores", "peak RSS", "sweeps", "objective"]
if with_base:
    print("| model | " + " | ".join("before " + h for h in head) + " | " + " | ".join(head) +
          " | wall after/before | same output | load avg |")
    print("|---" * (2 + 2 * len(head) + 2) + "|")
else:
    print("| model | " + " | ".join(head) + " | output sha256 | load avg |")
    print("|---" * (3 + len(head)) + "|")
for a in archs:
    r, spread, rep = median_run(a, "bin")
    load = r[4].replace(",", " ") if r else ""
    if not with_base:
        print(f"| {a} | " + " | ".join(cells(r, spread, rep)) + f" | {r[3] if r else ''} | {load} |")
        continue
    b, bspread, brep = median_run(a, "base")
    ratio = f"{r[0] / b[0]:.2f}" if r and b else "—"
    same = "yes" if r and b and r[3] == b[3] else "NO"
    print(f"| {a} | " + " | ".join(cells(b, bspread, brep)) + " | " + " | ".join(cells(r, spread, rep)) +
          f" | {ratio} | {same} | {load} |")
PYEOF
