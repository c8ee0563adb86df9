"""Size limits on the source (issue 12): no .py file in prez/ over 1,000
lines and no class over 800.

The exceptions below are the ones still over a limit, each named; the test
fails when anything else grows past a limit, and also when an excepted one
has come back under it and was not taken off the list.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILE_LINES = 1_000
MAX_CLASS_LINES = 800

# Issue 12: still to be split, by other parts of the issue.
KNOWN_LONG_FILES = {
    "prez/server/raftdriver.py",
}
KNOWN_LONG_CLASSES = {
    "prez/server/raftdriver.py:RaftDriver",
}


def sizes() -> tuple[dict[str, int], dict[str, int]]:
    files: dict[str, int] = {}
    classes: dict[str, int] = {}
    for path in sorted((ROOT / "prez").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        files[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text, name)):
            if isinstance(node, ast.ClassDef):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                end = node.end_lineno or node.lineno
                classes[f"{name}:{node.name}"] = end - start + 1
    return files, classes


def test_no_file_over_the_limit() -> None:
    files, _ = sizes()
    too_long = {name for name, lines in files.items() if lines > MAX_FILE_LINES}
    assert too_long - KNOWN_LONG_FILES == set(), "split these files"
    assert KNOWN_LONG_FILES - too_long == set(), (
        "now within the limit: take them off KNOWN_LONG_FILES"
    )


def test_no_class_over_the_limit() -> None:
    _, classes = sizes()
    too_long = {name for name, lines in classes.items() if lines > MAX_CLASS_LINES}
    assert too_long - KNOWN_LONG_CLASSES == set(), "split these classes"
    assert KNOWN_LONG_CLASSES - too_long == set(), (
        "now within the limit: take them off KNOWN_LONG_CLASSES"
    )
