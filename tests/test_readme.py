"""The README's "Usage" example runs as written, so the documentation cannot rot."""
import contextlib
import io
import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def usage_block():
    text = README.read_text()
    section = re.search(r"^## Usage\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert section, "README.md has no '## Usage' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), flags=re.S)
    assert len(blocks) == 1, f"expected one python block under '## Usage'; found {len(blocks)}"
    return blocks[0]


def test_usage_example_runs_and_prints_what_it_says():
    code = usage_block()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{README}:Usage", "exec"), {"__name__": "readme_usage"})
    # lines ending in "# <value>" promise what print() shows; check each promise in order
    promised = [m.group(1).strip() for line in code.splitlines()
                if line.lstrip().startswith("print(") and (m := re.search(r"#\s*(.+)$", line))]
    printed = out.getvalue().split()
    assert promised, "the Usage example should show what it prints in a trailing '# ...' comment"
    assert printed[-len(promised):] == promised, (printed, promised)


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    text = README.read_text()
    test_command = 'pip install ".[test]" torch==2.13.0 && python -m pytest'
    assert "pip install . && fastbp train" in text
    assert test_command in text
    assert test_command in (README.parent / ".ci" / "run").read_text()
