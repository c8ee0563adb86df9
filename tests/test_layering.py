"""The architecture's import rules, checked on the source (DESIGN.md).

`server` may use everything; `raft`, `kv` and `_core` never import
`server`; `raft` and `kv` never import each other; the Raft core does no
I/O and reads no clock or global random.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "prez"

FORBIDDEN = {
    "raft": {
        "prez.server",
        "prez.storage",
        "prez.kv",
        "asyncio",
        "socket",
        "time",
        "os",
        "select",
        "threading",
    },
    "kv": {
        "prez.server",
        "prez.storage",
        "prez.raft",
        "asyncio",
        "socket",
        "time",
        "os",
        "threading",
    },
    "_core": {
        "prez.server",
        "prez.storage",
        "prez.raft.core",
        "asyncio",
        "socket",
        "time",
    },
    "storage": {"prez.server", "asyncio", "socket"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from random import random` reads the global generator.
            if node.module == "random":
                found.update(f"random.{alias.name}" for alias in node.names)
    return found


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py*")):
        if path.suffix not in (".py", ".pyx"):
            continue
        for module in imported_modules(path) if path.suffix == ".py" else set():
            for banned in FORBIDDEN[package]:
                if module == banned or module.startswith(banned + "."):
                    bad.append(f"{path.relative_to(ROOT.parent)} imports {module}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    assert violations(package) == []


def test_raft_uses_no_global_random() -> None:
    for path in sorted((ROOT / "raft").rglob("*.py")):
        source = path.read_text()
        tree = ast.parse(source)
        for node in ast.walk(tree):
            # random.random(), random.choice(...) etc. on the module itself.
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "random"
                and node.func.attr != "Random"
            ):
                pytest.fail(
                    f"{path.name}:{node.lineno} uses the global random generator"
                )


def test_checker_catches_a_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "prez" / "raft"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("import asyncio\nfrom prez.server.app import Server\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path / "prez")
    found = violations("raft")
    assert any("asyncio" in v for v in found) and any("prez.server" in v for v in found)
