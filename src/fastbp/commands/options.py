"""What the subcommands share: argparse types for numbers and lists, and the checks of the
files a command will read or write, run before any work starts. Every error names the
option and the value or path the user gave."""
import argparse
import math
import os


def _number(kind, text, rule, ok):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {rule}; got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {rule}; got {text!r}")
    return value


def positive_int(text):
    return _number(int, text, "a positive integer", lambda v: v >= 1)


def non_negative_int(text):
    return _number(int, text, "a non-negative integer", lambda v: v >= 0)


def positive_float(text):
    return _number(float, text, "a positive number", lambda v: math.isfinite(v) and v > 0)


def unit_interval(text):
    """A number in [0, 1) (momentum)."""
    return _number(float, text, "a number in [0, 1)", lambda v: 0 <= v < 1)


def layer_list(text, option, allow_empty=False, at_least=1):
    """'64,32' -> [64, 32]; ValueError naming `option` for anything else."""
    if allow_empty and not text.strip():
        return []
    try:
        sizes = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated integers like 64,32; got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"{option} sizes must be >= 1; got {text!r}")
    if len(sizes) < at_least:
        raise ValueError(f"{option} needs at least {at_least} sizes; got {text!r}")
    return sizes


def input_file(path, option):
    """ValueError naming the option unless `path` is an existing file."""
    if not os.path.exists(path):
        raise ValueError(f"{option}: {path} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{option}: {path} is a folder; give a file")


def output_file(path, option, inputs=()):
    """fastbp.files.check_target with a trial file in the folder (a long run must not fail at
    its end because its output cannot be written), every error naming the option."""
    from fastbp import files
    try:
        files.check_target(path, option, inputs=inputs, probe=True)
    except OSError as e:
        raise ValueError(f"{option}: {e}") from None
