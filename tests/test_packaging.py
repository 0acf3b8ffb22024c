"""What `pip install` and `python -m build` get from this tree, checked without building
the extension (fast): the sdist's file list (setuptools' manifest, from egg_info), the
wheel's package files (build_py), the licence metadata, and the optional-extension build
without a C compiler. The full sdist -> wheel -> install -> train run is in .ci/run."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SETUPTOOLS_NEEDED = (77,)           # pyproject.toml's licence expression and license-files


def _setuptools_version():
    try:
        from importlib.metadata import version
        return tuple(int(p) for p in version("setuptools").split(".")[:1])
    except Exception:                   # noqa: BLE001 -- not installed, or an odd version string
        return (0,)


pytestmark = pytest.mark.skipif(_setuptools_version() < SETUPTOOLS_NEEDED,
                                reason="needs setuptools >= 77 (the test extra brings it)")


def source_files():
    """The files an sdist is made from: git's tracked and untracked-but-not-ignored files
    (in an unpacked sdist, without git: every file)."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                             capture_output=True, timeout=60).stdout.decode()
        return sorted(f for f in out.split("\0") if f and (ROOT / f).is_file())
    except (OSError, subprocess.CalledProcessError):
        return sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()
                      and not {"__pycache__", "build", "dist", ".git"} & set(p.relative_to(ROOT).parts))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A copy of the source files, plus the build products an in-place build leaves (which
    must stay out of both the sdist and the wheel)."""
    copy = tmp_path_factory.mktemp("tree")
    for name in source_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    kernels = copy / "src" / "fastbp" / "_kernels"
    for junk in ("_made_by_cython.c", "_built.cpython-311-x86_64-linux-gnu.so", "_annotated.html"):
        (kernels / junk).write_text("a build product")
    (copy / "src" / "fastbp" / "_cython_not_built.txt").write_text("a note of an earlier build")
    return copy


def setup_py(tree, *args, env=None):
    r = subprocess.run([sys.executable, "setup.py", *args], cwd=tree, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, **(env or {})))
    return r


@pytest.fixture(scope="module")
def sdist_files(tree, tmp_path_factory):
    egg = tmp_path_factory.mktemp("egg")
    r = setup_py(tree, "-q", "egg_info", "--egg-base", str(egg))
    assert r.returncode == 0, r.stderr
    info = egg / "fastbp.egg-info"
    return set((info / "SOURCES.txt").read_text().split()), (info / "PKG-INFO").read_text()


@pytest.fixture(scope="module")
def wheel_files(tree, tmp_path_factory):
    lib = tmp_path_factory.mktemp("lib")
    r = setup_py(tree, "-q", "build_py", "--build-lib", str(lib))
    assert r.returncode == 0, r.stderr
    return {str(p.relative_to(lib)) for p in lib.rglob("*") if p.is_file()}


def package_sources():
    """Every module, Cython source (.pyx, .pxd) and data file under src/fastbp, wherever it lies."""
    return [f for f in source_files() if f.startswith("src/fastbp/")]


def test_the_sdist_holds_everything_to_build_test_and_document(sdist_files):
    files, _ = sdist_files
    missing = [f for f in package_sources() if f not in files]
    assert not missing, f"left out of the sdist: {missing}"
    for needed in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in",
                   "mkdocs.yml", "tests/conftest.py", "tests/fuzz_cases.py", "tests/mpi_scripts/check_data_parallel.py",
                   "docs/design.md", "docs/tutorial.md", "bench/README.md"):
        assert needed in files, f"{needed} is not in the sdist"
    assert not [f for f in source_files() if f.startswith(("tests/", "docs/")) and f not in files]


def test_the_sdist_holds_no_build_products(sdist_files):
    files, _ = sdist_files
    products = [f for f in files if f.endswith((".c", ".so", ".html", ".pyc")) or f.endswith("_cython_not_built.txt")]
    assert not products, products


def test_the_licence_is_in_the_metadata(sdist_files):
    _, pkg_info = sdist_files
    assert "License-Expression: MIT" in pkg_info.splitlines()
    assert "License-File: LICENSE" in pkg_info.splitlines()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_wheel_holds_the_package_its_cython_sources_and_data_only(wheel_files):
    expected = {f[len("src/"):] for f in package_sources()}
    assert {f for f in expected if f.endswith((".pyx", ".pxd"))}, "no Cython sources found under src/fastbp"
    missing = sorted(expected - wheel_files)
    assert not missing, f"left out of the wheel: {missing}"
    assert all(f.startswith("fastbp/") for f in wheel_files), sorted(f for f in wheel_files if not f.startswith("fastbp/"))
    extra = sorted(wheel_files - expected)
    assert not extra, f"in the wheel but not a package source (a build product or a stray file): {extra}"


def test_without_a_compiler_the_build_warns_once_and_fastbp_says_why(tree):
    r = setup_py(tree, "-q", "build_ext", "--inplace", env={"CC": "/bin/false", "FASTBP_REQUIRE_CYTHON": ""})
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("WARNING: the Cython kernels were not built") == 1, r.stderr
    assert "FASTBP_REQUIRE_CYTHON=1" in r.stderr and "pip install --force-reinstall --no-deps --no-cache-dir ." in r.stderr
    note = (tree / "src" / "fastbp" / "_cython_not_built.txt").read_text().strip()
    assert note == "no working C compiler ('/bin/false' cannot compile and link a minimal C program (exit status 1))"
    probe = subprocess.run([sys.executable, "-c", "from fastbp._kernels import unavailable_reasons as u, "
                            "available_backends as a; print(a()); print(u()['cython'])"],
                           cwd=tree, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, PYTHONPATH=str(tree / "src")))
    assert probe.returncode == 0, probe.stderr
    backends, why = probe.stdout.splitlines()
    assert "'numpy'" in backends and "'cython'" not in backends
    assert why.startswith(f"not built when fastbp was installed: {note}; to get it, install a C compiler")

    r = setup_py(tree, "-q", "build_ext", "--inplace", env={"CC": "/bin/false", "FASTBP_REQUIRE_CYTHON": "1"})
    assert r.returncode != 0
    assert "fastbp: error: FASTBP_REQUIRE_CYTHON=1 and the Cython kernels were not built: no working C compiler" \
        in r.stderr
