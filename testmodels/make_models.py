#!/usr/bin/python3
"""Generate ONNX test models for onnx-rebasin.

Usage (from the repository root):

    /usr/bin/python3 testmodels/make_models.py          # small trained models + data slices
    /usr/bin/python3 testmodels/make_models.py --large  # random-init structure models -> testmodels/large/
    /usr/bin/python3 testmodels/make_models.py --zoo bench/zoo/models  # torchvision pairs for bench/zoo
    /usr/bin/python3 testmodels/make_models.py --soup   # soup ingredients -> testmodels/soup/
    /usr/bin/python3 testmodels/make_models.py --attention  # small random-init attention and grouped-conv models

Small models are trained briefly on Fashion-MNIST (Debian package
dataset-fashion-mnist) and exported with torch.onnx.export at opset 17.
Inputs are float32 (N,1,28,28) with pixel values x/255 (no mean/std
normalisation); the normalisation is NOT part of the models.

Everything is deterministic given the seed: single thread,
torch.use_deterministic_algorithms, explicit numpy permutation for shuffling.
"""

import argparse
import collections
import gzip
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import onnx
import onnx.helper
import onnx.numpy_helper

torch.set_num_threads(1)
torch.set_num_interop_threads(1)
torch.use_deterministic_algorithms(True)

HERE = os.path.dirname(os.path.abspath(__file__))
LARGE = os.path.join(HERE, "large")
DATA_DIR = "/usr/share/datasets/fashion-mnist"
OPSET = 17
DYN_AXES = {"input": {0: "N"}, "logits": {0: "N"}}
SEEDS = (0, 1)
BATCH = 128


# --------------------------------------------------------------------------
# data


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion():
    def imgs(name):
        a = _read_idx(os.path.join(DATA_DIR, name)).astype(np.float32) / 255.0
        return a.reshape(-1, 1, 28, 28)

    def labels(name):
        return _read_idx(os.path.join(DATA_DIR, name)).astype(np.int64)

    xtr = imgs("train-images-idx3-ubyte.gz")
    ytr = labels("train-labels-idx1-ubyte.gz")
    xte = imgs("t10k-images-idx3-ubyte.gz")
    yte = labels("t10k-labels-idx1-ubyte.gz")
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    return xtr, ytr, xte, yte


# --------------------------------------------------------------------------
# models


class MLP(nn.Module):
    def __init__(self, width=512, depth=3):
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


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


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


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2), BasicBlock(32, 32))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class EncoderLayer(nn.Module):
    """Pre-LN transformer encoder layer written out by hand so that it exports
    as plain MatMul/Add/Reshape/Transpose/Softmax/LayerNormalization."""

    def __init__(self, d=64, heads=4, ff=128, tokens=16):
        super().__init__()
        self.d, self.h, self.dh, self.t = d, heads, d // heads, tokens
        self.ln1 = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ff)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(ff, d)

    def _heads(self, x):  # (N,T,D) -> (N,H,T,Dh)
        return x.reshape(-1, self.t, self.h, self.dh).transpose(1, 2)

    def forward(self, x):
        y = self.ln1(x)
        q, k, v = self._heads(self.q(y)), self._heads(self.k(y)), self._heads(self.v(y))
        att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.dh), dim=-1)
        a = torch.matmul(att, v).transpose(1, 2).reshape(-1, self.t, self.d)
        x = x + self.o(a)
        x = x + self.fc2(self.act(self.fc1(self.ln2(x))))
        return x


class TinyTransformer(nn.Module):
    def __init__(self, d=64, layers=2):
        super().__init__()
        self.patch = nn.Linear(49, d)
        self.pos = nn.Parameter(torch.randn(1, 16, d) * 0.02)
        self.layers = nn.Sequential(*[EncoderLayer(d) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        # (N,1,28,28) -> (N,4,7,4,7) -> (N,4,4,7,7) -> (N,16,49): 7x7 patches, row-major
        x = x.reshape(-1, 4, 7, 4, 7).transpose(2, 3).reshape(-1, 16, 49)
        x = self.patch(x) + self.pos
        x = self.norm(self.layers(x))
        return self.head(x.mean(dim=1))  # mean pooling over tokens


# --------------------------------------------------------------------------
# training


def set_seed(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


def train(model, xtr, ytr, seed, epochs, lr):
    rng = np.random.RandomState(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(xtr) + BATCH - 1) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    model.train()
    for ep in range(epochs):
        perm = torch.from_numpy(rng.permutation(len(xtr)))
        tot, n = 0.0, 0
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
            n += len(idx)
        print(f"    epoch {ep + 1}/{epochs} train loss {tot / n:.4f}", flush=True)
    model.eval()


@torch.no_grad()
def predict(model, x):
    model.eval()
    out = [model(torch.from_numpy(x[i:i + 1000])) for i in range(0, len(x), 1000)]
    return torch.cat(out).numpy()


# --------------------------------------------------------------------------
# export + checks


def op_histogram(m):
    return dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items()))


def export(model, path, example, bn_kept=False, allow_bn=False, opset=OPSET):
    model.eval()
    kw = dict(input_names=["input"], output_names=["logits"], dynamic_axes=DYN_AXES,
              opset_version=opset)
    if bn_kept:
        kw.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    else:
        kw.update(training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True)
    torch.onnx.export(model, example, path, **kw)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    # interface checks
    assert [i.name for i in m.graph.input] == ["input"], [i.name for i in m.graph.input]
    assert [o.name for o in m.graph.output] == ["logits"]
    d0 = m.graph.input[0].type.tensor_type.shape.dim[0]
    assert d0.dim_param == "N", d0
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.opset_import[0].version == opset
    # BatchNormalization form
    n_bn = sum(isinstance(mod, nn.BatchNorm2d) for mod in model.modules())
    bns = [n for n in m.graph.node if n.op_type == "BatchNormalization"]
    if bn_kept:
        assert len(bns) == n_bn, (len(bns), n_bn)
        for n in bns:
            assert len(n.output) == 1, f"BN {n.name} has {len(n.output)} outputs"
            tm = [a.i for a in n.attribute if a.name == "training_mode"]
            assert tm in ([], [0]), f"BN {n.name} training_mode={tm}"
    else:
        # every Conv -> BatchNormalization pair must have been folded; a BN that does
        # not follow a Conv (e.g. DenseNet's pre-activation BN-ReLU-Conv) cannot be.
        producer = {o: n for n in m.graph.node for o in n.output}
        for n in bns:
            p = producer.get(n.input[0])
            assert p is None or p.op_type != "Conv", f"{path}: BN {n.name} after Conv not folded"
        if not allow_bn:
            assert not bns, f"{path}: {len(bns)} BatchNormalization nodes not folded"
    return m


def param_count(model):
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------
# main: small models


SPECS = [
    # name, ctor, epochs, lr
    ("mlp", lambda: MLP(512), 2, 1e-3),
    ("mlp32", lambda: MLP(32), 2, 3e-3),
    ("cnn", CNN, 1, 2e-3),
    ("resnet", SmallResNet, 1, 3e-3),
    ("transformer", TinyTransformer, 2, 2e-3),
]


def make_small():
    t0 = time.time()
    xtr, ytr, xte, yte = load_fashion()
    np.save(os.path.join(HERE, "fashion_test_x.npy"), np.ascontiguousarray(xte[:1000]))
    np.save(os.path.join(HERE, "fashion_test_y.npy"), np.ascontiguousarray(yte[:1000]))
    np.save(os.path.join(HERE, "fashion_train_x.npy"), np.ascontiguousarray(xtr[:1000]))
    np.save(os.path.join(HERE, "fashion_train_y.npy"), np.ascontiguousarray(ytr[:1000]))
    example = torch.from_numpy(xte[:2])

    records = []
    for name, ctor, epochs, lr in SPECS:
        for seed in SEEDS:
            set_seed(seed)
            model = ctor()
            print(f"== {name} seed {seed}: {param_count(model)} params", flush=True)
            ts = time.time()
            train(model, xtr, ytr, seed, epochs, lr)
            logits = predict(model, xte)
            acc = float((logits.argmax(1) == yte).mean())
            print(f"    test acc {acc:.4f}  ({time.time() - ts:.0f}s)", flush=True)
            if name == "cnn":
                outs = [(f"cnn_bn_s{seed}", True), (f"cnn_fold_s{seed}", False)]
            elif name == "resnet":
                outs = [(f"resnet_s{seed}", True)]
            else:
                outs = [(f"{name}_s{seed}", False)]
            for fname, bn_kept in outs:
                path = os.path.join(HERE, fname + ".onnx")
                m = export(model, path, example, bn_kept=bn_kept)
                # reference logits of the torch model on the committed 1000-image test slice
                np.save(os.path.join(HERE, fname + "_logits.npy"),
                        np.ascontiguousarray(logits[:1000].astype(np.float32)))
                records.append(dict(
                    name=fname, arch=name, seed=seed, test_accuracy=round(acc, 4),
                    test_accuracy_slice1000=round(float((logits[:1000].argmax(1) == yte[:1000]).mean()), 4),
                    opset=OPSET, bn="kept" if bn_kept else ("folded" if name == "cnn" else "none"),
                    params=param_count(model), file=fname + ".onnx",
                    file_size=os.path.getsize(path),
                    sha256=hashlib.sha256(open(path, "rb").read()).hexdigest(),
                    epochs=epochs, ops=op_histogram(m)))
                print(f"    wrote {fname}.onnx ({os.path.getsize(path)} bytes) ops={op_histogram(m)}",
                      flush=True)

    with open(os.path.join(HERE, "models.json"), "w") as f:
        json.dump(dict(
            note="Fashion-MNIST; input float32 (N,1,28,28) = uint8 pixels / 255; "
                 "test_accuracy on the full 10k t10k set computed in torch",
            torch=torch.__version__, onnx=onnx.__version__, models=records), f, indent=1)
        f.write("\n")
    print(f"total {time.time() - t0:.0f}s")


# --------------------------------------------------------------------------
# exports that differ only in form


def load_onnx_weights(model, path):
    """Load the parameters and buffers of model from an export of the same class,
    looking through the Identity nodes PyTorch feeds deduplicated tensors through."""
    m = onnx.load(path)
    arrays = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in arrays:
            arrays[n.output[0]] = arrays[n.input[0]]
    for n in m.graph.node:
        # nn.Linear on 3-D input exports as MatMul with the transposed weight
        # renamed onnx::MatMul_NNN; the node name holds the module path
        # ("/layers/layers.0/q/MatMul" -> layers.0.q).
        if n.op_type == "MatMul" and n.input[1].startswith("onnx::MatMul") and n.input[1] in arrays:
            path = ""
            for part in n.name.split("/")[1:-1]:
                path = part if not path or part.startswith(path + ".") else path + "." + part
            arrays[path + ".weight"] = arrays[n.input[1]].T
    state = model.state_dict()
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        state[k] = torch.from_numpy(arrays[k].copy())
    model.load_state_dict(state)


def half_storage(src, dst):
    """Write a copy of model src whose float32 initializers are stored as float16,
    each read through a Cast to float32 that takes the initializer's name (the
    model still computes in float32: a hand conversion that halves the file)."""
    m = onnx.load(src)
    casts = []
    for t in m.graph.initializer:
        if t.data_type != onnx.TensorProto.FLOAT:
            continue
        name = t.name
        t.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(t).astype(np.float16), name + "_fp16"))
        casts.append(onnx.helper.make_node("Cast", [name + "_fp16"], [name], name="Cast_" + name,
                                           to=onnx.TensorProto.FLOAT))
    nodes = casts + list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.checker.check_model(m)
    onnx.save(m, dst)


def make_forms():
    """Exports of the small ResNet that differ from resnet_s{0,1}.onnx only in form,
    written to testmodels/forms/:
    resnet_init.onnx, an untrained export of the class (PyTorch feeds the many equal
    BatchNorm vectors of a fresh model through Identity nodes of one initializer), and
    resnet_s0_op13.onnx, resnet_s0's trained weights exported at opset 13 instead of 17,
    transformer_s0_op13.onnx, the same for the transformer (whose LayerNorms opset 13
    spells out in elementary ops),
    and resnet_s1_fp16.onnx, resnet_s1 with its weights stored in float16 (half_storage)."""
    xte = load_fashion()[2]
    example = torch.from_numpy(xte[:2])
    forms = os.path.join(HERE, "forms")
    os.makedirs(forms, exist_ok=True)
    set_seed(0)
    model = SmallResNet()
    m = export(model, os.path.join(forms, "resnet_init.onnx"), example, bn_kept=True)
    print(f"wrote resnet_init.onnx ({len(m.graph.node)} nodes) ops={op_histogram(m)}", flush=True)
    model = SmallResNet()
    load_onnx_weights(model, os.path.join(HERE, "resnet_s0.onnx"))
    m = export(model, os.path.join(forms, "resnet_s0_op13.onnx"), example, bn_kept=True, opset=13)
    print(f"wrote resnet_s0_op13.onnx ({len(m.graph.node)} nodes) ops={op_histogram(m)}", flush=True)
    model = TinyTransformer()
    load_onnx_weights(model, os.path.join(HERE, "transformer_s0.onnx"))
    m = export(model, os.path.join(forms, "transformer_s0_op13.onnx"), example, opset=13)
    print(f"wrote transformer_s0_op13.onnx ({len(m.graph.node)} nodes) ops={op_histogram(m)}", flush=True)
    half_storage(os.path.join(HERE, "resnet_s1.onnx"), os.path.join(forms, "resnet_s1_fp16.onnx"))
    print("wrote resnet_s1_fp16.onnx", flush=True)


# --------------------------------------------------------------------------
# --large: random-init structure models


def make_large():
    import torchvision
    os.makedirs(LARGE, exist_ok=True)
    jobs = []
    for arch in ("resnet18", "mobilenet_v2", "densenet121"):
        torch.manual_seed(0)
        model = getattr(torchvision.models, arch)(weights=None).eval()
        ex = torch.randn(1, 3, 64, 64)
        jobs.append((arch, model, ex, False))
        if arch == "resnet18":
            jobs.append(("resnet18_bn", model, ex, True))
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                               hidden_dim=64, mlp_dim=128, num_classes=10).eval()
    jobs.append(("vit_tiny", vit, torch.randn(1, 3, 32, 32), False))
    for arch in ("regnet_x_400mf", "resnext50_32x4d"):
        torch.manual_seed(0)
        jobs.append((arch, getattr(torchvision.models, arch)(weights=None).eval(), torch.randn(1, 3, 64, 64), False))
    for name, model, ex, bn_kept in jobs:
        path = os.path.join(LARGE, name + ".onnx")
        m = export(model, path, ex, bn_kept=bn_kept, allow_bn=(name == "densenet121"))
        print(f"wrote large/{name}.onnx ({os.path.getsize(path)} bytes) params={param_count(model)} "
              f"ops={op_histogram(m)}", flush=True)


ZOO = ("resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "convnext_tiny", "densenet121", "vgg11_bn")


def make_zoo(out, only=None):
    """Writes <arch>_s0.onnx and <arch>_s1.onnx (random init, seeds 0 and 1) for every torchvision
    architecture of ZOO, exported as make_large exports them; files already there are kept."""
    import torchvision
    os.makedirs(out, exist_ok=True)
    for arch in only or ZOO:
        for seed in SEEDS:
            path = os.path.join(out, f"{arch}_s{seed}.onnx")
            if os.path.exists(path):
                continue
            torch.manual_seed(seed)
            model = getattr(torchvision.models, arch)(weights=None).eval()
            # VGG's adaptive pooling to 7×7 exports only from a multiple of 7 (224/32); BatchNorm
            # before a conv (DenseNet's BN-ReLU-Conv) cannot be folded.
            side = 224 if arch.startswith("vgg") else 64
            m = export(model, path + ".tmp", torch.randn(1, 3, side, side), allow_bn=(arch == "densenet121"))
            os.replace(path + ".tmp", path)
            print(f"wrote {path} ({os.path.getsize(path)} bytes) params={param_count(model)} "
                  f"ops={op_histogram(m)}", flush=True)


# --------------------------------------------------------------------------
# --soup: a base model, fine-tunes of it, and fine-tunes on two shifted tasks


SOUP = os.path.join(HERE, "soup")
SOUP_HOLDOUT = 1000  # the first 1000 training images (fashion_train_x.npy) are never trained on


class SoupCNN(nn.Module):
    """Small CNN without BatchNorm, so that averaged weights need no BN reset."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def shift_images(x, dx=4, dy=4):
    """Translate every image by (dy, dx) pixels, filling with zeros (the 'shift' task)."""
    out = np.zeros_like(x)
    out[:, :, dy:, dx:] = x[:, :, :x.shape[2] - dy, :x.shape[3] - dx]
    return out


def noisy_images(x, seed, std=0.6):
    """Add strong Gaussian noise, clipped to [0, 1] (the 'noise' task); seeded."""
    rng = np.random.RandomState(seed)
    return np.clip(x + rng.normal(0, std, x.shape).astype(np.float32), 0, 1).astype(np.float32)


def make_soup():
    t0 = time.time()
    os.makedirs(SOUP, exist_ok=True)
    xtr, ytr, xte, yte = load_fashion()
    xtr, ytr = xtr[SOUP_HOLDOUT:], ytr[SOUP_HOLDOUT:]
    example = torch.from_numpy(xte[:2])
    tasks = {
        "clean": (xtr, xte),
        "shift": (shift_images(xtr), shift_images(xte)),
        "noise": (noisy_images(xtr, 100), noisy_images(xte, 101)),
    }
    # committed test slices of the shifted tasks (the clean one is fashion_test_x.npy)
    for t in ("shift", "noise"):
        np.save(os.path.join(SOUP, f"{t}_test_x.npy"), np.ascontiguousarray(tasks[t][1][:1000].astype(np.float16)))

    def evaluate(model):
        return {t: round(float((predict(model, te).argmax(1) == yte).mean()), 4) for t, (_, te) in tasks.items()}

    records = []

    def save(model, name, **info):
        path = os.path.join(SOUP, name + ".onnx")
        export(model, path, example)
        accs = evaluate(model)
        rec = dict(name=name, file="soup/" + name + ".onnx", test_accuracy=accs,
                   file_size=os.path.getsize(path),
                   sha256=hashlib.sha256(open(path, "rb").read()).hexdigest(), **info)
        records.append(rec)
        print(f"    wrote soup/{name}.onnx {accs}", flush=True)

    set_seed(0)
    base = SoupCNN()
    print(f"== soup base: {param_count(base)} params", flush=True)
    train(base, xtr, ytr, 0, 2, 3e-3)
    save(base, "base", seed=0, epochs=2, lr=3e-3, data="clean")
    state = {k: v.clone() for k, v in base.state_dict().items()}
    # fine-tunes for soups: same data, other seeds (data order) and learning rates
    for i, (seed, lr) in enumerate([(1, 1e-3), (2, 2e-3), (3, 5e-4), (4, 1.5e-3)]):
        set_seed(seed)
        m = SoupCNN()
        m.load_state_dict(state)
        print(f"== soup fine-tune ft{i} seed {seed} lr {lr}", flush=True)
        train(m, xtr, ytr, seed, 1, lr)
        save(m, f"ft{i}", seed=seed, epochs=1, lr=lr, data="clean")
    # fine-tunes on the two shifted tasks
    for t in ("shift", "noise"):
        set_seed(10)
        m = SoupCNN()
        m.load_state_dict(state)
        print(f"== soup fine-tune on {t}", flush=True)
        train(m, tasks[t][0], ytr, 10, 1, 1e-3)
        save(m, f"task_{t}", seed=10, epochs=1, lr=1e-3, data=t)
    with open(os.path.join(SOUP, "models.json"), "w") as f:
        json.dump(dict(
            note="SoupCNN on Fashion-MNIST; training never sees the first 1000 training images "
                 "(../fashion_train_x.npy, the held-out set for greedy soups); test_accuracy on the full "
                 "10k t10k set (clean, shifted by (4,4) pixels, Gaussian noise std 0.6 clipped) in torch; "
                 "shift_test_x.npy / noise_test_x.npy are the first 1000 of those (float16), labels "
                 "../fashion_test_y.npy",
            torch=torch.__version__, onnx=onnx.__version__, models=records), f, indent=1)
        f.write("\n")
    print(f"total {time.time() - t0:.0f}s")
# --attention: small random-init attention models (committed)


class SeparateQKV(nn.Module):
    """Attention with separate q/k/v Linear layers and view/transpose (the
    common hand-written form), with an additive mask."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, mask):
        n, t, d = x.shape
        q = self.q(x).view(n, t, self.h, self.dh).transpose(1, 2)
        k = self.k(x).view(n, t, self.h, self.dh).transpose(1, 2)
        v = self.v(x).view(n, t, self.h, self.dh).transpose(1, 2)
        s = q @ k.transpose(-2, -1) * (self.dh ** -0.5) + mask
        a = torch.softmax(s, dim=-1) @ v
        return self.o(a.transpose(1, 2).reshape(n, t, d))


class GroupedQuery(nn.Module):
    """Grouped-query attention: 4 query heads, 2 key/value heads, each shared
    by two query heads (repeat_interleave); with kv_heads=1 multi-query
    attention, one key/value head shared by all four."""

    def __init__(self, d=32, heads=4, kv_heads=2):
        super().__init__()
        self.h, self.kv, self.dh = heads, kv_heads, d // heads
        self.q, self.o = nn.Linear(d, d), nn.Linear(d, d)
        self.k, self.v = nn.Linear(d, kv_heads * self.dh), nn.Linear(d, kv_heads * self.dh)

    def forward(self, x, mask):
        n, t, d = x.shape
        q = self.q(x).view(n, t, self.h, self.dh).transpose(1, 2)
        k = self.k(x).view(n, t, self.kv, self.dh).transpose(1, 2).repeat_interleave(self.h // self.kv, dim=1)
        v = self.v(x).view(n, t, self.kv, self.dh).transpose(1, 2).repeat_interleave(self.h // self.kv, dim=1)
        a = torch.softmax(q @ k.transpose(-2, -1) * (self.dh ** -0.5) + mask, dim=-1) @ v
        return self.o(a.transpose(1, 2).reshape(n, t, d))


class Rotary(SeparateQKV):
    """SeparateQKV with rotary position embeddings on q and k (rotate_half form)."""

    def __init__(self, d=32, heads=4, tokens=6):
        super().__init__(d, heads)
        inv = 1.0 / (10000 ** (torch.arange(0, self.dh, 2).float() / self.dh))
        f = torch.outer(torch.arange(tokens).float(), inv)
        emb = torch.cat((f, f), -1)
        self.register_buffer("cos", emb.cos())
        self.register_buffer("sin", emb.sin())

    def rope(self, x):
        x1, x2 = x[..., : self.dh // 2], x[..., self.dh // 2:]
        return x * self.cos + torch.cat((-x2, x1), -1) * self.sin

    def forward(self, x, mask):
        n, t, d = x.shape
        q = self.rope(self.q(x).view(n, t, self.h, self.dh).transpose(1, 2))
        k = self.rope(self.k(x).view(n, t, self.h, self.dh).transpose(1, 2))
        v = self.v(x).view(n, t, self.h, self.dh).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-2, -1) * (self.dh ** -0.5) + mask, dim=-1) @ v
        return self.o(a.transpose(1, 2).reshape(n, t, d))


class AttnNet(nn.Module):
    """in-projection, two attention blocks with residuals and MLPs, mean, head."""

    def __init__(self, attn, d=32, tokens=6):
        super().__init__()
        self.inp = nn.Linear(16, d)
        self.attn = nn.ModuleList([attn(), attn()])
        self.norm = nn.ModuleList([nn.LayerNorm(d), nn.LayerNorm(d)])
        self.mlp = nn.ModuleList([nn.Sequential(nn.Linear(d, 48), nn.GELU(), nn.Linear(48, d)) for _ in range(2)])
        self.head = nn.Linear(d, 5)
        self.register_buffer("mask", torch.triu(torch.full((tokens, tokens), -1e4), 1))

    def forward(self, x):
        x = self.inp(x)
        for a, nrm, f in zip(self.attn, self.norm, self.mlp):
            x = x + a(nrm(x), self.mask)
            x = x + f(x)
        return self.head(x.mean(1))


class TorchMHA(nn.Module):
    def __init__(self, d=32, heads=4):
        super().__init__()
        self.m = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, x, mask):
        return self.m(x, x, x, attn_mask=mask, need_weights=False)[0]


class TorchEncoder(nn.Module):
    """nn.TransformerEncoder (packed in_proj, post-LN), in and out projections."""

    def __init__(self, d=32):
        super().__init__()
        self.inp = nn.Linear(16, d)
        layer = nn.TransformerEncoderLayer(d, 4, 48, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 5)

    def forward(self, x):
        return self.head(self.enc(self.inp(x)).mean(1))


class GroupedConvNet(nn.Module):
    """A ResNeXt-style bottleneck (1x1, grouped 3x3, 1x1, residual) and a grouped
    ConvTranspose, with BatchNorm folded or kept as the export decides."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(16, 24, 1), nn.BatchNorm2d(24), nn.ReLU(),
            nn.Conv2d(24, 24, 3, padding=1, groups=4), nn.BatchNorm2d(24), nn.ReLU(),
            nn.Conv2d(24, 16, 1), nn.BatchNorm2d(16))
        self.up = nn.ConvTranspose2d(16, 12, 2, stride=2, groups=2)
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        x = torch.relu(self.up(x))
        return self.head(x.mean((2, 3)))


def make_attention():
    torch.manual_seed(0)
    model = GroupedConvNet().eval()
    for mod in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    path = os.path.join(HERE, "gconv.onnx")
    torch.onnx.export(model, torch.randn(2, 3, 8, 8), path, input_names=["input"], output_names=["logits"],
                      dynamic_axes=DYN_AXES, opset_version=OPSET, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(path))
    print(f"wrote gconv.onnx ({os.path.getsize(path)} bytes) params={param_count(model)}", flush=True)
    example = torch.randn(2, 6, 16)
    for name, ctor in (("attn_qkv", lambda: AttnNet(SeparateQKV)),
                       ("attn_mha", lambda: AttnNet(TorchMHA)),
                       ("attn_gqa", lambda: AttnNet(GroupedQuery)),
                       ("attn_mqa", lambda: AttnNet(lambda: GroupedQuery(kv_heads=1))),
                       ("attn_rotary", lambda: AttnNet(Rotary)),
                       ("attn_encoder", TorchEncoder)):
        torch.manual_seed(0)
        model = ctor().eval()
        path = os.path.join(HERE, name + ".onnx")
        torch.onnx.export(model, example, path, input_names=["input"], output_names=["logits"],
                          dynamic_axes=DYN_AXES, opset_version=OPSET, do_constant_folding=True)
        m = onnx.load(path)
        onnx.checker.check_model(m)
        print(f"wrote {name}.onnx ({os.path.getsize(path)} bytes) params={param_count(model)} "
              f"ops={op_histogram(m)}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true",
                    help="only write random-init structure models to testmodels/large/")
    ap.add_argument("--soup", action="store_true",
                    help="only write the soup ingredients (base, fine-tunes, task fine-tunes) to testmodels/soup/")
    ap.add_argument("--forms", action="store_true",
                    help="only write the exports that differ from the small ResNet in form (needs resnet_s0.onnx)")
    ap.add_argument("--attention", action="store_true",
                    help="only write the small random-init attention models (attn_*.onnx) and gconv.onnx")
    ap.add_argument("--zoo", metavar="DIR",
                    help="only write random-init torchvision pairs (seeds 0 and 1) for bench/zoo to DIR")
    ap.add_argument("--arch", action="append", help="with --zoo: only this architecture (repeatable)")
    args = ap.parse_args()
    if args.zoo:
        make_zoo(args.zoo, args.arch)
    elif args.soup:
        make_soup()
    elif args.attention:
        make_attention()
    elif args.large:
        make_large()
    elif args.forms:
        make_forms()
    else:
        make_small()
        make_forms()


if __name__ == "__main__":
    main()
