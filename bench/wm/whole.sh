#!/bin/bash
# Whole-process timing of the reference (wm.py) against one or two onnx-rebasin binaries, runs
# interleaved so that all see the same load: each round runs every tool once, in an order that
# rotates from round to round.
#
#   BIN=/path/new bench/wm/whole.sh [pairs]              reference vs BIN
#   BASE=/path/old BIN=/path/new bench/wm/whole.sh       reference vs BASE vs BIN
#
# Pairs: mlp cnn_bn resnet (default: all three). WM_ROUNDS=10 rounds; WM_SEED, WM_MAX_ITER as in
# run.sh. Prints a markdown table of median wall time, CPU time (user + system, GNU time), the
# speed-up over the reference (median wall / median wall) and the load averages seen.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
PY=/usr/bin/python3
ROUNDS=${WM_ROUNDS:-10}
SEED=${WM_SEED:-0}
MAXIT=${WM_MAX_ITER:-100}
OUT=bench/wm/out
mkdir -p "$OUT"
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
[ -n "${BIN:-}" ] || { echo "set BIN=/path/to/onnx-rebasin (and optionally BASE=)" >&2; exit 2; }
PAIRS=("$@")
[ ${#PAIRS[@]} -eq 0 ] && PAIRS=(mlp cnn_bn resnet)
TOOLS=(reference)
[ -n "${BASE:-}" ] && TOOLS+=(base)
TOOLS+=(bin)

for p in "${PAIRS[@]}"; do
  A=testmodels/${p}_s0.onnx B=testmodels/${p}_s1.onnx
  [ -f "$A" ] && [ -f "$B" ] || { echo "missing $A or $B" >&2; exit 1; }
  : >"$OUT/whole_$p.txt"
  for r in $(seq "$ROUNDS"); do
    for k in $(seq 0 $((${#TOOLS[@]} - 1))); do
      tool=${TOOLS[$(((r + k) % ${#TOOLS[@]}))]}
      load=$(cut -d' ' -f1 /proc/loadavg)
      case $tool in
        reference) cmd=($PY bench/wm/wm.py "$A" "$B" --seed "$SEED" --max-iter "$MAXIT" --dtype float32) ;;
        base) cmd=("$BASE" align "$A" "$B" -o "$OUT/whole_base.onnx" --seed "$SEED" --max-iter "$MAXIT" -q) ;;
        bin) cmd=("$BIN" align "$A" "$B" -o "$OUT/whole_bin.onnx" --seed "$SEED" --max-iter "$MAXIT" -q) ;;
      esac
      if /usr/bin/time -f "%e %U %S" -o "$OUT/whole.time" "${cmd[@]}" >/dev/null 2>"$OUT/whole.err"; then
        echo "$tool $(tail -n1 "$OUT/whole.time") $load" >>"$OUT/whole_$p.txt"
      else
        echo "$p: $tool failed:" >&2; cat "$OUT/whole.err" >&2
      fi
    done
  done
  rm -f "$OUT/whole_$p.same" # a previous run's verdict must not be printed for this one
  if [ -n "${BASE:-}" ]; then
    cmp -s "$OUT/whole_base.onnx" "$OUT/whole_bin.onnx" && echo same >"$OUT/whole_$p.same" || echo DIFFERENT >"$OUT/whole_$p.same"
  fi
done

$PY - "$OUT" "${PAIRS[@]}" <<'PYEOF'
import os, statistics, sys
out, pairs = sys.argv[1], sys.argv[2:]
print("| pair | tool | wall (median, min–max) | CPU (median) | speed-up over the reference | load avg | output |")
print("|---|---|---|---|---|---|---|")
for p in pairs:
    runs = {}
    for line in open(os.path.join(out, f"whole_{p}.txt")):
        tool, wall, user, sys_, load = line.split()
        runs.setdefault(tool, []).append((float(wall), float(user) + float(sys_), float(load)))
    ref = statistics.median(w for w, _, _ in runs.get("reference", [(float("nan"), 0, 0)]))
    try:
        same = open(os.path.join(out, f"whole_{p}.same")).read().strip()
    except OSError:
        same = ""
    for tool in ("reference", "base", "bin"):
        if tool not in runs:
            continue
        ws = [w for w, _, _ in runs[tool]]
        w, c = statistics.median(ws), statistics.median(c for _, c, _ in runs[tool])
        loads = [l for _, _, l in runs[tool]]
        sp = "" if tool == "reference" else f"{ref / w:.1f}×"
        print(f"| {p} | {tool} | {w:.3f} s ({min(ws):.3f}–{max(ws):.3f}, {len(ws)} runs) | {c:.3f} s | {sp} "
              f"| {min(loads):.2f}–{max(loads):.2f} | {same if tool == 'bin' else ''} |")
PYEOF
