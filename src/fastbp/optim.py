"""Optimizers: hyper-parameters plus state buffers, each state one flat array shaped like
the network's parameter buffer. The update itself is a backend kernel (`Ops.sgd_update`,
`Ops.adam_update`), fused over the whole buffer; a backend with a compiled training step
for the optimizer's `kind` runs the update inside it, reading the hyper-parameters by name
(lr, momentum, ...) on every step and the state buffers from `state` by their names.

Semantics follow torch.optim.SGD (dampening 0) and torch.optim.Adam (L2 weight decay).
An optimizer binds to the first network it updates (its parameter buffer): using it with
any other network, even one of the same shape, is a ValueError, as its state belongs to
the first one.
"""
import math
import numbers

import numpy as np

from ._kernels.plan import OVERFLOW, status_error


def _number(value, name, low=0.0, low_open=False, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    bad = (not math.isfinite(value) or value < low or (low_open and value == low)
           or (high is not None and value >= high))
    if bad:
        bound = f"{'>' if low_open else '>='} {low}" + (f" and < {high}" if high is not None else "")
        raise ValueError(f"{name} must be {bound}; got {value}")
    return value


class Optimizer:
    state_names = ()
    # The update as compiled training steps know it ("sgd", "adam"); None: only through
    # update(). A subclass gets None unless it sets `kind` itself: it may change the update.
    kind = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            cls.kind = None

    def __init__(self):
        self._binding = None      # (n_params, dtype, backend name)
        self.bound_to = None      # the parameter buffer the state belongs to (None: unbound)
        self._ops = None
        self.state = {}           # name -> flat state buffer (backend array)
        self.step_count = 0

    def check_compatible(self, n_params, dtype, backend, params=None):
        """ValueError if this optimizer already updates another network: a different kind
        (size, dtype, backend) or, when `params` (the network's buffer) is given, another one."""
        if params is not None and params is self.bound_to:
            return                  # bound to this very buffer: this network (the per-step fast path)
        wanted = (n_params, np.dtype(dtype), backend)
        if self._binding is not None and self._binding != wanted:
            n, dt, be = self._binding
            raise ValueError(f"optimizer holds state for a network of {n} {dt} parameters on {be!r}; "
                             f"got one of {n_params} {np.dtype(dtype)} parameters on {backend!r} "
                             f"(use one optimizer per network)")
        if params is not None and self.bound_to is not None and params is not self.bound_to:
            raise ValueError("optimizer holds state for another network (of the same shape); "
                             "use one optimizer per network")

    def updates(self, params):
        """Whether this optimizer's state belongs to the parameter buffer `params` (bound to it)."""
        return params is self.bound_to

    def bind(self, ops, params):
        """Allocate the state buffers once, on the network's backend."""
        if self._binding is None:
            self._binding = (params.size, params.dtype, ops.name)
            self.bound_to = params
            self._ops = ops
            self.state = {name: ops.zeros(params.size, params.dtype) for name in self.state_names}

    def unbind(self):
        """Back to unbound, state dropped (a first step that failed after binding)."""
        self._binding = self.bound_to = self._ops = None
        self.state = {}

    def update(self, ops, params, grads):
        """One step from the gradients `grads`: all of it or, where a new parameter or state
        value would not be finite, none (FloatingPointError; a fresh optimizer left unbound)."""
        fresh = self.bound_to is None
        self.bind(ops, params)
        if self._apply(ops, params, grads) is False:
            if fresh:
                self.unbind()
            raise status_error(OVERFLOW)
        self.step_count += 1

    def _apply(self, ops, params, grads):
        """Update params in place, this being step number step_count + 1; -> False when the
        backend's kernel refused (nothing written)."""
        raise NotImplementedError

    # ---- checkpoints ----
    def checkpoint_meta(self):
        return dict(type=type(self).__name__, hyperparameters=self.hyperparameters(),
                    step_count=self.step_count)

    def checkpoint_arrays(self):
        """Host copies of the state buffers (empty before the first update)."""
        return {name: np.array(self._ops.to_host(buf), copy=True) for name, buf in self.state.items()}


def optimizer_from_checkpoint(meta, arrays, net):
    """Rebuild an optimizer saved with a checkpoint, its state bound to `net`."""
    kinds = {"SGD": SGD, "Adam": Adam}
    if meta.get("type") not in kinds:
        raise ValueError(f"unknown optimizer type {meta.get('type')!r}")
    hyper = dict(meta["hyperparameters"])
    if "betas" in hyper:
        hyper["betas"] = tuple(hyper["betas"])
    opt = kinds[meta["type"]](**hyper)
    opt.step_count = int(meta.get("step_count", 0))
    if arrays:
        ops = net._ops
        opt.bind(ops, net.flat_params)
        for name in opt.state_names:
            if name not in arrays or arrays[name].shape != (net.n_params,):
                raise ValueError(f"optimizer state {name!r} missing or of the wrong shape")
            ops.copy_into(opt.state[name], arrays[name].astype(net.dtype))
    return opt


class SGD(Optimizer):
    """Stochastic gradient descent, with the semantics of torch.optim.SGD (dampening 0).

    Args:
        lr: the learning rate, > 0.
        momentum: the momentum factor, >= 0 (0: plain SGD).
        weight_decay: L2 penalty added to the gradient, >= 0.
        nesterov: Nesterov momentum (needs momentum > 0).
    """
    state_names = ("velocity",)
    kind = "sgd"

    def __init__(self, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__()
        self.lr = _number(lr, "lr", low_open=True)
        self.momentum = _number(momentum, "momentum")
        self.weight_decay = _number(weight_decay, "weight_decay")
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False; got {nesterov!r}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)

    def _apply(self, ops, params, grads):
        return ops.sgd_update(params, grads, self.state["velocity"], self.lr, self.momentum,
                              self.weight_decay, self.nesterov)

    def hyperparameters(self):
        return dict(lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                    nesterov=self.nesterov)

    def __repr__(self):
        return "SGD(" + ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items()) + ")"


class Adam(Optimizer):
    """Adam, with the semantics of torch.optim.Adam (L2 weight decay added to the gradient).

    Args:
        lr: the learning rate, > 0.
        betas: the decay rates `(beta1, beta2)` of the moment estimates, each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 penalty added to the gradient, >= 0.
    """
    state_names = ("m", "v")
    kind = "adam"

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__()
        self.lr = _number(lr, "lr", low_open=True)
        if not hasattr(betas, "__len__") or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2); got {betas!r}")
        self.betas = (_number(betas[0], "betas[0]", high=1.0), _number(betas[1], "betas[1]", high=1.0))
        self.eps = _number(eps, "eps")
        self.weight_decay = _number(weight_decay, "weight_decay")

    def _apply(self, ops, params, grads):
        return ops.adam_update(params, grads, self.state["m"], self.state["v"], self.step_count + 1,
                               self.lr, self.betas[0], self.betas[1], self.eps, self.weight_decay)

    def hyperparameters(self):
        return dict(lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)

    def __repr__(self):
        return "Adam(" + ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items()) + ")"
