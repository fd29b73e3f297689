#!/usr/bin/python3
"""OpenBLAS sgemm through numpy: best GFLOP/s of REPS float32 n×n matmuls.

Usage: sgemm.py N REPS
Prints one line: "<GFLOP/s> <OpenBLAS core> <threads>". Thread count comes
from OPENBLAS_NUM_THREADS, set by the caller (run.sh).
"""
import ctypes
import sys
import time

import numpy as np


def openblas_info():
    # numpy (Debian) links libopenblas.so.0 through libblas.so.3; asking the
    # already-loaded library tells which kernel it picked (OPENBLAS_CORETYPE
    # or its own CPU detection).
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode(), lib.openblas_get_num_threads()
    except (OSError, AttributeError):
        return "unknown", 0


def main():
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32) * 2 - 1
    b = rng.random((n, n), dtype=np.float32) * 2 - 1
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)  # warm up: threads, page faults
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        np.matmul(a, b, out=c)  # float32 matmul is OpenBLAS sgemm
        dt = time.perf_counter() - t
        best = max(best, 2.0 * n**3 / dt / 1e9)
    core, threads = openblas_info()
    print(f"{best:.1f} {core} {threads}")


if __name__ == "__main__":
    main()
