"""The Raft write-ahead log: segment files of framed records, and recovery.

Files, under `<dir>/raft/`:
- `wal-<first index, 20 digits>.log`: segments of records framed by
  `prez._core.log` (length, CRC32C, index, term, kind, data). Only the last
  segment is written; a new one is started once the current one has reached
  `segment_bytes` (a batch is never split, so a segment can exceed that by
  one batch). The log may start past index 1 (after a snapshot).
- `state`: term, vote and commit (see `prez.storage.state`).

Durability: `append` writes with os.write and nothing is durable until
`sync()` returns: one fsync per file written since the last sync (group
commit), the directory fsync for a newly created segment, then the state
file when term or vote changed. A commit-only change of the hard state is
written with the next term/vote change or at `close()`: commit need not be
durable in Raft, and writing it on every batch would triple the fsyncs.

Threading contract: a WAL is used by one thread at a time. `sync()` may run
on a worker thread (the server runs it in an executor so the event loop keeps
taking requests while the disk works), but no other method of the same WAL
may run while it does; the caller awaits `sync()` before the next `append`.

Write errors (a full disk, an I/O error): when `append` or `sync` raises
OSError, the caller calls `rollback_unsynced()`, which cuts every segment
back to the part known durable (the last successful fsync) and deletes
segments created since. The caller then appends the same entries again and
syncs, later, as often as it takes. The bytes are always rewritten from
memory, never fsynced again as they stand: after a failed fsync the kernel
may have dropped the dirty pages and a second fsync would report success
for data that never reached the disk ("fsyncgate").

Truncation on conflict removes whole later segments with an immediate
directory fsync (rare: only when a new leader overwrites a long suffix), so
that a crash cannot resurrect a removed segment behind newer entries.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import struct
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from prez._core import select
from prez.errors import StorageError
from prez.raft.types import Entry, HardState, SnapshotMeta
from prez.storage.durable import fsync_dir, make_dirs
from prez.storage.state import load_hard_state, save_hard_state

if TYPE_CHECKING:
    from prez._core import log as _log
else:
    _log = select("log")

ScanStatus = _log.ScanStatus
frame_entries = _log.frame_entries
scan_records = _log.scan_records

logger = logging.getLogger("prez.storage")

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
RAFT_SUBDIR = "raft"

_SEGMENT_NAME = re.compile(r"^wal-(\d{20})\.log$")
# Where a record's term is (prez._core.log: u32 length, u32 CRC32C, u64 index,
# u64 term, ...).
_TERM = struct.Struct("<Q")
_TERM_OFFSET = 16


def segment_name(first_index: int) -> str:
    return f"wal-{first_index:020d}.log"


@dataclass(slots=True, eq=False)
class _Segment:
    first_index: int
    path: str
    size: int = 0  # bytes of good records; the file is exactly this long
    durable_size: int = 0  # the prefix known to be on disk (last good fsync)
    # offsets[k]: where the record of entry first_index + k starts
    offsets: list[int] = field(default_factory=list)
    fd: int = -1  # open while it is the last segment, or until its pending fsync

    @property
    def next_index(self) -> int:
        return self.first_index + len(self.offsets)


class WAL:
    """The durable Raft log of one node; see the module docstring for the contract."""

    def __init__(
        self,
        dir: str | os.PathLike[str],
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
    ) -> None:
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        # Absolute: every error names a file an operator can find.
        self.raft_dir = os.path.join(os.path.abspath(os.fspath(dir)), RAFT_SUBDIR)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        # Warnings from the last open(), e.g. a torn tail that was cut off.
        self.recovery_warnings: list[str] = []
        self._segments: list[_Segment] = []
        self._segment_firsts: list[int] = []  # for bisect; mirrors _segments
        self._unsynced: list[_Segment] = []  # written or cut since the last sync
        self._dir_dirty = False  # a segment was created since the last sync
        self._created_since_sync: list[_Segment] = []
        self._staged_state: HardState | None = None
        self._saved_state = HardState()
        self._opened = False

    # -- recovery -------------------------------------------------------------

    def open(self) -> tuple[HardState, list[Entry]]:
        """Recover the hard state and every entry on disk; must be called first.

        A torn record at the end of the last segment is cut off (logged and
        added to `recovery_warnings`); any other damage, and any gap or
        overlap of indexes, raises StorageError naming the file and offset.
        """
        if self._opened:
            raise RuntimeError("WAL already open")
        # Durable at once (parents included): a log in a directory whose
        # own entry is lost to a power cut is no log at all.
        make_dirs(self.raft_dir, fsync=self.fsync)
        self.recovery_warnings = []
        state = load_hard_state(self.raft_dir)
        self._saved_state = HardState(state.term, state.vote, state.commit)
        entries: list[Entry] = []
        paths = self._segment_paths()
        for position, (first_index, path) in enumerate(paths):
            if self._segments and first_index != self._segments[-1].next_index:
                previous = self._segments[-1]
                kind = "gap" if first_index > previous.next_index else "overlap"
                raise StorageError(
                    f"{path}: starts at index {first_index} but "
                    f"{os.path.basename(previous.path)} ends at index "
                    f"{previous.next_index - 1} ({kind} in the log)"
                )
            is_last = position == len(paths) - 1
            segment = self._recover_segment(first_index, path, is_last, entries)
            self._segments.append(segment)
            self._segment_firsts.append(first_index)
        if self._segments:
            self._segments[-1].fd = self._open_for_append(self._segments[-1].path)
        self._opened = True
        return state, entries

    def _segment_paths(self) -> list[tuple[int, str]]:
        found = []
        for name in os.listdir(self.raft_dir):
            match = _SEGMENT_NAME.match(name)
            if match:
                found.append((int(match.group(1)), os.path.join(self.raft_dir, name)))
        found.sort()
        return found

    def _recover_segment(
        self, first_index: int, path: str, is_last: bool, entries_out: list[Entry]
    ) -> _Segment:
        with open(path, "rb") as file:
            data = file.read()
        result = scan_records(data)
        if result.status == ScanStatus.CORRUPT:
            raise StorageError(
                f"{path}: corrupt WAL record at byte offset {result.bad_offset} "
                f"({result.reason}) with good records after it; refusing to start"
            )
        if result.status == ScanStatus.TORN and not is_last:
            raise StorageError(
                f"{path}: damaged WAL record at byte offset {result.bad_offset} "
                f"({result.reason}) in a segment that is not the last; "
                "refusing to start"
            )
        for k, entry in enumerate(result.entries):
            if entry.index != first_index + k:
                raise StorageError(
                    f"{path}: record at byte offset {result.offsets[k]} has index "
                    f"{entry.index}, expected {first_index + k}"
                )
        if result.status == ScanStatus.TORN:
            warning = (
                f"{path}: cut off a torn record at byte offset {result.bad_offset} "
                f"({result.reason}; {len(data) - result.end} bytes dropped, "
                f"last good index {first_index + len(result.entries) - 1})"
            )
            self._cut_file(path, result.end)
            logger.warning("%s", warning)
            self.recovery_warnings.append(warning)
        entries_out.extend(result.entries)
        return _Segment(first_index, path, result.end, result.end, result.offsets)

    def _cut_file(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _open_for_append(path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    # -- the log ----------------------------------------------------------------

    @property
    def first_index(self) -> int:
        """Index of the first entry held (last_index + 1 when the log is empty)."""
        if not self._segments:
            return 1
        return self._segments[0].first_index

    @property
    def last_index(self) -> int:
        """Index of the last entry written (first_index - 1 when empty)."""
        if not self._segments:
            return 0
        return self._segments[-1].next_index - 1

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def append(self, entries: list[Entry]) -> None:
        """Write consecutive entries, first truncating any conflicting suffix.

        If `entries[0].index <= last_index`, the log is cut from that index
        before writing. On a non-empty log the batch must otherwise start at
        `last_index + 1`. Not durable until `sync()`.
        """
        if not entries:
            return
        self._check_open()
        first = entries[0].index
        if entries[-1].index != first + len(entries) - 1:
            raise ValueError("entries to append are not consecutive")
        if self._segments:
            next_index = self._segments[-1].next_index
            if first < next_index:
                # What is on disk with the same terms stays as it is: it may
                # have been acknowledged, and cutting it to write it again
                # would leave it undurable until the next sync.
                present = self._matching_prefix(entries)
                if present:
                    entries = entries[present:]
                    if not entries:
                        self._truncate_from(first + present)
                        return
                    first = entries[0].index
            if first < next_index:
                self._truncate_from(first)
            elif first > next_index and self.last_index >= self.first_index:
                raise ValueError(
                    f"append at index {first} leaves a gap after {self.last_index}"
                )
        segment = self._segments[-1] if self._segments else None
        if segment is not None and segment.next_index != first:
            # Only an empty segment named for another index gets here.
            self._remove_segments(len(self._segments) - 1)
            segment = None
        if segment is None or segment.size >= self.segment_bytes:
            segment = self._new_segment(first)
        size_before = segment.size
        count_before = len(segment.offsets)
        data = frame_entries(entries, size_before, segment.offsets)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(segment.fd, view) :]
        except BaseException:
            # Keep file and index in step: no half-written batch stays behind.
            del segment.offsets[count_before:]
            os.ftruncate(segment.fd, size_before)
            raise
        segment.size = size_before + len(data)
        if not self._unsynced or self._unsynced[-1] is not segment:
            self._unsynced.append(segment)

    def term_on_disk(self, index: int) -> int | None:
        """The term of the entry at `index` as written (None if not held).

        Read from the record's header: a rare question (conflict repair,
        snapshot install) not worth a term per entry in memory.
        """
        position = bisect.bisect_right(self._segment_firsts, index) - 1
        if position < 0:
            return None
        segment = self._segments[position]
        k = index - segment.first_index
        if k >= len(segment.offsets):
            return None
        fd = os.open(segment.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            header = os.pread(fd, _TERM.size, segment.offsets[k] + _TERM_OFFSET)
        finally:
            os.close(fd)
        if len(header) != _TERM.size:
            return None
        term: int = _TERM.unpack(header)[0]
        return term

    def _matching_prefix(self, entries: list[Entry]) -> int:
        """How many of `entries` (which start inside the log) are on disk
        with the same term. By Log Matching, one entry that matches means
        every one before it does too, so a binary search finds the end."""
        first = entries[0].index
        low, high = 0, min(len(entries), self.last_index - first + 1)
        while low < high:
            middle = (low + high) // 2
            if self.term_on_disk(first + middle) == entries[middle].term:
                low = middle + 1
            else:
                high = middle
        return low

    def _new_segment(self, first_index: int) -> _Segment:
        path = os.path.join(self.raft_dir, segment_name(first_index))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        segment = _Segment(first_index, path, fd=os.open(path, flags, 0o644))
        if self._segments:
            previous = self._segments[-1]
            if previous not in self._unsynced:
                self._close_segment(previous)
        self._segments.append(segment)
        self._segment_firsts.append(first_index)
        self._created_since_sync.append(segment)
        # Until the directory is fsynced the new file may vanish on power loss.
        self._dir_dirty = True
        return segment

    def _truncate_from(self, index: int) -> None:
        """Drop every entry with index >= `index`."""
        position = bisect.bisect_right(self._segment_firsts, index) - 1
        self._remove_segments(max(position + 1, 0))
        if not self._segments:
            return
        segment = self._segments[-1]
        keep = index - segment.first_index
        if keep >= len(segment.offsets):
            return
        new_size = segment.offsets[keep]
        os.ftruncate(segment.fd, new_size)
        del segment.offsets[keep:]
        segment.size = new_size
        segment.durable_size = min(segment.durable_size, new_size)
        if segment not in self._unsynced:
            self._unsynced.append(segment)

    def _remove_segments(self, start: int) -> None:
        """Delete segments[start:], durably before anything else is written.

        The immediate directory fsync keeps a crash from resurrecting a
        removed segment behind the newer entries written after it.
        """
        doomed = self._segments[start:]
        if not doomed:
            return
        for segment in reversed(doomed):
            self._close_segment(segment)
            if segment in self._unsynced:
                self._unsynced.remove(segment)
            if segment in self._created_since_sync:
                self._created_since_sync.remove(segment)
            os.unlink(segment.path)
        del self._segments[start:]
        del self._segment_firsts[start:]
        if self.fsync:
            fsync_dir(self.raft_dir)
        self._dir_dirty = False
        if self._segments and self._segments[-1].fd < 0:
            self._segments[-1].fd = self._open_for_append(self._segments[-1].path)

    @staticmethod
    def _close_segment(segment: _Segment) -> None:
        if segment.fd >= 0:
            os.close(segment.fd)
            segment.fd = -1

    def compact(self, upto_index: int) -> int:
        """Delete whole segments whose entries are all <= `upto_index`.

        The last segment is always kept. Returns how many were removed.
        """
        self._check_open()
        removable = 0
        while (
            removable < len(self._segments) - 1
            and self._segments[removable + 1].first_index <= upto_index + 1
        ):
            removable += 1
        if not removable:
            return 0
        for segment in self._segments[:removable]:
            # A rolled-over segment may still wait for its fsync; it is gone now.
            if segment in self._unsynced:
                self._unsynced.remove(segment)
            self._close_segment(segment)
            os.unlink(segment.path)
        del self._segments[:removable]
        del self._segment_firsts[:removable]
        if self.fsync:
            fsync_dir(self.raft_dir)
        return removable

    def reset(self, first_index: int) -> None:
        """Drop every entry and start an empty log at `first_index`.

        For a follower that installed a snapshot ending at first_index - 1:
        the snapshot file is durable before this is called, and the
        directory is fsynced here, so a crash leaves either the old segments
        (entries the snapshot supersedes, skipped on recovery) or the new
        empty log, never a mix that starts past the snapshot.
        """
        self._check_open()
        self._remove_segments(0)
        self._unsynced.clear()
        self._new_segment(first_index)
        if self.fsync:
            fsync_dir(self.raft_dir)
        self._dir_dirty = False
        self._created_since_sync.clear()  # durable: no rollback may remove it

    # -- the Ready loop's LogStore (prez.raft.ready_loop) ----------------------

    def write(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        """Append `entries`, then stage `hard_state`; durable after `sync()`."""
        if entries:
            self.append(entries)
        if hard_state is not None:
            self.set_hard_state(hard_state)

    def install_snapshot_base(self, snapshot: SnapshotMeta) -> None:
        """A durable received snapshot becomes the base of the log.

        If the log holds the snapshot's last entry (same index and term),
        what follows it is the core's kept suffix, already durable and maybe
        acknowledged: it stays, and only whole segments the snapshot covers
        go. Otherwise the log restarts empty after the snapshot (`reset`).
        Deleting a kept suffix to append it again would leave acknowledged
        entries undurable until the next fsync (the simulator found it).
        """
        if self.term_on_disk(snapshot.index) == snapshot.term:
            self.compact(snapshot.index)
        else:
            self.reset(snapshot.index + 1)

    @property
    def size_bytes(self) -> int:
        """Bytes of records in all segments."""
        return sum(segment.size for segment in self._segments)

    # -- durability -------------------------------------------------------------

    def set_hard_state(self, state: HardState) -> None:
        """Stage the hard state; the next `sync()` makes it durable if needed."""
        self._staged_state = HardState(state.term, state.vote, state.commit)

    def sync(self) -> None:
        """Make everything appended and staged so far durable (see the contract)."""
        self._check_open()
        if self.fsync:
            for segment in self._unsynced:
                os.fsync(segment.fd)
            if self._dir_dirty:
                fsync_dir(self.raft_dir)
        last = self._segments[-1] if self._segments else None
        for segment in self._unsynced:
            segment.durable_size = segment.size
            if segment is not last:  # rolled over: kept open only for this fsync
                self._close_segment(segment)
        self._unsynced.clear()
        self._created_since_sync.clear()
        self._dir_dirty = False
        staged = self._staged_state
        if staged is not None and (
            staged.term != self._saved_state.term
            or staged.vote != self._saved_state.vote
        ):
            self._save_state(staged)

    def rollback_unsynced(self) -> None:
        """After a failed `append` or `sync`: forget everything not yet durable.

        Segments created since the last good sync are deleted; the others
        are cut back to their durable prefix. The staged hard state stays
        staged. The log then ends where the last good sync left it (or where
        a conflict truncation since then cut it), so the caller can append
        the same entries again. May itself raise OSError (then stop).
        """
        self._check_open()
        for segment in reversed(self._created_since_sync):
            if segment in self._segments:
                self._remove_segments(self._segments.index(segment))
        self._created_since_sync.clear()
        for segment in self._unsynced:
            keep = bisect.bisect_left(segment.offsets, segment.durable_size)
            del segment.offsets[keep:]
            segment.size = segment.durable_size
            if segment.fd < 0:
                segment.fd = self._open_for_append(segment.path)
            os.ftruncate(segment.fd, segment.size)
        last = self._segments[-1] if self._segments else None
        for segment in self._unsynced:
            if segment is not last:
                self._close_segment(segment)
        self._unsynced.clear()
        if last is not None and last.fd < 0:
            last.fd = self._open_for_append(last.path)

    def _save_state(self, state: HardState) -> None:
        save_hard_state(self.raft_dir, state, fsync=self.fsync)
        self._saved_state = state
        self._staged_state = None

    def close(self) -> None:
        """Sync everything (commit included) and release the files."""
        if not self._opened:
            return
        try:
            self.sync()
            staged = self._staged_state
            if staged is not None and staged != self._saved_state:
                self._save_state(staged)
        finally:
            for segment in self._segments:
                self._close_segment(segment)
            self._opened = False

    def _check_open(self) -> None:
        if not self._opened:
            raise RuntimeError("WAL is not open: call open() first")

    def __enter__(self) -> WAL:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
