#!/usr/bin/python3
"""Write lap/testdata/scipy.json: small cost matrices and the optimal totals
that scipy.optimize.linear_sum_assignment(maximize=True) finds for them.
lap's TestAgainstScipy checks that lap reaches the same totals.

Run from the repository root with Debian's scipy:

    /usr/bin/python3 bench/lap/make_testdata.py

The matrices come from numpy's PCG64 with fixed seeds, so the output is
reproducible. Floats are written with repr(), which round-trips exactly.
"""
import json
import os
import sys

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment


def matrices():
    rng = np.random.default_rng(20240601)
    for n in (1, 2, 3, 4, 7, 10, 16, 31, 64):
        yield f"uniform_{n}", rng.random((n, n)), False
        # Small integers: many ties, many optimal permutations.
        yield f"ints0to9_{n}", rng.integers(0, 10, (n, n)).astype(float), True
        # Weight-matching-like: scores of a noisy row permutation.
        d = max(n, 2)
        a = rng.standard_normal((n, d))
        b = np.empty_like(a)
        b[rng.permutation(n)] = a + 3.0 * rng.standard_normal((n, d))
        yield f"wm_{n}", a @ b.T, False
    for n in (5, 32):
        yield f"negative_scaled_{n}", -1e6 * rng.random((n, n)), False
        yield f"constant_{n}", np.full((n, n), 2.5), True


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("lap", "testdata", "scipy.json")
    cases = []
    for name, c, exact in matrices():
        rows, cols = linear_sum_assignment(c, maximize=True)
        assert list(rows) == list(range(c.shape[0]))
        total = 0.0
        for i, j in zip(rows, cols):  # row order, as lap sums
            total += float(c[i, j])
        cases.append({
            "name": name,
            "n": int(c.shape[0]),
            "exact": exact,
            "cost": [float(x) for x in c.ravel()],
            "scipy_total": total,
            "scipy_perm": [int(j) for j in cols],
        })
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"scipy_version": scipy.__version__, "numpy_version": np.__version__,
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
