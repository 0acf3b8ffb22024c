"""Every ```python block of docs/tutorial.md runs, in order, in one namespace; the files
docs/architecture.md names exist."""
import pathlib
import re

import pytest

TUTORIAL = pathlib.Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", TUTORIAL.read_text(), flags=re.S | re.M)


def test_the_tutorial_has_code():
    assert len(BLOCKS) >= 10
    fences = re.findall(r"^```(\w*)$", TUTORIAL.read_text(), flags=re.M)
    assert set(fences) <= {"python", ""}, "a code block in another language would go unchecked"


def test_every_code_block_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "tutorial"}
    for number, block in enumerate(BLOCKS, 1):
        try:
            exec(compile(block, f"{TUTORIAL.name} block {number}", "exec"), namespace)
        except Exception as e:
            pytest.fail(f"{TUTORIAL.name} block {number} failed: {type(e).__name__}: {e}\n{block}")
    assert "test accuracy" in capsys.readouterr().out


def test_the_architecture_page_names_files_that_exist():
    root = TUTORIAL.parent.parent
    page = (root / "docs" / "architecture.md").read_text()
    names = set(re.findall(r"[\w/.]*\w\.(?:py|pyx|pxd)\b|_kernels/\w+/", page))
    assert len(names) > 20, names
    places = [p.relative_to(root).as_posix() for p in root.rglob("*") if ".git" not in p.parts]
    missing = [n for n in sorted(names) if not any(p == n or p.endswith("/" + n.rstrip("/")) for p in places)]
    assert not missing, f"docs/architecture.md names files that are not in the repository: {missing}"
