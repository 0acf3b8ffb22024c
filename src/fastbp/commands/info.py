"""fastbp info: version, backends (and why one is missing), threads."""
import os
import platform

HELP = "show the version, the usable backends and why others are missing"


def add_arguments(parser):
    pass


def run(args):
    import numpy as np

    import fastbp
    from fastbp._kernels import available_backends, unavailable_reasons
    print(f"fastbp {fastbp.__version__}  (Python {platform.python_version()}, NumPy {np.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs)")
    print(f"backends: {', '.join(available_backends())}")
    for name, why in unavailable_reasons().items():
        print(f"  {name}: not usable: {why}")
    return 0
