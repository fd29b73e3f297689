#!/usr/bin/python3
"""Write the full 10k test sets of the soup tasks (clean, shift, noise) to DIR as .npy.

    /usr/bin/python3 bench/soup/full_tests.py DIR

The same transforms and seeds as make_models.py --soup, so the first 1000 images of
DIR/shift_x.npy and DIR/noise_x.npy are testmodels/soup/{shift,noise}_test_x.npy.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testmodels"))
import make_models as mm  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
_, _, xte, yte = mm.load_fashion()
np.save(os.path.join(out, "y.npy"), yte)
np.save(os.path.join(out, "clean_x.npy"), xte)
np.save(os.path.join(out, "shift_x.npy"), mm.shift_images(xte))
np.save(os.path.join(out, "noise_x.npy"), mm.noisy_images(xte, 101))
