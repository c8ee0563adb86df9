"""Snapshot files on disk: writing, retention, fallback on start-up, transfer.

Files, under `<dir>/snapshots/` (the byte format is in `prez.kv.snapshot`):
- `snap-<index, 20 digits>-<term, 20 digits>.snap`: complete snapshots.
- `*.tmp`: a snapshot being written (`snap-...snap.tmp`) or received from
  the leader (`recv-*.snap.tmp`). Never read; one left over means a crash
  mid-write and is removed by `load_newest_valid`.
- `*.corrupt`: a snapshot that failed verification while an older valid one
  was loaded instead; kept for inspection, never loaded or deleted here.

Durability: a snapshot is written to its temp file, fsynced, renamed into
place and the directory fsynced, so after a crash a `.snap` file is whole or
absent (damage after that is caught by its CRC). Retention keeps the newest
two: the new one and the one before it, so that a newest snapshot found
corrupt on start-up can fall back to the previous one. That fallback only
helps if the WAL still holds the entries after the older snapshot, so the
log should be compacted only up to the older kept snapshot's index.

Threading: the functions here are synchronous and may run in a worker
thread or a forked child; one `SnapshotReceiver` per transfer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

from prez.kv.keyspace import KVStore
from prez.kv.snapshot import (
    CHUNK_SIZE,
    SnapshotError,
    SnapshotMeta,
    dump,
    load,
    verify,
)
from prez.storage.durable import (
    atomic_file,
    fsync_dir,
    make_dirs,
    replace_durably,
    write_all,
)

logger = logging.getLogger("prez.storage")

SNAPSHOT_SUBDIR = "snapshots"
TEMP_SUFFIX = ".tmp"
CORRUPT_SUFFIX = ".corrupt"
KEEP_SNAPSHOTS = 2

_SNAPSHOT_NAME = re.compile(r"^snap-(\d{20})-(\d{20})\.snap$")

__all__ = [
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotReceiver",
    "iter_chunks",
    "list_snapshots",
    "load_newest_valid",
    "open_snapshot_reader",
    "read_snapshot",
    "snapshot_dir",
    "snapshot_name",
    "verify_snapshot",
    "write_snapshot",
]


@dataclass(slots=True, frozen=True)
class SnapshotInfo:
    """One snapshot file. `seconds` is the time taken to write or receive
    it, 0.0 for a file that was only listed."""

    path: str
    index: int
    term: int
    size: int
    seconds: float = 0.0


def snapshot_dir(dir: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(dir), SNAPSHOT_SUBDIR)


def snapshot_name(index: int, term: int) -> str:
    return f"snap-{index:020d}-{term:020d}.snap"


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def write_snapshot(
    dir: str | os.PathLike[str],
    store: KVStore,
    meta: SnapshotMeta,
    fsync: bool = True,
) -> SnapshotInfo:
    """Write `store` as the snapshot for `meta` and apply retention.

    Durable on return when `fsync` (see the module docstring). On any
    error the temp file is removed and nothing else changes.
    """
    started = time.perf_counter()
    directory = snapshot_dir(dir)
    make_dirs(directory, fsync=fsync)
    path = os.path.join(directory, snapshot_name(meta.index, meta.term))
    with atomic_file(path, fsync=fsync, temp_path=path + TEMP_SUFFIX) as fd:
        size = dump(store, lambda chunk: write_all(fd, chunk), meta)
    info = SnapshotInfo(
        path, meta.index, meta.term, size, time.perf_counter() - started
    )
    _apply_retention(directory, info, fsync)
    return info


def _apply_retention(directory: str, newest: SnapshotInfo, fsync: bool) -> None:
    """Delete snapshots older than `newest`, except the newest of them."""
    older = [
        info
        for info in _list_in(directory)
        if (info.index, info.term) < (newest.index, newest.term)
    ]
    doomed = older[KEEP_SNAPSHOTS - 1 :]
    for info in doomed:
        _remove_quietly(info.path)
    if doomed and fsync:
        fsync_dir(directory)


def _list_in(directory: str) -> list[SnapshotInfo]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _SNAPSHOT_NAME.match(name)
        if not match:
            continue
        path = os.path.join(directory, name)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            continue  # removed meanwhile (retention in another process)
        found.append(SnapshotInfo(path, int(match.group(1)), int(match.group(2)), size))
    found.sort(key=lambda info: (info.index, info.term), reverse=True)
    return found


def list_snapshots(dir: str | os.PathLike[str]) -> list[SnapshotInfo]:
    """Complete snapshot files under `<dir>/snapshots/`, newest first."""
    return _list_in(snapshot_dir(dir))


def read_snapshot(
    path: str | os.PathLike[str], databases: int
) -> tuple[SnapshotMeta, KVStore]:
    """Load one snapshot file; any defect raises SnapshotError naming it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            return load(file.read, databases, size=size)
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot be read ({exc})") from exc


def verify_snapshot(path: str | os.PathLike[str]) -> tuple[SnapshotMeta, int]:
    """Check one file's header and checksum without building the store;
    returns (meta, record count). Raises SnapshotError naming the file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            return verify(file.read, size=size)
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot be read ({exc})") from exc


def _remove_leftovers(directory: str) -> list[str]:
    warnings = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(TEMP_SUFFIX):
            path = os.path.join(directory, name)
            _remove_quietly(path)
            warnings.append(
                f"{path}: removed an unfinished snapshot file (a write or "
                "transfer was interrupted)"
            )
    return warnings


def load_newest_valid(
    dir: str | os.PathLike[str], databases: int
) -> tuple[SnapshotMeta, KVStore, SnapshotInfo, list[str]] | None:
    """The newest snapshot that loads cleanly, for start-up.

    Returns (meta, store, info, warnings), or None when there is no
    snapshot. Leftover temp files are removed, and a newer snapshot that
    fails is renamed to `*.corrupt`; each is reported in `warnings` (and
    logged). If snapshots exist and none is valid, raises SnapshotError
    naming every file and its defect, and changes nothing: a node must not
    silently start from an empty state.
    """
    directory = snapshot_dir(dir)
    if not os.path.isdir(directory):
        return None
    warnings = _remove_leftovers(directory)
    failures: list[tuple[SnapshotInfo, str]] = []
    result = None
    for info in _list_in(directory):
        try:
            meta, store = read_snapshot(info.path, databases)
        except SnapshotError as exc:
            failures.append((info, str(exc)))
            continue
        if (meta.index, meta.term) != (info.index, info.term):
            failures.append(
                (
                    info,
                    f"{info.path}: header says index {meta.index} term "
                    f"{meta.term}, the file name index {info.index} term "
                    f"{info.term}",
                )
            )
            continue
        result = meta, store, info
        break
    if result is None:
        for warning in warnings:
            logger.warning("%s", warning)
        if not failures:
            return None
        raise SnapshotError(
            "no valid snapshot among "
            f"{len(failures)} in {directory}: "
            + "; ".join(reason for _, reason in failures)
        )
    for bad, reason in failures:
        quarantined = bad.path + CORRUPT_SUFFIX
        replace_durably(bad.path, quarantined)
        warnings.append(
            f"{reason}; skipped and renamed to {os.path.basename(quarantined)}, "
            f"loaded the older {os.path.basename(result[2].path)} instead"
        )
    for warning in warnings:
        logger.warning("%s", warning)
    meta, store, info = result
    return meta, store, info, warnings


def open_snapshot_reader(path: str | os.PathLike[str]) -> BinaryIO:
    """The file opened for reading, to stream it to a follower; caller closes."""
    return open(path, "rb")


def iter_chunks(
    path: str | os.PathLike[str], chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """The file's bytes in pieces of `chunk_size` (the last may be shorter)."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    with open_snapshot_reader(path) as file:
        while chunk := file.read(chunk_size):
            yield chunk


class SnapshotReceiver:
    """Collects a snapshot sent in chunks and puts it in place once verified.

    Chunks must arrive in order with no gap or overlap (`write_chunk` raises
    SnapshotError otherwise, keeping what was received). `finish()` verifies
    the checksum, fsyncs, renames the file to its final name (taken from its
    header) and applies retention; if verification fails the temp file is
    removed and nothing is put in place. `abort()` drops the transfer.
    """

    def __init__(self, dir: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = snapshot_dir(dir)
        self.fsync = fsync
        make_dirs(self.directory, fsync=fsync)
        self._fd, self.temp_path = tempfile.mkstemp(
            prefix="recv-", suffix=".snap" + TEMP_SUFFIX, dir=self.directory
        )
        os.fchmod(self._fd, 0o644)  # as written snapshots (mkstemp makes 0600)
        self.received = 0
        self._started = time.perf_counter()
        self._done = False

    def write_chunk(self, offset: int, data: bytes) -> None:
        """Append the chunk that starts at byte `offset` of the snapshot."""
        if self._done:
            raise RuntimeError("snapshot transfer already finished or aborted")
        if offset != self.received:
            kind = "gap" if offset > self.received else "overlap"
            raise SnapshotError(
                f"snapshot chunk at offset {offset} but {self.received} bytes "
                f"were received so far ({kind})"
            )
        write_all(self._fd, data)
        self.received += len(data)

    def finish(self) -> SnapshotInfo:
        """Verify and keep the received snapshot; returns where it now is."""
        if self._done:
            raise RuntimeError("snapshot transfer already finished or aborted")
        self._done = True
        try:
            try:
                if self.fsync:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1
            try:
                meta, _ = verify_snapshot(self.temp_path)
            except SnapshotError as exc:
                raise SnapshotError(f"received snapshot rejected: {exc}") from None
            path = os.path.join(self.directory, snapshot_name(meta.index, meta.term))
            replace_durably(self.temp_path, path, fsync=self.fsync)
        except BaseException:
            _remove_quietly(self.temp_path)
            raise
        info = SnapshotInfo(
            path,
            meta.index,
            meta.term,
            self.received,
            time.perf_counter() - self._started,
        )
        _apply_retention(self.directory, info, self.fsync)
        return info

    def abort(self) -> None:
        """Drop the transfer and its temp file; safe to call more than once."""
        self._done = True
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        _remove_quietly(self.temp_path)

    def __enter__(self) -> SnapshotReceiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None or not self._done:
            self.abort()
