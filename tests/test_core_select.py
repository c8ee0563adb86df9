"""PREZ_PURE_CORE is read in one place: `prez._core.select`."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prez import _core

ROOT = Path(__file__).resolve().parent.parent / "prez"


def run_python(code: str, switch: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PREZ_PURE_CORE"}
    if switch is not None:
        env["PREZ_PURE_CORE"] = switch
    env["PYTHONPATH"] = str(ROOT.parent)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )


SHOW = (
    "import prez.server.client, prez.server.peer, prez.server.dispatch, "
    "prez.storage.wal, prez.kv.snapshot, prez.server.raftdriver as d;"
    "print(prez.server.client.RequestParser.__module__, "
    "prez.server.peer.FrameReader.__module__, d.encode_command.__module__)"
)


@pytest.mark.parametrize(
    "switch, suffix", [(None, ""), ("0", ""), ("1", "_py")], ids=["unset", "0", "1"]
)
def test_the_switch_picks_every_importers_modules(
    switch: str | None, suffix: str
) -> None:
    done = run_python(SHOW, switch)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        f"prez._core.resp{suffix}",
        f"prez._core.wire{suffix}",
        f"prez._core.entry{suffix}",
    ]


def test_an_unknown_switch_value_is_refused() -> None:
    done = run_python("import prez._core", "yes")
    assert done.returncode != 0
    assert "PREZ_PURE_CORE must be 0 or 1" in done.stderr


def test_select_knows_only_twinned_modules() -> None:
    assert _core.select("wire").__name__ in ("prez._core.wire", "prez._core.wire_py")
    with pytest.raises(ValueError):
        _core.select("replytypes")


def test_no_importer_bypasses_the_switch() -> None:
    twinned = {f"prez._core.{n}" for n in _core.TWINNED}
    twinned |= {f"{name}_py" for name in twinned}
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.parent.name == "_core":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
                if node.module == "prez._core":
                    names += [f"prez._core.{alias.name}" for alias in node.names]
            for name in names:
                if name in twinned and not _under_type_checking(path, node):
                    bad.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {name}")
    assert bad == []


def _under_type_checking(path: Path, target: ast.AST) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        ):
            for inner in node.body:
                if any(
                    getattr(n, "lineno", None) == getattr(target, "lineno", -1)
                    for n in ast.walk(inner)
                ):
                    return True
    return False
