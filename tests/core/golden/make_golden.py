#!/usr/bin/python3
"""Golden values for mlxd's core ops from an independent implementation (NumPy, float64).

Run once with Debian's python3-numpy: /usr/bin/python3 tests/core/golden/make_golden.py
It writes ops_golden.json beside itself; tests/core/golden_test.cpp replays every case.
"""
import json
import math
import os

import numpy as np

rng = np.random.default_rng(20261128)
cases = []


def arr(shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def add(name, op, inputs, output, **params):
    cases.append({
        "name": name, "op": op, "params": params,
        "inputs": [{"shape": list(x.shape), "data": [float(v) for v in np.asarray(x, np.float64).ravel()]}
                   for x in inputs],
        "output": {"shape": list(np.shape(output)), "data": [float(v) for v in np.asarray(output, np.float64).ravel()]},
    })


def softmax(x, axis):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis):
    x = x.astype(np.float64)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


x = arr((4, 7), 5.0)
add("softmax last axis", "softmax", [x], softmax(x, -1), axis=-1)
x = arr((5, 3), 5.0)
add("log_softmax axis 0", "log_softmax", [x], log_softmax(x, 0), axis=0)
x = arr((3, 4, 5), 3.0)
xd = x.astype(np.float64)
m = xd.max(axis=(0, 2), keepdims=True)
add("logsumexp axes 0,2 keepdims", "logsumexp", [x], m + np.log(np.exp(xd - m).sum(axis=(0, 2), keepdims=True)),
    axes=[0, 2], keepdims=True)
x = arr((4, 6))
add("var axis 1 ddof 1", "var", [x], x.astype(np.float64).var(axis=1, ddof=1), axes=[1], ddof=1)
a, b = arr((2, 3, 4)), arr((4, 5))
add("batched matmul", "matmul", [a, b], a.astype(np.float64) @ b.astype(np.float64))

x = arr((50,), 3.0)
xd = x.astype(np.float64)
erf = np.vectorize(math.erf)
add("gelu_erf", "gelu_erf", [x], 0.5 * xd * (1 + erf(xd / math.sqrt(2))))
add("gelu tanh", "gelu", [x], 0.5 * xd * (1 + np.tanh(math.sqrt(2 / math.pi) * (xd + 0.044715 * xd ** 3))))
add("silu", "silu", [x], xd / (1 + np.exp(-xd)))
add("softplus", "softplus", [x], np.logaddexp(0, xd))
add("log_sigmoid", "log_sigmoid", [x], -np.logaddexp(0, -xd))

x, w = arr((3, 16)), arr((16,))
xd, wd = x.astype(np.float64), w.astype(np.float64)
add("rms_norm", "rms_norm", [x, w], xd / np.sqrt((xd ** 2).mean(-1, keepdims=True) + 1e-6) * wd, eps=1e-6)
bias = arr((16,))
mu, var = xd.mean(-1, keepdims=True), xd.var(-1, keepdims=True)
add("layer_norm", "layer_norm", [x, w, bias], (xd - mu) / np.sqrt(var + 1e-5) * wd + bias.astype(np.float64),
    eps=1e-5)


def rope(x, traditional, base, offset):
    x = x.astype(np.float64)
    seq, d = x.shape[-2], x.shape[-1]
    inv = base ** (-np.arange(0, d // 2) * 2.0 / d)
    ang = (offset + np.arange(seq))[:, None] * inv[None, :]
    c, s = np.cos(ang), np.sin(ang)
    if traditional:
        x1, x2 = x[..., 0::2], x[..., 1::2]
    else:
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
    r1, r2 = x1 * c - x2 * s, x1 * s + x2 * c
    out = np.empty_like(x)
    if traditional:
        out[..., 0::2], out[..., 1::2] = r1, r2
    else:
        out[..., : d // 2], out[..., d // 2:] = r1, r2
    return out


x = arr((2, 5, 8))
add("rope neox offset 3", "rope", [x], rope(x, False, 10000.0, 3), traditional=False, base=10000.0, offset=3)
add("rope traditional", "rope", [x], rope(x, True, 10000.0, 0), traditional=True, base=10000.0, offset=0)

logits = arr((4, 9), 3.0)
targets = np.array([3, 0, 8, 5])
ls = log_softmax(logits, -1)
add("cross_entropy", "cross_entropy", [logits], -ls[np.arange(4), targets], targets=targets.tolist())
onehot = np.eye(9)[targets]
add("cross_entropy gradient of the sum", "cross_entropy_grad", [logits], softmax(logits, -1) - onehot,
    targets=targets.tolist())

x = arr((3, 5))
add("cumsum reverse axis 1", "cumsum", [x], np.flip(np.cumsum(np.flip(x.astype(np.float64), 1), 1), 1), axis=1,
    reverse=True)

# Gradient of sum(rms_norm(x, w) * g) with respect to x and w, by the closed form.
x, w, g = arr((3, 16)), arr((16,)), arr((3, 16))
xd, wd, gd = (v.astype(np.float64) for v in (x, w, g))
r = 1 / np.sqrt((xd ** 2).mean(-1, keepdims=True) + 1e-6)
gw = gd * wd
dx = r * gw - xd * r ** 3 * (gw * xd).mean(-1, keepdims=True)
add("rms_norm gradient wrt x", "rms_norm_grad_x", [x, w, g], dx, eps=1e-6)
add("rms_norm gradient wrt w", "rms_norm_grad_w", [x, w, g], (gd * xd * r).sum(0), eps=1e-6)

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops_golden.json"), "w") as f:
    json.dump({"generator": "make_golden.py (NumPy %s, float64)" % np.__version__, "cases": cases}, f)
