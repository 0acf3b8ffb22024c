"""Builds the Cython kernels (src/fastbp/_kernels/*/*.pyx); everything else is in pyproject.toml.

OpenMP: the kernels' elementwise passes use `prange`. The build tries the compiler with
-fopenmp and drops it when that fails (or when FASTBP_NO_OPENMP=1): the kernels then run
those passes on one thread, and `fastbp info` says so.
"""
import glob
import os
import shutil
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP_FLAG = "-fopenmp"
OPENMP_TEST = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


def compiler_accepts_openmp():
    """Compile and link a tiny OpenMP program with the compiler setuptools will use."""
    if os.environ.get("FASTBP_NO_OPENMP") == "1" or sys.platform == "win32":
        return False
    try:
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler
    except ImportError:                  # very old setuptools
        return False
    compiler = new_compiler()
    customize_compiler(compiler)
    workdir = tempfile.mkdtemp(prefix="fastbp-openmp-")
    try:
        source = os.path.join(workdir, "probe.c")
        with open(source, "w") as f:
            f.write(OPENMP_TEST)
        objects = compiler.compile([source], output_dir=workdir, extra_postargs=[OPENMP_FLAG])
        compiler.link_executable(objects, "probe", output_dir=workdir, extra_postargs=[OPENMP_FLAG])
        return True
    except Exception:                    # CompileError, LinkError, a missing compiler
        return False
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


openmp = compiler_accepts_openmp()
print(f"fastbp: building the Cython kernels {'with' if openmp else 'without'} OpenMP", file=sys.stderr)
omp_args = [OPENMP_FLAG] if openmp else []


def extension(pyx):
    with open(pyx, encoding="utf-8") as f:
        omp = omp_args if "prange" in f.read() else []      # OpenMP only for modules with prange loops
    return Extension(
        os.path.splitext(os.path.relpath(pyx, "src"))[0].replace(os.sep, "."),
        [pyx],
        include_dirs=[numpy.get_include()],
        # -fno-trapping-math: no program here runs with FP traps enabled, and it lets GCC
        # if-convert (so vectorize) the branch-free selects of the float32 activations
        extra_compile_args=["-O3", "-fno-trapping-math"] + omp,
        extra_link_args=omp,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


extensions = [extension(pyx) for pyx in sorted(glob.glob("src/fastbp/_kernels/*/*.pyx"))]

setup(ext_modules=cythonize(extensions, language_level=3, include_path=["src"],
                            compiler_directives={"boundscheck": False, "wraparound": False,
                                                 "cdivision": True, "initializedcheck": False}))
