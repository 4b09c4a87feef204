"""ggml's block quantization (Q8_0, Q4_0, Q4_K, Q6_K) in NumPy, written from ggml's byte layouts and reference
quantizers (quantize_row_*_ref in ggml-quants.c) independently of mlxd's C++.

Every function takes float32 values shaped [n_blocks, block] and returns (bytes, dequantized float32). The
arithmetic is float32 in ggml's order of operations (sums run element by element, vectorised across blocks
only), so the bytes match what ggml's reference writes; dequantizing follows ggml's dequantize_row_*.
Imported by gguf_make_quant_golden.py and tests/models/golden/make_llama_gguf.py.
"""
import numpy as np

F = np.float32
QK, QK_K = 32, 256


def f16(x):
    return np.asarray(x, dtype=F).astype(np.float16)


def f16_bits(x):
    return f16(x).view(np.uint16)


def nearest_int(v):
    """ggml's nearest_int: add 1.5 * 2^23 in float32 and read the low mantissa bits (round half to even)."""
    shifted = (np.asarray(v, dtype=F) + F(12582912.0)).astype(F)
    return (shifted.view(np.int32) & 0x007FFFFF) - 0x00400000


def roundf(v):
    """C roundf (half away from zero), exactly, for float32 values."""
    a = np.abs(np.asarray(v, dtype=np.float64))
    r = np.floor(a)
    r = r + (a - r >= 0.5)
    return np.copysign(r, v)


def seq_sum(terms):
    """Sum over the last axis in index order, in float32, as a C loop does."""
    acc = np.zeros(terms.shape[:-1], dtype=F)
    for i in range(terms.shape[-1]):
        acc = (acc + terms[..., i]).astype(F)
    return acc


def seq_max_abs(x):
    """(amax, the value of largest magnitude, first one on ties) per row, as ggml's loop."""
    amax = np.zeros(x.shape[0], dtype=F)
    mx = np.zeros(x.shape[0], dtype=F)
    for i in range(x.shape[1]):
        ax = np.abs(x[:, i])
        take = ax > amax
        amax = np.where(take, ax, amax)
        mx = np.where(take, x[:, i], mx)
    return amax, mx


def quantize_q8_0(x):
    x = x.reshape(-1, QK).astype(F)
    amax = np.max(np.abs(x), axis=1)
    d = (amax / F(127)).astype(F)
    inv = np.where(d != 0, F(1) / np.where(d != 0, d, F(1)), F(0)).astype(F)
    q = roundf((x * inv[:, None]).astype(F)).astype(np.int8)
    raw = b"".join(f16_bits(d[b]).tobytes() + q[b].tobytes() for b in range(x.shape[0]))
    deq = (q.astype(F) * f16(d).astype(F)[:, None]).astype(F)
    return raw, deq


def quantize_q4_0(x):
    x = x.reshape(-1, QK).astype(F)
    _, mx = seq_max_abs(x)
    d = (mx / F(-8)).astype(F)
    inv = np.where(d != 0, F(1) / np.where(d != 0, d, F(1)), F(0)).astype(F)
    v = ((x * inv[:, None]).astype(F) + F(8.5)).astype(F)
    q = np.minimum(15, np.trunc(v)).astype(np.uint8)  # v >= 0.5, so the C cast truncates a positive value
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    raw = b"".join(f16_bits(d[b]).tobytes() + packed[b].tobytes() for b in range(x.shape[0]))
    deq = ((q.astype(np.int32) - 8).astype(F) * f16(d).astype(F)[:, None]).astype(F)
    return raw, deq


def make_qkx2_quants(x, w, nmax, rmin, rdelta, nstep):
    """ggml's make_qkx2_quants (squared error) for each row of x [rows, n]: (levels, scale, min offset)."""
    rows, n = x.shape
    mn, mx = x[:, 0].copy(), x[:, 0].copy()
    sum_w = w[:, 0].copy()
    sum_x = (sum_w * x[:, 0]).astype(F)
    for i in range(1, n):
        mn = np.where(x[:, i] < mn, x[:, i], mn)
        mx = np.where(x[:, i] > mx, x[:, i], mx)
        sum_w = (sum_w + w[:, i]).astype(F)
        sum_x = (sum_x + (w[:, i] * x[:, i]).astype(F)).astype(F)
    mn = np.where(mn > 0, F(0), mn).astype(F)
    flat = mx == mn
    rng = np.where(flat, F(1), (mx - mn).astype(F)).astype(F)
    iscale = (F(nmax) / rng).astype(F)
    scale = (F(1) / iscale).astype(F)
    levels = np.clip(nearest_int((iscale[:, None] * (x - mn[:, None]).astype(F)).astype(F)), 0, nmax)
    diff = ((scale[:, None] * levels.astype(F)).astype(F) + mn[:, None]).astype(F) - x
    best = seq_sum((w * (diff.astype(F) * diff.astype(F)).astype(F)).astype(F))
    for step in range(nstep + 1):
        # ggml divides by max - min with the min of the best fit so far.
        rng = np.where(flat, F(1), (mx - mn).astype(F)).astype(F)
        iscale = (((F(rmin) + (F(rdelta) * F(step)).astype(F)).astype(F) + F(nmax)).astype(F) / rng).astype(F)
        trial = np.clip(nearest_int((iscale[:, None] * (x - mn[:, None]).astype(F)).astype(F)), 0, nmax)
        tl = trial.astype(F)
        wl = (w * tl).astype(F)
        sum_l = seq_sum(wl)
        sum_l2 = seq_sum((wl * tl).astype(F))
        sum_xl = seq_sum((wl * x).astype(F))
        det = ((sum_w * sum_l2).astype(F) - (sum_l * sum_l).astype(F)).astype(F)
        ok = det > 0
        safe_det = np.where(ok, det, F(1))
        this_scale = (((sum_w * sum_xl).astype(F) - (sum_x * sum_l).astype(F)).astype(F) / safe_det).astype(F)
        this_min = (((sum_l2 * sum_x).astype(F) - (sum_l * sum_xl).astype(F)).astype(F) / safe_det).astype(F)
        clamp = this_min > 0
        safe_l2 = np.where(sum_l2 != 0, sum_l2, F(1))
        this_scale = np.where(clamp, (sum_xl / safe_l2).astype(F), this_scale).astype(F)
        this_min = np.where(clamp, F(0), this_min).astype(F)
        diff = ((this_scale[:, None] * tl).astype(F) + this_min[:, None]).astype(F) - x
        err = seq_sum((w * (diff.astype(F) * diff.astype(F)).astype(F)).astype(F))
        better = ok & (err < best) & ~flat
        levels = np.where(better[:, None], trial, levels)
        best = np.where(better, err, best)
        scale = np.where(better, this_scale, scale)
        mn = np.where(better, this_min, mn)
    levels = np.where(flat[:, None], 0, levels)
    scale = np.where(flat, F(0), scale).astype(F)
    return levels, scale, (-mn).astype(F)


def q4_k_scale_min(packed, j):
    if j < 4:
        return packed[:, j] & 63, packed[:, j + 4] & 63
    return ((packed[:, j + 4] & 0xF) | ((packed[:, j - 4] >> 6) << 4),
            (packed[:, j + 4] >> 4) | ((packed[:, j] >> 6) << 4))


def quantize_q4_k(x):
    x = x.reshape(-1, QK_K).astype(F)
    nb = x.shape[0]
    sub = x.reshape(nb * 8, 32)
    sum_x2 = seq_sum((sub * sub).astype(F))
    av_x = np.sqrt((sum_x2 / F(32)).astype(F)).astype(F)
    weights = (av_x[:, None] + np.abs(sub)).astype(F)
    search_levels, scales, mins = make_qkx2_quants(sub, weights, 15, -1.0, 0.1, 20)
    search_levels = search_levels.reshape(nb, QK_K)
    scales, mins = scales.reshape(nb, 8), mins.reshape(nb, 8)
    max_scale = np.zeros(nb, dtype=F)
    max_min = np.zeros(nb, dtype=F)
    for j in range(8):
        max_scale = np.where(scales[:, j] > max_scale, scales[:, j], max_scale)
        max_min = np.where(mins[:, j] > max_min, mins[:, j], max_min)
    inv_scale = np.where(max_scale > 0, F(63) / np.where(max_scale > 0, max_scale, F(1)), F(0)).astype(F)
    inv_min = np.where(max_min > 0, F(63) / np.where(max_min > 0, max_min, F(1)), F(0)).astype(F)
    packed = np.zeros((nb, 12), dtype=np.int64)
    for j in range(8):
        ls = np.minimum(63, nearest_int((inv_scale * scales[:, j]).astype(F)) & 0xFF)
        lm = np.minimum(63, nearest_int((inv_min * mins[:, j]).astype(F)) & 0xFF)
        if j < 4:
            packed[:, j] = ls
            packed[:, j + 4] = lm
        else:
            packed[:, j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
            packed[:, j - 4] |= (ls >> 4) << 6
            packed[:, j] |= (lm >> 4) << 6
    d = f16(max_scale / F(63))
    dmin = f16(max_min / F(63))
    # Requantize against the stored scales and mins; ggml skips sub-blocks whose scale is 0, keeping the
    # levels of the search.
    levels = search_levels.copy()
    for j in range(8):
        sc, m = q4_k_scale_min(packed, j)
        dj = (d.astype(F) * sc.astype(F)).astype(F)
        dm = (dmin.astype(F) * m.astype(F)).astype(F)
        xs = x[:, 32 * j:32 * j + 32]
        safe = np.where(dj != 0, dj, F(1))
        l = np.clip(nearest_int(((xs + dm[:, None]).astype(F) / safe[:, None]).astype(F)), 0, 15)
        levels[:, 32 * j:32 * j + 32] = np.where((dj != 0)[:, None], l, levels[:, 32 * j:32 * j + 32])
    qs = np.zeros((nb, 128), dtype=np.uint8)
    for g in range(4):
        qs[:, 32 * g:32 * g + 32] = levels[:, 64 * g:64 * g + 32] | (levels[:, 64 * g + 32:64 * g + 64] << 4)
    # Dequantize from the stored bytes, as ggml's dequantize_row_q4_K.
    deq = np.zeros((nb, QK_K), dtype=F)
    for j in range(8):
        sc, m = q4_k_scale_min(packed, j)
        dj = (d.astype(F) * sc.astype(F)).astype(F)
        mj = (dmin.astype(F) * m.astype(F)).astype(F)
        nib = (qs[:, 32 * (j // 2):32 * (j // 2) + 32] >> (4 * (j % 2))) & 0xF
        deq[:, 32 * j:32 * j + 32] = ((dj[:, None] * nib.astype(F)).astype(F) - mj[:, None]).astype(F)
    raw = b"".join(f16_bits(d[b]).tobytes() + f16_bits(dmin[b]).tobytes() + packed[b].astype(np.uint8).tobytes() +
                   qs[b].tobytes() for b in range(nb))
    return raw, deq


def make_qx_quants(x, nmax):
    """ggml's make_qx_quants with rmse_type 1 (weights x^2) for each row of x [rows, n]: (levels + nmax, scale)."""
    rows, n = x.shape
    amax, mx = seq_max_abs(x)
    zero = amax < F(1e-15)
    safe_mx = np.where(zero, F(1), mx)
    w = (x * x).astype(F)

    def fit(iscale):
        l = np.clip(nearest_int((iscale[:, None] * x).astype(F)), -nmax, nmax - 1)
        lf = l.astype(F)
        sumlx = seq_sum(((w * x).astype(F) * lf).astype(F))
        suml2 = seq_sum(((w * lf).astype(F) * lf).astype(F))
        return l, sumlx, suml2

    iscale = (F(-nmax) / safe_mx).astype(F)
    levels, sumlx, suml2 = fit(iscale)
    scale = np.where(suml2 != 0, (sumlx / np.where(suml2 != 0, suml2, F(1))).astype(F), F(0)).astype(F)
    best = (scale * sumlx).astype(F)
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = ((-(F(nmax) + (F(0.1) * F(step)).astype(F)).astype(F)) / safe_mx).astype(F)
        l, sumlx, suml2 = fit(iscale)
        better = (suml2 > 0) & ((sumlx * sumlx).astype(F) > (best * suml2).astype(F))
        levels = np.where(better[:, None], l, levels)
        new_scale = (sumlx / np.where(suml2 != 0, suml2, F(1))).astype(F)
        scale = np.where(better, new_scale, scale)
        best = np.where(better, (new_scale * sumlx).astype(F), best)
    levels = np.where(zero[:, None], -nmax, levels) + nmax
    scale = np.where(zero, F(0), scale).astype(F)
    return levels, scale


def quantize_q6_k(x):
    x = x.reshape(-1, QK_K).astype(F)
    nb = x.shape[0]
    _, scales = make_qx_quants(x.reshape(nb * 16, 16), 32)
    scales = scales.reshape(nb, 16)
    _, max_scale = seq_max_abs(scales)
    max_abs = np.abs(max_scale)
    empty = max_abs < F(1e-15)
    iscale = (F(-128) / np.where(empty, F(1), max_scale)).astype(F)
    d = f16((F(1) / iscale).astype(F))
    sc = np.minimum(127, nearest_int((iscale[:, None] * scales).astype(F))).astype(np.int64)
    levels = np.zeros((nb, QK_K), dtype=np.int64)
    search_levels, _ = make_qx_quants(x.reshape(nb * 16, 16), 32)
    search_levels = search_levels.reshape(nb, QK_K)
    for g in range(16):
        dg = (d.astype(F) * sc[:, g].astype(F)).astype(F)
        safe = np.where(dg != 0, dg, F(1))
        l = np.clip(nearest_int((x[:, 16 * g:16 * g + 16] / safe[:, None]).astype(F)), -32, 31) + 32
        levels[:, 16 * g:16 * g + 16] = np.where((dg != 0)[:, None], l, search_levels[:, 16 * g:16 * g + 16])
    ql = np.zeros((nb, 128), dtype=np.int64)
    qh = np.zeros((nb, 64), dtype=np.int64)
    for half in range(2):
        L = levels[:, 128 * half:128 * half + 128]
        ql[:, 64 * half:64 * half + 32] = (L[:, 0:32] & 0xF) | ((L[:, 64:96] & 0xF) << 4)
        ql[:, 64 * half + 32:64 * half + 64] = (L[:, 32:64] & 0xF) | ((L[:, 96:128] & 0xF) << 4)
        qh[:, 32 * half:32 * half + 32] = ((L[:, 0:32] >> 4) | ((L[:, 32:64] >> 4) << 2) | ((L[:, 64:96] >> 4) << 4) |
                                           ((L[:, 96:128] >> 4) << 6))
    ql = np.where(empty[:, None], 0, ql).astype(np.uint8)
    qh = np.where(empty[:, None], 0, qh).astype(np.uint8)
    sc = np.where(empty[:, None], 0, sc).astype(np.int8)
    d = np.where(empty, np.float16(0), d).astype(np.float16)
    # Dequantize from the stored bytes, as ggml's dequantize_row_q6_K.
    deq = np.zeros((nb, QK_K), dtype=F)
    for half in range(2):
        l0, l1 = ql[:, 64 * half:64 * half + 32].astype(np.int64), ql[:, 64 * half + 32:64 * half + 64].astype(np.int64)
        h = qh[:, 32 * half:32 * half + 32].astype(np.int64)
        q = [(l0 & 0xF) | ((h & 3) << 4), (l1 & 0xF) | (((h >> 2) & 3) << 4), (l0 >> 4) | (((h >> 4) & 3) << 4),
             (l1 >> 4) | (((h >> 6) & 3) << 4)]
        for k in range(4):
            for part in range(2):
                g = 8 * half + 2 * k + part
                scale = (d.astype(F) * sc[:, g].astype(F)).astype(F)
                vals = (q[k][:, 16 * part:16 * part + 16] - 32).astype(F)
                deq[:, 128 * half + 32 * k + 16 * part:128 * half + 32 * k + 16 * part + 16] = \
                    (scale[:, None] * vals).astype(F)
    raw = b"".join(ql[b].tobytes() + qh[b].tobytes() + sc[b].tobytes() + d[b:b + 1].view(np.uint16).tobytes()
                   for b in range(nb))
    return raw, deq


QUANTIZERS = {"Q8_0": (8, QK, quantize_q8_0), "Q4_0": (2, QK, quantize_q4_0), "Q4_K": (12, QK_K, quantize_q4_k),
              "Q6_K": (14, QK_K, quantize_q6_k)}
