"""Sizes and environments beyond what a process can do, caught before anything is attempted:

- a network, a fit or a `fastbp train --layers` too large for the memory available is a
  MemoryError (one line from the CLI) naming the sizes, raised before any allocation (in a
  child under an address-space limit, so that nothing depends on this machine's memory);
- building MLP([4000, 4000, 10]) peaks at 3x its parameter memory in float32, 2x in float64;
- `PMI_SIZE` set (as by mpiexec) without mpi4py: one line, exit status 1;
- gradcheck's eps, atol, rtol and max_checks_per_tensor are checked and named.
(Ranks of an MPI run that built different networks: tests/mpi_scripts/check_data_parallel.py.)
"""
import tracemalloc

import numpy as np
import pytest

import fastbp as fb
import fuzz_report
from hostile_files import child_json, run_child

FAMILY = "MPI and limits"
MB = 1 << 20


def test_a_network_beyond_the_memory_available_is_refused_before_allocating():
    tracemalloc.start()
    try:
        with fuzz_report.hostile_case(FAMILY):
            with pytest.raises(MemoryError, match=r"MLP\(\[1000000, 1000000\]\) float32: 1,000,001,000,000 "
                                                  r"parameters need about [\d,.]+ GB"):
                fb.MLP([10 ** 6, 10 ** 6], backend="numpy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MB, f"{peak / MB:.0f} MiB traced before the refusal"


LIMITED = """
import json, zlib
import numpy as np
import fastbp as fb
import fastbp.cli
limit_address_space(EXTRA)          # after the imports: their reservations (BLAS threads) are not the point
out = {}
try:
    fb.MLP([60000, 60000], backend="numpy")
    out["MLP([60000, 60000])"] = "built"
except MemoryError as e:
    out["MLP([60000, 60000])"] = str(e)
out["train --layers 60000,60000"] = cli(["train", "--layers", "60000,60000", "--backend", "numpy", "--epochs", "1",
                                         "--quiet"])
net = fb.MLP([4096, 4096, 4096], backend="numpy", seed=0)       # 33.6 M parameters, 134 MB in float32
before = zlib.crc32(net.flat_params)                           # (a copy would not fit under the limit)
limit_address_space(150 << 20)                                # Adam's state alone needs 268 MB more
opt = fb.Adam()
try:
    net.fit(np.ones((64, 4096), np.float32), np.ones((64, 4096), np.float32), epochs=1, optimizer=opt, progress=False)
    out["fit"] = "trained"
except MemoryError as e:
    out["fit"] = str(e)
out["fit changed nothing"] = zlib.crc32(net.flat_params) == before and not opt.state and opt.step_count == 0
print("RESULT " + json.dumps(out))
"""


def test_networks_and_fits_beyond_an_address_space_limit():
    """Under RLIMIT_AS = the child's size + 1 GiB: MLP([60000, 60000]) and `fastbp train
    --layers 60000,60000` name their parameter counts; then, at + 150 MiB, fit of a network
    that exists but whose Adam state does not fit names it too, and changes nothing."""
    results = child_json(run_child(f"EXTRA = {1 << 30}\n" + LIMITED, timeout=180))
    with fuzz_report.hostile_case(FAMILY):
        assert "3,600,060,000 parameters need about" in results["MLP([60000, 60000])"], results
    with fuzz_report.hostile_case(FAMILY):
        code, err = results["train --layers 60000,60000"]
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "3,604,560,010 parameters need about" in lines[0], (code, err)
    with fuzz_report.hostile_case(FAMILY):
        assert f"fit of MLP([4096, 4096, 4096]) float32: {2 * 4096 * 4097:,} parameters" in results["fit"], results
        assert "Adam" in results["fit"] and results["fit changed nothing"], results


@pytest.mark.parametrize("dtype,most", [(np.float32, 3.05), (np.float64, 2.05)], ids=["float32", "float64"])
def test_building_a_network_peaks_near_its_parameter_memory(dtype, most):
    tracemalloc.start()
    try:
        net = fb.MLP([4000, 4000, 10], dtype=dtype, backend="numpy", seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    ratio = peak / (net.n_params * np.dtype(dtype).itemsize)
    with fuzz_report.hostile_case(FAMILY):
        assert ratio < most, f"building MLP([4000, 4000, 10]) {np.dtype(dtype)} peaked at {ratio:.2f}x its parameters"
    fuzz_report.hostile_notes[FAMILY].append(f"building MLP([4000, 4000, 10]) {np.dtype(dtype).name} peaks at "
                                             f"{ratio:.2f}x its parameter memory")


def test_pmi_size_without_mpi4py_is_one_line():
    code = ("import sys\nsys.modules['mpi4py'] = None          # as if not installed\n"
            "from fastbp.cli import main\nsys.exit(main(['train', '--epochs', '1', '--quiet']))\n")
    proc = run_child(code, timeout=120, env={"PMI_SIZE": "2", "PMI_RANK": "0"})
    with fuzz_report.hostile_case(FAMILY):
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and "mpi4py is not installed" in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("kwargs,error,name", [
    (dict(eps=0), ValueError, "eps"), (dict(eps=-1e-6), ValueError, "eps"), (dict(eps=float("nan")), ValueError, "eps"),
    (dict(eps=float("inf")), ValueError, "eps"), (dict(eps="1e-6"), TypeError, "eps"), (dict(eps=True), TypeError, "eps"),
    (dict(atol=-1.0), ValueError, "atol"), (dict(rtol=float("inf")), ValueError, "rtol"),
    (dict(max_checks_per_tensor=0), ValueError, "max_checks_per_tensor"),
    (dict(max_checks_per_tensor=2.5), ValueError, "max_checks_per_tensor")])
def test_gradcheck_arguments_are_checked(kwargs, error, name):
    net = fb.MLP([2, 3, 1], backend="numpy", seed=0)
    with fuzz_report.hostile_case(FAMILY):
        with pytest.raises(error, match=name):
            fb.gradcheck(net, np.ones((2, 2)), np.ones((2, 1)), **kwargs)
