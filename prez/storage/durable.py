"""Durable file-system operations: the only place that knows what POSIX promises.

After a power loss a file system keeps exactly what was made durable: a
file's data once the file was fsynced, and a directory entry (a creation,
rename or unlink) once the directory holding it was fsynced. Nothing else,
whatever ext4 usually does. Every file and directory Prez relies on after a
restart is written through these helpers:

- `make_dirs(path)`: create a directory and any missing parents, fsyncing
  the parent of each one created, so that the whole chain survives.
- `write_file_atomically(path, data)`: temp file, write, fsync, rename over
  `path`, fsync the directory: after a crash `path` holds the old or the new
  content in full, never a mix, never nothing.
- `atomic_file(path)`: the same for a file written in pieces (a snapshot).
- `replace_durably(src, dst)`, `unlink_durably(path)`: one rename or unlink,
  durable on return.

A file's own fsync (`os.fsync`) is the caller's job for files that are
appended to in place (WAL segments); their creation still needs
`fsync_dir`.

With `fsync=False` (raft-log-fsync no) every helper does the same file
operations without the fsyncs: the operator traded durability for speed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def fsync_dir(path: str) -> None:
    """Make the directory entries under `path` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parent_dir(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def make_dirs(path: str, *, fsync: bool = True) -> bool:
    """Create `path` and its missing parents durably; True if any was created.

    An existing directory is left alone, but its own entry is not fsynced
    again: it was made durable by whoever created it (through here).
    """
    path = os.path.abspath(path)
    missing: list[str] = []
    current = path
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it
            os.mkdir(directory)
        if fsync:
            fsync_dir(os.path.dirname(directory))
    return bool(missing)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@contextlib.contextmanager
def atomic_file(
    path: str, *, fsync: bool = True, temp_path: str | None = None
) -> Iterator[int]:
    """A file descriptor to write `path`'s new content to, put in place on exit.

    On a clean exit: fsync the file, rename it over `path`, fsync the
    directory. On an error: the temp file is removed and `path` is
    untouched. `temp_path` defaults to `path + ".tmp"`; readers of the
    directory must treat such leftovers as garbage.
    """
    temp = temp_path if temp_path is not None else path + ".tmp"
    fd = os.open(temp, _NEW_FILE_FLAGS, 0o644)
    try:
        try:
            yield fd
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if fsync:
        fsync_dir(parent_dir(path))


def write_file_atomically(
    path: str, data: bytes, *, fsync: bool = True, temp_path: str | None = None
) -> None:
    """Replace `path` by `data`: after a crash it holds the old or the new data."""
    with atomic_file(path, fsync=fsync, temp_path=temp_path) as fd:
        write_all(fd, data)


def replace_durably(src: str, dst: str, *, fsync: bool = True) -> None:
    """Rename `src` over `dst` (same directory), durable on return."""
    os.replace(src, dst)
    if fsync:
        fsync_dir(parent_dir(dst))


def unlink_durably(path: str, *, fsync: bool = True) -> None:
    os.unlink(path)
    if fsync:
        fsync_dir(parent_dir(path))
