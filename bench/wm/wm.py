#!/usr/bin/python3
"""Reference weight matching (Git Re-Basin) on ONNX files, in numpy + scipy.

A faithful port of `weight_matching` from the authors' repository
(samuela/git-re-basin, src/weight_matching.py; Ainsworth, Hayase & Srinivasa
2022, arXiv 2209.04836, Algorithm 1 "PermutationCoordinateDescent"), with
hand-written permutation specs for the architectures used by bench/wm:

  * MLP  (torch nn.Sequential of Flatten, Linear, ReLU, ...; Gemm in ONNX)
  * ResNet of BasicBlocks with BatchNormalization kept (torch naming
    stem.0/stem.1, layerS.B.conv1/bn1/conv2/bn2/downsample.0/downsample.1, fc)
  * plain CNN: a chain of Conv [BatchNormalization] Relu [MaxPool], Flatten,
    Gemm, Relu, ..., Gemm (testmodels cnn_bn, cnn_fold), read from the graph

As in the paper, the objective is over trainable parameters only: BatchNorm
running means and variances are permuted with their channels (so that the
merged model --merge-out writes is B's function, permuted) but not scored.
--score-stats adds them to the objective, as this port did before (off by
default; it lowers the merged accuracy of the BatchNorm pairs).

Without python3-scipy, linear_sum_assignment is replaced by an exact
shortest-augmenting-path solver in numpy (lsa_numpy, the algorithm scipy
uses); with generic float costs the optimum is unique, so the result is the
same.

Usage:
    wm.py A.onnx B.onnx [--seed 0] [--max-iter 100] [--dtype float32] [--json out.json]
          [--merge-out mid.onnx] [--score-stats]
    wm.py --selftest [--testmodels DIR]
    wm.py A.onnx B.onnx --check-perms report.json --groups groups.json [--json out.json]

What is computed (the paper's code, line by line):

    for iteration in range(max_iter):
        progress = False
        for p in perm_names[random permutation]:
            A = 0 (n x n)
            for (param, axis) in perm_to_axes[p]:
                w_a = params_a[param]                          moved axis to front, (n, -1)
                w_b = B's param with every OTHER axis permuted  moved axis to front, (n, -1)
                A += w_a @ w_b.T
            ci = linear_sum_assignment(A, maximize=True)
            oldL = <A, P_old>, newL = <A, P_new>
            progress |= newL > oldL + 1e-12
            perm[p] = ci
        if not progress: break

Numerics: the weights are float32 as stored in the ONNX file. With
--dtype float32 (default; as the paper's float32 JAX code) each product
w_a @ w_b.T is a float32 GEMM (OpenBLAS sgemm), accumulated into a float64 A;
with --dtype float64 the weights are converted to float64 first and every
product is a float64 GEMM. oldL/newL and the objective are float64.

Objective (comparable with onnx-rebasin's "objective_before/after"):
    Σ over every parameter of the spec that has at least one permuted axis
    of <W_A, π(W_B)>, in float64. Parameters of the spec no permutation touches
    (e.g. the final layer's bias) are excluded; the sum over ALL spec
    parameters is printed as well ("objective_all").
A parameter is one weight *use* (one node input): the torch exporter sometimes
deduplicates equal initializers and feeds the second user through an Identity
node (resnet_s*.onnx: layer2.0.downsample.1.bias = Identity(layer2.0.bn2.bias));
such a parameter is read through the Identity and counted once per use, as
onnx-rebasin does.

Timing: "load" = onnx.load + numpy_helper.to_array of both files; "match" =
the weight_matching loop alone (from loaded arrays to the final permutation);
"total" = load + match. The objective evaluations are not timed.
"""

import argparse
import itertools
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper

try:
    from scipy.optimize import linear_sum_assignment
except ImportError:  # python3-scipy missing: an exact solver of the same problem
    linear_sum_assignment = None


# --------------------------------------------------------------------------
# ONNX loading


def load_params(path):
    """Initializers of an ONNX file as float32 numpy arrays, plus every
    Identity node output that aliases an initializer (resolved transitively)."""
    m = onnx.load(path)
    params = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    changed = True
    while changed:
        changed = False
        for n in m.graph.node:
            if n.op_type == "Identity" and n.input[0] in params and n.output[0] not in params:
                params[n.output[0]] = params[n.input[0]]
                changed = True
    return params, m


# --------------------------------------------------------------------------
# permutation specs (torch layouts: Linear/Gemm weight (out, in), Conv (out, in, kh, kw))


class PermutationSpec:
    """axes_to_perm: every parameter's permutation per axis (what is applied);
    stats: the parameters that are statistics (BatchNorm running mean/var),
    permuted but left out of perm_to_axes and the objective unless score_stats."""

    def __init__(self, axes_to_perm, stats=(), reshaped=None):
        self.axes_to_perm = axes_to_perm
        self.stats = set(stats)
        self.reshaped = reshaped or {}  # name -> (file shape, matched shape)
        self.score_stats = False
        self._index()

    def _index(self):
        self.perm_to_axes = {}
        for wk, axes in self.axes_to_perm.items():
            if wk in self.stats and not self.score_stats:
                continue
            for axis, p in enumerate(axes):
                if p is not None:
                    self.perm_to_axes.setdefault(p, []).append((wk, axis))

    def scored(self):
        return [k for k in self.axes_to_perm if self.score_stats or k not in self.stats]

    def set_score_stats(self, on):
        self.score_stats = on
        self._index()

    def reshape(self, params):
        """params with the reshaped parameters in their matched shape."""
        out = dict(params)
        for k, (_, shape) in self.reshaped.items():
            out[k] = params[k].reshape(shape)
        return out


def mlp_permutation_spec(params):
    """nn.Sequential(Flatten, Linear, ReLU, ..., Linear): net.1, net.3, ..."""
    layers = sorted(int(k.split(".")[1]) for k in params if k.startswith("net.") and k.endswith(".weight"))
    assert layers and all(layers[i] == 2 * i + 1 for i in range(len(layers))), layers
    num_hidden = len(layers) - 1
    spec = {}
    for i, li in enumerate(layers):
        p_in = None if i == 0 else f"P_{i - 1}"
        p_out = None if i == num_hidden else f"P_{i}"
        spec[f"net.{li}.weight"] = (p_out, p_in)
        spec[f"net.{li}.bias"] = (p_out,)
    return PermutationSpec(spec)


def resnet_permutation_spec(params):
    """Stem conv+BN, stages of BasicBlocks (first block of stage >= 2 may carry
    a 1x1 conv + BN downsample shortcut), GAP, fc. One permutation per
    residual stream (stem + stage 1 share P_res0 through the identity adds;
    a downsample block starts a new stream), one inner permutation per block."""
    conv = lambda name, p_in, p_out: {f"{name}.weight": (p_out, p_in, None, None)}
    norm = lambda name, p: {f"{name}.{v}": (p,) for v in ("weight", "bias", "running_mean", "running_var")}
    dense = lambda name, p_in, p_out: {f"{name}.weight": (p_out, p_in), f"{name}.bias": (p_out,)}

    spec = {**conv("stem.0", None, "P_res0"), **norm("stem.1", "P_res0")}
    stream = 0
    s = 1
    while f"layer{s}.0.conv1.weight" in params:
        b = 0
        while f"layer{s}.{b}.conv1.weight" in params:
            name = f"layer{s}.{b}"
            inner = f"P_{name}_inner"
            p_in = f"P_res{stream}"
            if f"{name}.downsample.0.weight" in params:
                stream += 1
            p_out = f"P_res{stream}"
            spec.update({
                **conv(f"{name}.conv1", p_in, inner), **norm(f"{name}.bn1", inner),
                **conv(f"{name}.conv2", inner, p_out), **norm(f"{name}.bn2", p_out),
            })
            if f"{name}.downsample.0.weight" in params:
                spec.update({**conv(f"{name}.downsample.0", p_in, p_out), **norm(f"{name}.downsample.1", p_out)})
            else:
                assert p_in == p_out
            b += 1
        s += 1
    spec.update(dense("fc", f"P_res{stream}", None))
    stats = [k for k in spec if k.endswith((".running_mean", ".running_var"))]
    return PermutationSpec(spec, stats)


def chain_permutation_spec(model, params):
    """A chain CNN (Conv [BatchNormalization] Relu [MaxPool] ... Flatten Gemm
    Relu ... Gemm), read from the graph in node order: one permutation per
    Conv or hidden Gemm output, shared by the BatchNorm after it and the
    input axis of the next Conv or Gemm. The first Gemm after Flatten reads
    channel c at columns c*H*W ... c*H*W + H*W-1: its weight is matched as
    (out, C, H*W)."""
    spec, stats, reshaped = {}, [], {}
    layers = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "BatchNormalization")]
    linear = [n for n in layers if n.op_type != "BatchNormalization"]
    prev, k = None, 0
    for n in layers:
        if n.op_type == "BatchNormalization":
            for i, name in enumerate(n.input[1:5], 1):
                spec[name] = (prev,)
                if i >= 3:
                    stats.append(name)
            continue
        last = n is linear[-1]
        out = None if last else f"P_{k}"
        w, b = n.input[1], (n.input[2] if len(n.input) > 2 else "")
        shape = params[w].shape
        if n.op_type == "Conv":
            spec[w] = (out, prev) + (None,) * (len(shape) - 2)
        else:
            trans_b = any(a.name == "transB" and a.i == 1 for a in n.attribute)
            assert trans_b, "Gemm without transB"
            if prev is not None and shape[1] != len_of(spec, params, prev):
                c = len_of(spec, params, prev)
                reshaped[w] = (shape, (shape[0], c, shape[1] // c))
                spec[w] = (out, prev, None)
            else:
                spec[w] = (out, prev)
        if b:
            spec[b] = (out,)
        prev, k = out, k + 1
    return PermutationSpec(spec, stats, reshaped)


def len_of(spec, params, p):
    for k, axes in spec.items():
        if p in axes:
            return params[k].shape[axes.index(p)]
    raise KeyError(p)


def spec_for(params, model=None):
    if "fc.weight" in params and "stem.0.weight" in params:
        return "resnet", resnet_permutation_spec(params)
    if "net.1.weight" in params:
        return "mlp", mlp_permutation_spec(params)
    ops = {n.op_type for n in model.graph.node} if model is not None else set()
    if "Conv" in ops and ops <= {"Conv", "BatchNormalization", "Relu", "MaxPool", "Flatten", "Gemm"}:
        return "cnn", chain_permutation_spec(model, params)
    raise SystemExit("unknown architecture: no spec for these initializer names")


def check_spec(ps, params):
    missing = [k for k in ps.axes_to_perm if k not in params]
    if missing:
        raise SystemExit(f"spec names missing from the model: {missing}")
    for k, axes in ps.axes_to_perm.items():
        assert params[k].ndim == len(axes), (k, params[k].shape, axes)
    for p, axes in ps.perm_to_axes.items():
        sizes = {params[k].shape[a] for k, a in axes}
        assert len(sizes) == 1, (p, [(k, a, params[k].shape) for k, a in axes])


# --------------------------------------------------------------------------
# the algorithm (samuela/git-re-basin src/weight_matching.py)


def lsa_numpy(cost, maximize=False):
    """scipy's linear_sum_assignment for a square matrix: the shortest
    augmenting path algorithm (Crouse 2016) that scipy implements."""
    c = -np.asarray(cost, dtype=np.float64) if maximize else np.asarray(cost, dtype=np.float64)
    n = c.shape[0]
    assert c.shape == (n, n)
    u, v = np.zeros(n), np.zeros(n)
    col4row, row4col = np.full(n, -1), np.full(n, -1)
    for cur in range(n):
        shortest, path = np.full(n, np.inf), np.full(n, -1)
        sr, sc = np.zeros(n, bool), np.zeros(n, bool)
        i, min_val, sink = cur, 0.0, -1
        while sink < 0:
            sr[i] = True
            rem = ~sc
            r = min_val + c[i] - u[i] - v
            upd = rem & (r < shortest)
            shortest[upd], path[upd] = r[upd], i
            cand = np.flatnonzero(rem)
            vals = shortest[cand]
            low = vals.min()
            ties = cand[vals == low]
            free = ties[row4col[ties] < 0]
            j = free[0] if len(free) else ties[0]
            min_val = low
            sc[j] = True
            if row4col[j] < 0:
                sink = j
            else:
                i = row4col[j]
        u[cur] += min_val
        others = sr.copy()
        others[cur] = False
        u[others] += min_val - shortest[col4row[others]]
        v[sc] -= min_val - shortest[sc]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            col4row[i], j = j, col4row[i]
            if i == cur:
                break
    return np.arange(n), col4row


if linear_sum_assignment is None:
    linear_sum_assignment = lsa_numpy


def get_permuted_param(ps, perm, k, params, except_axis=None):
    """Get parameter `k` from `params`, with the permutations applied."""
    w = params[k]
    for axis, p in enumerate(ps.axes_to_perm[k]):
        # Skip the axis we're trying to permute.
        if axis == except_axis:
            continue
        # None indicates that there is no permutation relevant to that axis.
        if p is not None:
            w = np.take(w, perm[p], axis=axis)
    return w


def weight_matching(seed, ps, params_a, params_b, max_iter=100, init_perm=None, silent=True, dtype=np.float32):
    """Find a permutation of `params_b` to make them match `params_a`.
    Returns (perm, sweeps) with sweeps = number of iterations run."""
    rng = np.random.default_rng(seed)
    perm_sizes = {p: params_a[axes[0][0]].shape[axes[0][1]] for p, axes in ps.perm_to_axes.items()}
    perm = {p: np.arange(n) for p, n in perm_sizes.items()} if init_perm is None else dict(init_perm)
    perm_names = list(perm.keys())
    if dtype != np.float32:
        params_a = {k: v.astype(dtype) for k, v in params_a.items()}
        params_b = {k: v.astype(dtype) for k, v in params_b.items()}

    iters = 0
    for iteration in range(max_iter):
        iters = iteration + 1
        progress = False
        for p_ix in rng.permutation(len(perm_names)):
            p = perm_names[p_ix]
            n = perm_sizes[p]
            A = np.zeros((n, n), dtype=np.float64)
            for wk, axis in ps.perm_to_axes[p]:
                w_a = params_a[wk]
                w_b = get_permuted_param(ps, perm, wk, params_b, except_axis=axis)
                w_a = np.moveaxis(w_a, axis, 0).reshape((n, -1))
                w_b = np.moveaxis(w_b, axis, 0).reshape((n, -1))
                A += w_a @ w_b.T

            ri, ci = linear_sum_assignment(A, maximize=True)
            assert (ri == np.arange(len(ri))).all()

            # <A, eye(n)[perm]> without materialising the n x n one-hot matrix
            oldL = A[np.arange(n), perm[p]].sum()
            newL = A[np.arange(n), ci].sum()
            if not silent:
                print(f"{iteration}/{p}: {newL - oldL}", file=sys.stderr)
            progress = progress or newL > oldL + 1e-12

            perm[p] = np.array(ci)

        if not progress:
            break

    return perm, iters


def objective(ps, perm, params_a, params_b, restrict=True):
    """Σ <W_A, π(W_B)> in float64 over the spec's parameters (restricted to
    those with at least one permuted axis unless restrict=False)."""
    tot = 0.0
    for k in ps.scored():
        axes = ps.axes_to_perm[k]
        if restrict and all(p is None for p in axes):
            continue
        wb = get_permuted_param(ps, perm, k, params_b)
        tot += float(np.dot(params_a[k].astype(np.float64).ravel(), wb.astype(np.float64).ravel()))
    return tot


# --------------------------------------------------------------------------
# drivers


def run_pair(path_a, path_b, seed, max_iter, dtype, verbose, score_stats=False):
    t0 = time.perf_counter()
    params_a, model_a = load_params(path_a)
    params_b, _ = load_params(path_b)
    t_load = time.perf_counter() - t0
    arch, ps = spec_for(params_a, model_a)
    ps.set_score_stats(score_stats)
    params_a, params_b = ps.reshape(params_a), ps.reshape(params_b)
    check_spec(ps, params_a)
    check_spec(ps, params_b)
    for k in ps.axes_to_perm:
        if params_a[k].shape != params_b[k].shape:
            raise SystemExit(f"{k}: shape {params_a[k].shape} vs {params_b[k].shape}")
    ident = {p: np.arange(params_a[ax[0][0]].shape[ax[0][1]]) for p, ax in ps.perm_to_axes.items()}
    obj_before = objective(ps, ident, params_a, params_b)

    t1 = time.perf_counter()
    perm, sweeps = weight_matching(seed, ps, params_a, params_b, max_iter=max_iter,
                                   silent=not verbose, dtype=dtype)
    t_match = time.perf_counter() - t1

    res = dict(
        a=path_a, b=path_b, arch=arch, seed=seed, dtype=np.dtype(dtype).name,
        perms={p: len(v) for p, v in perm.items()},
        spec_params=len(ps.axes_to_perm),
        score_stats=score_stats,
        spec_params_permuted=sum(any(p is not None for p in ax) for ax in ps.axes_to_perm.values()),
        sweeps=sweeps,
        objective_before=obj_before,
        objective_after=objective(ps, perm, params_a, params_b),
        objective_all_after=objective(ps, perm, params_a, params_b, restrict=False),
        moved={p: int((v != np.arange(len(v))).sum()) for p, v in perm.items()},
        load_seconds=t_load, match_seconds=t_match, total_seconds=t_load + t_match,
        lap="lsa_numpy" if linear_sum_assignment is lsa_numpy else "scipy",
    )
    return res, perm


def write_merged(path_a, path_b, perm, out, lam=0.5):
    """Write (1-lam)·A + lam·π(B) as an ONNX file with A's graph: every
    parameter of the spec permuted as the spec says (statistics included),
    every other float initializer averaged as it is."""
    params_a, model = load_params(path_a)
    params_b, _ = load_params(path_b)
    _, ps = spec_for(params_a, model)
    pa, pb = ps.reshape(params_a), ps.reshape(params_b)
    for t in model.graph.initializer:
        a = params_a[t.name]
        if a.dtype.kind != "f":
            continue
        if t.name in ps.axes_to_perm:
            b = get_permuted_param(ps, perm, t.name, pb).reshape(a.shape)
        else:
            b = params_b[t.name]
        m = ((1 - lam) * a.astype(np.float64) + lam * b.astype(np.float64)).astype(a.dtype)
        t.CopyFrom(numpy_helper.from_array(m, t.name))
    onnx.save(model, out)


def check_perms(path_a, path_b, report_path, groups_path):
    """Re-evaluate onnx-rebasin's permutations with the reference: map its groups
    (`onnx-rebasin groups A --json`) onto the spec's permutations, recompute the
    objective of its result, and test that the result is a fixed point of the
    coordinate descent (no single permutation's LAP can still improve it)."""
    params_a, model_a = load_params(path_a)
    params_b, _ = load_params(path_b)
    _, ps = spec_for(params_a, model_a)
    params_a, params_b = ps.reshape(params_a), ps.reshape(params_b)
    with open(report_path) as f:
        rep = json.load(f)
    with open(groups_path) as f:
        groups = json.load(f)["groups"]
    spec_sets = {p: set(ax) for p, ax in ps.perm_to_axes.items()}
    perm, unmatched = {}, []
    for g in groups:
        members = {(w["value"], w["axis"]) for w in g["weights"] if not w.get("statistic")}
        hit = [p for p, s in spec_sets.items() if s == members]
        if len(hit) != 1:
            unmatched.append((g["id"], sorted(members - set().union(*spec_sets.values()))))
            continue
        perm[hit[0]] = np.asarray(rep["perms"][g["id"]])
    ok_groups = not unmatched and len(perm) == len(spec_sets)
    out = dict(groups_match_spec=ok_groups, unmatched_groups=unmatched,
               missing_spec_perms=sorted(set(spec_sets) - set(perm)))
    if not ok_groups:
        return out
    obj = objective(ps, perm, params_a, params_b)
    out.update(objective_reference=obj, objective_report=rep["objective_after"],
               objective_rel_diff=abs(obj - rep["objective_after"]) / abs(obj))
    worst = (0.0, None)
    for p, axes in ps.perm_to_axes.items():
        n = len(perm[p])
        A = np.zeros((n, n))
        for wk, axis in axes:
            w_a = np.moveaxis(params_a[wk].astype(np.float64), axis, 0).reshape((n, -1))
            w_b = np.moveaxis(get_permuted_param(ps, perm, wk, params_b, except_axis=axis).astype(np.float64), axis, 0).reshape((n, -1))
            A += w_a @ w_b.T
        _, ci = linear_sum_assignment(A, maximize=True)
        gain = A[np.arange(n), ci].sum() - A[np.arange(n), perm[p]].sum()
        if gain > worst[0]:
            worst = (float(gain), p)
    out.update(max_single_perm_gain=worst[0], max_gain_perm=worst[1],
               coordinate_optimal=worst[0] <= 1e-9 * max(1.0, abs(obj)))
    return out


def selftest(testmodels, seed):
    """Align a model with a randomly hidden-unit-permuted copy of itself: the
    permutation must be undone exactly and the objective must equal ||W||^2."""
    ok = True
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 5, 8):
        for _ in range(20):
            c = rng.standard_normal((n, n))
            best = max(itertools.permutations(range(n)), key=lambda p: c[np.arange(n), list(p)].sum())
            _, got = lsa_numpy(c, maximize=True)
            if not np.isclose(c[np.arange(n), got].sum(), c[np.arange(n), list(best)].sum()):
                print(f"selftest lsa_numpy: not optimal on a {n}x{n} matrix: FAIL")
                ok = False
    print(f"selftest lsa_numpy: brute force on 100 matrices up to 8x8: {'OK' if ok else 'FAIL'}")
    for name in ("mlp_s0", "resnet_s0", "cnn_bn_s0"):
        path = os.path.join(testmodels, name + ".onnx")
        params_a, model_a = load_params(path)
        arch, ps = spec_for(params_a, model_a)
        params_a = ps.reshape(params_a)
        check_spec(ps, params_a)
        rng = np.random.default_rng(12345)
        q = {p: rng.permutation(params_a[ax[0][0]].shape[ax[0][1]]) for p, ax in ps.perm_to_axes.items()}
        # B = A with hidden units shuffled: B[k] = take(A[k], q[p], axis) on every permuted axis
        params_b = {k: get_permuted_param(ps, q, k, params_a) if k in ps.axes_to_perm else v
                    for k, v in params_a.items()}
        norm2 = objective(ps, {p: np.arange(len(v)) for p, v in q.items()}, params_a, params_a)
        t = time.perf_counter()
        perm, sweeps = weight_matching(seed, ps, params_a, params_b)
        dt = time.perf_counter() - t
        obj = objective(ps, perm, params_a, params_b)
        inv_ok = all(np.array_equal(perm[p], np.argsort(q[p])) for p in q)
        exact = all(np.array_equal(get_permuted_param(ps, perm, k, params_b), params_a[k]) for k in ps.axes_to_perm)
        good = inv_ok and exact and obj == norm2
        ok &= good
        print(f"selftest {name}: {len(q)} perms, sweeps {sweeps}, {dt:.2f}s, "
              f"perm == q^-1: {inv_ok}, pi(W_B) == W_A bitwise: {exact}, "
              f"objective {obj!r} vs ||W||^2 {norm2!r}: {'OK' if good else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", nargs="?")
    ap.add_argument("b", nargs="?")
    ap.add_argument("--seed", type=int, default=0, help="seed of the visiting order (numpy default_rng)")
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                    help="precision of the w_a @ w_b.T products (A is accumulated in float64)")
    ap.add_argument("--json", help="write the result (and the permutations) to this file")
    ap.add_argument("--merge-out", metavar="PATH", help="write the midpoint (A + π(B))/2 to this ONNX file")
    ap.add_argument("--score-stats", action="store_true",
                    help="also score BatchNorm running means and variances (not the paper's objective)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print newL - oldL per step, like the paper's code")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--check-perms", metavar="REPORT",
                    help="instead of matching: re-evaluate the permutations of an `onnx-rebasin align --report` file "
                         "(needs --groups); prints JSON")
    ap.add_argument("--groups", help="output of `onnx-rebasin groups A --json`, for --check-perms")
    ap.add_argument("--testmodels", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testmodels"))
    args = ap.parse_args()

    if args.selftest:
        sys.exit(0 if selftest(args.testmodels, args.seed) else 1)
    if not (args.a and args.b):
        ap.error("need A.onnx B.onnx (or --selftest)")
    if args.check_perms:
        if not args.groups:
            ap.error("--check-perms needs --groups")
        res = check_perms(args.a, args.b, args.check_perms, args.groups)
        print(json.dumps(res))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f)
        sys.exit(0 if res.get("coordinate_optimal") and res["objective_rel_diff"] < 1e-9 else 3)
    res, perm = run_pair(args.a, args.b, args.seed, args.max_iter, np.dtype(args.dtype).type, args.verbose,
                         args.score_stats)
    if args.merge_out:
        write_merged(args.a, args.b, perm, args.merge_out)
    print(f"{res['arch']}: {len(res['perms'])} perms {res['perms']}; spec params {res['spec_params']} "
          f"({res['spec_params_permuted']} permuted)")
    print(f"sweeps {res['sweeps']}  objective {res['objective_before']:.10g} -> {res['objective_after']:.10g} "
          f"(all spec params incl. unpermuted: {res['objective_all_after']:.10g})")
    print(f"load {res['load_seconds']:.3f}s  match {res['match_seconds']:.3f}s  total {res['total_seconds']:.3f}s  "
          f"[{res['dtype']} products, LAP {res['lap']}]")
    if args.json:
        out = dict(res, perm={p: v.tolist() for p, v in perm.items()})
        with open(args.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
