#!/usr/bin/python3
"""Scaled-up random-weight model pairs for the weight-matching benchmark.

    /usr/bin/python3 bench/wm/make_scaled.py [--out bench/wm/out] [--only mlp4096|resnet-wide] [--plain-bn]

Writes, for seeds 0 and 1 (torch.manual_seed(seed), default torch init):

  mlp4096_s{0,1}.onnx      Flatten + Linear 784-4096-4096-4096-10 with ReLU
                           (same module naming as testmodels' MLP: net.1, net.3, ...)
  resnetwide_s{0,1}.onnx   stem conv3x3 1->128 + BN + ReLU; stage1 two BasicBlocks of 128
                           (identity shortcuts); stage2 BasicBlock 128->256 stride 2 with
                           1x1 conv + BN shortcut + identity block of 256; stage3 the same
                           256->512; global average pool; Linear 512->10.
                           BatchNormalization kept (TrainingMode.PRESERVE, no constant folding).

Interface as testmodels: input 'input' float32 (N,1,28,28), output 'logits' (N,10), dynamic
batch 'N', opset 17.

BatchNorm vectors: a freshly initialised BatchNorm2d has weight=1, bias=0, running_mean=0,
running_var=1 in every layer. The ONNX exporter then deduplicates all those equal tensors into
a handful of initializers shared through Identity nodes, and they carry no matching signal.
To look like a trained network, every BN layer's weight, bias, running_mean and running_var
are drawn at random (seeded; weight, running_var ~ U(0.5, 1.5), bias, running_mean ~ N(0, 0.1²)).
--plain-bn keeps torch's defaults.
"""

import argparse
import collections
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
DYN_AXES = {"input": {0: "N"}, "logits": {0: "N"}}


class MLP(nn.Module):
    def __init__(self, width=4096, depth=3):
        super().__init__()
        layers = [nn.Flatten()]
        d = 784
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        layers.append(nn.Linear(d, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + idt)


class WideResNet(nn.Module):
    """testmodels' SmallResNet (16/32) scaled to stages 128/256/512."""

    def __init__(self, widths=(128, 256, 512)):
        super().__init__()
        w0 = widths[0]
        self.stem = nn.Sequential(nn.Conv2d(1, w0, 3, padding=1, bias=False), nn.BatchNorm2d(w0), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(w0, w0), BasicBlock(w0, w0))
        self.layer2 = nn.Sequential(BasicBlock(widths[0], widths[1], stride=2), BasicBlock(widths[1], widths[1]))
        self.layer3 = nn.Sequential(BasicBlock(widths[1], widths[2], stride=2), BasicBlock(widths[2], widths[2]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[2], 10)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def randomize_bn(model, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))


def export(model, path, bn_kept):
    model.eval()
    example = torch.randn(2, 1, 28, 28)
    kw = dict(input_names=["input"], output_names=["logits"], dynamic_axes=DYN_AXES, opset_version=OPSET)
    if bn_kept:
        kw.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    torch.onnx.export(model, example, path, **kw)
    m = onnx.load(path)
    onnx.checker.check_model(path)  # by path: files may exceed the 2 GB in-memory limit
    assert [i.name for i in m.graph.input] == ["input"]
    assert [o.name for o in m.graph.output] == ["logits"]
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    n_bn = sum(isinstance(mod, nn.BatchNorm2d) for mod in model.modules())
    bns = [n for n in m.graph.node if n.op_type == "BatchNormalization"]
    assert len(bns) == n_bn, f"{path}: {len(bns)} BatchNormalization nodes, model has {n_bn}"
    for n in bns:
        assert len(n.output) == 1, f"BN {n.name} has {len(n.output)} outputs"
        tm = [a.i for a in n.attribute if a.name == "training_mode"]
        assert tm in ([], [0]), f"BN {n.name} training_mode={tm}"
    ops = dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items()))
    return m, ops


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--only", choices=("mlp4096", "resnet-wide"))
    ap.add_argument("--plain-bn", action="store_true", help="keep torch's default BN vectors (1, 0, 0, 1)")
    ap.add_argument("--force", action="store_true", help="rewrite files that exist")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(2)

    jobs = []
    if args.only in (None, "mlp4096"):
        jobs.append(("mlp4096", lambda: MLP(4096), False))
    if args.only in (None, "resnet-wide"):
        jobs.append(("resnetwide", WideResNet, True))
    for name, ctor, bn in jobs:
        for seed in (0, 1):
            path = os.path.join(args.out, f"{name}_s{seed}.onnx")
            if os.path.exists(path) and not args.force:
                print(f"exists: {path}")
                continue
            t = time.time()
            torch.manual_seed(seed)
            model = ctor()
            if bn and not args.plain_bn:
                randomize_bn(model, seed)
            _, ops = export(model, path + ".tmp", bn)
            os.replace(path + ".tmp", path)
            params = sum(p.numel() for p in model.parameters())
            print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, {params} params, "
                  f"{time.time() - t:.1f}s) ops={ops}", flush=True)


if __name__ == "__main__":
    main()
