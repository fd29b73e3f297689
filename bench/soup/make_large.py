#!/usr/bin/python3
"""Write large external-data ONNX models for the soup memory benchmark.

    /usr/bin/python3 bench/soup/make_large.py DIR [--models 8] [--layers 16] [--width 4096] [--dtype float32]

DIR/base.onnx and DIR/ft1.onnx ... DIR/ft{N-1}.onnx: a chain of MatMul+Relu
layers (width x width weights, plus a bias each), weights in DIR/<name>.onnx.data.
The fine-tunes are the base plus small seeded noise, as fine-tunes of one base
are. With the defaults each model is 16 x 64 MiB = 1 GiB of float32 weights.
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(weights, dtype):
    elem = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}[dtype]
    width = weights[0][0].shape[0]
    nodes, inits = [], []
    x = "input"
    for i, (w, b) in enumerate(weights):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
                  helper.make_node("Relu", [f"a{i}"], [f"h{i}"])]
        x = f"h{i}"
    nodes[-1].output[0] = "output"
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("input", elem, ["N", width])],
                          [helper.make_tensor_value_info("output", elem, ["N", width])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    dt = np.dtype(a.dtype)
    for i in range(a.models):
        name = "base" if i == 0 else f"ft{i}"
        layers = []
        for l in range(a.layers):
            # the base is the same for every model; fine-tunes add noise
            w = np.random.default_rng(l).standard_normal((a.width, a.width), dtype=np.float32) * 0.02
            b = np.zeros(a.width, np.float32)
            if i:
                r = np.random.default_rng(1000 * i + l)
                w += r.standard_normal(w.shape, dtype=np.float32) * 0.002
                b += r.standard_normal(b.shape, dtype=np.float32) * 0.002
            layers.append((w.astype(dt), b.astype(dt)))
        path = os.path.join(a.dir, name + ".onnx")
        onnx.save_model(model(layers, a.dtype), path, save_as_external_data=True,
                        all_tensors_to_one_file=True, location=name + ".onnx.data", size_threshold=1024)
        print(f"wrote {path} ({os.path.getsize(path + '.data')} bytes of data)", flush=True)


if __name__ == "__main__":
    main()
