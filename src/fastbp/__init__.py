"""fastbp: multilayer perceptrons trained by backpropagation, with compiled kernels."""
from . import datasets, kernels
from ._kernels import available_backends
from .gradcheck import gradcheck
from .network import MLP
from .optim import SGD, Adam

__version__ = "0.1.0"

__all__ = ["datasets", "MLP", "SGD", "Adam", "gradcheck", "kernels", "available_backends", "__version__"]
