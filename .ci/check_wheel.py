"""CI: a built wheel holds exactly the package: every file under src/fastbp that git tracks
(modules, .pyx/.pxd sources, data), one compiled module per .pyx, the licence and metadata;
nothing from tests/ or bench/, no build products.  usage: python .ci/check_wheel.py WHEEL"""
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

root = pathlib.Path(__file__).resolve().parent.parent
wheel = zipfile.ZipFile(sys.argv[1])
names = set(wheel.namelist())
tracked = subprocess.run(["git", "ls-files", "src/fastbp"], cwd=root, check=True, capture_output=True,
                         text=True).stdout.split()
suffix = sysconfig.get_config_var("EXT_SUFFIX")
expected = {f[len("src/"):] for f in tracked}
expected |= {f[len("src/"):-len(".pyx")] + suffix for f in tracked if f.endswith(".pyx")}
info = {n for n in names if n.split("/")[0].endswith(".dist-info")}
problems = [f"missing: {n}" for n in sorted(expected - names)]
problems += [f"not a package file: {n}" for n in sorted(names - expected - info)]
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in info):
    problems.append("no licenses/LICENSE in the .dist-info")
metadata = wheel.read(next(n for n in info if n.endswith("/METADATA"))).decode()
if "License-File: LICENSE" not in metadata.splitlines():
    problems.append("METADATA has no License-File: LICENSE")
print(f"{sys.argv[1]}: {len(names)} files" + ("".join(f"\n  {p}" for p in problems) or ": as expected"))
sys.exit(1 if problems else 0)
