#!/usr/bin/env bash
# Data-driven commands, whole processes: wall time, busy cores (CPU/wall) and
# peak RSS (/usr/bin/time -v) of `align --method activation`,
# `merge --reset-bn`, `merge --repair` and `eval`, beside the plain forward
# passes they need (`eval` of each model over the same data) and `merge`
# without data (the weight matching both merges start with).
#
#   /usr/bin/python3 bench/data/make_data.py     # inputs -> bench/data/out/ (once)
#   bench/data/run.sh                           # every case below
#   CASES="resnet:2000 resnet50:64" bench/data/run.sh
#
# Environment:
#   ONNX_REBASIN=/path/to/binary  the tool to time (default: built from this tree)
#   BINARIES="before:/path/a after:/path/b"   time several builds, each row's command
#                                 by each build back to back (the table's tool column)
#   CASES="pair:samples ..."      pairs cnn_bn, resnet (testmodels/*_s0/_s1 on the first
#                                 <samples> Fashion-MNIST training images, 500/2000/8000)
#                                 and resnet50 (bench/data/out/resnet50_s0/_s1 on
#                                 <samples> random 224x224 images, 64/256)
#   COMMANDS="eval plain activation resetbn repair"   which commands to time
#   BATCH=256                     --batch of every command (resnet50 cases use BATCH50, default 32)
#   NICE=10                       nice level of the timed processes
#   REPEAT=1                      runs of each row per build (alternating builds); summarise.py
#                                 keeps the run of median wall time
#   OUT=bench/data/out/run        where outputs (permutation reports, merged models) and
#                                 the table (results.md) go
#
# Every row is one process under `/usr/bin/time -v` (apt-get install time).
# The machine is shared: the load average is printed before and after each row.
set -euo pipefail
shopt -s nullglob
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
data=bench/data/out
out=${OUT:-$data/run}
mkdir -p "$out"
bins=${BINARIES:-}
if [ -z "$bins" ]; then
	bin=${ONNX_REBASIN:-}
	if [ -z "$bin" ]; then
		bin=$out/onnx-rebasin
		go build -o "$bin" ./cmd/onnx-rebasin
	fi
	bins="this:$bin"
fi
cases=${CASES:-"cnn_bn:500 cnn_bn:2000 cnn_bn:8000 resnet:500 resnet:2000 resnet:8000 resnet50:64 resnet50:256"}
commands=${COMMANDS:-"eval plain activation resetbn repair"}
batch=${BATCH:-256}
batch50=${BATCH50:-32}
nicelevel=${NICE:-10}
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install -y time)" >&2; exit 1; }

table=$out/results.md
echo "| case | samples | command | tool | wall s | busy cores | peak RSS MB | load before | load after |" >"$table"
echo "|---|---:|---|---|---:|---:|---:|---|---|" >>"$table"

# timed NAME SAMPLES LABEL -- command...: one row of the table per build;
# the command's first word, "BIN", stands for the build's binary.
timed() {
	local name=$1 n=$2 label=$3
	shift 4
	local spec tool bin rep
	for rep in $(seq "${REPEAT:-1}"); do
		for spec in $bins; do
			tool=${spec%%:*} bin=${spec#*:}
			local load0 log
			load0=$(cut -d' ' -f1-3 /proc/loadavg)
			log=$out/time_${tool}_${name}_${n}_${label// /_}.txt
			if ! nice -n "$nicelevel" /usr/bin/time -v "$bin" "${@:2}" >"$log.out" 2>"$log"; then
				echo "FAILED: $bin ${*:2}" >&2
				tail -5 "$log" >&2
				return 1
			fi
			local wall user sys rss
			wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$log")
			user=$(awk -F': ' '/User time/ {print $2}' "$log")
			sys=$(awk -F': ' '/System time/ {print $2}' "$log")
			rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
			awk -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v c="$name" -v n="$n" -v l="$label" -v t="$tool" -v l0="$load0" -v l1="$(cut -d' ' -f1-3 /proc/loadavg)" \
				'BEGIN {printf "| %s | %d | %s | %s | %.2f | %.2f | %.0f | %s | %s |\n", c, n, l, t, w, (w > 0 ? (u + s) / w : 0), r / 1024, l0, l1}' | tee -a "$table"
			# Outputs kept per build, to compare them afterwards.
			for f in "$o"_*.onnx "$o"_*.json; do
				case ${f##*/} in *.*.*) continue ;; esac # already tagged
				[ -f "$f" ] && mv "$f" "${f%.*}.$tool.${f##*.}"
			done
		done
	done
}

echo "# $(date -u '+%F %T') builds: $bins; uptime: $(uptime)"
for c in $cases; do
	name=${c%%:*}
	n=${c##*:}
	b=$batch
	case $name in
	resnet50)
		a=$data/resnet50_s0.onnx m=$data/resnet50_s1.onnx x=$data/images224_$n.npy b=$batch50
		;;
	*)
		a=testmodels/${name}_s0.onnx m=testmodels/${name}_s1.onnx x=$data/fashion_$n.npy
		;;
	esac
	[ -f "$x" ] && [ -f "$a" ] || { echo "missing $x or $a: run bench/data/make_data.py" >&2; exit 1; }
	o=$out/${name}_$n
	for cmd in $commands; do
		case $cmd in
		eval)
			timed "$name" "$n" "eval s0 (forward)" -- BIN eval "$a" --data "$x" --batch "$b" -q
			timed "$name" "$n" "eval s1 (forward)" -- BIN eval "$m" --data "$x" --batch "$b" -q
			;;
		plain) timed "$name" "$n" "merge (no data)" -- BIN merge "$a" "$m" -o "$o"_plain.onnx -q ;;
		activation)
			timed "$name" "$n" "align --method activation" -- BIN align "$a" "$m" --method activation --data "$x" --batch "$b" \
				-o "$o"_act.onnx --report "$o"_act.json -q
			;;
		resetbn) timed "$name" "$n" "merge --reset-bn" -- BIN merge "$a" "$m" --reset-bn "$x" --batch "$b" -o "$o"_resetbn.onnx -q ;;
		repair) timed "$name" "$n" "merge --repair" -- BIN merge "$a" "$m" --repair "$x" --batch "$b" -o "$o"_repair.onnx -q ;;
		*)
			echo "unknown command $cmd" >&2
			exit 1
			;;
		esac
	done
done
echo "# done $(date -u '+%F %T'); uptime: $(uptime)"
echo "# table: $table"
