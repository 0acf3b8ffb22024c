"""The four kernels of docs/design.md, one signature for every backend.

Each call checks its arguments (float32/float64 arrays of one dtype, never converted;
consistent shapes; finite values), then runs the chosen backend's kernel.
"""
from . import activations
from ._kernels import get_ops


def _shape_error(what, expected, got):
    return ValueError(f"{what} must have shape {expected}; got {got}")


def linear_forward(X, W, b, activation, backend="auto"):
    """-> (Z, A) with Z = X @ W + b and A = activation(Z)."""
    ops, code = get_ops(backend), activations.code(activation)
    X, W, b = ops.kernel_inputs([("X", X, 2), ("W", W, 2), ("b", b, 1)])
    if W.shape[0] != X.shape[1]:
        raise _shape_error("W", f"({X.shape[1]}, n_out) to match X {X.shape}", W.shape)
    if b.shape != (W.shape[1],):
        raise _shape_error("b", (W.shape[1],), b.shape)
    return ops.kernel_outputs(ops.linear_forward(X, W, b, code))


def activation_backward(dA, Z, A, activation, backend="auto"):
    """-> dZ = dA * f'(Z)."""
    ops, code = get_ops(backend), activations.code(activation)
    dA, Z, A = ops.kernel_inputs([("dA", dA, 2), ("Z", Z, 2), ("A", A, 2)])
    for name, arr in (("Z", Z), ("A", A)):
        if arr.shape != dA.shape:
            raise _shape_error(name, dA.shape, arr.shape)
    return ops.kernel_outputs(ops.activation_backward(dA, Z, A, code))


def delta_propagate(delta, W, Z, A, activation, backend="auto"):
    """-> (delta @ W.T) * f'(Z); Z and A belong to the earlier layer, W to this one."""
    ops, code = get_ops(backend), activations.code(activation)
    delta, W, Z, A = ops.kernel_inputs([("delta", delta, 2), ("W", W, 2), ("Z", Z, 2), ("A", A, 2)])
    if W.shape[1] != delta.shape[1]:
        raise _shape_error("W", f"(n_in, {delta.shape[1]}) to match delta {delta.shape}", W.shape)
    for name, arr in (("Z", Z), ("A", A)):
        if arr.shape != (delta.shape[0], W.shape[0]):
            raise _shape_error(name, (delta.shape[0], W.shape[0]), arr.shape)
    return ops.kernel_outputs(ops.delta_propagate(delta, W, Z, A, code))


def weight_gradient(A_prev, delta, backend="auto"):
    """-> (dW, db) = (A_prev.T @ delta, delta.sum(axis=0))."""
    ops = get_ops(backend)
    A_prev, delta = ops.kernel_inputs([("A_prev", A_prev, 2), ("delta", delta, 2)])
    if delta.shape[0] != A_prev.shape[0]:
        raise _shape_error("delta", f"({A_prev.shape[0]}, n_out) to match A_prev {A_prev.shape}", delta.shape)
    return ops.kernel_outputs(ops.weight_gradient(A_prev, delta))
