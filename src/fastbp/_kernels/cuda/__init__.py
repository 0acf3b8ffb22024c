"""The numba.cuda backend (ops.py is its face; the registry imports that module). Every
kernel module exposes its kernels as `kernels(dtype)` (products.kernels(dtype, tile)).

    ops.py           CudaOps: device memory, the public kernels, the network-level steps
    activations.py   the activation table compiled for CUDA (device functions per dtype)
    products.py      tiled shared-memory GEMMs with fused epilogues, for layers of any width
    narrow.py        the fully fused forward/backward kernels for narrow networks (<= 128 wide)
    losses.py        the losses, reduced on the device
    optimizers.py    SGD and Adam over the flat buffers
    elementwise.py   block reductions, the finiteness check, fill/copy/gather
    device.py        simulated or not, the warp, numba types
"""
