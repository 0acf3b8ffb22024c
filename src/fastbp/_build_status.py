"""Why the optional Cython extension is missing, in words a user can act on.

setup.py leaves NOTE_FILE in the package when it skips the extension (no working C
compiler, or its compile failed), holding the reason in one line.
"""
import os

NOTE_FILE = "_cython_not_built.txt"        # the name setup.py writes
PACKAGE = os.path.dirname(os.path.abspath(__file__))
REINSTALL = ("install a C compiler and Python's headers (Debian/Ubuntu: apt install gcc python3-dev), then "
             "reinstall fastbp from its source: `pip install --force-reinstall --no-deps --no-cache-dir .` "
             "in the checkout (or the sdist's path instead of '.')")


def skipped_at_install():
    """The reason setup.py recorded for not building the extension, or None."""
    try:
        with open(os.path.join(PACKAGE, NOTE_FILE), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def in_checkout():
    """fastbp runs from a source checkout (src/fastbp beside setup.py), not from an install."""
    return os.path.isfile(os.path.join(PACKAGE, os.pardir, os.pardir, "setup.py"))


def cython_missing(import_error):
    """One line for `fastbp info`: why the Cython backend is missing and how to get it."""
    note = skipped_at_install()
    if note:
        return f"not built when fastbp was installed: {note}; to get it, {REINSTALL}"
    if in_checkout():
        return (f"the extension is not built in this checkout ({import_error}); "
                "build it with `python setup.py build_ext --inplace` (needs a C compiler and Cython)")
    return f"the extension does not load ({import_error}); {REINSTALL}"
