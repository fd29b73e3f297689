#!/usr/bin/env python3
"""Multiply-adds per image of activation matching's cross products against
those of the two forward passes it needs.

    /usr/bin/python3 bench/data/macs.py MODEL.onnx [ONNX_REBASIN]

Forward: every Conv, and every Gemm/MatMul with a constant weight, of one
model, times two. Cross products: c² per position for every site that
`onnx-rebasin groups --json` lists, as package activation measures them: not
the sites seen again after a Flatten or Concat, and not BatchNormalization
outputs (derived from their Conv inputs; counted by name, an approximation).
Shapes come from ONNX shape inference at batch 1, so this suits CNNs, not
token sequences. Needs Debian's python3-onnx.
"""
import json
import subprocess
import sys

import onnx
from onnx import shape_inference


def value_shapes(model):
    for i in model.graph.input:
        i.type.tensor_type.shape.dim[0].dim_value = 1
    model = shape_inference.infer_shapes(model)
    values = list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)
    return model, {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


def forward_macs(model, shapes):
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for n in model.graph.node:
        if n.op_type == "Conv":
            w, out = weights[n.input[1]], shapes[n.output[0]]
            macs += out[1] * out[2] * out[3] * w[1] * w[2] * w[3]  # w[1] is C_in per group
        elif n.op_type in ("Gemm", "MatMul") and n.input[1] in weights:
            w = weights[n.input[1]]
            macs += w[0] * w[1]
    return macs


def cross_macs(groups, shapes):
    macs, sites = 0, 0
    for g in groups:
        for a in g.get("activations", []):
            if a["block"] > 1 or a["offset"] != 0 or "BatchNormalization" in a["value"]:
                continue
            shape = shapes.get(a["value"])
            if not shape:
                continue
            positions = 1
            for d in shape[2:]:
                positions *= d
            macs += g["size"] ** 2 * positions
            sites += 1
    return macs, sites


def main():
    path = sys.argv[1]
    tool = sys.argv[2] if len(sys.argv) > 2 else "onnx-rebasin"
    model, shapes = value_shapes(onnx.load(path))
    out = subprocess.run([tool, "groups", path, "--json"], capture_output=True, text=True, check=True).stdout
    fwd = 2 * forward_macs(model, shapes)
    cross, sites = cross_macs(json.loads(out)["groups"], shapes)
    print(f"{path}: forward, both models {fwd / 1e6:.1f} M multiply-adds per image; "
          f"cross products {cross / 1e6:.1f} M over {sites} sites; ratio {cross / fwd:.2f}")


if __name__ == "__main__":
    main()
