"""The activation table (fastbp/activations.py) compiled for a Numba target, CPU or CUDA.

`compile_formulas` re-binds each formula's code to a namespace of the target's primitives
and typed constants (the functions are the same bytecode; only what their names mean
changes) and compiles it with the target's decorator. `switch` writes a function that
branches on the activation code, one branch per table entry and a last branch that fails
loudly, so the switches never need editing when an activation is added.
"""
import builtins
import types

from .. import activations


def compile_formulas(jit, primitives, constant, module):
    """-> a namespace holding every formula of the table compiled by `jit` under its own name
    (f_relu, df_relu, ...). primitives: name -> the target's function, for the names in
    activations.PRIMITIVES (a target without a sigmoid of its own gets the table's);
    constant(value) -> the target's form of each of activations.CONSTANTS; module: the
    target module's name (Numba names its cache files after it)."""
    missing = set(activations.PRIMITIVES) - set(primitives) - {"sigmoid"}
    if missing:
        raise ValueError(f"the target lacks the primitives {sorted(missing)}")
    namespace = {"__builtins__": builtins, "__name__": module}
    namespace.update({name: constant(value) for name, value in activations.CONSTANTS.items()})
    namespace.update(primitives)
    if "sigmoid" not in primitives:
        namespace["sigmoid"] = jit(_rebound(activations.sigmoid, namespace))
    for entry in activations.TABLE:
        for fn in (entry.f, entry.df):
            namespace[fn.__name__] = jit(_rebound(fn, namespace))
    return namespace


def _rebound(fn, namespace):
    return types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)


def switch(namespace, filename, signature, branch, otherwise):
    """Define `def <signature>:` in `namespace`, branching on its argument `code`: for each
    table entry the lines branch(entry), for any other code the lines `otherwise`. -> the
    (plain Python) function, for the caller to compile. filename: the target module's file
    (Numba's cache is keyed on it)."""
    lines = [f"def {signature}:"]
    for code, entry in enumerate(activations.TABLE):
        lines.append(f"    {'if' if code == 0 else 'elif'} code == {code}:    # {entry.name}")
        lines += ["        " + line for line in branch(entry)]
    lines.append("    else:")
    lines += ["        " + line for line in otherwise]
    exec(compile("\n".join(lines) + "\n", filename, "exec"), namespace)     # noqa: S102 - our own source
    return namespace[signature.partition("(")[0]]
