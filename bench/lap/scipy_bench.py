#!/usr/bin/python3
"""Time scipy.optimize.linear_sum_assignment(maximize=True) on the raw
float64 matrices that `lapbench gen` writes, with the same output format as
`lapbench time`:

    kind n wall_median_ms wall_min_ms cpu_median_ms total

The timed call is the whole public function, as a user would call it (it
negates the matrix for maximize=True and checks it for NaN/Inf, as lap does
its own validation inside Solve). CPU time is time.thread_time(); the solver
is single-threaded.

usage: scipy_bench.py -dir D [-n 512,1024] [-kinds uniform,wm] [-reps 5]
"""
import argparse
import statistics
import time

import numpy as np
from scipy.optimize import linear_sum_assignment


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-dir", required=True)
    ap.add_argument("-n", default="512,1024,2048,4096")
    ap.add_argument("-kinds", default="uniform,wm")
    ap.add_argument("-reps", type=int, default=5)
    a = ap.parse_args()
    for kind in a.kinds.split(","):
        for n in (int(s) for s in a.n.split(",")):
            c = np.fromfile(f"{a.dir}/{kind}_{n}.f64", dtype="<f8").reshape(n, n)
            walls, cpus = [], []
            for _ in range(a.reps):
                c0, t0 = time.thread_time(), time.perf_counter()
                rows, cols = linear_sum_assignment(c, maximize=True)
                t1, c1 = time.perf_counter(), time.thread_time()
                walls.append((t1 - t0) * 1e3)
                cpus.append((c1 - c0) * 1e3)
            # Sum in row order, as lap does, so equal optima print equal.
            total = 0.0
            for i, j in zip(rows, cols):
                total += float(c[i, j])
            walls.sort()
            print(f"{kind}\t{n}\t{statistics.median(walls):.3f}\t{walls[0]:.3f}\t"
                  f"{statistics.median(cpus):.3f}\t{total!r}", flush=True)


if __name__ == "__main__":
    main()
