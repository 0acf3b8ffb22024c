"""Numba kernels: activations, size-aware matrix products, losses, optimizer updates.

Every function here is `@njit(cache=True)` and compiles on first use (never at import).
Loops over activations branch on the activation code *outside* the element loop, so each
branch is one straight loop that LLVM vectorizes. fastmath allows reassociation and FMA
contraction (rounding-level differences only) but NOT the no-NaN/no-inf assumptions:
the non-finite checks below rely on NaN and inf behaving as IEEE says.

Matrix products (C row-major, written, never accumulated into):
    nn  C[M,N] = A[M,K] @ B[K,N]
    tn  C[M,N] = A[K,M].T @ B[K,N]
    nt  C[M,N] = A[M,K] @ B[N,K].T
Small products run register-blocked loops (4 rows of C per pass over B, the inner loop
over N vectorized); larger ones call BLAS gemm: NumPy's OpenBLAS through numba_blas.gemm
(`gemm` arguments: numba_blas.gemm_address(dtype)), or np.dot (SciPy's OpenBLAS) when that
is 0. The thresholds were
chosen by timing both on the benchmark shapes (bench/numba_profile.py --gemm): see the
comment at BLAS_MIN_FLOPS. (OpenBLAS beats these loops from ~10k multiply-adds on.)
"""
import math

import numpy as np
from numba import njit

from .. import activations as act
from .. import losses
from .numba_blas import gemm, gemm_into
from .numba_math import fast_exp, fast_sigmoid, fast_tanh

FASTMATH = {"contract", "reassoc", "nsz", "arcp"}    # no 'nnan'/'ninf': NaN checks must work
JIT = dict(cache=True, error_model="numpy", fastmath=FASTMATH, nogil=True)

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS, GELU, SILU = (
    act.IDENTITY, act.SIGMOID, act.TANH, act.RELU, act.LEAKY_RELU, act.ELU, act.SOFTPLUS, act.GELU, act.SILU)
LEAKY_SLOPE, ELU_ALPHA, GELU_C, GELU_K = act.LEAKY_SLOPE, act.ELU_ALPHA, act.GELU_C, act.GELU_K
MSE, CROSS_ENTROPY, BCE, MEAN = losses.MSE, losses.CROSS_ENTROPY, losses.BCE, losses.MEAN
LN2 = math.log(2.0)

# Which products run the loops below and which call BLAS (measured when that was np.dot in
# njit -> SciPy's OpenBLAS sgemm/dgemm; NumPy's is the same OpenBLAS kernel code). Measured on the CI machine (2-core AMD EPYC, AVX2, shared, BLAS
# limited to 1 thread; `python bench/numba_profile.py --gemm --threads 1`, float32, median
# of 9 interleaved rounds), loops/BLAS time: 1x2x2 1.0, 4x16x16 1.2, 8x32x32 0.8,
# 16x32x32 1.4, 32x64x64 1.7, 64x64x64 2.7, 64x784x128 2.9, 256^3 9.2; and with a narrow
# output (N < 8: 32x64x1 3.2, 64x64x10 14) the loops' vector dimension is too short.
# So: the loops only below BLAS_MIN_FLOPS multiply-adds with N >= LOOPS_MIN_N (or below
# TINY_FLOPS, where BLAS's call overhead is all there is), BLAS everywhere else.
BLAS_MIN_FLOPS = 12_000
LOOPS_MIN_N = 8
TINY_FLOPS = 512
# A @ B.T as dot products when K >= NT_MIN_K, else through a transposed copy of B.
NT_MIN_K = 16


# ---------------------------------------------------------------- activations

@njit(**JIT)
def softplus(z):
    # np.logaddexp(0, z), operation for operation
    if z == 0:
        return z + LN2
    if z < 0:
        return math.log1p(math.exp(z))
    if z > 0:
        return z + math.log1p(math.exp(-z))
    return z + z        # NaN


@njit(**JIT)
def gelu(z):
    return 0.5 * z * (1 + fast_tanh(GELU_C * (z + GELU_K * z * z * z)))


@njit(**JIT)
def gelu_derivative(z):
    t = fast_tanh(GELU_C * (z + GELU_K * z * z * z))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * GELU_C * (1 + 3 * GELU_K * z * z)


@njit(**JIT)
def activate(z, a, code):
    """a[i] = f(z[i]) over 1-D arrays (a may be z)."""
    n = z.size
    zero = z.dtype.type(0)
    if code == IDENTITY:
        for i in range(n):
            a[i] = z[i]
    elif code == SIGMOID:
        for i in range(n):
            a[i] = fast_sigmoid(z[i])
    elif code == TANH:
        for i in range(n):
            a[i] = fast_tanh(z[i])
    elif code == RELU:
        for i in range(n):
            v = z[i]
            a[i] = zero if v <= 0 else v          # NaN stays NaN
    elif code == LEAKY_RELU:
        for i in range(n):
            v = z[i]
            a[i] = v if v > 0 else LEAKY_SLOPE * v
    elif code == ELU:
        for i in range(n):
            v = z[i]
            a[i] = v if v > 0 else ELU_ALPHA * math.expm1(v)
    elif code == SOFTPLUS:
        for i in range(n):
            a[i] = softplus(z[i])
    elif code == GELU:
        for i in range(n):
            a[i] = gelu(z[i])
    else:   # SILU
        for i in range(n):
            v = z[i]
            a[i] = v * fast_sigmoid(v)


@njit(**JIT)
def times_derivative(d, z, a, code, out):
    """out[i] = d[i] * f'(z[i]) over 1-D arrays, given a = f(z) (out may be d)."""
    n = d.size
    one = d.dtype.type(1)
    zero = d.dtype.type(0)
    if code == IDENTITY:
        for i in range(n):
            out[i] = d[i]
    elif code == SIGMOID:
        for i in range(n):
            out[i] = d[i] * (a[i] * (one - a[i]))
    elif code == TANH:
        for i in range(n):
            out[i] = d[i] * (one - a[i] * a[i])
    elif code == RELU:
        for i in range(n):
            out[i] = d[i] * (one if z[i] > 0 else zero)
    elif code == LEAKY_RELU:
        for i in range(n):
            out[i] = d[i] * (one if z[i] > 0 else d.dtype.type(LEAKY_SLOPE))
    elif code == ELU:
        for i in range(n):
            v = z[i]
            out[i] = d[i] * (one if v > 0 else d.dtype.type(ELU_ALPHA * math.exp(min(v, zero))))
    elif code == SOFTPLUS:
        for i in range(n):
            out[i] = d[i] * fast_sigmoid(z[i])
    elif code == GELU:
        for i in range(n):
            out[i] = d[i] * gelu_derivative(z[i])
    else:   # SILU
        for i in range(n):
            v = z[i]
            s = fast_sigmoid(v)
            out[i] = d[i] * (s * (one + v * (one - s)))


# ---------------------------------------------------------------- matrix products

@njit(**JIT)
def _small_nn(A, B, C, a_transposed):
    """C = op(A) @ B with op(A)[m, k] = A[k, m] if a_transposed else A[m, k]; 4 rows of C
    per pass over B, the inner loop over N contiguous (vectorized)."""
    M, N = C.shape
    K = B.shape[0]
    C[:, :] = 0
    m = 0
    while m + 4 <= M:
        c0, c1, c2, c3 = C[m], C[m + 1], C[m + 2], C[m + 3]
        for k in range(K):
            if a_transposed:
                a0, a1, a2, a3 = A[k, m], A[k, m + 1], A[k, m + 2], A[k, m + 3]
            else:
                a0, a1, a2, a3 = A[m, k], A[m + 1, k], A[m + 2, k], A[m + 3, k]
            bk = B[k]
            for j in range(N):
                b = bk[j]
                c0[j] += a0 * b
                c1[j] += a1 * b
                c2[j] += a2 * b
                c3[j] += a3 * b
        m += 4
    while m < M:
        c0 = C[m]
        for k in range(K):
            a0 = A[k, m] if a_transposed else A[m, k]
            bk = B[k]
            for j in range(N):
                c0[j] += a0 * bk[j]
        m += 1


@njit(**JIT)
def _small_nt(A, B, C):
    """C = A @ B.T as dot products along K (both rows contiguous), 4 rows of A at once."""
    M, N = C.shape
    K = A.shape[1]
    acc = C.dtype.type(0)
    m = 0
    while m + 4 <= M:
        a0, a1, a2, a3 = A[m], A[m + 1], A[m + 2], A[m + 3]
        for j in range(N):
            bj = B[j]
            s0 = s1 = s2 = s3 = acc
            for k in range(K):
                b = bj[k]
                s0 += a0[k] * b
                s1 += a1[k] * b
                s2 += a2[k] * b
                s3 += a3[k] * b
            C[m, j] = s0
            C[m + 1, j] = s1
            C[m + 2, j] = s2
            C[m + 3, j] = s3
        m += 4
    while m < M:
        a0 = A[m]
        for j in range(N):
            bj = B[j]
            s0 = acc
            for k in range(K):
                s0 += a0[k] * bj[k]
            C[m, j] = s0
        m += 1


@njit(**JIT)
def use_blas(flops, vector_length):
    if flops < TINY_FLOPS:
        return False
    return flops >= BLAS_MIN_FLOPS or vector_length < LOOPS_MIN_N


@njit(**JIT)
def matmul_nn(A, B, C, blas):
    """C[M,N] = A[M,K] @ B[K,N]; blas: numba_blas.gemm_address(dtype), or 0 for np.dot."""
    M, N = C.shape
    if use_blas(M * N * A.shape[1], N):
        if not gemm(blas, False, False, A, B, C):
            np.dot(A, B, C)
    else:
        _small_nn(A, B, C, False)


@njit(**JIT)
def matmul_tn(A, B, C, blas):
    """C[M,N] = A[K,M].T @ B[K,N]."""
    M, N = C.shape
    if use_blas(M * N * A.shape[0], N):
        if not gemm(blas, True, False, A, B, C):
            np.dot(A.T, B, C)
    else:
        _small_nn(A, B, C, True)


@njit(**JIT)
def matmul_tn_into(alpha, A, B, beta, C, blas):
    """C = alpha * A[K,M].T @ B[K,N] + beta * C through BLAS, when matmul_tn would use BLAS
    for this product and BLAS takes the operands. -> False (C untouched) otherwise."""
    M, N = C.shape
    return use_blas(M * N * A.shape[0], N) and gemm_into(blas, True, False, alpha, A, B, beta, C)


@njit(**JIT)
def matmul_nt(A, B, C, tmp, blas):
    """C[M,N] = A[M,K] @ B[N,K].T; tmp: scratch of at least N*K elements."""
    M, N = C.shape
    K = A.shape[1]
    if use_blas(M * N * K, K if K >= NT_MIN_K else N):
        if not gemm(blas, False, True, A, B, C):
            np.dot(A, B.T, C)
    elif K >= NT_MIN_K:
        _small_nt(A, B, C)
    else:
        # short dot products vectorize badly: copy B.T (N*K, cheap next to M*N*K) and go axpy-wise
        Bt = tmp[:N * K].reshape(K, N)
        for k in range(K):
            for n in range(N):
                Bt[k, n] = B[n, k]
        _small_nn(A, Bt, C, False)


# ---------------------------------------------------------------- the four kernels (+ in-place forms)

@njit(**JIT)
def linear_forward_into(X, W, b, code, Z, A, blas):
    M, N = Z.shape
    if use_blas(M * N * X.shape[1], N):
        # Z filled with b, then Z = X @ W + Z in the GEMM (beta 1): no BLAS zeroing pass over
        # Z (beta 0) and no separate bias pass
        for m in range(M):
            z = Z[m]
            for j in range(N):
                z[j] = b[j]
        if gemm_into(blas, False, False, 1.0, X, W, 1.0, Z):
            activate(Z.ravel(), A.ravel(), code)
            return
    matmul_nn(X, W, Z, blas)
    for m in range(M):
        z = Z[m]
        for j in range(N):
            z[j] += b[j]
    activate(Z.ravel(), A.ravel(), code)


@njit(**JIT)
def weight_gradient_into(A_prev, delta, dW, db, blas):
    matmul_tn(A_prev, delta, dW, blas)
    # the bias gradient summed in float64 (a float32 running sum over a long batch drifts)
    acc = np.zeros(db.size, np.float64)
    for m in range(delta.shape[0]):
        d = delta[m]
        for j in range(db.size):
            acc[j] += d[j]
    for j in range(db.size):
        db[j] = acc[j]


@njit(**JIT)
def delta_propagate_into(delta, W, Z, A, code, out, tmp, blas):
    matmul_nt(delta, W, out, tmp, blas)
    flat = out.ravel()
    times_derivative(flat, Z.ravel(), A.ravel(), code, flat)


@njit(**JIT)
def linear_forward(X, W, b, code, blas):
    Z = np.empty((X.shape[0], W.shape[1]), X.dtype)
    A = np.empty_like(Z)
    linear_forward_into(X, W, b, code, Z, A, blas)
    return Z, A


@njit(**JIT)
def activation_backward(dA, Z, A, code):
    out = np.empty_like(dA)
    times_derivative(dA.ravel(), Z.ravel(), A.ravel(), code, out.ravel())
    return out


@njit(**JIT)
def delta_propagate(delta, W, Z, A, code, blas):
    out = np.empty((delta.shape[0], W.shape[0]), delta.dtype)
    delta_propagate_into(delta, W, Z, A, code, out, np.empty(W.size, W.dtype), blas)
    return out


@njit(**JIT)
def weight_gradient(A_prev, delta, blas):
    dW = np.empty((A_prev.shape[1], delta.shape[1]), delta.dtype)
    db = np.empty(delta.shape[1], delta.dtype)
    weight_gradient_into(A_prev, delta, dW, db, blas)
    return dW, db


# ---------------------------------------------------------------- losses

@njit(**JIT)
def loss_and_output_grad_into(out, y, labels, loss, reduction, grad):
    """The loss (float64) and dLoss/d out written into grad; torch.nn.functional semantics.
    y: targets (batch, n_out) for mse/bce; labels: class indices (batch,) for cross_entropy."""
    B, N = out.shape
    total = 0.0
    if loss == MSE:
        for m in range(B):
            for j in range(N):
                diff = out[m, j] - y[m, j]
                total += diff * diff
                grad[m, j] = 2 * diff
        count = B * N
    elif loss == CROSS_ENTROPY:
        for m in range(B):
            row = out[m]
            mx = row[0]
            for j in range(1, N):
                mx = max(mx, row[j])
            s = 0.0
            for j in range(N):
                s += math.exp(row[j] - mx)
            lse = math.log(s)
            g = grad[m]
            for j in range(N):
                log_p = (row[j] - mx) - lse
                g[j] = math.exp(log_p)
                if j == labels[m]:
                    total -= log_p
                    g[j] -= 1
        count = B
    else:   # BCE on logits
        for m in range(B):
            for j in range(N):
                o = out[m, j]
                t = y[m, j]
                total += max(o, 0.0) - o * t + math.log1p(math.exp(-abs(o)))
                grad[m, j] = fast_sigmoid(o) - t
        count = B * N
    if reduction == MEAN:
        total /= count
        scale = grad.dtype.type(count)
        flat = grad.ravel()
        for i in range(flat.size):
            flat[i] /= scale
    return total


@njit(**JIT)
def loss_and_output_grad(out, y, labels, loss, reduction):
    grad = np.empty_like(out)
    total = loss_and_output_grad_into(out, y, labels, loss, reduction, grad)
    return total, grad


# ---------------------------------------------------------------- optimizers (flat buffers)

@njit(**JIT)
def sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov):
    """torch.optim.SGD (dampening 0), fused over the flat buffers."""
    T = p.dtype.type
    lr_, mu, wd = T(lr), T(momentum), T(weight_decay)
    n = p.size
    if momentum == 0:
        if weight_decay == 0:
            for i in range(n):
                p[i] -= lr_ * g[i]
        else:
            for i in range(n):
                p[i] -= lr_ * (g[i] + wd * p[i])
    elif nesterov:
        for i in range(n):
            d = g[i] + wd * p[i]
            v = mu * velocity[i] + d
            velocity[i] = v
            p[i] -= lr_ * (d + mu * v)
    else:
        for i in range(n):
            d = g[i] + wd * p[i]
            v = mu * velocity[i] + d
            velocity[i] = v
            p[i] -= lr_ * v


@njit(**JIT)
def adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
    """torch.optim.Adam (L2 weight decay), fused over the flat buffers."""
    T = p.dtype.type
    b1, b2, wd, e = T(beta1), T(beta2), T(weight_decay), T(eps)
    c1, c2 = T(1 - beta1), T(1 - beta2)
    step_size = T(lr / (1 - beta1 ** step))
    inv_sqrt_bias2 = T(1 / math.sqrt(1 - beta2 ** step))
    for i in range(p.size):
        d = g[i] + wd * p[i]
        mi = b1 * m[i] + c1 * d
        vi = b2 * v[i] + c2 * d * d
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) * inv_sqrt_bias2 + e)


@njit(**JIT)
def nonfinite_count(a):
    """0 if every element is finite: x * 0 is 0 for finite x and NaN otherwise."""
    flat = a.ravel()
    s = a.dtype.type(0)
    for i in range(flat.size):
        s += flat[i] * 0
    return 0 if s == 0 else 1
