"""The Numba CPU backend (ops.py is its face; the registry imports that module).

    ops.py          NumbaOps: the Ops methods, one compiled call each
    activations.py  the activation table compiled for Numba, over primitives.py's fast forms
    products.py     matrix products: register-blocked loops for small ones, BLAS (blas.py) beyond
    layers.py       one layer's kernels: linear forward, delta propagation, weight gradient
    losses.py       the losses and dLoss/d out
    optimizers.py   SGD and Adam over the flat buffers
    checks.py       NaN/inf and magnitude checks made before a step writes anything
    step.py         the one-call network passes (forward, loss, backward, update) over a plan
"""
