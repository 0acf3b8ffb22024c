"""Writes activations.pxd, the activation table (fastbp/activations.py) compiled for the
Cython kernels, and plan.pxd, the plan's field names and the status codes (fastbp/_kernels/plan.py).

    python -m fastbp._kernels.cython_cpu.generate          (then rebuild the extension:
                                                            python setup.py build_ext --inplace)

Each formula's Python source is translated statement by statement into a C function, once
for float and once for double: locals become C locals, constants `(float)FASTBP_NAME` (so
float kernels compute in float), primitives primitives.pxd's branch-free fastbp_<name>_f32/_f64.
From the table come the row loops: a[j] = f(z[j]) and d[j] *= f'(z[j], a[j]), one straight
loop per code, which the C compiler vectorizes. The loops are compiled once per PATH (an
instruction set: GCC/Clang `target` attributes) and the best one the CPU supports is chosen
at run time, since a wheel is built for the baseline of its platform (SSE2 on x86-64). The
checked-in files must equal what this writes (tests/test_activation_table.py checks it).
"""
import ast
import inspect
import os
import sys
import textwrap

from ... import activations
from .. import plan

HERE = os.path.dirname(os.path.abspath(__file__))
PXD = os.path.join(HERE, "activations.pxd")
PLAN_PXD = os.path.join(HERE, "plan.pxd")
COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
ARITHMETIC = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
TYPES = (("float", "f32"), ("double", "f64"))      # C type, suffix of its functions

# The instruction-set paths, best first: (name, what it is, the target features; the CPU must
# report every one of them at run time). Compiled where FASTBP_X86_PATHS holds (x86-64 Linux,
# GCC >= 6 or Clang >= 14: `target` attributes and __builtin_cpu_supports); the BASELINE
# (the build's own flags) always.
PATHS = (
    ("avx512", "x86-64-v4 (AVX-512)", "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"),
    ("avx2", "x86-64-v3 (AVX2, FMA)", "avx2,fma"),
)
BASELINE = ("baseline", None)       # described by FASTBP_BASELINE (GUARD)


class FormulaError(ValueError):
    pass


class _ToC:
    """One formula's expressions as C of one float type, checked against activations.py's rules."""

    def __init__(self, fn, names, ctype, suffix):
        self.fn, self.names = fn.__name__, names      # names: the parameters, locals, earlier formulas
        self.ctype, self.suffix = ctype, suffix

    def fail(self, node, why):
        raise FormulaError(f"{self.fn}, line {getattr(node, 'lineno', '?')}: {why}")

    def __call__(self, node):
        if isinstance(node, ast.Constant):
            self.fail(node, f"bare number {node.value!r}: use a named constant of activations.py")
        if isinstance(node, ast.Name):
            if node.id in activations.CONSTANTS:
                return f"(({self.ctype})FASTBP_{node.id})"
            if node.id in self.names:
                return node.id
            self.fail(node, f"unknown name {node.id!r}")
        if isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
            return f"({self(node.left)} {ARITHMETIC[type(node.op)]} {self(node.right)})"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return f"(-{self(node.operand)})"
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in COMPARE:
            return f"({self(node.left)} {COMPARE[type(node.ops[0])]} {self(node.comparators[0])})"
        if isinstance(node, ast.IfExp):
            return f"({self(node.test)} ? {self(node.body)} : {self(node.orelse)})"
        if isinstance(node, ast.BoolOp):
            return "(" + (" && " if isinstance(node.op, ast.And) else " || ").join(map(self, node.values)) + ")"
        if isinstance(node, ast.Call):
            return self.call(node)
        self.fail(node, f"{type(node).__name__} is not allowed in a formula")

    def call(self, node):
        if not isinstance(node.func, ast.Name) or node.keywords:
            self.fail(node, "calls must be f(x, ...) of a primitive or an earlier formula")
        name, args = node.func.id, ", ".join(map(self, node.args))
        if name == "abs":
            return f"{'fabsf' if self.ctype == 'float' else 'fabs'}({args})"
        if name not in activations.PRIMITIVES and name not in self.names:
            self.fail(node, f"{name!r} is neither a primitive nor an earlier formula")
        return f"fastbp_{name}_{self.suffix}({args})"


def c_function(fn, known, ctype="float", suffix="f32"):
    """The C form of one formula for one float type; known: names of earlier formulas."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    params = [a.arg for a in tree.args.args]
    body = [s for s in tree.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    local_names = [s.targets[0].id for s in body if isinstance(s, ast.Assign)
                   and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name)]
    to_c = _ToC(fn, set(params) | set(local_names) | set(known), ctype, suffix)
    lines = [f"FASTBP_INLINE {ctype} fastbp_{fn.__name__}_{suffix}({', '.join(f'{ctype} {p}' for p in params)}) {{"]
    if local_names:
        lines.append(f"    {ctype} {', '.join(dict.fromkeys(local_names))};")
    for i, stmt in enumerate(body):
        last = i == len(body) - 1
        if isinstance(stmt, ast.Assign) and not last and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            lines.append(f"    {stmt.targets[0].id} = {to_c(stmt.value)};")
        elif isinstance(stmt, ast.Return) and last and stmt.value is not None:
            lines.append(f"    return {to_c(stmt.value)};")
        else:
            raise FormulaError(f"{fn.__name__}: only `name = expression` lines and a final `return` are allowed")
    return lines + ["}"]


def _switch(signature, head, cases, otherwise):
    """A C function: the lines `head`, then a switch on `code` over cases [(code, label, lines)]."""
    lines = [f"{signature} {{"] + [f"    {line}" for line in head] + ["    switch (code) {"]
    for code, label, body in cases:
        lines += [f"    case {code}:    /* {label} */"] + [f"        {line}" for line in body] + ["        break;"]
    return lines + ["    default:"] + [f"        {line}" for line in otherwise] + ["    }", "}"]


def _block_loop(rows_at, statement):
    """A statement over columns [j0, j1) of `rows` rows of `ld` elements; rows_at: the
    declaration of the row pointers (zr, ar, dr) of row i."""
    return ["for (i = 0; i < rows; i++) {", f"    {rows_at}", f"    for (j = j0; j < j1; j++) {statement}", "}"]


def _signatures(ctype):
    """{kind: (parameters, arguments)} of the loops of one float type."""
    return {
        "activate": (f"int code, const {ctype}* z, {ctype}* a, Py_ssize_t m, Py_ssize_t ld, Py_ssize_t j0, "
                     "Py_ssize_t j1", "code, z, a, m, ld, j0, j1"),
        "times_derivative": (f"int code, {ctype}* d, const {ctype}* z, const {ctype}* a, Py_ssize_t m, "
                             "Py_ssize_t ld, Py_ssize_t j0, Py_ssize_t j1, double* acc",
                             "code, d, z, a, m, ld, j0, j1, acc"),
        "primitive": (f"int code, const {ctype}* z, {ctype}* a, Py_ssize_t n", "code, z, a, n"),
    }


def _loops():
    """The loops, for both float types, written once and inlined into each path's functions
    (_path_functions), where the compiler vectorizes them for that path's instruction set:
    over a block of rows (m rows of ld elements, columns [j0, j1); whole rows are one flat
    loop) and, for the tests, over a vector."""
    table = list(enumerate(activations.TABLE))
    out = []
    for ctype, sfx in TYPES:
        signature = {kind: f"FASTBP_INLINE void fastbp_{kind}_{sfx}({params})"
                     for kind, (params, _) in _signatures(ctype).items()}
        rows_at = f"const {ctype}* zr = z + i * ld; {ctype}* ar = a + i * ld;"
        out += _switch(
            signature["activate"],
            ["Py_ssize_t i, j, rows = m;",
             "if (j0 == 0 && j1 == ld) { rows = 1; j1 = m * ld; }      /* one flat loop */"],
            [(c, e.name, _block_loop(rows_at, f"ar[j] = fastbp_{e.f.__name__}_{sfx}(zr[j]);")) for c, e in table],
            ["for (i = 0; i < rows; i++)", "    for (j = j0; j < j1; j++) a[i * ld + j] = NAN;"])
        out += [""]
        rows_at = f"{ctype}* dr = d + i * ld; const {ctype}* zr = z + i * ld; const {ctype}* ar = a + i * ld;"
        body = f"dr[j] = dr[j] * fastbp_{{}}_{sfx}(zr[j], ar[j]);"
        out += _switch(
            signature["times_derivative"],
            ["Py_ssize_t i, j, rows = m;",
             "if (acc == NULL && j0 == 0 && j1 == ld) { rows = 1; j1 = m * ld; }      /* one flat loop */"],
            [(c, e.name, ["if (acc != NULL) {      /* acc[j - j0] += the new d[j] */"]
              + [f"    {line}" for line in _block_loop(
                  rows_at, "{ " + body.format(e.df.__name__) + " acc[j - j0] += dr[j]; }")]
              + ["} else {"] + [f"    {line}" for line in _block_loop(rows_at, body.format(e.df.__name__))] + ["}"])
             for c, e in table],
            ["for (i = 0; i < rows; i++)", "    for (j = j0; j < j1; j++) d[i * ld + j] = NAN;"])
        out += [""]
        out += _switch(
            signature["primitive"],
            ["Py_ssize_t j;"],
            [(i, name, [f"for (j = 0; j < n; j++) a[j] = fastbp_{name}_{sfx}(z[j]);"])
             for i, name in enumerate(activations.PRIMITIVES)],
            ["for (j = 0; j < n; j++) a[j] = NAN;"])
        out += [""]
    return out


def _path_functions(path, target):
    """One path's functions: the loops inlined under its `target` attribute."""
    attribute = f'__attribute__((target("{target}"))) ' if target else ""
    return [f"static {attribute}void fastbp_{kind}_{sfx}_{path}({params}) {{ fastbp_{kind}_{sfx}({args}); }}"
            for ctype, sfx in TYPES for kind, (params, args) in _signatures(ctype).items()]


def _path_entry(path, description, target):
    usable = " && ".join(f'__builtin_cpu_supports("{feature}")' for feature in target.split(",")) if target else "1"
    functions = ", ".join(f"fastbp_{kind}_{sfx}_{path}" for kind in ("activate", "times_derivative", "primitive")
                          for _, sfx in TYPES)
    described = f'"{description}"' if description else "FASTBP_BASELINE"
    return [f"static int fastbp_usable_{path}(void) {{ return {usable}; }}"], \
        f'    {{"{path}", {described}, fastbp_usable_{path}, {functions}}},'


# The path table and its accessors (kernels.pyx: activation_paths, set_activation_path)
DISPATCH = """\
typedef struct {
    const char* name;
    const char* description;
    int (*usable)(void);
    void (*activate_f32)(int, const float*, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t);
    void (*activate_f64)(int, const double*, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t);
    void (*times_derivative_f32)(int, float*, const float*, const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                 Py_ssize_t, double*);
    void (*times_derivative_f64)(int, double*, const double*, const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                 Py_ssize_t, double*);
    void (*primitive_f32)(int, const float*, float*, Py_ssize_t);
    void (*primitive_f64)(int, const double*, double*, Py_ssize_t);
} fastbp_activation_path;

static const fastbp_activation_path FASTBP_PATHS[] = {
@ENTRIES@
};
#define FASTBP_N_PATHS ((int)(sizeof(FASTBP_PATHS) / sizeof(FASTBP_PATHS[0])))
/* the baseline until the module's import chooses (kernels.pyx) */
static const fastbp_activation_path* fastbp_path = &FASTBP_PATHS[FASTBP_N_PATHS - 1];

static int fastbp_path_count(void) { return FASTBP_N_PATHS; }
static const char* fastbp_path_name(int i) { return FASTBP_PATHS[i].name; }
static const char* fastbp_path_description(int i) { return FASTBP_PATHS[i].description; }
static int fastbp_path_usable(int i) {
#if FASTBP_X86_PATHS
    __builtin_cpu_init();
#endif
    return FASTBP_PATHS[i].usable();
}
static int fastbp_path_in_use(void) { return (int)(fastbp_path - FASTBP_PATHS); }
static void fastbp_use_path(int i) { fastbp_path = &FASTBP_PATHS[i]; }"""

GUARD = """\
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && defined(__has_attribute)
#if __has_attribute(target) && (defined(__clang__) ? __clang_major__ >= 14 : __GNUC__ >= 6)
#define FASTBP_X86_PATHS 1
#endif
#endif
#ifndef FASTBP_X86_PATHS
#define FASTBP_X86_PATHS 0
#endif
#if defined(__x86_64__) || defined(_M_X64)
#define FASTBP_BASELINE "x86-64 baseline (SSE2)"
#else
#define FASTBP_BASELINE "the build's baseline instruction set"
#endif"""


def c_source():
    """The C of activations.pxd: constants, formulas, each path's loops, the path table."""
    out = [f"#define FASTBP_{name} {value!r}" for name, value in activations.CONSTANTS.items()] + [""]
    for ctype, sfx in TYPES:
        known = []
        for entry in activations.TABLE:
            for fn in (entry.f, entry.df):
                out += c_function(fn, known, ctype, sfx) + [""]
                known.append(fn.__name__)
    out += _loops() + GUARD.split("\n") + ["", "#if FASTBP_X86_PATHS"]
    entries = []
    for path, description, target in PATHS:
        usable, entry = _path_entry(path, description, target)
        out += _path_functions(path, target) + usable + [""]
        entries.append(entry)
    out += ["#endif", ""]
    usable, entry = _path_entry(BASELINE[0], BASELINE[1], "")
    out += _path_functions(BASELINE[0], "") + usable + [""]
    entries = ["#if FASTBP_X86_PATHS"] + entries + ["#endif", entry]
    out += DISPATCH.replace("@ENTRIES@", "\n".join(entries)).split("\n")
    return out


def source():
    """The text of activations.pxd."""
    table = activations.TABLE
    out = [
        "# GENERATED by `python -m fastbp._kernels.cython_cpu.generate` from fastbp/activations.py:",
        "# do not edit. The activation table for the Cython kernels: the codes; in C, the constants,",
        "# each formula for float and double over primitives.pxd's primitives, the row loops of every",
        "# instruction-set path and the path table; the Cython calls into the path in use. An",
        "# unknown code gives NaN (the entry points reject unknown codes first).",
        "from fastbp._kernels.cython_cpu.primitives cimport real, sigmoid_f32, sigmoid_f64",
        "",
        "cdef enum:",
    ]
    out += [f"    {entry.name.upper()} = {code}" for code, entry in enumerate(table)]
    out += [f"    N_ACTIVATIONS = {len(table)}", "", "cdef extern from *:", '    """']
    out += [f"    {line}" if line else "" for line in c_source()]
    out += ['    """']
    for ctype, sfx in TYPES:
        out += [f"    void activate_{sfx} \"fastbp_path->activate_{sfx}\"(int code, const {ctype}* z, {ctype}* a, "
                f"Py_ssize_t m, Py_ssize_t ld, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil",
                f"    void times_derivative_{sfx} \"fastbp_path->times_derivative_{sfx}\"(int code, {ctype}* d, "
                f"const {ctype}* z, const {ctype}* a, Py_ssize_t m, Py_ssize_t ld, Py_ssize_t j0, Py_ssize_t j1, "
                f"double* acc) noexcept nogil",
                f"    void primitive_{sfx} \"fastbp_path->primitive_{sfx}\"(int which, const {ctype}* z, {ctype}* a, "
                f"Py_ssize_t n) noexcept nogil"]
    out += ["    int path_count \"fastbp_path_count\"() noexcept nogil",
            "    const char* path_name \"fastbp_path_name\"(int i) noexcept nogil",
            "    const char* path_description \"fastbp_path_description\"(int i) noexcept nogil",
            "    int path_usable \"fastbp_path_usable\"(int i) noexcept nogil",
            "    int path_in_use \"fastbp_path_in_use\"() noexcept nogil",
            "    void use_path \"fastbp_use_path\"(int i) noexcept nogil"]
    out += ["", "",
            "cdef inline real sigmoid(real z) noexcept nogil:",
            '    """primitives.pxd\'s sigmoid (the losses use it)."""',
            "    return sigmoid_f32(z) if real is float else sigmoid_f64(z)",
            "", "",
            "cdef inline void activate_block(int code, const real* z, real* a, Py_ssize_t m, Py_ssize_t ld,",
            "                                Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:",
            '    """a = f(z) over columns [j0, j1) of m rows of ld elements (a may be z), on the path in use."""',
            "    if real is float:",
            "        activate_f32(code, z, a, m, ld, j0, j1)",
            "    else:",
            "        activate_f64(code, z, a, m, ld, j0, j1)",
            "", "",
            "cdef inline void times_derivative_block(int code, real* d, const real* z, const real* a, Py_ssize_t m,",
            "                                        Py_ssize_t ld, Py_ssize_t j0, Py_ssize_t j1, double* acc) noexcept nogil:",
            '    """d *= f\'(z) given a = f(z), over columns [j0, j1) of m rows of ld elements, on the path in',
            '    use; and, unless acc is NULL, acc[j - j0] += the new d[i, j] (the column sums, in double)."""',
            "    if real is float:",
            "        times_derivative_f32(code, d, z, a, m, ld, j0, j1, acc)",
            "    else:",
            "        times_derivative_f64(code, d, z, a, m, ld, j0, j1, acc)",
            "", "",
            "cdef inline void primitive_vector(int which, const real* z, real* a, Py_ssize_t n) noexcept nogil:",
            f'    """a[j] = p(z[j]), p the primitive number `which` of {", ".join(activations.PRIMITIVES)}."""',
            "    if real is float:",
            "        primitive_f32(which, z, a, n)",
            "    else:",
            "        primitive_f64(which, z, a, n)",
            "", "",
            "cdef inline dict activation_codes():",
            '    """name -> code, as compiled in (checked against fastbp.activations at import)."""',
            "    return {" + ", ".join(f"{e.name!r}: {e.name.upper()}" for e in table) + "}"]
    return "\n".join(out) + "\n"


def plan_source():
    """The text of plan.pxd."""
    out = ["# GENERATED by `python -m fastbp._kernels.cython_cpu.generate` from fastbp/_kernels/plan.py:",
           "# do not edit. The plan's fields (header, then FIELDS per layer) and the status codes.", ""]
    for names, total in ((plan.HEADER_FIELDS, "HEADER"), (plan.LAYER_FIELDS, "FIELDS"), (plan.STATUSES, None)):
        out.append("cdef enum:")
        out += [f"    {name} = {i}" for i, name in enumerate(names)]
        if total:
            out.append(f"    {total} = {len(names)}")
        out.append("")
    return "\n".join(out)


FILES = {PXD: source, PLAN_PXD: plan_source}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    stale = []
    for path, make in FILES.items():
        text = make()
        if argv == ["--check"]:
            with open(path, encoding="utf-8") as f:
                if f.read() != text:
                    stale.append(path)
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {path}")
    for path in stale:
        print(f"{path} is STALE: run python -m fastbp._kernels.cython_cpu.generate")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
