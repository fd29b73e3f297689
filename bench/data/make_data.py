#!/usr/bin/python3
"""Inputs for bench/data/run.sh, written to bench/data/out/ (git-ignored).

  /usr/bin/python3 bench/data/make_data.py            # everything (~1 min)

* fashion_<N>.npy, N in 500, 2000, 8000: the first N Fashion-MNIST training
  images, float32 (N,1,28,28) /255 (the layout of testmodels/fashion_train_x.npy),
  from Debian's dataset-fashion-mnist when installed, else
  testmodels/fashion_train_x.npy repeated with a little noise (the timing and
  memory of a pass do not depend on the pixels).
* fashion_test_x.npy, fashion_test_y.npy: the 10,000 t10k test images (float32
  /255) and int64 labels (from Debian's package; else testmodels' 1,000-image slice),
  to score the merged models (repair_quality.sh).
* resnet50_s0.onnx, resnet50_s1.onnx: torchvision ResNet-50, random init from
  torch seeds 0 and 1, BatchNormalization kept (inference form), opset 17,
  dynamic batch, input (N,3,224,224).
* images224_<N>.npy, N in 64, 256: standard-normal float32 (N,3,224,224)
  (seed 0), the scale of normalised ImageNet inputs.

Needs Debian's python3-torch, python3-torchvision, python3-onnx, python3-numpy.
"""
import gzip
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "out")
FASHION = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
FASHION_TEST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
FASHION_TEST_LABELS = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"


def fashion(n):
    if os.path.exists(FASHION):
        with gzip.open(FASHION) as f:
            data = f.read()
        imgs = np.frombuffer(data, np.uint8, offset=16).reshape(-1, 1, 28, 28)
        return (imgs[:n].astype(np.float32) / 255).copy()
    base = np.load(os.path.join(ROOT, "testmodels", "fashion_train_x.npy"))
    rng = np.random.default_rng(0)
    reps = -(-n // len(base))
    x = np.concatenate([base] * reps)[:n]
    return np.clip(x + rng.normal(0, 0.02, x.shape).astype(np.float32), 0, 1).astype(np.float32)


def fashion_test():
    if not os.path.exists(FASHION_TEST):
        t = os.path.join(ROOT, "testmodels")
        return np.load(os.path.join(t, "fashion_test_x.npy")), np.load(os.path.join(t, "fashion_test_y.npy"))
    with gzip.open(FASHION_TEST) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(FASHION_TEST_LABELS) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return (x.astype(np.float32) / 255).copy(), y.astype(np.int64)


def resnet50(seed, path):
    import torch
    import torchvision
    torch.manual_seed(seed)
    model = torchvision.models.resnet50(weights=None).eval()
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=17,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)


def main():
    os.makedirs(OUT, exist_ok=True)
    for n in (500, 2000, 8000):
        np.save(os.path.join(OUT, f"fashion_{n}.npy"), fashion(n))
    tx, ty = fashion_test()
    np.save(os.path.join(OUT, "fashion_test_x.npy"), tx)
    np.save(os.path.join(OUT, "fashion_test_y.npy"), ty)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 3, 224, 224), dtype=np.float32)
    for n in (64, 256):
        np.save(os.path.join(OUT, f"images224_{n}.npy"), x[:n])
    for seed in (0, 1):
        path = os.path.join(OUT, f"resnet50_s{seed}.onnx")
        if not os.path.exists(path):
            resnet50(seed, path)
    print("wrote", ", ".join(sorted(os.listdir(OUT))), file=sys.stderr)


if __name__ == "__main__":
    main()
