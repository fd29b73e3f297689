#!/usr/bin/python3
"""Regenerates the .npy fixtures in this folder with numpy.

Run from anywhere: /usr/bin/python3 npy/testdata/gen.py
The Go tests in npy/ hard-code the values below; keep them in sync.
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, arr, version=None):
    path = os.path.join(HERE, name)
    with open(path, "wb") as f:
        if version is None:
            np.save(f, arr, allow_pickle=False)
        else:
            np.lib.format.write_array(f, arr, version=version, allow_pickle=False)


save("f4_2x3.npy", (np.arange(6, dtype="<f4") * 0.5 - 1).reshape(2, 3))
save("f4_2x3x4.npy", np.arange(24, dtype="<f4").reshape(2, 3, 4))
save("f4_0x3.npy", np.zeros((0, 3), dtype="<f4"))
save("f8_3.npy", np.array([0.1, -2.5, 1e300], dtype="<f8"))
save("f8_scalar.npy", np.array(3.25, dtype="<f8"))
save("f2_6.npy", np.array([0, 1, -2.5, 65504, 2.0**-24, np.inf], dtype="<f2"))
save("i8_2x2.npy", np.array([[-1, 2**40], [3, -(2**62)]], dtype="<i8"))
save("i4_4.npy", np.array([-(2**31), -1, 0, 2**31 - 1], dtype="<i4"))
save("i2_2.npy", np.array([-32768, 7], dtype="<i2"))
save("i1_2.npy", np.array([-128, 127], dtype="i1"))
save("u1_5.npy", np.array([0, 1, 127, 128, 255], dtype="u1"))
save("u2_2.npy", np.array([0, 65535], dtype="<u2"))
save("u4_2.npy", np.array([1, 2**32 - 1], dtype="<u4"))
save("u8_2.npy", np.array([5, 2**63 - 1], dtype="<u8"))
save("b1_3.npy", np.array([True, False, True]))
# Other header versions and byte orders.
save("f4_v2.npy", np.arange(4, dtype="<f4"), version=(2, 0))
save("f4_v3.npy", np.arange(4, dtype="<f4"), version=(3, 0))
save("f4_be_3.npy", np.array([1.5, -2, 3], dtype=">f4"))
save("i8_be_2.npy", np.array([1, -2], dtype=">i8"))
save("f2_be_2.npy", np.array([1, -2.5], dtype=">f2"))
# Inputs that must be rejected.
save("bad_fortran.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
save("bad_structured.npy", np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]))
save("bad_complex.npy", np.zeros(2, dtype="<c8"))
