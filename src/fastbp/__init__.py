"""fastbp: multilayer perceptrons trained by backpropagation, with compiled kernels."""
from . import datasets, kernels, schedules
from ._kernels import available_backends
from .gradcheck import gradcheck
from .network import MLP
from .optim import SGD, Adam
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = ["datasets", "schedules", "MLP", "SGD", "Adam", "gradcheck", "kernels", "available_backends",
           "set_num_threads", "get_num_threads", "__version__"]
