"""Memory a network needs, against memory this process can still have: a clear MemoryError
naming the sizes before an allocation that cannot succeed, instead of a traceback from deep
inside NumPy (or the OOM killer).

Available memory is the least of: the kernel's estimate of memory available without
swapping (MemAvailable in /proc/meminfo; sysconf's available pages elsewhere), what the
cgroup's memory limit leaves, and what the address-space limit (RLIMIT_AS) leaves above the
process's current size. Where none of them can be read, nothing is refused.
"""
import os

_GB = 1e9


def _meminfo_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "available physical pages"
    except (AttributeError, ValueError, OSError):
        return None


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_available():
    """The cgroup limit less its usage (cgroup v2, then v1), or None without a limit."""
    try:
        with open("/proc/self/cgroup") as f:
            v2 = [line.split(":", 2)[2].strip() for line in f if line.startswith("0::")]
    except (OSError, IndexError):
        v2 = []
    candidates = [(f"/sys/fs/cgroup{p.rstrip('/')}/memory.max", f"/sys/fs/cgroup{p.rstrip('/')}/memory.current")
                  for p in v2] + [("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                   "/sys/fs/cgroup/memory/memory.usage_in_bytes")]
    for limit_path, usage_path in candidates:
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and usage is not None and limit < 2 ** 60:      # v1 writes "no limit" as ~2**63
            return max(limit - usage, 0), "the cgroup's memory limit"
    return None


def _address_space_available():
    """RLIMIT_AS less the current virtual size, or None without a limit."""
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, AttributeError, ValueError, OSError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    size = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    size = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return max(soft - size, 0), "the address-space limit (ulimit -v)"


def available():
    """-> (bytes, where that figure comes from) for the tightest known limit, or (None, None)."""
    known = [a for a in (_meminfo_available(), _cgroup_available(), _address_space_available()) if a is not None]
    return min(known) if known else (None, None)


def size_text(n):
    return f"{n / _GB:,.1f} GB" if n >= 0.1 * _GB else f"{n / 1e6:,.1f} MB"


def require(n_bytes, what):
    """MemoryError unless about `n_bytes` more can be allocated; `what` says for what
    (e.g. "MLP([60000, 60000]) float32: 3,600,060,000 parameters")."""
    free, source = available()
    if free is not None and n_bytes > free:
        raise MemoryError(f"{what} need about {size_text(n_bytes)} of memory; {size_text(free)} is available "
                          f"({source})")


# ---- what fastbp allocates (bytes) ----

def network_bytes(arch):
    """Building a network: the initial weights drawn in float64, then the parameter and
    gradient buffers in the network's dtype (the float64 draw is freed before the gradients
    are allocated when the dtype is float32)."""
    n, item = arch.n_params, arch.dtype.itemsize
    return max(8 * n + (item * n if item != 8 else 0), 2 * item * n)


def loaded_network_bytes(arch, n_state_buffers):
    """Loading one: the file's arrays, then the network's parameters, gradients and state."""
    n, item = arch.n_params, arch.dtype.itemsize
    return item * n * (1 + n_state_buffers) + item * n * (2 + n_state_buffers)


def training_bytes(arch, n_new_state_buffers, batch_rows, eval_rows):
    """fit on top of an existing network: optimizer state not yet allocated, and the step's and
    the evaluation's activations (Z, A and delta per layer, for a batch and an evaluation chunk)."""
    item = arch.dtype.itemsize
    widths = sum(arch.sizes)
    return item * (arch.n_params * n_new_state_buffers + 3 * widths * (batch_rows + eval_rows))
