#!/usr/bin/python3
"""Ratio of each data-driven command to the forward passes it needs, from
bench/data/run.sh tables (results.md files, merged; of several rows of the
same case, command and tool, the one of median wall time is kept).

  /usr/bin/python3 bench/data/summarise.py bench/data/out/run/results.md [...]

The forward passes a command needs, from the same table's `eval` rows of
the same build (plain forward passes over the same data):
  align --method activation   eval s0 + eval s1            (both models once)
  merge --reset-bn            eval s0                      (the merged model once)
  merge --repair              eval s0 + eval s1 + eval s0  (both models, then the merged one)
Both merges start with weight matching, whose time (`merge (no data)`) is
taken off before the ratio: "data s" is wall − merge (no data). The same
ratio of CPU seconds (user + sys = busy cores × wall) is given beside it:
on a shared machine it moves less with the load than wall time does.
"""
import sys

NEEDS = {
    "align --method activation": ("eval s0 (forward)", "eval s1 (forward)"),
    "merge --reset-bn": ("eval s0 (forward)",),
    "merge --repair": ("eval s0 (forward)", "eval s1 (forward)", "eval s0 (forward)"),
}


def main():
    rows = {}
    order = []
    for path in sys.argv[1:]:
        for line in open(path):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 9 or not cells[1].isdigit():
                continue
            case, n, cmd, tool, wall, busy, rss, l0, l1 = cells
            key = (case, int(n), cmd, tool)
            if key not in rows:
                order.append(key)
                rows[key] = []
            rows[key].append(dict(wall=float(wall), busy=float(busy), rss=float(rss), load=l0))
    for key, runs in rows.items():
        runs.sort(key=lambda r: r["wall"])
        rows[key] = dict(runs[(len(runs) - 1) // 2], runs=len(runs))
    print("| case | samples | command | tool | wall s | busy cores | peak RSS MB | data s | forward s | data / forward (wall) | (CPU) | load (1, 5, 15 min) |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for key in order:
        case, n, cmd, tool = key
        r = rows[key]
        data = fwd = ratio = cpu = ""
        if cmd in NEEDS:
            f = [rows.get((case, n, e, tool)) for e in NEEDS[cmd]]
            plain = rows.get((case, n, "merge (no data)", tool)) if cmd.startswith("merge") else {"wall": 0.0}
            if all(f) and plain:
                d = r["wall"] - plain["wall"]
                fw = sum(x["wall"] for x in f)
                data, fwd, ratio = f"{d:.2f}", f"{fw:.2f}", f"{d / fw:.2f}×"
                c = r["wall"] * r["busy"] - plain["wall"] * plain.get("busy", 0)
                cf = sum(x["wall"] * x["busy"] for x in f)
                cpu = f"{c / cf:.2f}×" if cf > 0 else ""
        print(f"| {case} | {n} | {cmd} | {tool} | {r['wall']:.2f} | {r['busy']:.2f} | {r['rss']:.0f} | {data} | {fwd} | {ratio} | {cpu} | {r['load']} |")


if __name__ == "__main__":
    main()
