# Scalar activations f(z) and derivatives f'(z) (given z and a = f(z)) for the Cython
# kernels, float and double. The codes are fastbp.activations' (the kernel ABI); the
# formulas are reference.py's, term for term, so the numbers agree to rounding.
from libc.math cimport exp, expf, tanh, tanhf, log1p, log1pf, expm1, expm1f, fabs, fabsf

ctypedef fused real:
    float
    double

cdef enum:
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    ELU = 5
    SOFTPLUS = 6
    GELU = 7
    SILU = 8
    N_ACTIVATIONS = 9

cdef extern from *:
    """
    #define FASTBP_LEAKY_SLOPE 0.01
    #define FASTBP_ELU_ALPHA 1.0
    #define FASTBP_GELU_C 0.7978845608028654
    #define FASTBP_GELU_K 0.044715
    """
    const double LEAKY_SLOPE "FASTBP_LEAKY_SLOPE"
    const double ELU_ALPHA "FASTBP_ELU_ALPHA"
    const double GELU_C "FASTBP_GELU_C"
    const double GELU_K "FASTBP_GELU_K"


cdef inline real r_exp(real x) noexcept nogil:
    if real is float:
        return expf(x)
    else:
        return exp(x)

cdef inline real r_tanh(real x) noexcept nogil:
    if real is float:
        return tanhf(x)
    else:
        return tanh(x)

cdef inline real r_log1p(real x) noexcept nogil:
    if real is float:
        return log1pf(x)
    else:
        return log1p(x)

cdef inline real r_expm1(real x) noexcept nogil:
    if real is float:
        return expm1f(x)
    else:
        return expm1(x)

cdef inline real r_abs(real x) noexcept nogil:
    if real is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline real sigmoid(real z) noexcept nogil:
    cdef real e = r_exp(-r_abs(z))          # never overflows
    if z >= 0:
        return 1 / (1 + e)
    return e / (1 + e)


cdef inline real gelu_inner(real z) noexcept nogil:
    return r_tanh(<real>GELU_C * (z + <real>GELU_K * (z * z * z)))


cdef inline real activate(int code, real z) noexcept nogil:
    """f(z) for the transcendental activations (the cheap ones have their own loops)."""
    cdef real s
    if code == SIGMOID:
        return sigmoid(z)
    elif code == TANH:
        return r_tanh(z)
    elif code == RELU:
        return z if z > 0 else 0
    elif code == LEAKY_RELU:
        return z if z > 0 else <real>LEAKY_SLOPE * z
    elif code == ELU:
        return z if z > 0 else <real>ELU_ALPHA * r_expm1(z if z < 0 else 0)
    elif code == SOFTPLUS:
        return (z if z > 0 else 0) + r_log1p(r_exp(-r_abs(z)))
    elif code == GELU:
        return <real>0.5 * z * (1 + gelu_inner(z))
    elif code == SILU:
        return z * sigmoid(z)
    return z


cdef inline real derivative(int code, real z, real a) noexcept nogil:
    """f'(z), given z and a = f(z)."""
    cdef real t, s, zc
    if code == SIGMOID:
        return a * (1 - a)
    elif code == TANH:
        return 1 - a * a
    elif code == RELU:
        return 1 if z > 0 else 0
    elif code == LEAKY_RELU:
        return 1 if z > 0 else <real>LEAKY_SLOPE
    elif code == ELU:
        return 1 if z > 0 else <real>ELU_ALPHA * r_exp(z if z < 0 else 0)
    elif code == SOFTPLUS:
        return sigmoid(z)
    elif code == GELU:
        t = gelu_inner(z)
        # as reference.py: beyond |z| = 100, 1 - t*t is 0; clipping keeps z*z finite there
        zc = z if z < 100 else 100
        zc = zc if zc > -100 else -100
        return (<real>0.5 * (1 + t) + <real>0.5 * zc * (1 - t * t) * <real>GELU_C
                * (1 + 3 * <real>GELU_K * zc * zc))
    elif code == SILU:
        s = sigmoid(z)
        return s * (1 + z * (1 - s))
    return 1


cdef inline bint derivative_from_output(int code) noexcept nogil:
    """True where f' can be computed from a = f(z) alone, exactly as from z (so a layer may
    keep A in Z's memory): identity, sigmoid and tanh use only a; relu and leaky_relu test
    z > 0, which is a > 0."""
    return code == IDENTITY or code == SIGMOID or code == TANH or code == RELU or code == LEAKY_RELU
