"""Every ```python block of docs/tutorial.md runs, in order, in one namespace."""
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
