"""bench/gpu_session.sh, the one command for a lent GPU machine, in its dry-run mode (numba's
CUDA simulator, tiny shapes, a test selection): every stage runs and leaves the files the
device tool brings back (at most 8, plain names), so the script cannot rot before a GPU comes.
About 40 s (the build stage compiles the Cython kernels in place when they are not built yet).
"""
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["versions", "build", "tests", "bench", "gemm"]
FILES = {"session.log", "stages.txt", "versions.txt", "pytest-cuda.xml", "cuda_vs_torch.json", "gemm_vs_cublas.json"}


def test_the_gpu_session_dry_run_runs_every_stage_and_writes_its_results(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    env.pop("NUMBA_ENABLE_CUDASIM", None)               # the script sets it for a dry run
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh"), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=900)
    log = (tmp_path / "session.log").read_text() if (tmp_path / "session.log").exists() else ""
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:] + log[-4000:]
    stages = [line.split() for line in (tmp_path / "stages.txt").read_text().splitlines()]
    assert [s[0] for s in stages] == STAGES and all(s[1] == "rc=0" for s in stages), stages

    names = {p.name for p in tmp_path.iterdir()}
    assert names == FILES and all(p.is_file() for p in tmp_path.iterdir())
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names) and len(names) <= 8

    suite = ET.parse(tmp_path / "pytest-cuda.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) > 0 and suite.get("failures") == suite.get("errors") == "0"

    bench = json.loads((tmp_path / "cuda_vs_torch.json").read_text())
    assert set(bench["workloads"]) == {"small", "wide"}
    assert bench["workloads"]["wide"]["path"] == "tiled" and bench["workloads"]["small"]["path"] == "fused"
    for r in bench["workloads"].values():
        assert not r["errors"], r["errors"]
        losses = r["first_loss"]
        assert set(losses) >= {"fastbp-cuda", "torch-eager"} and set(r["median_ms"]) == set(losses)
        assert all(abs(v - losses["torch-eager"]) <= 1e-5 * abs(losses["torch-eager"]) for v in losses.values())

    gemm = json.loads((tmp_path / "gemm_vs_cublas.json").read_text())
    assert set(gemm["median_ms"]["fastbp"]) == {"forward", "delta", "wgrad"}
    assert all(err < 1e-5 for err in gemm["check"].values()), gemm["check"]
    assert set(gemm["errors"]) == {"cupy", "torch"}                 # no device memory under the simulator
