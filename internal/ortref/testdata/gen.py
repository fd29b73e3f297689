#!/usr/bin/python3
"""Regenerates the ONNX models and .npy fixtures used by the ortref tests.

Needs numpy and onnx (Debian: python3-numpy python3-onnx). Run from anywhere:
    /usr/bin/python3 internal/ortref/testdata/gen.py
Expected outputs are computed with numpy, independently of ONNX Runtime.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def save_model(graph, name):
    model = helper.make_model(
        graph,
        producer_name="onnx-rebasin-testdata",
        opset_imports=[helper.make_opsetid("", 13)],
    )
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, path(name))


rng = np.random.default_rng(20240611)

# mlp.onnx: y = relu(x @ w + b) with w, b as initializers, x of shape [N, 4].
w = rng.standard_normal((4, 3)).astype(np.float32)
b = rng.standard_normal(3).astype(np.float32)
graph = helper.make_graph(
    [
        helper.make_node("MatMul", ["x", "w"], ["xw"], name="matmul"),
        helper.make_node("Add", ["xw", "b"], ["pre"], name="add"),
        helper.make_node("Relu", ["pre"], ["y"], name="relu"),
    ],
    "mlp",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
)
save_model(graph, "mlp.onnx")
for n, batch in ((0, 2), (1, 5)):
    x = rng.standard_normal((batch, 4)).astype(np.float32)
    y = np.maximum(x.astype(np.float64) @ w + b, 0).astype(np.float32)
    np.save(path(f"mlp_x{n}.npy"), x)
    np.save(path(f"mlp_y{n}.npy"), y)

# multi.onnx: several inputs and outputs of different types, with output
# names that are not safe file names.
ten = np.array([10], dtype=np.int64)
two = np.array(2.0, dtype=np.float32)
zero = np.array(0.0, dtype=np.float32)
graph = helper.make_graph(
    [
        helper.make_node("Add", ["ids", "ten"], ["sum:0/weird"]),
        helper.make_node("Mul", ["x", "two"], ["x.twice"]),
        helper.make_node("Greater", ["x", "zero"], ["Flag"]),
        helper.make_node("Cast", ["x"], ["flag"], to=TensorProto.DOUBLE),
    ],
    "multi",
    [
        helper.make_tensor_value_info("ids", TensorProto.INT64, [3]),
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2]),
    ],
    [
        helper.make_tensor_value_info("sum:0/weird", TensorProto.INT64, [3]),
        helper.make_tensor_value_info("x.twice", TensorProto.FLOAT, [2, 2]),
        helper.make_tensor_value_info("Flag", TensorProto.BOOL, [2, 2]),
        helper.make_tensor_value_info("flag", TensorProto.DOUBLE, [2, 2]),
    ],
    initializer=[
        numpy_helper.from_array(ten, "ten"),
        numpy_helper.from_array(two, "two"),
        numpy_helper.from_array(zero, "zero"),
    ],
)
save_model(graph, "multi.onnx")

# identity.onnx: one Identity per dtype, with unknown shapes, to check that
# every supported dtype crosses the .npy boundary bit for bit.
IDENTITY_TYPES = [
    ("f16", TensorProto.FLOAT16, ["a"]),
    ("f32", TensorProto.FLOAT, ["a", "b"]),
    ("f64", TensorProto.DOUBLE, []),
    ("i8", TensorProto.INT8, ["a"]),
    ("i16", TensorProto.INT16, ["a"]),
    ("i32", TensorProto.INT32, ["a"]),
    ("i64", TensorProto.INT64, ["a", "b", "c"]),
    ("u8", TensorProto.UINT8, ["a"]),
    ("u16", TensorProto.UINT16, ["a"]),
    ("u32", TensorProto.UINT32, ["a"]),
    ("u64", TensorProto.UINT64, ["a"]),
    ("b", TensorProto.BOOL, ["a", "b"]),
]
graph = helper.make_graph(
    [helper.make_node("Identity", [n], [n + "_out"]) for n, _, _ in IDENTITY_TYPES],
    "identity",
    [helper.make_tensor_value_info(n, t, s) for n, t, s in IDENTITY_TYPES],
    [helper.make_tensor_value_info(n + "_out", t, s) for n, t, s in IDENTITY_TYPES],
)
save_model(graph, "identity.onnx")
