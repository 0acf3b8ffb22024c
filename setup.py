"""Builds the Cython kernels (every .pyx under src/fastbp); everything else is in pyproject.toml.

The extension is optional. Without a working C compiler (or Python's headers) the build
skips it with one warning and fastbp installs with its NumPy and Numba backends; the
reason is kept in the package (NOTE_FILE), so that `fastbp info` can say why the Cython
backend is missing. FASTBP_REQUIRE_CYTHON=1 makes a failed Cython build an error instead.

OpenMP: the kernels' elementwise passes use `prange`. The build tries the compiler with
-fopenmp and drops it when that fails (or when FASTBP_NO_OPENMP=1): the kernels then run
those passes on one thread, and `fastbp info` says so.

Cython and NumPy are imported only when the extension is built, so the commands that only
list files (sdist, egg_info) need neither.
"""
import glob
import os
import re
import shutil
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

# why the extension is missing, one line, in the built package (read by fastbp._build)
NOTE_FILE = "_cython_not_built.txt"
REQUIRE_VARIABLE = "FASTBP_REQUIRE_CYTHON"
OPENMP_FLAG = "-fopenmp"
PLAIN_TEST = "int main(void) { return 0; }\n"
OPENMP_TEST = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
DIRECTIVES = {"boundscheck": False, "wraparound": False, "cdivision": True, "initializedcheck": False}


def compile_error(code, flags=()):
    """Compile and link a tiny C program with the compiler setuptools will use
    -> None, or why that failed (one line)."""
    try:
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler
    except ImportError:                  # very old setuptools
        return "setuptools' compiler interface is missing"
    compiler = new_compiler()
    customize_compiler(compiler)
    cc = (getattr(compiler, "compiler_so", None) or ["the C compiler"])[0]
    workdir = tempfile.mkdtemp(prefix="fastbp-probe-")
    try:
        source = os.path.join(workdir, "probe.c")
        with open(source, "w") as f:
            f.write(code)
        objects = compiler.compile([source], output_dir=workdir, extra_postargs=list(flags))
        compiler.link_executable(objects, "probe", output_dir=workdir, extra_postargs=list(flags))
        return None
    except Exception as e:               # CompileError, LinkError, a missing compiler
        if shutil.which(cc) is None:
            return f"the C compiler {cc!r} is not on PATH"
        status = re.search(r"exit (?:status|code) (-?\d+)", str(e))
        return (f"{cc!r} cannot compile and link a minimal C program"
                + (f" (exit status {status.group(1)})" if status else f" ({' '.join(str(e).split())})"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def openmp_usable():
    if os.environ.get("FASTBP_NO_OPENMP") == "1" or sys.platform == "win32":
        return False
    return compile_error(OPENMP_TEST, [OPENMP_FLAG]) is None


def module_name(pyx):
    """src/fastbp/_kernels/x.pyx -> fastbp._kernels.x (wherever under src/fastbp it lies)."""
    return os.path.splitext(os.path.relpath(pyx, "src"))[0].replace(os.sep, ".")


def configure(ext, openmp, numpy_include):
    """The compile settings of one kernel module (set on setuptools' own Extension object)."""
    with open(PYX_FILES[ext.name], encoding="utf-8") as f:
        omp = [OPENMP_FLAG] if openmp and "prange" in f.read() else []   # only modules with prange loops
    ext.include_dirs.append(numpy_include)
    # -fno-trapping-math: no program here runs with FP traps enabled, and it lets GCC
    # if-convert (so vectorize) the branch-free selects of the float32 activations;
    # -fno-math-errno: nothing here reads errno, and without it sqrt is a libm call for the
    # errno path, which keeps the Adam update loop scalar
    ext.extra_compile_args += ["-O3", "-fno-trapping-math", "-fno-math-errno"] + omp
    ext.extra_link_args += omp
    ext.define_macros.append(("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"))


SKIPPED = """
fastbp: WARNING: the Cython kernels were not built: {why}
  fastbp is installed without them and runs on its NumPy and Numba backends. The cost: no
  'cython' backend, the fastest one for small networks and the only compiled one that needs
  no compile at run time (Numba compiles its kernels on first use, tens of seconds).
  To get it: install a C compiler and Python's headers (Debian/Ubuntu: apt install gcc
  python3-dev), then reinstall fastbp from its source, e.g. in the checkout:
      pip install --force-reinstall --no-deps --no-cache-dir .
  `fastbp info` shows what is usable. {variable}=1 makes this an error.
"""


class OptionalCythonBuild(build_ext):
    """build_ext that cythonizes and compiles the kernels, or, when no C compiler works,
    builds nothing, says so once and leaves the reason in the package."""

    def run(self):
        why = compile_error(PLAIN_TEST)
        if why is not None:
            why = f"no working C compiler ({why})"
        else:
            from Cython.Build import cythonize
            import numpy
            openmp = openmp_usable()
            print(f"fastbp: building the Cython kernels {'with' if openmp else 'without'} OpenMP", file=sys.stderr)
            for ext in self.extensions:
                configure(ext, openmp, numpy.get_include())
            generated = cythonize([Extension(e.name, [PYX_FILES[e.name]]) for e in self.extensions],
                                  language_level=3, include_path=["src"], compiler_directives=DIRECTIVES)
            c_sources = {module.name: module.sources for module in generated}
            for ext in self.extensions:
                ext.sources = c_sources[ext.name]       # the .c file Cython wrote
            try:
                super().run()
            except (CCompilerError, ExecError, PlatformError) as e:    # a missing header, a linker error
                why = f"compiling them failed ({' '.join(str(e).split()) or type(e).__name__})"
        self._leave_note(why)
        if why is None:
            return
        if not self.inplace:                 # no module of an earlier build may go into this wheel
            for ext in self.extensions:
                if os.path.exists(self.get_ext_fullpath(ext.name)):
                    os.remove(self.get_ext_fullpath(ext.name))
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            sys.exit(f"fastbp: error: {REQUIRE_VARIABLE}=1 and the Cython kernels were not built: {why}")
        print(SKIPPED.format(why=why, variable=REQUIRE_VARIABLE), file=sys.stderr)

    def _leave_note(self, why):
        """Write the reason beside the package's modules (or remove an old one after a build)."""
        folder = (self.get_finalized_command("build_py").get_package_dir("fastbp") if self.inplace
                  else os.path.join(self.build_lib, "fastbp"))
        path = os.path.join(folder, NOTE_FILE)
        if why is None:
            if os.path.exists(path):
                os.remove(path)
            return
        os.makedirs(folder, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(why + "\n")

    def get_outputs(self):
        """Only what was built (the install records these files)."""
        return [path for path in super().get_outputs() if os.path.exists(path)]


# module name -> its .pyx, wherever under src/fastbp it lies (configured and cythonized in
# OptionalCythonBuild.run, the only step that needs Cython and NumPy)
PYX_FILES = {module_name(pyx): pyx for pyx in sorted(glob.glob("src/fastbp/**/*.pyx", recursive=True))}
setup(ext_modules=[Extension(name, [pyx]) for name, pyx in PYX_FILES.items()],
      cmdclass={"build_ext": OptionalCythonBuild})
