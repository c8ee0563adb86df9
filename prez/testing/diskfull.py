"""A small file system that a test can fill up: a size-limited tmpfs mount.

`small_tmpfs(path, size)` mounts a tmpfs of `size` bytes at `path` (root
only) and always unmounts it; `fill(directory)` takes every free byte with
one filler file and returns its path, so that the next write of whoever
else uses the file system fails with ENOSPC until the filler is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


def can_mount() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def small_tmpfs(path: Path, size: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        check=True,
    )
    try:
        yield path
    finally:
        # Lazy: a process that still holds a file open must not leave the
        # mount behind.
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write zeros into `directory/name` until the file system is full."""
    filler = directory / name
    block = b"\0" * (64 * 1024)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        # Then the last partial blocks, so not even a small write fits.
        for size in (4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, block[:size])
    finally:
        os.close(fd)
    return filler
