#!/usr/bin/env bash
# Compare lap with scipy.optimize.linear_sum_assignment(maximize=True) on
# identical matrices: `lapbench gen` writes raw float64 files to a temp
# folder, then for each matrix scipy_bench.py and `lapbench time` solve the
# same file back to back (so both see the same machine load) and the table
# gives median wall times, their ratio, median thread-CPU times and whether
# the optimal totals agree.
#
# usage: bench/lap/run.sh            (from anywhere)
# env:   SIZES=512,1024,2048,4096  KINDS=uniform,wm  REPS=5
#        PYTHON=/usr/bin/python3 (Debian's python3-scipy)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SIZES=${SIZES:-512,1024,2048,4096}
KINDS=${KINDS:-uniform,wm}
REPS=${REPS:-5}
PYTHON=${PYTHON:-/usr/bin/python3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lapbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "# $(date -u +%FT%TZ)  $(nproc) CPUs  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "# go: $(cd "$root" && go version | cut -d' ' -f3-)  scipy: $("$PYTHON" -c 'import scipy; print(scipy.__version__)')"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"

(cd "$root" && go build -o "$tmp/lapbench" ./bench/lap)
echo "# generating $KINDS at n = $SIZES ..." >&2
"$tmp/lapbench" gen -dir "$tmp" -n "$SIZES" -kinds "$KINDS"

: >"$tmp/results"
for kind in ${KINDS//,/ }; do
	for n in ${SIZES//,/ }; do
		echo "# timing $kind n=$n ..." >&2
		sp=$("$PYTHON" "$here/scipy_bench.py" -dir "$tmp" -n "$n" -kinds "$kind" -reps "$REPS")
		go=$("$tmp/lapbench" time -dir "$tmp" -n "$n" -kinds "$kind" -reps "$REPS")
		printf '%s\t%s\n' "$sp" "$(cut -f3- <<<"$go")" >>"$tmp/results"
	done
done

# results columns: kind n sp_wall sp_wallmin sp_cpu sp_total go_wall go_wallmin go_cpu go_total
awk -F'\t' '
BEGIN {
	printf "%-8s %5s  %12s %12s %7s   %12s %12s %7s  %s\n", "kind", "n", "scipy wall", "lap wall", "ratio", "scipy cpu", "lap cpu", "ratio", "totals"
}
{
	d = $6 - $10; if (d < 0) d = -d
	s = $6; if (s < 0) s = -s; if (s < 1) s = 1
	agree = (d <= 1e-9 * s) ? "equal" : sprintf("DIFFER by %g", d)
	printf "%-8s %5d  %9.2f ms %9.2f ms %6.1fx   %9.2f ms %9.2f ms %6.1fx  %s\n", $1, $2, $3, $7, $3 / $7, $5, $9, $5 / $9, agree
}' "$tmp/results"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# wall and cpu are medians of $REPS solves; cpu is the solving thread's CPU time"
