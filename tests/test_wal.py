"""The WAL: append/sync/reopen, truncation, segments, recovery, the state file."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from prez._core.log import RECORD_OVERHEAD
from prez.errors import StorageError
from prez.raft.types import Entry, HardState
from prez.storage import WAL, load_hard_state, save_hard_state
from prez.storage.state import STATE_FILE, STATE_TMP_FILE
from prez.storage.wal import segment_name


def make_entries(first: int, count: int, term: int = 1, size: int = 20) -> list[Entry]:
    return [
        Entry(index, term, index % 3, f"{index}:{term}:".encode().ljust(size, b"."))
        for index in range(first, first + count)
    ]


def segment_files(raft_dir: Path) -> list[str]:
    return sorted(p.name for p in raft_dir.iterdir() if p.name.startswith("wal-"))


def reopen(node_dir: Path, **options: object) -> tuple[WAL, HardState, list[Entry]]:
    wal = WAL(node_dir, **options)  # type: ignore[arg-type]
    state, entries = wal.open()
    return wal, state, entries


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    return tmp_path / "node"


@pytest.fixture
def fsync_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record the path of every fsync'd descriptor (directories end with '/')."""
    calls: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        calls.append(path + "/" if is_dir else path)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    yield calls


def test_empty_directory_opens_empty(node_dir: Path) -> None:
    wal, state, entries = reopen(node_dir)
    assert (state, entries) == (HardState(), [])
    assert (wal.first_index, wal.last_index) == (1, 0)
    assert (node_dir / "raft").is_dir()
    wal.close()


def test_append_sync_reopen_round_trip(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir)
    written = make_entries(1, 10) + make_entries(11, 5, term=2)
    wal.append(written[:10])
    wal.append(written[10:])
    wal.set_hard_state(HardState(term=2, vote="n2", commit=9))
    wal.sync()
    assert wal.last_index == 15
    wal.close()

    wal, state, entries = reopen(node_dir)
    assert entries == written
    assert state == HardState(term=2, vote="n2", commit=9)
    assert wal.recovery_warnings == []
    # Appending continues where the recovered log ends.
    wal.append(make_entries(16, 2, term=2))
    wal.close()
    assert reopen(node_dir)[2] == written + make_entries(16, 2, term=2)


def test_log_may_start_after_index_one(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(100, 3))
    wal.close()
    assert segment_files(node_dir / "raft") == [segment_name(100)]
    wal, _, entries = reopen(node_dir)
    assert [e.index for e in entries] == [100, 101, 102]
    assert (wal.first_index, wal.last_index) == (100, 102)
    wal.close()


def test_conflicting_append_truncates_then_writes(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(1, 10, term=1))
    wal.sync()
    replacement = make_entries(6, 3, term=2)
    wal.append(replacement)
    assert wal.last_index == 8
    wal.sync()
    wal.close()
    _, _, entries = reopen(node_dir)
    assert entries == make_entries(1, 5, term=1) + replacement


def test_truncation_across_segments_removes_later_files(
    node_dir: Path, fsync_calls: list[str]
) -> None:
    raft_dir = node_dir / "raft"
    wal, _, _ = reopen(node_dir, segment_bytes=200)
    for first in range(1, 31, 5):
        wal.append(make_entries(first, 5))
        wal.sync()
    assert len(segment_files(raft_dir)) == 6
    fsync_calls.clear()
    wal.append(make_entries(8, 2, term=3))
    # The removed segments' directory entries are gone durably at once.
    assert fsync_calls == [f"{raft_dir}/"]
    wal.sync()
    assert segment_files(raft_dir) == [segment_name(1), segment_name(6)]
    wal.close()
    _, _, entries = reopen(node_dir, segment_bytes=200)
    assert entries == make_entries(1, 7) + make_entries(8, 2, term=3)


def test_truncation_before_the_first_index_replaces_the_log(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(50, 5))
    wal.append(make_entries(40, 3, term=2))
    wal.close()
    assert segment_files(node_dir / "raft") == [segment_name(40)]
    assert reopen(node_dir)[2] == make_entries(40, 3, term=2)


def test_segments_roll_past_segment_bytes(node_dir: Path) -> None:
    raft_dir = node_dir / "raft"
    record_size = RECORD_OVERHEAD + 20
    wal, _, _ = reopen(node_dir, segment_bytes=3 * record_size)
    for first in range(1, 13, 2):
        wal.append(make_entries(first, 2))
    wal.sync()
    # Each batch of 2 is kept whole; a segment rolls once it holds >= 3 records.
    assert segment_files(raft_dir) == [segment_name(i) for i in (1, 5, 9)]
    for name in segment_files(raft_dir):
        assert (raft_dir / name).stat().st_size == 4 * record_size
    wal.close()
    wal, _, entries = reopen(node_dir, segment_bytes=3 * record_size)
    assert entries == make_entries(1, 12)
    assert wal.segment_count == 3
    wal.close()


def test_new_segment_is_made_durable_by_a_directory_fsync(
    node_dir: Path, fsync_calls: list[str]
) -> None:
    raft_dir = node_dir / "raft"
    wal, _, _ = reopen(node_dir, segment_bytes=100)
    # Opening creates the node and raft directories; each entry is durable
    # at once (the parent of each is fsynced after the mkdir).
    assert fsync_calls == [f"{node_dir.parent}/", f"{node_dir}/"]
    fsync_calls.clear()
    wal.append(make_entries(1, 1))
    assert fsync_calls == []  # nothing durable before sync()
    wal.sync()
    first = str(raft_dir / segment_name(1))
    assert fsync_calls == [first, f"{raft_dir}/"]

    fsync_calls.clear()
    wal.append(make_entries(2, 3))  # still fits: 1 record < 100 bytes
    wal.sync()
    assert fsync_calls == [first]

    fsync_calls.clear()
    wal.append(make_entries(5, 1))  # the first segment is full: roll
    wal.sync()
    second = str(raft_dir / segment_name(5))
    assert fsync_calls == [second, f"{raft_dir}/"]
    wal.close()


def test_rolled_over_segment_is_fsynced_with_the_new_one(
    node_dir: Path, fsync_calls: list[str]
) -> None:
    raft_dir = node_dir / "raft"
    wal, _, _ = reopen(node_dir, segment_bytes=50)
    fsync_calls.clear()
    wal.append(make_entries(1, 2))
    wal.append(make_entries(3, 2))  # rolls before anything was synced
    wal.sync()
    assert fsync_calls == [
        str(raft_dir / segment_name(1)),
        str(raft_dir / segment_name(3)),
        f"{raft_dir}/",
    ]
    wal.close()


def test_fsync_off_makes_sync_a_flush_only(
    node_dir: Path, fsync_calls: list[str]
) -> None:
    wal, _, _ = reopen(node_dir, fsync=False, segment_bytes=60)
    wal.append(make_entries(1, 4))
    wal.append(make_entries(5, 4))
    wal.set_hard_state(HardState(term=4, vote="a", commit=3))
    wal.sync()
    wal.close()
    assert fsync_calls == []
    _, state, entries = reopen(node_dir)
    assert entries == make_entries(1, 8)
    assert state == HardState(term=4, vote="a", commit=3)


def test_sync_runs_on_a_worker_thread(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir, segment_bytes=300)
    with ThreadPoolExecutor(max_workers=1) as executor:
        for first in range(1, 41, 4):
            wal.append(make_entries(first, 4))
            wal.set_hard_state(HardState(term=first, vote="x", commit=first))
            executor.submit(wal.sync).result(timeout=30)
    wal.close()
    _, state, entries = reopen(node_dir)
    assert entries == make_entries(1, 40)
    assert state.term == 37


def test_term_and_vote_are_saved_by_sync_commit_only_at_close(node_dir: Path) -> None:
    raft_dir = str(node_dir / "raft")
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(1, 3))
    wal.set_hard_state(HardState(term=1, vote="me", commit=0))
    wal.sync()
    assert load_hard_state(raft_dir) == HardState(term=1, vote="me", commit=0)
    wal.set_hard_state(HardState(term=1, vote="me", commit=3))
    wal.sync()
    assert load_hard_state(raft_dir).commit == 0
    wal.close()
    assert load_hard_state(raft_dir) == HardState(term=1, vote="me", commit=3)


def test_torn_tail_is_cut_and_reported(node_dir: Path) -> None:
    raft_dir = node_dir / "raft"
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(1, 5))
    wal.close()
    path = raft_dir / segment_name(1)
    good_size = path.stat().st_size
    record_size = RECORD_OVERHEAD + 20
    with open(path, "r+b") as file:
        file.truncate(good_size - 7)  # the last record lost its end in a crash

    wal, _, entries = reopen(node_dir)
    assert entries == make_entries(1, 4)
    assert path.stat().st_size == good_size - record_size
    assert len(wal.recovery_warnings) == 1
    assert str(path) in wal.recovery_warnings[0]
    assert f"byte offset {good_size - record_size}" in wal.recovery_warnings[0]
    wal.append(make_entries(5, 2, term=2))
    wal.close()
    wal, _, entries = reopen(node_dir)
    assert entries == make_entries(1, 4) + make_entries(5, 2, term=2)
    assert wal.recovery_warnings == []
    wal.close()


def test_flipped_byte_in_an_early_record_refuses_to_start(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(1, 5))
    wal.close()
    path = node_dir / "raft" / segment_name(1)
    record_size = RECORD_OVERHEAD + 20
    data = bytearray(path.read_bytes())
    data[record_size + 30] ^= 0x10  # inside the second record's data
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError) as caught:
        WAL(node_dir).open()
    assert str(path) in str(caught.value)
    assert f"byte offset {record_size}" in str(caught.value)
    # Nothing was cut: the damaged file is left for an operator to inspect.
    assert path.read_bytes() == bytes(data)


def test_torn_record_in_a_segment_before_the_last_refuses(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir, segment_bytes=100)
    for first in range(1, 13, 3):
        wal.append(make_entries(first, 3))
    wal.close()
    first_path = node_dir / "raft" / segment_name(1)
    size = first_path.stat().st_size
    with open(first_path, "r+b") as file:
        file.truncate(size - 1)
    with pytest.raises(StorageError, match=rf"{first_path}.*byte offset"):
        WAL(node_dir).open()


def test_gap_between_segments_refuses(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir, segment_bytes=100)
    for first in range(1, 13, 3):
        wal.append(make_entries(first, 3))
    wal.close()
    raft_dir = node_dir / "raft"
    assert segment_files(raft_dir) == [segment_name(i) for i in (1, 4, 7, 10)]
    (raft_dir / segment_name(4)).unlink()
    with pytest.raises(StorageError, match=rf"{raft_dir / segment_name(7)}.*gap"):
        WAL(node_dir).open()


def test_overlap_between_segments_refuses(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir, segment_bytes=100)
    for first in range(1, 7, 3):
        wal.append(make_entries(first, 3))
    wal.close()
    raft_dir = node_dir / "raft"
    (raft_dir / segment_name(4)).rename(raft_dir / segment_name(3))
    with pytest.raises(StorageError, match="overlap"):
        WAL(node_dir).open()


def test_record_index_not_matching_its_segment_refuses(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(1, 3))
    wal.close()
    raft_dir = node_dir / "raft"
    (raft_dir / segment_name(1)).rename(raft_dir / segment_name(2))
    with pytest.raises(StorageError, match=r"byte offset 0 has index 1, expected 2"):
        WAL(node_dir).open()


def test_failed_write_leaves_no_partial_batch(
    node_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(1, 2))
    real_write = os.write

    def write_half_then_fail(fd: int, data: bytes) -> int:
        if len(data) > 1:
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write_half_then_fail)
    with pytest.raises(OSError):
        wal.append(make_entries(3, 4))
    monkeypatch.setattr(os, "write", real_write)
    assert wal.last_index == 2
    wal.append(make_entries(3, 1))
    wal.close()
    assert reopen(node_dir)[2] == make_entries(1, 3)


def test_append_rejects_gaps_and_non_consecutive_batches(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(1, 3))
    with pytest.raises(ValueError, match="gap"):
        wal.append(make_entries(5, 1))
    with pytest.raises(ValueError, match="consecutive"):
        wal.append([Entry(4, 1), Entry(6, 1)])
    assert wal.last_index == 3
    wal.close()


def test_methods_need_open(node_dir: Path) -> None:
    wal = WAL(node_dir)
    with pytest.raises(RuntimeError):
        wal.append(make_entries(1, 1))
    with pytest.raises(RuntimeError):
        wal.sync()


def test_compact_drops_only_fully_covered_segments(node_dir: Path) -> None:
    raft_dir = node_dir / "raft"
    wal, _, _ = reopen(node_dir, segment_bytes=100)
    for first in range(1, 13, 3):
        wal.append(make_entries(first, 3))
    wal.sync()
    assert wal.compact(5) == 1  # segment 4..6 still holds 6
    assert segment_files(raft_dir) == [segment_name(i) for i in (4, 7, 10)]
    assert wal.compact(100) == 2  # the last segment always stays
    assert wal.first_index == 10
    wal.close()
    assert reopen(node_dir, segment_bytes=100)[2] == make_entries(10, 3)


def test_state_file_round_trip(tmp_path: Path) -> None:
    for state in (
        HardState(),
        HardState(term=7, vote="node-b", commit=42),
        HardState(term=2**64 - 1, vote="ü" * 100, commit=2**64 - 1),
    ):
        save_hard_state(str(tmp_path), state)
        assert load_hard_state(str(tmp_path)) == state
    assert not (tmp_path / STATE_TMP_FILE).exists()


def test_state_file_is_replaced_with_fsyncs_and_a_rename(
    tmp_path: Path, fsync_calls: list[str]
) -> None:
    save_hard_state(str(tmp_path), HardState(term=1))
    assert fsync_calls == [str(tmp_path / STATE_TMP_FILE), f"{tmp_path}/"]


def test_corrupt_state_file_is_an_error_naming_it(tmp_path: Path) -> None:
    save_hard_state(str(tmp_path), HardState(term=3, vote="abc", commit=1))
    path = tmp_path / STATE_FILE
    good = path.read_bytes()
    for position in range(len(good)):
        damaged = bytearray(good)
        damaged[position] ^= 0x04
        path.write_bytes(bytes(damaged))
        with pytest.raises(StorageError, match=str(path)):
            load_hard_state(str(tmp_path))
    for cut in range(len(good)):
        path.write_bytes(good[:cut])
        with pytest.raises(StorageError, match=str(path)):
            load_hard_state(str(tmp_path))


def test_leftover_temp_state_file_is_ignored(tmp_path: Path) -> None:
    save_hard_state(str(tmp_path), HardState(term=5, vote="v"))
    (tmp_path / STATE_TMP_FILE).write_bytes(b"half a write")
    assert load_hard_state(str(tmp_path)) == HardState(term=5, vote="v")
    assert not (tmp_path / STATE_TMP_FILE).exists()


def test_corrupt_state_file_stops_wal_open(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir)
    wal.set_hard_state(HardState(term=2, vote="x"))
    wal.close()
    path = node_dir / "raft" / STATE_FILE
    path.write_bytes(path.read_bytes()[:-1] + b"?")
    with pytest.raises(StorageError, match=str(path)):
        WAL(node_dir).open()


# -- write errors: roll back what is not durable, write it again later ---------


class _FailingDisk:
    """Makes os.write or os.fsync fail with `error` while `failing` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, error: int) -> None:
        self.failing = False
        self.error = error
        real_write, real_fsync = os.write, os.fsync

        def write(fd: int, data: bytes | memoryview) -> int:
            if self.failing and self.call == "write":
                raise OSError(self.error, os.strerror(self.error))
            return real_write(fd, data)

        def fsync(fd: int) -> None:
            if self.failing and self.call == "fsync":
                raise OSError(self.error, os.strerror(self.error))
            real_fsync(fd)

        self.call = "write"
        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("call", ["write", "fsync"])
@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_a_failed_write_is_rolled_back_and_written_again(
    node_dir: Path, monkeypatch: pytest.MonkeyPatch, call: str, error: int
) -> None:
    disk = _FailingDisk(monkeypatch, error)
    disk.call = call
    # Small segments: the failing batch also rolls over to a new segment.
    wal, _, _ = reopen(node_dir, segment_bytes=4 * (RECORD_OVERHEAD + 20))
    wal.append(make_entries(1, 3))
    wal.set_hard_state(HardState(1, "a", 2))
    wal.sync()
    batch = make_entries(4, 4)
    disk.failing = True
    with pytest.raises(OSError) as failure:
        wal.append(batch)
        wal.set_hard_state(HardState(2, "b", 3))
        wal.sync()
    assert failure.value.errno == error
    wal.rollback_unsynced()
    # Back where the last good sync left it, on disk as in memory.
    assert wal.last_index == 3
    assert segment_files(node_dir / "raft") == [segment_name(1)]
    assert (node_dir / "raft" / segment_name(1)).stat().st_size == wal.size_bytes
    # Still failing: roll back again, any number of times.
    with pytest.raises(OSError):
        wal.append(batch)
        wal.sync()
    wal.rollback_unsynced()
    disk.failing = False
    wal.append(batch)
    wal.set_hard_state(HardState(2, "b", 3))
    wal.sync()
    wal.close()
    _, state, entries = reopen(node_dir, segment_bytes=4 * (RECORD_OVERHEAD + 20))
    assert entries == make_entries(1, 3) + batch
    assert (state.term, state.vote) == (2, "b")


def test_rollback_after_a_conflict_truncation_keeps_the_cut(
    node_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = _FailingDisk(monkeypatch, errno.ENOSPC)
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(1, 6))
    wal.sync()
    replacement = make_entries(4, 2, term=2)
    disk.failing = True
    with pytest.raises(OSError):
        wal.append(replacement)  # cuts 4..6, then fails writing 4..5
    wal.rollback_unsynced()
    # Entries 4..6 conflicted and are gone; what is left is a prefix.
    assert wal.last_index == 3
    disk.failing = False
    wal.append(replacement)
    wal.sync()
    wal.close()
    assert reopen(node_dir)[2] == make_entries(1, 3) + replacement


def test_rollback_with_nothing_unsynced_changes_nothing(node_dir: Path) -> None:
    wal, _, _ = reopen(node_dir)
    wal.append(make_entries(1, 2))
    wal.sync()
    wal.rollback_unsynced()
    assert wal.last_index == 2
    wal.append(make_entries(3, 1))
    wal.close()
    assert reopen(node_dir)[2] == make_entries(1, 3)
