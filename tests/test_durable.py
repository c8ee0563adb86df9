"""prez.storage.durable: every creation and rename is followed by the fsyncs
that make it survive a power loss (checked by recording each fsync)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from prez.storage.durable import (
    atomic_file,
    make_dirs,
    replace_durably,
    unlink_durably,
    write_file_atomically,
)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The path of every fsync'd descriptor, in order (directories end in /)."""
    calls: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        calls.append(path + "/" if stat.S_ISDIR(os.fstat(fd).st_mode) else path)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    yield calls


def test_make_dirs_fsyncs_the_parent_of_every_directory_it_creates(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    target = tmp_path / "a" / "b" / "c"
    assert make_dirs(str(target))
    assert target.is_dir()
    assert fsyncs == [f"{tmp_path}/", f"{tmp_path}/a/", f"{tmp_path}/a/b/"]
    fsyncs.clear()
    assert not make_dirs(str(target))  # already there: nothing to make durable
    assert fsyncs == []


def test_make_dirs_without_fsync_only_creates(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    assert make_dirs(str(tmp_path / "x" / "y"), fsync=False)
    assert (tmp_path / "x" / "y").is_dir() and fsyncs == []


def test_write_file_atomically_fsyncs_data_then_directory(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    write_file_atomically(str(path), b"new")
    assert path.read_bytes() == b"new"
    assert fsyncs == [f"{tmp_path}/f.tmp", f"{tmp_path}/"]
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_atomic_file_leaves_the_old_content_on_error(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(str(path)) as fd:
        os.write(fd, b"half")
        raise RuntimeError("disk full, say")
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["f"]  # the temp file is gone
    assert fsyncs == []


def test_replace_and_unlink_fsync_the_directory(
    tmp_path: Path, fsyncs: list[str]
) -> None:
    (tmp_path / "a").write_bytes(b"1")
    replace_durably(str(tmp_path / "a"), str(tmp_path / "b"))
    unlink_durably(str(tmp_path / "b"))
    assert os.listdir(tmp_path) == []
    assert fsyncs == [f"{tmp_path}/", f"{tmp_path}/"]


def test_no_other_module_writes_files_without_these_helpers() -> None:
    """The three hand-written copies of write-fsync-rename are gone for good:
    renames and directory creation in prez/ go through prez.storage.durable."""
    root = Path(__file__).resolve().parent.parent / "prez"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "durable.py" or "testing" in path.parts:
            continue
        text = path.read_text()
        for needle in ("os.replace(", "os.rename(", "os.makedirs(", "os.mkdir("):
            if needle in text:
                offenders.append(f"{path.relative_to(root)}: {needle}")
    assert offenders == []
