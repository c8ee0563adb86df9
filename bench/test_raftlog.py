"""WAL append speed against the disk's floor.

Appends N entries (100 bytes each) in batches of 64 with an fsync after each
batch through the WAL, and compares with a plain loop of os.write + os.fsync
of the same pre-framed batches into a file in the same directory: the least
any WAL could do. Target: the WAL within 1.2x of that floor. N is 100,000
when benchmarking, 2,000 under `--benchmark-disable` (the CI smoke run);
PREZ_BENCH_ENTRIES overrides both.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from prez._core.log import frame_entries
from prez.raft.types import Entry
from prez.storage import WAL

BATCH = 64
ENTRY_BYTES = 100


def entry_count(benchmark_disabled: bool) -> int:
    override = os.environ.get("PREZ_BENCH_ENTRIES")
    if override:
        return int(override)
    return 2_000 if benchmark_disabled else 100_000


def make_batches(count: int) -> list[list[Entry]]:
    entries = [
        Entry(i, 1 + i // 10_000, 0, bytes([i % 256]) * ENTRY_BYTES)
        for i in range(1, count + 1)
    ]
    return [entries[i : i + BATCH] for i in range(0, count, BATCH)]


def run_wal(directory: Path, batches: list[list[Entry]]) -> float:
    """Seconds to append and sync every batch through a fresh WAL."""
    shutil.rmtree(directory, ignore_errors=True)
    wal = WAL(directory)
    wal.open()
    start = time.perf_counter()
    for batch in batches:
        wal.append(batch)
        wal.sync()
    elapsed = time.perf_counter() - start
    wal.close()
    return elapsed


def run_floor(directory: Path, framed: list[bytes]) -> float:
    """Seconds to os.write + os.fsync each pre-framed batch into one file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "floor.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        start = time.perf_counter()
        for chunk in framed:
            os.write(fd, chunk)
            os.fsync(fd)
        return time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink()


@pytest.mark.benchmark(group="raftlog-append")
@pytest.mark.parametrize("variant", ["wal", "floor"])
def test_append_batches_with_fsync(benchmark, tmp_path: Path, variant: str) -> None:  # type: ignore[no-untyped-def]
    batches = make_batches(entry_count(benchmark.disabled))
    if variant == "wal":
        benchmark.pedantic(run_wal, args=(tmp_path / "wal", batches), rounds=3)
        wal = WAL(tmp_path / "wal")
        _, recovered = wal.open()
        wal.close()
        assert recovered == [entry for batch in batches for entry in batch]
    else:
        framed = [frame_entries(batch) for batch in batches]
        benchmark.pedantic(run_floor, args=(tmp_path / "floor", framed), rounds=3)


def run_paired(directory: Path, batches: list[list[Entry]]) -> tuple[float, float]:
    """Seconds spent by the WAL and by the floor, batch by batch side by side.

    fsync latency on a shared disk swings by 10x within seconds, so the two
    are interleaved batch by batch (alternating which goes first) to see
    the same disk; two separate runs would mostly measure the swings.
    """
    shutil.rmtree(directory, ignore_errors=True)
    wal = WAL(directory)
    wal.open()
    framed = [frame_entries(batch) for batch in batches]
    floor_path = Path(wal.raft_dir) / "floor.log"
    fd = os.open(floor_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    wal_seconds = floor_seconds = 0.0
    clock = time.perf_counter
    try:
        for number, (batch, chunk) in enumerate(zip(batches, framed, strict=True)):
            if number % 2:
                start = clock()
                os.write(fd, chunk)
                os.fsync(fd)
                middle = clock()
                wal.append(batch)
                wal.sync()
                end = clock()
                floor_seconds += middle - start
                wal_seconds += end - middle
            else:
                start = clock()
                wal.append(batch)
                wal.sync()
                middle = clock()
                os.write(fd, chunk)
                os.fsync(fd)
                end = clock()
                wal_seconds += middle - start
                floor_seconds += end - middle
    finally:
        os.close(fd)
        floor_path.unlink()
        wal.close()
    return wal_seconds, floor_seconds


@pytest.mark.benchmark(group="raftlog-ratio")
def test_wal_vs_write_fsync_floor_ratio(benchmark, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    count = entry_count(benchmark.disabled)
    batches = make_batches(count)
    wal_seconds, floor_seconds = run_paired(tmp_path / "paired", batches)
    ratio = wal_seconds / floor_seconds
    benchmark.extra_info.update(wal_s=wal_seconds, floor_s=floor_seconds, ratio=ratio)
    with capsys.disabled():
        print(
            f"\nWAL {count} entries in batches of {BATCH}, fsync per batch "
            f"(interleaved with the floor): WAL {wal_seconds:.3f} s, "
            f"write+fsync floor {floor_seconds:.3f} s, "
            f"ratio {ratio:.2f}x (target <= 1.2x)"
        )
    wal = WAL(tmp_path / "paired")
    _, recovered = wal.open()
    wal.close()
    assert recovered == [entry for batch in batches for entry in batch]
    benchmark.pedantic(run_wal, args=(tmp_path / "wal", batches[:10]), rounds=1)
