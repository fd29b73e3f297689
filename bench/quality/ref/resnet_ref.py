#!/usr/bin/python3
"""Independent PyTorch reference for data-driven merging of the testmodels ResNet pair.

Rebuilds testmodels/make_models.py's SmallResNet, loads testmodels/resnet_s{0,1}.onnx into it by
initializer name, and implements, from the papers' definitions and without any onnx-rebasin code:

  * activation matching (Ainsworth et al. 2022, sec. 3.1): per permutation group, sum over the
    sites the group permutes of the Pearson correlation (or raw cross-product) matrix between the
    two models' channels, computed over every (image, pixel) position; one linear assignment per
    group (scipy's linear_sum_assignment when present, else an exact numpy Hungarian checked
    against brute force). The residual stream of each stage is one group tied by the Adds.
  * interpolation at lambda (plain average of every parameter and running statistic),
  * BN reset (train-mode forward over the calibration set, cumulative statistics),
  * REPAIR for BatchNorm networks (Jordan et al. 2022): every BN output channel of the merged
    model is given the interpolated mean/std of the endpoints' BN output channel (measured on the
    calibration set): stats reset, then gamma := sigma_goal, beta := mu_goal (exact on the set,
    since in train mode a BN's output is exactly gamma * standardised + beta).

Usage (from anywhere; CPU, one thread, ~2-4 min per calibration size):

    nice /usr/bin/python3 bench/quality/ref/resnet_ref.py                    # 1,000 images (testmodels)
    nice /usr/bin/python3 bench/quality/ref/resnet_ref.py --cal 5000         # first 5,000 training images
    nice /usr/bin/python3 bench/quality/ref/resnet_ref.py --ours-report r.json   # compare permutations

--ours-report takes `onnx-rebasin align ... --method activation --report r.json` and prints, per
group, how many units our tool's permutation maps differently from each reference variant.
--save-perms FILE writes the reference permutations (same convention: new unit i = old unit p[i]).
"""

import argparse
import gzip
import itertools
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
T = os.path.join(REPO, "testmodels")
DATA_DIR = "/usr/share/datasets/fashion-mnist"

sys.path = [p for p in sys.path if os.path.abspath(p or ".") != REPO]  # the repo's onnx/ Go package
import onnx  # noqa: E402
import onnx.numpy_helper  # noqa: E402


# ----------------------------------------------------------------------------- data


def read_idx(name):
    with gzip.open(os.path.join(DATA_DIR, name), "rb") as f:
        raw = f.read()
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)


def images(name):
    return (read_idx(name).astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)


# ----------------------------------------------------------------------------- model (make_models.py)


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


def load_onnx(path):
    m = onnx.load(path)
    arrays = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:  # deduplicated tensors fed through Identity
        if n.op_type == "Identity" and n.input[0] in arrays:
            arrays[n.output[0]] = arrays[n.input[0]]
    model = SmallResNet()
    state = model.state_dict()
    for k in state:
        if k.endswith("num_batches_tracked"):
            continue
        assert tuple(arrays[k].shape) == tuple(state[k].shape), k
        state[k] = torch.from_numpy(arrays[k].copy())
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def predict(model, x, bs=1000):
    model.eval()
    return torch.cat([model(torch.from_numpy(x[i:i + bs])) for i in range(0, len(x), bs)]).numpy()


def evaluate(model, x, y):
    logits = torch.from_numpy(predict(model, x))
    return float((logits.argmax(1).numpy() == y).mean()), float(F.cross_entropy(logits, torch.from_numpy(y)))


# ----------------------------------------------------------------------------- permutation spec

# Groups and the sites each permutes. "pre" sites are BatchNorm outputs (pre-activation; for the
# residual stream, each branch's BN output before the Add), "post" sites are ReLU outputs (for the
# residual stream, the stream itself after each block). "stage_end" (as in Jordan et al.'s ResNet
# code) uses only the stream at the end of its stage.
GROUPS = {
    "res16": dict(size=16,
                  pre=["stem.1", "layer1.0.bn2", "layer1.1.bn2"],
                  post=["stem", "layer1.0", "layer1.1"],
                  stage_end=["layer1.1"],
                  all=["conv:stem.0", "stem.1", "stem",
                       "conv:layer1.0.conv2", "layer1.0.bn2", "add:layer1.0", "layer1.0",
                       "conv:layer1.1.conv2", "layer1.1.bn2", "add:layer1.1", "layer1.1"]),
    "l1.0": dict(size=16, pre=["layer1.0.bn1"], post=["layer1.0.bn1+relu"], stage_end=["layer1.0.bn1+relu"]),
    "l1.1": dict(size=16, pre=["layer1.1.bn1"], post=["layer1.1.bn1+relu"], stage_end=["layer1.1.bn1+relu"]),
    "res32": dict(size=32,
                  pre=["layer2.0.downsample.1", "layer2.0.bn2", "layer2.1.bn2"],
                  post=["layer2.0", "layer2.1"],
                  stage_end=["layer2.1"],
                  all=["conv:layer2.0.downsample.0", "layer2.0.downsample.1",
                       "conv:layer2.0.conv2", "layer2.0.bn2", "add:layer2.0", "layer2.0",
                       "conv:layer2.1.conv2", "layer2.1.bn2", "add:layer2.1", "layer2.1",
                       "pool", "pool"]),  # GlobalAveragePool and Flatten outputs (equal values)
    "l2.0": dict(size=32, pre=["layer2.0.bn1"], post=["layer2.0.bn1+relu"], stage_end=["layer2.0.bn1+relu"]),
    "l2.1": dict(size=32, pre=["layer2.1.bn1"], post=["layer2.1.bn1+relu"], stage_end=["layer2.1.bn1+relu"]),
}

# "all" is every value the group permutes, as onnx-rebasin's activation matching pools them: conv
# output, BN output, Add output and ReLU output (for a block's hidden group: conv1, bn1, relu).
for _g in ("l1.0", "l1.1", "l2.0", "l2.1"):
    _blk = "layer" + _g[1:]
    GROUPS[_g]["all"] = [f"conv:{_blk}.conv1", f"{_blk}.bn1", f"{_blk}.bn1+relu"]

# (parameter or buffer, axis, group). Every BN vector (weight, bias, running stats) moves with its
# channels; conv weights move on axis 0 by their output group and on axis 1 by their input group.
BN_VECS = ("weight", "bias", "running_mean", "running_var")


def perm_spec():
    spec = []

    def bn(prefix, g):
        spec.extend((f"{prefix}.{v}", 0, g) for v in BN_VECS)

    spec.append(("stem.0.weight", 0, "res16"))
    bn("stem.1", "res16")
    for blk, g_in, g_mid, g_out in (("layer1.0", "res16", "l1.0", "res16"), ("layer1.1", "res16", "l1.1", "res16"),
                                    ("layer2.0", "res16", "l2.0", "res32"), ("layer2.1", "res32", "l2.1", "res32")):
        spec += [(f"{blk}.conv1.weight", 0, g_mid), (f"{blk}.conv1.weight", 1, g_in)]
        bn(f"{blk}.bn1", g_mid)
        spec += [(f"{blk}.conv2.weight", 0, g_out), (f"{blk}.conv2.weight", 1, g_mid)]
        bn(f"{blk}.bn2", g_out)
    spec += [("layer2.0.downsample.0.weight", 0, "res32"), ("layer2.0.downsample.0.weight", 1, "res16")]
    bn("layer2.0.downsample.1", "res32")
    spec.append(("fc.weight", 1, "res32"))
    return spec


def apply_perms(model, perms):
    """New unit i of each group = old unit perms[g][i]."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for name, axis, g in perm_spec():
        state[name] = torch.index_select(state[name], axis, torch.as_tensor(perms[g], dtype=torch.long))
    out = SmallResNet()
    out.load_state_dict(state)
    return out.eval()


# ----------------------------------------------------------------------------- activations


SITE_MODULES = ("stem.1", "layer1.0.bn2", "layer1.1.bn2", "layer2.0.downsample.1", "layer2.0.bn2", "layer2.1.bn2",
                "layer1.0.bn1", "layer1.1.bn1", "layer2.0.bn1", "layer2.1.bn1",
                "stem", "layer1.0", "layer1.1", "layer2.0", "layer2.1")
CONV_MODULES = ("stem.0", "layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2",
                "layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv1", "layer2.1.conv2")


def capture_batch(model, xb):
    """Per site name (see GROUPS), the (N*H*W, C) float64 activations of one batch."""
    acts, hooks = {}, []

    def keep(name):
        def hook(_m, _i, out):
            flat = lambda o: o.permute(0, 2, 3, 1).reshape(-1, o.shape[1]).double()
            acts[name] = flat(out)
            if name.endswith("bn1"):
                acts[name + "+relu"] = flat(F.relu(out))
        return hook

    mods = dict(model.named_modules())
    for name in SITE_MODULES:
        hooks.append(mods[name].register_forward_hook(keep(name)))
    for name in CONV_MODULES:
        hooks.append(mods[name].register_forward_hook(keep("conv:" + name)))
    with torch.no_grad():
        model.eval()
        model(xb)
    for h in hooks:
        h.remove()
    # the Adds: a block's bn2 output plus its shortcut (its input, or the downsample's BN output)
    for blk, shortcut in (("layer1.0", "stem"), ("layer1.1", "layer1.0"),
                          ("layer2.0", "layer2.0.downsample.1"), ("layer2.1", "layer2.0")):
        acts["add:" + blk] = acts[blk + ".bn2"] + acts[shortcut]
    acts["pool"] = acts["layer2.1"].reshape(xb.shape[0], -1, acts["layer2.1"].shape[1]).mean(1)
    return acts


def site_moments(ma, mb, x, bs=100):
    """Per site: n, sum a, sum b, sum a^2, sum b^2, a^T b over every (image, pixel) position."""
    mom = {}
    for i in range(0, len(x), bs):
        xb = torch.from_numpy(x[i:i + bs])
        aa, ab = capture_batch(ma, xb), capture_batch(mb, xb)
        for name in aa:
            a, b = aa[name], ab[name]
            m = mom.setdefault(name, [0, 0, 0, 0, 0, 0])
            m[0] += a.shape[0]
            m[1] = m[1] + a.sum(0)
            m[2] = m[2] + b.sum(0)
            m[3] = m[3] + (a * a).sum(0)
            m[4] = m[4] + (b * b).sum(0)
            m[5] = m[5] + a.T @ b
    return mom


def score_matrix(m, kind):
    n, sa, sb, saa, sbb, sab = m
    if kind == "cross":
        return (sab / n).numpy()
    ma, mb = sa / n, sb / n
    cov = sab / n - torch.outer(ma, mb)
    sda = (saa / n - ma * ma).clamp_min(0).sqrt()
    sdb = (sbb / n - mb * mb).clamp_min(0).sqrt()
    return (cov / (torch.outer(sda, sdb) + 1e-12)).numpy()


# ----------------------------------------------------------------------------- linear assignment


def lap_numpy(cost):
    """Exact min-cost assignment of a square matrix (Jonker-Volgenant style shortest augmenting
    path with potentials, O(n^3)). Returns col such that row i -> col[i]."""
    c = np.asarray(cost, dtype=np.float64)
    n = c.shape[0]
    u = np.zeros(n + 1)
    v = np.zeros(n + 1)
    p = np.zeros(n + 1, dtype=np.int64)  # p[j]: row matched to column j (1-based, 0 = none)
    way = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = c[i0 - 1, :] - u[i0] - v[1:]
            free = ~used[1:]
            upd = free & (cur < minv[1:])
            minv[1:][upd] = cur[upd]
            way[1:][upd] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    col = np.zeros(n, dtype=np.int64)
    for j in range(1, n + 1):
        col[p[j] - 1] = j - 1
    return col


def lap_max(score):
    """Permutation perm maximising sum_i score[i, perm[i]]."""
    try:
        from scipy.optimize import linear_sum_assignment
        r, c = linear_sum_assignment(score, maximize=True)
        return c[np.argsort(r)]
    except ImportError:
        return lap_numpy(-score)


def lap_selftest():
    rng = np.random.RandomState(0)
    for n in range(1, 8):
        for _ in range(30):
            s = rng.randn(n, n) if rng.rand() < 0.7 else rng.randint(0, 3, (n, n)).astype(float)
            best = max(sum(s[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))
            got = lap_numpy(-s)
            assert sorted(got) == list(range(n))
            assert abs(sum(s[i, got[i]] for i in range(n)) - best) < 1e-9, (n, s)
    for n in (16, 32, 64):
        s = rng.randn(n, n)
        a = lap_numpy(-s)
        b = lap_max(s)
        assert abs(s[np.arange(n), a].sum() - s[np.arange(n), b].sum()) < 1e-9
    print("lap self-test: numpy Hungarian = brute force (n <= 7) and = scipy/numpy (n = 16, 32, 64)")


def activation_matching(mom, sites="post", kind="corr"):
    perms = {}
    for g, spec in GROUPS.items():
        names = spec[sites] if sites != "both" else spec["pre"] + spec["post"]
        s = sum(score_matrix(mom[n], kind) for n in names)
        perms[g] = lap_max(s)
    return perms


# ----------------------------------------------------------------------------- merging


def interpolate(ma, mb, lam=0.5):
    sa, sb = ma.state_dict(), mb.state_dict()
    out = SmallResNet()
    out.load_state_dict({k: ((1 - lam) * sa[k] + lam * sb[k]) if sa[k].is_floating_point() else sa[k] for k in sa})
    return out.eval()


def bns(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


@torch.no_grad()
def reset_bn(model, x, bs=1000):
    """Running statistics := data statistics (train-mode forward, cumulative averaging). With one
    batch (bs >= len(x)) the mean is exact and the variance the unbiased one PyTorch stores."""
    for m in bns(model):
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(x), bs):
        model(torch.from_numpy(x[i:i + bs]))
    model.eval()
    return model


@torch.no_grad()
def bn_output_stats(model, x, bs=1000):
    """Per BN module name: per-channel mean and std of its output, eval mode, over the data."""
    mods = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    acc = {n: [0, 0.0, 0.0] for n in mods}
    hooks = []
    for n, m in mods.items():
        def hook(_m, _i, out, n=n):
            o = out.double().transpose(0, 1).reshape(out.shape[1], -1)
            acc[n][0] += o.shape[1]
            acc[n][1] = acc[n][1] + o.sum(1)
            acc[n][2] = acc[n][2] + (o * o).sum(1)
        hooks.append(m.register_forward_hook(hook))
    model.eval()
    for i in range(0, len(x), bs):
        model(torch.from_numpy(x[i:i + bs]))
    for h in hooks:
        h.remove()
    out = {}
    for n, (cnt, s, ss) in acc.items():
        mu = s / cnt
        out[n] = (mu, (ss / cnt - mu * mu).clamp_min(0).sqrt())
    return out


@torch.no_grad()
def repair(merged, ma, mb, x, lam=0.5, bs=1000):
    """REPAIR for BN networks: each BN output channel of the merged model gets mean
    (1-lam)*mu_A + lam*mu_B and std (1-lam)*sd_A + lam*sd_B (endpoint BN outputs, on x)."""
    st_a, st_b = bn_output_stats(ma, x, bs), bn_output_stats(mb, x, bs)
    mods = {n: m for n, m in merged.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for n, m in mods.items():
        mu = (1 - lam) * st_a[n][0] + lam * st_b[n][0]
        sd = (1 - lam) * st_a[n][1] + lam * st_b[n][1]
        m.weight.copy_(sd.float())
        m.bias.copy_(mu.float())
    # with gamma/beta set, train-mode BN outputs have exactly the goal moments; record the
    # input statistics that make eval mode reproduce that
    return reset_bn(merged, x, bs)


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cal", type=int, default=1000,
                    help="calibration images: the first N training images (1000 = testmodels/fashion_train_x.npy)")
    ap.add_argument("--a", default=os.path.join(T, "resnet_s0.onnx"))
    ap.add_argument("--b", default=os.path.join(T, "resnet_s1.onnx"))
    ap.add_argument("--ours-report", help="align --report JSON of onnx-rebasin, to compare permutations per group")
    ap.add_argument("--ours-groups", help="groups --json of model a, to map our group ids to the reference's")
    ap.add_argument("--save-perms", help="write the reference permutations (JSON, per variant and group)")
    ap.add_argument("--quick", action="store_true", help="only the post/corr variant")
    args = ap.parse_args()
    t0 = time.time()

    lap_selftest()
    if args.cal == 1000:
        xcal = np.load(os.path.join(T, "fashion_train_x.npy"))
    else:
        xcal = images("train-images-idx3-ubyte.gz")[:args.cal]
    assert np.array_equal(xcal[:1000], np.load(os.path.join(T, "fashion_train_x.npy")))
    xte, yte = images("t10k-images-idx3-ubyte.gz"), read_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    ma, mb = load_onnx(args.a), load_onnx(args.b)

    # the loaded models compute what the ONNX files compute (torch logits committed at export)
    for m, s in ((ma, 0), (mb, 1)):
        ref = np.load(os.path.join(T, f"resnet_s{s}_logits.npy"))
        d = np.abs(predict(m, xte[:1000]) - ref).max()
        print(f"resnet_s{s}: max |logits - committed logits| on 1,000 test images = {d:.2e}")
        assert d < 1e-3

    rows = []

    def row(name, model):
        acc, loss = evaluate(model, xte, yte)
        rows.append((name, acc, loss))
        print(f"  {name:48s} acc {acc:.4f}  loss {loss:.3f}   ({time.time() - t0:.0f}s)", flush=True)

    print(f"calibration: first {len(xcal)} training images; test: 10,000 t10k images")
    row("endpoint A (s0)", ma)
    row("endpoint B (s1)", mb)
    row("naive", interpolate(ma, mb))
    row("naive + BN reset", reset_bn(interpolate(ma, mb), xcal))
    row("naive + REPAIR", repair(interpolate(ma, mb), ma, mb, xcal))

    variants = [("post", "corr")] if args.quick else [
        ("post", "corr"), ("pre", "corr"), ("both", "corr"), ("stage_end", "corr"), ("all", "corr"), ("post", "cross")]
    all_perms = {}
    mom = site_moments(ma, mb, xcal)
    for sites, kind in variants:
        tag = f"act[{sites},{kind}]"
        perms = activation_matching(mom, sites, kind)
        all_perms[tag] = {g: p.tolist() for g, p in perms.items()}
        mb2 = apply_perms(mb, perms)
        d = np.abs(predict(mb2, xte[:1000]) - predict(mb, xte[:1000])).max()
        assert d < 1e-3, f"permuted B differs from B by {d}"
        if len(all_perms) == 1:  # without a BN fix every variant sits near chance; measure the first only
            row(tag, interpolate(ma, mb2))
        row(tag + " + BN reset", reset_bn(interpolate(ma, mb2), xcal))
        row(tag + " + REPAIR", repair(interpolate(ma, mb2), ma, mb2, xcal))

    if args.ours_report:
        rep = json.load(open(args.ours_report))
        ours_perms = rep["perms"]
        # map our groups to the reference's by size and order (checked against --ours-groups below)
        order = ["res16", "l1.0", "l1.1", "l2.0", "res32", "l2.1"]
        if args.ours_groups:
            gj = json.load(open(args.ours_groups))
            order = []
            for g in gj["groups"]:
                tensors = {w["tensor"] for w in g["weights"]}
                hit = [k for k, key in (("res16", "stem.1.weight"), ("res32", "layer2.0.downsample.1.weight"),
                                        ("l1.0", "layer1.0.bn1.weight"), ("l1.1", "layer1.1.bn1.weight"),
                                        ("l2.0", "layer2.0.bn1.weight"), ("l2.1", "layer2.1.bn1.weight"))
                       if key in tensors]
                order.append(hit[0] if hit else f"?{g['id']}")
        print("our group order:", order)
        ours = {order[i]: np.array(p) for i, p in enumerate(ours_perms)}
        print("units mapped differently, ours vs reference variant (group: differing / size):")
        for tag, perms in all_perms.items():
            diffs = {g: int((np.array(perms[g]) != ours[g]).sum()) for g in GROUPS if g in ours}
            print(f"  {tag:24s} " + "  ".join(f"{g}: {d}/{GROUPS[g]['size']}" for g, d in diffs.items()))
        mb2 = apply_perms(mb, {g: ours[g] for g in GROUPS})
        d = np.abs(predict(mb2, xte[:1000]) - predict(mb, xte[:1000])).max()
        print(f"our perms applied by the reference: max |B' - B| logits = {d:.2e}")
        row("ours' perms, reference merge", interpolate(ma, mb2))
        row("ours' perms + BN reset (reference)", reset_bn(interpolate(ma, mb2), xcal))
        row("ours' perms + REPAIR (reference)", repair(interpolate(ma, mb2), ma, mb2, xcal))
        all_perms["ours"] = {g: ours[g].tolist() for g in GROUPS}

    if args.save_perms:
        with open(args.save_perms, "w") as f:
            json.dump(all_perms, f)

    print()
    print(f"| method (calibration {len(xcal)} images) | test accuracy | test loss |")
    print("|---|---|---|")
    for name, acc, loss in rows:
        print(f"| {name} | {acc:.3f} | {loss:.3f} |")
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
