"""The update rule of a benchmark step, a second dimension beside the workload: plain SGD
(the default, and the only rule of the records taken before this dimension existed), SGD
with momentum, and Adam, each with fixed hyper-parameters and no weight decay.

Every implementation applies the rule with its own optimizer (fastbp's fb.SGD / fb.Adam,
torch.optim, optax, ...; see peers.py); all of them follow torch's definitions:

    momentum  v = mu * v + g;                     p -= lr * v          (dampening 0)
    adam      m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g^2;
              p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
"""
from dataclasses import dataclass

from .choices import pick


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    lr: float
    momentum: float = 0.0          # SGD rules
    betas: tuple = ()              # Adam
    eps: float = 0.0               # Adam

    @property
    def is_adam(self):
        return bool(self.betas)

    def hyperparameters(self):
        if self.is_adam:
            return dict(lr=self.lr, betas=list(self.betas), eps=self.eps)
        return dict(lr=self.lr, momentum=self.momentum)

    def label(self):
        return self.name + " (" + ", ".join(f"{k} {v}" for k, v in self.hyperparameters().items()) + ")"

    def fastbp(self):
        """A new fastbp optimizer (fresh state) for this rule."""
        import fastbp as fb
        if self.is_adam:
            return fb.Adam(self.lr, betas=self.betas, eps=self.eps)
        return fb.SGD(self.lr, momentum=self.momentum)


SGD = OptimizerSpec("sgd", 0.01)
MOMENTUM = OptimizerSpec("momentum", 0.01, momentum=0.9)
ADAM = OptimizerSpec("adam", 1e-3, betas=(0.9, 0.999), eps=1e-8)

ALL = {o.name: o for o in (SGD, MOMENTUM, ADAM)}


def select(spec):
    """'sgd' (default) | 'all' | 'sgd,adam,...' -> [OptimizerSpec]; ValueError naming an unknown one."""
    return pick(spec, ALL, "--optimizer", {"sgd": [SGD], "all": ALL.values()})
