"""Snapshot dump and load speed: MB/s and keys/s.

Two keyspaces: N small string keys (`key:<i>` -> `value-<i>`, the common
case), and N keys of mixed types (70% strings, some with expiries, 7.5% each
small hashes, lists, sets and sorted sets of 5 elements). Measured in memory
(`dump` into a list, `load` from it) and through files (`write_snapshot`
with fsync, `read_snapshot`). Target: 1,000,000 small string keys dump and
load in a few seconds. N is 1,000,000 when benchmarking, 20,000 under
`--benchmark-disable` (the CI smoke run); PREZ_BENCH_SNAPSHOT_KEYS overrides
both.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prez.kv.keyspace import KVStore
from prez.kv.snapshot import SnapshotMeta, dump, load
from prez.kv.zsets import ZSet
from prez.storage.snapshot import read_snapshot, write_snapshot

META = SnapshotMeta(1_000_000, 3, ["n1 127.0.0.1:7001", "n2 127.0.0.1:7002"], 0)
ROUNDS = 3


def key_count(benchmark_disabled: bool) -> int:
    override = os.environ.get("PREZ_BENCH_SNAPSHOT_KEYS")
    if override:
        return int(override)
    return 20_000 if benchmark_disabled else 1_000_000


def string_store(count: int) -> KVStore:
    store = KVStore(16)
    data = store.dbs[0].data
    for i in range(count):
        data[b"key:%d" % i] = b"value-%d" % i
    return store


def mixed_store(count: int) -> KVStore:
    store = KVStore(16)
    for i in range(count):
        db = store.dbs[i % 4]
        key = b"key:%d" % i
        kind = i % 40
        value: Any
        if kind < 28:
            value = b"value-%d" % i
            if kind < 7:
                db.expires[key] = 1_700_000_000_000 + i
        elif kind < 31:
            value = {b"field-%d" % j: b"%d" % (i + j) for j in range(5)}
        elif kind < 34:
            value = deque(b"item-%d" % (i + j) for j in range(5))
        elif kind < 37:
            value = {b"member-%d" % (i - j) for j in range(5)}
        else:
            value = ZSet.from_items((b"m%d" % j, (i + j) / 3) for j in range(5))
        db.data[key] = value
    return store


STORES: dict[str, Callable[[int], KVStore]] = {
    "strings": string_store,
    "mixed": mixed_store,
}


def report(
    ratio_report: list[str], what: str, keys: int, size: int, seconds: float
) -> None:
    ratio_report.append(
        f"snapshot {what}: {keys:,} keys, {size / 1e6:.1f} MB in {seconds:.3f} s: "
        f"{size / 1e6 / seconds:.0f} MB/s, {keys / seconds / 1e6:.2f} M keys/s"
    )


def same_keys(expected: KVStore, actual: KVStore) -> bool:
    return all(
        list(want.data) == list(got.data) and want.expires == got.expires
        for want, got in zip(expected.dbs, actual.dbs, strict=True)
    )


@pytest.mark.benchmark(group="snapshot-dump")
@pytest.mark.parametrize("kind", sorted(STORES))
def test_dump(benchmark, kind: str, ratio_report: list[str]) -> None:  # type: ignore[no-untyped-def]
    count = key_count(benchmark.disabled)
    store = STORES[kind](count)
    timings: list[float] = []

    def run() -> list[bytes]:
        pieces: list[bytes] = []
        start = time.perf_counter()
        dump(store, pieces.append, META)
        timings.append(time.perf_counter() - start)
        return pieces

    pieces = benchmark.pedantic(run, rounds=1 if benchmark.disabled else ROUNDS)
    size = sum(len(piece) for piece in pieces)
    report(ratio_report, f"dump {kind} (memory)", count, size, min(timings))


@pytest.mark.benchmark(group="snapshot-load")
@pytest.mark.parametrize("kind", sorted(STORES))
def test_load(benchmark, kind: str, ratio_report: list[str]) -> None:  # type: ignore[no-untyped-def]
    count = key_count(benchmark.disabled)
    store = STORES[kind](count)
    pieces: list[bytes] = []
    dump(store, pieces.append, META)
    size = sum(len(piece) for piece in pieces)
    timings: list[float] = []

    def run() -> KVStore:
        chunks = iter(pieces)
        start = time.perf_counter()
        _, loaded = load(lambda _: next(chunks, b""), 16, size=size)
        timings.append(time.perf_counter() - start)
        return loaded

    loaded = benchmark.pedantic(run, rounds=1 if benchmark.disabled else ROUNDS)
    assert same_keys(store, loaded)
    report(ratio_report, f"load {kind} (memory)", count, size, min(timings))


@pytest.mark.benchmark(group="snapshot-files")
@pytest.mark.parametrize("direction", ["write", "read"])
def test_files(  # type: ignore[no-untyped-def]
    benchmark, tmp_path: Path, direction: str, ratio_report: list[str]
) -> None:
    count = key_count(benchmark.disabled)
    store = string_store(count)
    info = write_snapshot(tmp_path, store, META)
    timings: list[float] = []

    def run() -> Any:
        start = time.perf_counter()
        if direction == "write":
            result: Any = write_snapshot(tmp_path, store, META)
        else:
            result = read_snapshot(info.path, 16)
        timings.append(time.perf_counter() - start)
        return result

    result = benchmark.pedantic(run, rounds=1 if benchmark.disabled else ROUNDS)
    if direction == "read":
        assert same_keys(store, result[1])
    label = "write_snapshot with fsync" if direction == "write" else "read_snapshot"
    report(ratio_report, f"{label} strings (file)", count, info.size, min(timings))
