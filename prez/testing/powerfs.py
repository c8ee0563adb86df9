"""PowerFS: an in-memory FUSE filesystem that can lose power, for tests.

What lives here:
- `PowerFS`, the model: a tree of directories and files in memory, each
  with its current state and its durable state. `cut()` is the power loss:
  the current state of everything becomes its durable state.
- `main()` (`python -m prez.testing.powerfs MOUNTPOINT CONTROL_SOCKET`):
  serves a `PowerFS` at MOUNTPOINT through libfuse3 (the mfusepy binding),
  single-threaded, and takes commands on a Unix socket: `cut`, `sync`,
  `stats`, `ping`.
- `PowerFSMount`, what a test uses: starts that process, waits for the
  mount, sends the commands, and unmounts and stops it (always: use it as a
  context manager or call `close()` in a finalizer).
- `unavailable_reason()`: why PowerFS cannot run here (not root, no
  /dev/fuse, no fusermount3, no mfusepy or libfuse3), or None.

What is durable is what POSIX promises after fsync, and nothing more:
- a file's data (its bytes and its size) becomes durable on fsync or
  fdatasync of that file: a cut gives back exactly what the last one saw
  (an empty file if it was never fsynced);
- a directory's entries (which name leads to which file or directory:
  creations, renames, unlinks, mkdir, rmdir) become durable on fsync of
  that directory (FUSE `fsyncdir`), and only of that directory: a new
  subdirectory's own entries need their own fsync. A file created and
  fsynced in a directory that was never fsynced vanishes; a rename not
  followed by a directory fsync is undone (the old name comes back with
  the old file); an unlinked file comes back until the unlink is durable.
- close, flush, rename and O_TRUNC make nothing durable.

Why FUSE rather than interposing fsync/rename (LD_PRELOAD or a patched
`os` module): the filesystem sees the real system calls of the unmodified
server, whatever makes them (Python's os module, a C extension, a forked
snapshot child, a helper thread), so nothing the server does can bypass
the model, and nothing in the server is changed to be tested. An
interposed layer would have to track every path that creates, writes,
renames or removes, in every process, and would miss what it did not wrap.

Why mfusepy: a small ctypes binding over libfuse3, installed by pip with no
compiler and no other dependency (pyfuse3 needs libfuse3-dev to build and
runs on trio).

Limits, on purpose:
- no hard links or symlinks, and rename only within one directory
  (EXDEV across directories, as between filesystems; callers then copy):
  so every file and directory has exactly one parent for its whole life,
  and a cut can never give one inode two names; renameat2 flags
  (RENAME_NOREPLACE, RENAME_EXCHANGE) are refused with EINVAL;
- mode, owner and times are not modelled as durable (they change at once
  and survive a cut);
- a cut is all or nothing per file: data is never torn inside an fsync
  interval (a real disk may keep part of the unsynced writes; the model
  keeps none, the harder case for the reader of the file);
- the kernel is told not to cache (direct_io, zero attribute and entry
  timeouts), so that what a process reads after a cut is the model's state.

Writes after a cut through a handle opened before it are refused with EIO
and counted (`late_ops` in `stats`): every writer must be dead before the
cut, and a test can check that none was not.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# File data is kept in blocks shared between the current and the durable
# state (copy on write): an fsync copies a list of references, not the
# bytes, so fsyncing a 16 MiB WAL segment a thousand times a second is cheap.
BLOCK = 4096

# Tests that need a mount skip without one, unless this is "1" (CI, as root).
REQUIRE_ENV = "PREZ_REQUIRE_FUSE"

# A cut's report lists at most this many paths of each kind.
REPORT_PATHS = 50


def _now_ns() -> int:
    return time.time_ns()


def _error(code: int, what: str = "") -> OSError:
    return OSError(code, os.strerror(code) + (f": {what}" if what else ""))


class File:
    """A regular file: blocks of BLOCK bytes (beyond `size` always zero)."""

    __slots__ = ("blocks", "size", "durable_blocks", "durable_size", "mode", "mtime_ns")

    def __init__(self, mode: int) -> None:
        self.blocks: list[bytearray] = []
        self.size = 0
        self.durable_blocks: list[bytearray] = []
        self.durable_size = 0
        self.mode = mode
        self.mtime_ns = _now_ns()

    def _writable(self, i: int) -> bytearray:
        block = self.blocks[i]
        durable = self.durable_blocks
        if i < len(durable) and durable[i] is block:
            block = self.blocks[i] = bytearray(block)
        return block

    def _grow(self, size: int) -> None:
        needed = -(-size // BLOCK)
        while len(self.blocks) < needed:
            self.blocks.append(bytearray(BLOCK))
        self.size = size

    def read(self, size: int, offset: int) -> bytes:
        end = min(offset + size, self.size)
        parts = []
        pos = offset
        while pos < end:
            i, start = divmod(pos, BLOCK)
            n = min(BLOCK - start, end - pos)
            parts.append(bytes(self.blocks[i][start : start + n]))
            pos += n
        return b"".join(parts)

    def write(self, data: bytes, offset: int) -> int:
        end = offset + len(data)
        if end > self.size:
            self._grow(end)
        view = memoryview(data)
        pos = offset
        while pos < end:
            i, start = divmod(pos, BLOCK)
            n = min(BLOCK - start, end - pos)
            self._writable(i)[start : start + n] = view[pos - offset : pos - offset + n]
            pos += n
        self.mtime_ns = _now_ns()
        return len(data)

    def truncate(self, size: int) -> None:
        if size >= self.size:
            self._grow(size)
        else:
            needed = -(-size // BLOCK)
            del self.blocks[needed:]
            tail = size % BLOCK
            if tail:
                block = self._writable(needed - 1)
                block[tail:] = bytes(BLOCK - tail)
            self.size = size
        self.mtime_ns = _now_ns()

    def fsync(self) -> None:
        self.durable_blocks = list(self.blocks)
        self.durable_size = self.size

    @property
    def dirty(self) -> bool:
        return self.size != self.durable_size or any(
            a is not b for a, b in zip(self.blocks, self.durable_blocks, strict=False)
        )

    def revert(self) -> int:
        """Back to the durable data; returns how many bytes it got shorter by
        (what a log loses: the appends since its last fsync)."""
        lost = max(self.size - self.durable_size, 0)
        self.blocks = list(self.durable_blocks)
        self.size = self.durable_size
        return lost


class Dir:
    """A directory: name -> node, now and as last fsynced."""

    __slots__ = ("entries", "durable_entries", "mode", "mtime_ns")

    def __init__(self, mode: int) -> None:
        self.entries: dict[str, File | Dir] = {}
        self.durable_entries: dict[str, File | Dir] = {}
        self.mode = mode
        self.mtime_ns = _now_ns()


Node = File | Dir


@dataclass(slots=True)
class Handle:
    node: File
    append: bool
    generation: int  # the power cycle it was opened in


@dataclass(slots=True)
class CutReport:
    """What a power cut threw away."""

    vanished: list[str] = field(default_factory=list)  # names not durable
    reappeared: list[str] = field(default_factory=list)  # removals not durable
    replaced: list[str] = field(default_factory=list)  # renames over a name undone
    reverted: list[str] = field(default_factory=list)  # files with unsynced data
    counts: dict[str, int] = field(default_factory=dict)
    bytes_lost: int = 0  # unsynced bytes past the durable end of files kept

    def add(self, kind: str, path: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        paths: list[str] = getattr(self, kind)
        if len(paths) < REPORT_PATHS:
            paths.append(path)

    def as_dict(self) -> dict[str, Any]:
        return {
            "vanished": self.vanished,
            "reappeared": self.reappeared,
            "replaced": self.replaced,
            "reverted": self.reverted,
            "counts": self.counts,
            "bytes_lost": self.bytes_lost,
        }


class PowerFS:
    """The filesystem model; paths are absolute within the mount ("/a/b").

    Every method raises OSError with the errno the system call would give.
    Not thread-safe by itself: the FUSE adapter holds `lock` around each call.
    """

    def __init__(self) -> None:
        self.root = Dir(0o755)
        self.lock = threading.Lock()
        self.handles: dict[int, Handle] = {}
        self._next_fh = 1
        self.generation = 0
        self.stats: dict[str, int] = {
            "writes": 0,
            "bytes_written": 0,
            "fsyncs": 0,
            "fsyncdirs": 0,
            "renames": 0,
            "unlinks": 0,
            "cuts": 0,
            "late_ops": 0,
        }

    # -- lookup ---------------------------------------------------------------

    @staticmethod
    def _split(path: str) -> list[str]:
        return [part for part in path.split("/") if part]

    def lookup(self, path: str) -> Node:
        node: Node = self.root
        for part in self._split(path):
            if not isinstance(node, Dir):
                raise _error(errno.ENOTDIR, path)
            child = node.entries.get(part)
            if child is None:
                raise _error(errno.ENOENT, path)
            node = child
        return node

    def _parent(self, path: str) -> tuple[Dir, str]:
        parts = self._split(path)
        if not parts:
            raise _error(errno.EBUSY, "the root")
        parent = self.lookup("/" + "/".join(parts[:-1]))
        if not isinstance(parent, Dir):
            raise _error(errno.ENOTDIR, path)
        return parent, parts[-1]

    def _file(self, path: str | None, fh: int | None) -> File:
        if fh:
            handle = self.handles.get(fh)
            if handle is None:
                raise _error(errno.EBADF)
            return handle.node
        if path is None:
            raise _error(errno.EBADF)
        node = self.lookup(path)
        if isinstance(node, Dir):
            raise _error(errno.EISDIR, path)
        return node

    def _live_handle(self, fh: int) -> Handle:
        handle = self.handles.get(fh)
        if handle is None:
            raise _error(errno.EBADF)
        if handle.generation != self.generation:
            # Its process died in the power cut: nothing it does may land.
            self.stats["late_ops"] += 1
            raise _error(errno.EIO, "handle opened before a power cut")
        return handle

    # -- attributes -------------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        node: Node
        if fh:
            node = self._file(path, fh)
        elif path is not None:
            node = self.lookup(path)
        else:
            raise _error(errno.EBADF)
        if isinstance(node, Dir):
            subdirs = sum(isinstance(c, Dir) for c in node.entries.values())
            mode, nlink, size = stat.S_IFDIR | node.mode, 2 + subdirs, 4096
        else:
            mode, nlink, size = stat.S_IFREG | node.mode, 1, node.size
        return {
            "st_mode": mode,
            "st_nlink": nlink,
            "st_size": size,
            "st_blocks": -(-size // 512),
            "st_blksize": BLOCK,
            "st_uid": os.getuid(),
            "st_gid": os.getgid(),
            "st_atime": node.mtime_ns,
            "st_mtime": node.mtime_ns,
            "st_ctime": node.mtime_ns,
        }

    def chmod(self, path: str, mode: int) -> None:
        self.lookup(path).mode = mode & 0o7777

    def utimens(self, path: str, times: tuple[int, int] | None) -> None:
        node = self.lookup(path)
        node.mtime_ns = times[1] if times else _now_ns()

    def readdir(self, path: str) -> list[str]:
        node = self.lookup(path)
        if not isinstance(node, Dir):
            raise _error(errno.ENOTDIR, path)
        return [".", "..", *node.entries]

    # -- names ----------------------------------------------------------------

    def mkdir(self, path: str, mode: int) -> None:
        parent, name = self._parent(path)
        if name in parent.entries:
            raise _error(errno.EEXIST, path)
        parent.entries[name] = Dir(mode & 0o7777)
        parent.mtime_ns = _now_ns()

    def rmdir(self, path: str) -> None:
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is None:
            raise _error(errno.ENOENT, path)
        if not isinstance(node, Dir):
            raise _error(errno.ENOTDIR, path)
        if node.entries:
            raise _error(errno.ENOTEMPTY, path)
        del parent.entries[name]
        parent.mtime_ns = _now_ns()

    def unlink(self, path: str) -> None:
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is None:
            raise _error(errno.ENOENT, path)
        if isinstance(node, Dir):
            raise _error(errno.EISDIR, path)
        # Open handles keep the file itself (hard_remove: no .fuse_hidden).
        del parent.entries[name]
        parent.mtime_ns = _now_ns()
        self.stats["unlinks"] += 1

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        if flags:
            raise _error(errno.EINVAL, "renameat2 flags are not modelled")
        old_parent, old_name = self._parent(old)
        new_parent, new_name = self._parent(new)
        node = old_parent.entries.get(old_name)
        if node is None:
            raise _error(errno.ENOENT, old)
        if old_parent is not new_parent:
            raise _error(errno.EXDEV, "rename across directories is not modelled")
        if old_name == new_name:
            return
        target = new_parent.entries.get(new_name)
        if target is not None:
            if isinstance(node, Dir) and not isinstance(target, Dir):
                raise _error(errno.ENOTDIR, new)
            if not isinstance(node, Dir) and isinstance(target, Dir):
                raise _error(errno.EISDIR, new)
            if isinstance(target, Dir) and target.entries:
                raise _error(errno.ENOTEMPTY, new)
        del old_parent.entries[old_name]
        new_parent.entries[new_name] = node
        new_parent.mtime_ns = _now_ns()
        self.stats["renames"] += 1

    # -- files ------------------------------------------------------------------

    def _new_handle(self, node: File, flags: int) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self.handles[fh] = Handle(node, bool(flags & os.O_APPEND), self.generation)
        return fh

    def create(self, path: str, mode: int, flags: int = os.O_WRONLY) -> int:
        parent, name = self._parent(path)
        node = parent.entries.get(name)
        if node is not None:
            if flags & os.O_EXCL:
                raise _error(errno.EEXIST, path)
            if isinstance(node, Dir):
                raise _error(errno.EISDIR, path)
            if flags & os.O_TRUNC:
                node.truncate(0)
        else:
            node = File(mode & 0o7777)
            parent.entries[name] = node
            parent.mtime_ns = _now_ns()
        return self._new_handle(node, flags)

    def open(self, path: str, flags: int) -> int:
        node = self.lookup(path)
        if isinstance(node, Dir):
            raise _error(errno.EISDIR, path)  # the kernel opens those with opendir
        if flags & os.O_TRUNC and flags & os.O_ACCMODE != os.O_RDONLY:
            node.truncate(0)  # the kernel passes O_TRUNC on (atomic_o_trunc)
        return self._new_handle(node, flags)

    def read(self, fh: int, size: int, offset: int) -> bytes:
        handle = self.handles.get(fh)
        if handle is None:
            raise _error(errno.EBADF)
        return handle.node.read(size, offset)

    def write(self, fh: int, data: bytes, offset: int) -> int:
        handle = self._live_handle(fh)
        if handle.append:
            offset = handle.node.size
        self.stats["writes"] += 1
        self.stats["bytes_written"] += len(data)
        return handle.node.write(data, offset)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> None:
        if fh:
            self._live_handle(fh)
        self._file(path, fh).truncate(length)

    def fsync(self, path: str | None, fh: int | None) -> None:
        if fh:
            self._live_handle(fh)
        self._file(path, fh).fsync()
        self.stats["fsyncs"] += 1

    def fsyncdir(self, path: str) -> None:
        node = self.lookup(path)
        if not isinstance(node, Dir):
            raise _error(errno.ENOTDIR, path)
        node.durable_entries = dict(node.entries)
        self.stats["fsyncdirs"] += 1

    def release(self, fh: int) -> None:
        self.handles.pop(fh, None)

    # -- power ------------------------------------------------------------------

    def sync(self) -> None:
        """Everything reachable now becomes durable (sync(2), for test set-up)."""
        stack: list[Dir] = [self.root]
        while stack:
            d = stack.pop()
            d.durable_entries = dict(d.entries)
            for child in d.entries.values():
                if isinstance(child, Dir):
                    stack.append(child)
                else:
                    child.fsync()

    def cut(self) -> CutReport:
        """Power loss: every directory and file goes back to its durable state.

        Open handles stay known (their processes' RELEASE may still come)
        but refuse any further change.
        """
        report = CutReport()
        self._report(self.root, "", report)
        stack: list[Dir] = [self.root]
        while stack:
            d = stack.pop()
            d.entries = dict(d.durable_entries)
            for child in d.entries.values():
                if isinstance(child, Dir):
                    stack.append(child)
                else:
                    report.bytes_lost += child.revert()
        self.generation += 1
        self.stats["cuts"] += 1
        return report

    def _report(self, d: Dir, path: str, report: CutReport) -> None:
        for name, child in d.entries.items():
            child_path = f"{path}/{name}"
            durable = d.durable_entries.get(name)
            if durable is None:
                report.add("vanished", child_path)
            elif durable is not child:
                report.add("replaced", child_path)
        for name, durable in d.durable_entries.items():
            child_path = f"{path}/{name}"
            if name not in d.entries:
                report.add("reappeared", child_path)
            if isinstance(durable, Dir):
                self._report(durable, child_path, report)
            elif durable.dirty and d.entries.get(name) is durable:
                report.add("reverted", child_path)


# -- the FUSE process ------------------------------------------------------------


def _serve_control(fs: PowerFS, path: str) -> None:
    """Answer one-line commands on a Unix socket, one JSON line each."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server.bind(path)
    server.listen(4)

    def loop() -> None:
        while True:
            conn, _ = server.accept()
            with conn, conn.makefile("rwb") as f:
                for line in f:
                    command = line.decode().strip()
                    with fs.lock:
                        if command == "cut":
                            answer: dict[str, Any] = fs.cut().as_dict()
                        elif command == "sync":
                            fs.sync()
                            answer = {}
                        elif command == "stats":
                            answer = dict(fs.stats)
                        elif command == "ping":
                            answer = {"pong": True}
                        else:
                            answer = {"error": f"unknown command {command!r}"}
                    f.write(json.dumps(answer).encode() + b"\n")
                    f.flush()

    threading.Thread(target=loop, name="powerfs-control", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mountpoint")
    parser.add_argument("control", help="path of the control Unix socket")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)

    import mfusepy  # only here: the model and the tests' controller need no FUSE

    fs = PowerFS()

    class Operations(mfusepy.Operations):  # type: ignore[misc]
        use_ns = True

        def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
            with fs.lock:
                return fs.getattr(path, fh)

        def readdir(self, path: str, fh: int) -> list[str]:
            with fs.lock:
                return fs.readdir(path)

        def mkdir(self, path: str, mode: int) -> int:
            with fs.lock:
                fs.mkdir(path, mode)
            return 0

        def rmdir(self, path: str) -> int:
            with fs.lock:
                fs.rmdir(path)
            return 0

        def unlink(self, path: str) -> int:
            with fs.lock:
                fs.unlink(path)
            return 0

        def rename(self, old: str, new: str, flags: int = 0) -> int:
            with fs.lock:
                fs.rename(old, new, flags)
            return 0

        def create(self, path: str, mode: int, flags: int) -> int:
            with fs.lock:
                return fs.create(path, mode, flags)

        def open(self, path: str, flags: int) -> int:
            with fs.lock:
                return fs.open(path, flags)

        def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
            with fs.lock:
                return fs.read(fh, size, offset)

        def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
            with fs.lock:
                return fs.write(fh, data, offset)

        def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
            with fs.lock:
                fs.truncate(path, length, fh)
            return 0

        def fsync(self, path: str | None, datasync: int, fh: int) -> int:
            with fs.lock:
                fs.fsync(path, fh)
            return 0

        def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
            if path is None:
                raise _error(errno.EBADF)
            with fs.lock:
                fs.fsyncdir(path)
            return 0

        def release(self, path: str | None, fh: int) -> int:
            with fs.lock:
                fs.release(fh)
            return 0

        def flush(self, path: str | None, fh: int) -> int:
            return 0

        def chmod(self, path: str, mode: int) -> int:
            with fs.lock:
                fs.chmod(path, mode)
            return 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            return 0

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            with fs.lock:
                fs.utimens(path, times)
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            return {
                "f_bsize": BLOCK,
                "f_frsize": BLOCK,
                "f_blocks": 1 << 24,
                "f_bfree": 1 << 23,
                "f_bavail": 1 << 23,
                "f_files": 1 << 20,
                "f_ffree": 1 << 19,
                "f_favail": 1 << 19,
                "f_namemax": 255,
            }

        def link(self, target: str, source: str) -> int:
            raise _error(errno.EPERM, "hard links are not modelled")

        def symlink(self, target: str, source: str) -> int:
            raise _error(errno.EPERM, "symlinks are not modelled")

        def mknod(self, path: str, mode: int, dev: int) -> int:
            raise _error(errno.EPERM, "only regular files and directories")

    class FUSE(mfusepy.FUSE):  # type: ignore[misc]
        # mfusepy drops the file handle of ftruncate and the flags of
        # renameat2; the model needs both (an unlinked open file has no path).
        def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
            fh = fip.contents.fh if fip else None
            return int(
                self.operations.truncate(
                    None if path is None else path.decode(), length, fh
                )
            )

        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            return int(self.operations.rename(old.decode(), new.decode(), flags))

    _serve_control(fs, args.control)
    FUSE(
        Operations(),
        args.mountpoint,
        foreground=True,
        nothreads=True,  # one request at a time: the order the kernel sent them
        debug=args.debug,
        fsname="powerfs",
        # No kernel caching: after a cut, what is read is the model's state.
        direct_io=True,
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
        # An unlinked open file keeps its handle, not a .fuse_hidden name.
        hard_remove=True,
    )
    return 0


# -- the test's side ---------------------------------------------------------------


def is_mounted(path: Path | str) -> bool:
    """Whether `path` is a mount point, also when its FUSE server died
    (os.path.ismount says no then: stat fails with ENOTCONN)."""
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as f:
            lines = f.read().splitlines()
    except OSError:
        return os.path.ismount(target)
    for line in lines:
        fields = line.split()
        if len(fields) > 1 and fields[1].replace("\\040", " ") == target:
            return True
    return False


def unavailable_reason() -> str | None:
    """Why a PowerFS cannot be mounted here, or None if it can."""
    if os.geteuid() != 0:
        return "mounting needs root"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (Debian package fuse3)"
    if importlib.util.find_spec("mfusepy") is None:
        return "the mfusepy package is not installed"
    probe = subprocess.run(
        [sys.executable, "-c", "import mfusepy"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"mfusepy cannot load libfuse3: {last}"
    return None


class PowerFSMount:
    """A PowerFS served by a child process at `mountpoint`.

    `start()` returns once the mount answers; `close()` unmounts and ends the
    process (lazily unmounting if something still holds it), and is safe to
    call more than once and after a failed start.
    """

    def __init__(self, mountpoint: Path, workdir: Path) -> None:
        self.mountpoint = Path(mountpoint)
        self.workdir = Path(workdir)
        self.control_path = str(self.workdir / "powerfs.sock")
        self.log_path = self.workdir / "powerfs.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._conn: socket.socket | None = None
        self._file: Any = None

    def start(self, timeout: float = 20.0) -> PowerFSMount:
        from prez.testing.procs import child_env, wait_until

        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prez.testing.powerfs",
                    str(self.mountpoint),
                    self.control_path,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
            )

        def mounted() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"powerfs exited with {self.proc.returncode}: {self.log()}"
                )
            return is_mounted(self.mountpoint) and bool(self.command("ping"))

        try:
            wait_until(mounted, timeout, interval=0.05, what="the powerfs mount")
        except BaseException:
            self.close()
            raise
        return self

    def command(self, command: str) -> dict[str, Any]:
        if self._conn is None:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(60)
            try:
                conn.connect(self.control_path)
            except OSError:
                conn.close()
                raise
            self._conn, self._file = conn, conn.makefile("rwb")
        self._file.write(command.encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise RuntimeError(f"powerfs closed its control socket: {self.log()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"powerfs: {answer['error']}")
        return answer

    def cut(self) -> dict[str, Any]:
        """Power loss: everything not fsynced is gone. Call it only once every
        process that wrote here has exited."""
        return self.command("cut")

    def sync(self) -> None:
        """Make everything durable now, as sync(2) (for files a test set up)."""
        self.command("sync")

    def stats(self) -> dict[str, Any]:
        return self.command("stats")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._file.close()
                self._conn.close()
            self._conn = self._file = None
        if is_mounted(self.mountpoint):
            done = subprocess.run(
                ["fusermount3", "-u", str(self.mountpoint)], capture_output=True
            )
            if done.returncode != 0:  # busy: detach it now, it goes when freed
                subprocess.run(
                    ["fusermount3", "-u", "-z", str(self.mountpoint)],
                    capture_output=True,
                )
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        # A process that died without unmounting leaves a dead mount behind.
        if is_mounted(self.mountpoint):
            subprocess.run(
                ["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True
            )

    def __enter__(self) -> PowerFSMount:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(main())
