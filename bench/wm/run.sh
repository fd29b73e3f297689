#!/bin/bash
# Weight-matching benchmark: numpy/scipy reference (wm.py) vs onnx-rebasin.
#
#   bench/wm/run.sh                      all pairs: mlp cnn_bn resnet mlp4096 resnet-wide
#   bench/wm/run.sh mlp resnet           only these pairs
#   bench/wm/run.sh small                the three small trained pairs: mlp cnn_bn resnet
#   bench/wm/run.sh --selftest           only the reference's self-recovery test
#   bench/wm/run.sh --ref-only [pairs]   skip onnx-rebasin
#
# Environment:
#   BIN=/path/to/binary            use this binary instead of building /tmp/onnx-rebasin
#                                  (ONNX_REBASIN= is the older name of the same setting)
#   WM_DTYPE=float64               reference product precision (default float32)
#   WM_SEED=0                      seed for both tools (visiting order of the groups)
#   WM_MAX_ITER=100                sweep cap for both tools (the paper's max_iter)
#   WM_VERBOSE=1                   reference prints newL - oldL per step (as the paper's code)
#   WM_RUNS=1                      timed runs of each tool per pair; the table gives the median
#                                  (this VM's timings vary by ±20% from run to run)
#   WM_KEEP_OUTPUT=1               keep out/<pair>_aligned.onnx (its sha256 is always in the notes)
#   WM_ORDER=alternate             alternate the two tools' runs, or "grouped": all of the reference's
#                                  runs, then all of onnx-rebasin's
#
# Results: bench/wm/out/ (git-ignored): ref_<pair>.json, rebasin_<pair>.json, results.md.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
WM=bench/wm
OUT=$WM/out
PY=/usr/bin/python3
SEED=${WM_SEED:-0}
DTYPE=${WM_DTYPE:-float32}
MAXIT=${WM_MAX_ITER:-100}
RUNS=${WM_RUNS:-1}
ORDER=${WM_ORDER:-alternate}
mkdir -p "$OUT"

REF_ONLY=0
PAIRS=()
for a in "$@"; do
  case "$a" in
    --selftest) exec $PY $WM/wm.py --selftest --testmodels testmodels ;;
    --ref-only) REF_ONLY=1 ;;
    mlp|cnn_bn|resnet|mlp4096|resnet-wide) PAIRS+=("$a") ;;
    small) PAIRS+=(mlp cnn_bn resnet) ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done
[ ${#PAIRS[@]} -eq 0 ] && PAIRS=(mlp cnn_bn resnet mlp4096 resnet-wide)

pair_files() {
  case "$1" in
    mlp) echo testmodels/mlp_s0.onnx testmodels/mlp_s1.onnx ;;
    cnn_bn) echo testmodels/cnn_bn_s0.onnx testmodels/cnn_bn_s1.onnx ;;
    resnet) echo testmodels/resnet_s0.onnx testmodels/resnet_s1.onnx ;;
    mlp4096) echo $OUT/mlp4096_s0.onnx $OUT/mlp4096_s1.onnx ;;
    resnet-wide) echo $OUT/resnetwide_s0.onnx $OUT/resnetwide_s1.onnx ;;
  esac
}

now() { date +%s.%N; }

# scaled models
for p in "${PAIRS[@]}"; do
  read -r A B <<<"$(pair_files "$p")"
  if [ ! -f "$A" ] || [ ! -f "$B" ]; then
    case "$p" in
      mlp4096) $PY $WM/make_scaled.py --out "$OUT" --only mlp4096 || exit 1 ;;
      resnet-wide) $PY $WM/make_scaled.py --out "$OUT" --only resnet-wide || exit 1 ;;
      *) echo "missing $A or $B" >&2; exit 1 ;;
    esac
  fi
done

# onnx-rebasin binary
BIN=${BIN:-${ONNX_REBASIN:-}}
if [ $REF_ONLY -eq 0 ] && [ -z "$BIN" ]; then
  BIN=/tmp/onnx-rebasin
  echo "building $BIN ..." >&2
  if ! go build -o "$BIN" ./cmd/onnx-rebasin; then
    echo "WARNING: onnx-rebasin does not build; running the reference only" >&2
    REF_ONLY=1
  fi
fi
if [ $REF_ONLY -eq 0 ] && [ ! -x "$BIN" ]; then
  echo "WARNING: $BIN is not executable; running the reference only" >&2
  REF_ONLY=1
fi

echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" >&2
run_ref() {
  local load t0 t1 ref_total
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "== $p: reference, run $1 of $RUNS (load avg $load)" >&2
  t0=$(now)
  $PY $WM/wm.py ${WM_VERBOSE:+-v} "$A" "$B" --seed "$SEED" --max-iter "$MAXIT" --dtype "$DTYPE" --json "$OUT/ref_$p.json" >&2
  rc=$?
  t1=$(now)
  ref_total=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_seconds"])' "$OUT/ref_$p.json" 2>/dev/null || echo nan)
  echo "ref_wall=$(echo "$t1 - $t0" | bc -l) ref_rc=$rc ref_load=$load ref_total=$ref_total" >>"$OUT/$p.wall"
}

run_rebasin() {
  local load t0 t1
  [ $REF_ONLY -eq 1 ] && return
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "== $p: onnx-rebasin, run $1 of $RUNS (load avg $load)" >&2
  t0=$(now)
  "$BIN" align "$A" "$B" -o "$OUT/${p}_aligned.onnx" --seed "$SEED" --max-iter "$MAXIT" --report "$OUT/rebasin_$p.json" -q \
    2>"$OUT/rebasin_$p.err"
  rc=$?
  t1=$(now)
  [ $rc -ne 0 ] && { echo "onnx-rebasin failed (rc $rc):" >&2; cat "$OUT/rebasin_$p.err" >&2; }
  echo "go_wall=$(echo "$t1 - $t0" | bc -l) go_rc=$rc go_load=$load" >>"$OUT/$p.wall"
}

for p in "${PAIRS[@]}"; do
  read -r A B <<<"$(pair_files "$p")"
  rm -f "$OUT/ref_$p.json" "$OUT/rebasin_$p.json" "$OUT/rebasin_$p.err" "$OUT/$p.wall" "$OUT/check_$p.json"

  : >"$OUT/$p.wall"
  # The reference's runs and onnx-rebasin's alternate, or (WM_ORDER=grouped) all of one tool's
  # come before the other's.
  if [ "$ORDER" = grouped ]; then
    for run in $(seq "$RUNS"); do run_ref "$run"; done
    for run in $(seq "$RUNS"); do run_rebasin "$run"; done
  else
    for run in $(seq "$RUNS"); do run_ref "$run"; run_rebasin "$run"; done
  fi

  if [ $REF_ONLY -eq 0 ]; then
    # the output's digest, so that two binaries' outputs can be compared (WM_KEEP_OUTPUT=1 keeps the file)
    sha256sum "$OUT/${p}_aligned.onnx" 2>/dev/null | cut -d' ' -f1 >"$OUT/${p}_aligned.sha256"
    [ -n "${WM_KEEP_OUTPUT:-}" ] || rm -f "$OUT/${p}_aligned.onnx"
    # cross-check (not timed): onnx-rebasin's groups vs the spec, its objective recomputed by the
    # reference, and whether its result is a fixed point of the coordinate descent
    rm -f "$OUT/check_$p.json"
    if [ $rc -eq 0 ] && "$BIN" groups "$A" --json >"$OUT/groups_$p.json"; then
      echo "== $p: cross-check of onnx-rebasin's permutations" >&2
      $PY $WM/wm.py "$A" "$B" --check-perms "$OUT/rebasin_$p.json" --groups "$OUT/groups_$p.json" \
        --json "$OUT/check_$p.json" >&2
    fi
  fi
done

# table
$PY - "$OUT" "$DTYPE" "${PAIRS[@]}" <<'EOF' | tee "$OUT/results.md"
import json, os, sys
out, dtype, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def wall(p):
    """Every run's fields, as lists: key -> [value per run]."""
    d = {}
    try:
        for tok in open(os.path.join(out, p + ".wall")).read().split():
            k, v = tok.split("=")
            d.setdefault(k, []).append(v)
    except OSError:
        pass
    return d

def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if n == 0 else (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2)

def spread(xs):
    return "" if len(xs) < 2 else f" ({min(xs):.2f}–{max(xs):.2f}, {len(xs)} runs)"

def f(x, fmt):
    return "—" if x is None else format(x, fmt)

print(f"| pair | reference time | reference sweeps | reference objective | onnx-rebasin time | sweeps | objective | speed-up | objective ratio | reference process | whole-process speed-up |")
print(f"|---|---|---|---|---|---|---|---|---|---|---|")
notes = []
for p in pairs:
    r, g, w = load(os.path.join(out, f"ref_{p}.json")), load(os.path.join(out, f"rebasin_{p}.json")), wall(p)
    gws = [float(t) for t, rc in zip(w.get("go_wall", []), w.get("go_rc", [])) if rc == "0"] if g is not None else []
    rts = [float(t) for t in w.get("ref_total", []) if t != "nan"]
    gw, rt = median(gws), median(rts)
    rws = [float(t) for t, rc in zip(w.get("ref_wall", []), w.get("ref_rc", [])) if rc == "0"]
    ref_t = f"{rt:.2f} s{spread(rts)} (match {r['match_seconds']:.2f} s)" if r and rt else "failed"
    go_t = f"{gw:.2f} s{spread(gws)}" if gw is not None else "—"
    speed = f"{rt / gw:.1f}×" if rt and gw else "—"
    ratio = f"{g['objective_after'] / r['objective_after']:.6f}" if r and g else "—"
    print(f"| {p} | {ref_t} | {r['sweeps'] if r else '—'} | {f(r and r['objective_after'], '.8g')} "
          f"| {go_t} | {len(g['sweeps']) if g else '—'} | {f(g and g['objective_after'], '.8g')} | {speed} | {ratio} "
          f"| {f(median(rws), '.2f') + ' s' + spread(rws) if rws else '—'} "
          f"| {f'{median(rws) / gw:.1f}×' if rws and gw else '—'} |")
    if r:
        rws = [float(t) for t in w.get("ref_wall", [])]
        s = (f"- {p}: reference {r['dtype']} products, LAP {r.get('lap', '?')}, load {r['load_seconds']:.2f} s (last run), process wall "
             f"{median(rws) or float('nan'):.2f} s (median), load avg {' '.join(w.get('ref_load', ['?']))}; objective at identity "
             f"{r['objective_before']:.10g}")
        if g:
            s += (f"; onnx-rebasin objective at identity {g['objective_before']:.10g} "
                  f"(rel. diff {abs(g['objective_before'] - r['objective_before']) / abs(r['objective_before']):.1e}), "
                  f"report seconds {g['elapsed_s']:.2f} (last run), load avg {' '.join(w.get('go_load', ['?']))}")
        c = load(os.path.join(out, f"check_{p}.json"))
        if c is not None:
            if not c["groups_match_spec"]:
                s += f"; CROSS-CHECK: onnx-rebasin's groups differ from the spec: {c}"
            else:
                s += (f"; cross-check: groups = spec, reference objective of onnx-rebasin's permutation "
                      f"{c['objective_reference']:.10g} (rel. diff {c['objective_rel_diff']:.1e}), "
                      + ("coordinate-optimal (no single group's LAP improves it)" if c["coordinate_optimal"] else
                         f"NOT coordinate-optimal: re-solving {c['max_gain_perm']} alone gains {c['max_gain_perm'] and c['max_single_perm_gain']:.6g}"))
        if g:
            obj = [s_.get("objective", s_.get("Objective")) for s_ in g["sweeps"]]
            drops = [i + 2 for i in range(len(obj) - 1) if obj[i + 1] < obj[i] - 1e-9 * abs(obj[i])]
            if drops:
                s += f"; onnx-rebasin objective DECREASED at sweeps {drops[:10]}{'...' if len(drops) > 10 else ''}"
        try:
            s += f"; output sha256 {open(os.path.join(out, p + '_aligned.sha256')).read().strip()[:16]}"
        except OSError:
            pass
        notes.append(s)
print()
print("reference time = load + match (wm.py); onnx-rebasin time = wall time of the whole `align` command "
      "(load, analysis, match, apply, save); medians over the runs (order: " + os.environ.get("WM_ORDER", "alternate") + "); "
      "speed-up = reference time / onnx-rebasin time; reference process = wall time of the whole "
      "`wm.py` process (Python start-up, imports, load, match, objectives); "
      "whole-process speed-up = reference process / onnx-rebasin time; "
      "objective ratio = onnx-rebasin / reference (objective_after).")
print()
print("\n".join(notes))
EOF
