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


ROOT = TUTORIAL.parent.parent
USER_FACING = ["README.md", "CHANGELOG.md", "bench/README.md", "mkdocs.yml"]
# a pointer outside the repository (the design folder beside it) or into the issue tracker
OUTSIDE = re.compile(r"\.\./shared|(?-i:DESIGN\.md)|shared folder|\bissues? *#?\d+|\bthe issues?\b|\bissue's\b", re.I)


def user_facing_files():
    files = [ROOT / name for name in USER_FACING]
    for folder, suffixes in (("src", (".py", ".pyx", ".pxd", ".md")), ("docs", (".md",))):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in suffixes and "__pycache__" not in p.parts]
    return files


def test_nothing_a_user_reads_points_outside_the_repository():
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in user_facing_files()
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, "\n".join(found)


def mkdocs_nav():
    text = (ROOT / "mkdocs.yml").read_text()
    nav = re.search(r"^nav:\n((?:[ \t]+-.*\n)+)", text, flags=re.M)
    assert nav, "mkdocs.yml has no nav"
    return re.findall(r"([\w/.-]+\.md)\s*$", nav.group(1), flags=re.M)


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(mkdocs_nav()) == pages, "list each docs/*.md page under nav in mkdocs.yml (and only those)"


def test_links_between_docs_pages_resolve():
    broken = []
    for page in (ROOT / "docs").rglob("*.md"):
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", page.read_text()):
            if not (page.parent / target).is_file():
                broken.append(f"{page.name} -> {target}")
    assert not broken, broken
def test_the_architecture_page_names_files_that_exist():
    root = TUTORIAL.parent.parent
    page = (root / "docs" / "architecture.md").read_text()
    names = set(re.findall(r"[\w/.]*\w\.(?:py|pyx|pxd)\b|_kernels/\w+/", page))
    assert len(names) > 20, names
    places = [p.relative_to(root).as_posix() for p in root.rglob("*") if ".git" not in p.parts]
    missing = [n for n in sorted(names) if not any(p == n or p.endswith("/" + n.rstrip("/")) for p in places)]
    assert not missing, f"docs/architecture.md names files that are not in the repository: {missing}"
