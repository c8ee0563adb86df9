"""State-machine snapshots: the byte format (prez.kv.snapshot) and the files
(prez.storage.snapshot): round trips, determinism, damage detection,
fallback, retention and chunked transfer."""

from __future__ import annotations

import gc
import math
import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prez.kv.keyspace import KVStore
from prez.kv.snapshot import (
    CHUNK_SIZE,
    SnapshotError,
    SnapshotMeta,
    dump,
    dumps,
    load,
    loads,
    verify,
)
from prez.kv.zsets import ZSet
from prez.storage.snapshot import (
    SnapshotInfo,
    SnapshotReceiver,
    iter_chunks,
    list_snapshots,
    load_newest_valid,
    open_snapshot_reader,
    read_snapshot,
    snapshot_dir,
    snapshot_name,
    verify_snapshot,
    write_snapshot,
)

ROOT = Path(__file__).resolve().parent.parent
META = SnapshotMeta(
    index=1234, term=7, members=["n1 127.0.0.1:7001", "n2 127.0.0.1:7002"], created_ms=1
)


# -- helpers ------------------------------------------------------------------------


def stream(
    data: bytes, piece: int | None = None
) -> tuple[Callable[[int], bytes], list[int]]:
    """A read(n) over `data` giving at most `piece` bytes per call, and the
    list of sizes asked for."""
    position = 0
    asked: list[int] = []

    def read(count: int) -> bytes:
        nonlocal position
        asked.append(count)
        take = count if piece is None else min(count, piece)
        chunk = data[position : position + take]
        position += len(chunk)
        return chunk

    return read, asked


def assert_same_store(expected: KVStore, actual: KVStore) -> None:
    assert len(expected.dbs) == len(actual.dbs)
    for want, got in zip(expected.dbs, actual.dbs, strict=True):
        # Order matters too: keys and hash fields keep insertion order.
        assert list(got.data) == list(want.data)
        for key, value in want.data.items():
            other = got.data[key]
            assert type(other) is type(value)
            assert other == value
            if type(value) is dict:
                assert list(other.items()) == list(value.items())
            if type(value) is ZSet:
                assert other.items() == value.items()
                assert other.scores == value.scores
        assert got.expires == want.expires


def sample_store(databases: int = 16) -> KVStore:
    store = KVStore(databases)
    db0 = store.dbs[0]
    db0.data[b"plain"] = b"value"
    db0.data[b""] = b""  # empty key and value
    db0.data[bytes(range(256))] = bytes(range(255, -1, -1))
    db0.data[b"hash"] = {b"f1": b"v1", b"\x00f2": b"\xff", b"": b""}
    db0.data[b"list"] = deque([b"a", b"", b"a", b"\r\n"])
    db0.data[b"set"] = {b"x", b"y", b"\x00", b""}
    db0.data[b"zset"] = ZSet.from_items(
        [
            (b"low", -math.inf),
            (b"high", math.inf),
            (b"mid", 0.5),
            (b"tie-a", 1.0),
            (b"tie-b", 1.0),
            (b"tiny", 5e-324),
            (b"neg-zero", -0.0),
        ]
    )
    db0.expires[b"plain"] = 1_700_000_000_000
    db0.expires[b"hash"] = 5  # long past: still part of the replicated state
    db0.expires[b"zset"] = 2**62
    last = store.dbs[databases - 1]
    last.data[b"only"] = deque([b"one"])
    last.expires[b"only"] = -1
    return store


def small_snapshot() -> bytes:
    store = KVStore(4)
    db = store.dbs[1]
    db.data[b"s"] = b"v"
    db.data[b"t"] = b"w"
    db.expires[b"t"] = 99
    db.data[b"h"] = {b"f": b"v"}
    db.data[b"l"] = deque([b"a", b"b"])
    db.data[b"S"] = {b"m", b"n"}
    db.data[b"z"] = ZSet.from_items([(b"a", 1.0), (b"b", -math.inf)])
    db.expires[b"z"] = 1000
    store.dbs[3].data[b"k"] = b"x"
    return dumps(store, SnapshotMeta(5, 2, ["a 127.0.0.1:1"], 3))


# -- the format: round trips --------------------------------------------------------


def test_round_trip_of_every_type_with_expiries_and_meta() -> None:
    store = sample_store()
    data = dumps(store, META)
    meta, loaded = loads(data, 16)
    assert meta == META
    assert_same_store(store, loaded)


def test_round_trip_through_tiny_reads_and_returns_bytes_written() -> None:
    store = sample_store()
    pieces: list[bytes] = []
    written = dump(store, pieces.append, META)
    data = b"".join(pieces)
    assert written == len(data)
    for piece in (1, 3, 64):
        read, _ = stream(data, piece)
        meta, loaded = load(read, 16)
        assert meta == META
        assert_same_store(store, loaded)


def test_empty_store_and_sixteen_populated_databases() -> None:
    empty = KVStore(16)
    meta, loaded = loads(dumps(empty, SnapshotMeta(0, 0, [], 0)), 16)
    assert meta == SnapshotMeta(0, 0, [], 0)
    assert all(not db.data and not db.expires for db in loaded.dbs)

    full = KVStore(16)
    for index, db in enumerate(full.dbs):
        if index % 3:  # leave some empty between populated ones
            db.data[b"k%d" % index] = b"v%d" % index
            db.expires[b"k%d" % index] = index
    _, loaded = loads(dumps(full, META), 16)
    assert_same_store(full, loaded)


def test_big_values_and_collections_spanning_chunks() -> None:
    store = KVStore(2)
    db = store.dbs[1]
    db.data[b"big"] = os.urandom(CHUNK_SIZE + 12345)
    db.data[b"after"] = b"small"
    db.data[b"bighash"] = {b"f%d" % i: b"v" * (i % 50) for i in range(40_000)}
    db.data[b"biglist"] = deque(b"%d" % i * 100 for i in range(15_000))
    db.data[b"bigzset"] = ZSet.from_items((b"m%d" % i, i / 7) for i in range(60_000))
    pieces: list[bytes] = []
    dump(store, pieces.append, META)
    assert len(pieces) > 3
    # Chunks of about CHUNK_SIZE: only a value of that size passes on its own.
    assert max(len(p) for p in pieces if p is not db.data[b"big"]) < 2 * CHUNK_SIZE
    data = b"".join(pieces)
    read, asked = stream(data)
    _, loaded = load(read, 2)
    assert_same_store(store, loaded)
    assert max(asked) <= CHUNK_SIZE


def test_dump_refuses_unknown_value_types() -> None:
    store = KVStore(1)
    store.dbs[0].data[b"odd"] = 12
    with pytest.raises(ValueError, match="unknown value type int"):
        dumps(store, META)
    store.dbs[0].data[b"odd"] = b"fine"
    store.dbs[0].expires[b"odd"] = 2**63
    with pytest.raises(ValueError, match="cannot be snapshotted"):
        dumps(store, META)


def test_load_pauses_the_collector_and_restores_it() -> None:
    data = dumps(sample_store(), META)
    seen: list[bool] = []
    read, _ = stream(data, 100)

    def watching_read(count: int) -> bytes:
        seen.append(gc.isenabled())
        return read(count)

    assert gc.isenabled()
    load(watching_read, 16)
    assert gc.isenabled() and not any(seen)
    with pytest.raises(SnapshotError):
        loads(data[:-1], 16)
    assert gc.isenabled()
    gc.disable()
    try:
        loads(data, 16)
        assert not gc.isenabled()  # the caller's choice is kept
    finally:
        gc.enable()


def test_load_into_fewer_databases() -> None:
    store = KVStore(16)
    store.dbs[2].data[b"k"] = b"v"
    _, loaded = loads(dumps(store, META), 4)
    assert len(loaded.dbs) == 4 and loaded.dbs[2].data == {b"k": b"v"}
    store.dbs[9].data[b"k"] = b"v"
    with pytest.raises(SnapshotError, match="database 9 but only 4 databases"):
        loads(dumps(store, META), 4)


values = st.one_of(
    st.binary(max_size=40),
    st.dictionaries(st.binary(max_size=8), st.binary(max_size=8), max_size=6),
    st.lists(st.binary(max_size=8), max_size=6).map(deque),
    st.sets(st.binary(max_size=8), max_size=6),
    st.dictionaries(st.binary(max_size=8), st.floats(allow_nan=False), max_size=6).map(
        lambda scores: ZSet.from_items(scores.items())
    ),
)
databases_strategy = st.dictionaries(
    st.integers(0, 15),
    st.dictionaries(
        st.binary(max_size=12),
        st.tuples(values, st.none() | st.integers(-(2**63), 2**63 - 1)),
        max_size=8,
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contents=databases_strategy, piece=st.integers(1, 100))
def test_random_keyspaces_round_trip(
    contents: dict[int, dict[bytes, tuple[Any, int | None]]], piece: int
) -> None:
    store = KVStore(16)
    for index, keys in contents.items():
        db = store.dbs[index]
        for key, (value, when) in keys.items():
            db.data[key] = value
            if when is not None:
                db.expires[key] = when
    data = dumps(store, META)
    read, _ = stream(data, piece)
    meta, loaded = load(read, 16)
    assert meta == META
    assert_same_store(store, loaded)
    key_count = sum(len(keys) for keys in contents.values())
    assert verify(stream(data, piece)[0]) == (META, key_count)
    assert verify(stream(data)[0]) == (META, key_count)
    assert dumps(loaded, META) == data


# -- the format: determinism ----------------------------------------------------------

DETERMINISM_SCRIPT = """
import hashlib, sys
from collections import deque
from prez.kv.keyspace import KVStore
from prez.kv.snapshot import SnapshotMeta, dumps
from prez.kv.zsets import ZSet

store = KVStore(16)
db = store.dbs[0]
members = [b"member-%d" % i for i in range(200)]
db.data[b"set"] = set(members)
db.data[b"str"] = b"v"
db.data[b"hash"] = {b"b": b"1", b"a": b"2"}
db.data[b"zset"] = ZSet.from_items((m, len(m) % 3) for m in members)
db.expires[b"str"] = 42
store.dbs[5].data[b"list"] = deque([b"x", b"y"])
store.dbs[5].data[b"set2"] = {b"q%d" % i for i in range(100)}
data = dumps(store, SnapshotMeta(3, 1, ["n1 127.0.0.1:1"], 0))
print(hashlib.sha256(data).hexdigest(), hashlib.sha256(repr(list(db.data[b"set"])).encode()).hexdigest())
"""


def test_equal_stores_give_identical_bytes_across_hash_seeds() -> None:
    results = []
    for seed in ("0", "1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        done = subprocess.run(
            [sys.executable, "-c", DETERMINISM_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        results.append(done.stdout.split())
    snapshot_digests = {digest for digest, _ in results}
    iteration_orders = {order for _, order in results}
    # The seeds really do change set iteration order, yet not the snapshot.
    assert len(iteration_orders) > 1
    assert len(snapshot_digests) == 1


def test_set_and_zset_insertion_order_does_not_change_bytes() -> None:
    members = [b"m%d" % i for i in range(50)]
    one, two = KVStore(1), KVStore(1)
    one.dbs[0].data[b"s"] = set(members)
    two.dbs[0].data[b"s"] = set(reversed(members))
    one.dbs[0].data[b"z"] = ZSet.from_items((m, 1.0) for m in members)
    zset = ZSet()
    for member in reversed(members):
        zset.add(member, 1.0)
    two.dbs[0].data[b"z"] = zset
    assert dumps(one, META) == dumps(two, META)


# -- the format: damage -----------------------------------------------------------------


def test_every_flipped_byte_is_detected() -> None:
    data = small_snapshot()
    for position in range(len(data)):
        for mask in (0x01, 0xFF):
            damaged = bytearray(data)
            damaged[position] ^= mask
            with pytest.raises(SnapshotError) as caught:
                loads(bytes(damaged), 4)
            assert str(caught.value)
            with pytest.raises(SnapshotError):
                verify(stream(bytes(damaged))[0])


def test_every_truncation_is_detected_with_and_without_known_size() -> None:
    data = small_snapshot()
    for length in range(len(data)):
        cut = data[:length]
        with pytest.raises(SnapshotError, match="truncated|too short|remain"):
            loads(cut, 4)
        with pytest.raises(SnapshotError, match="truncated"):
            load(stream(cut, 5)[0], 4)
        with pytest.raises(SnapshotError):
            verify(stream(cut)[0])


def test_flipped_byte_in_a_value_is_a_checksum_mismatch() -> None:
    data = bytearray(small_snapshot())
    position = data.index(b"\x01\x00\x00\x00\x01\x00\x00\x00sv") + 9  # value b"v"
    data[position] ^= 0x20
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        loads(bytes(data), 4)


def test_bad_magic_version_and_trailing_bytes() -> None:
    data = small_snapshot()
    with pytest.raises(SnapshotError, match="not a Prez snapshot"):
        loads(b"NOTASNAP" + data[8:], 4)
    with pytest.raises(SnapshotError, match="format version 513"):
        loads(data[:8] + b"\x01\x02" + data[10:], 4)
    with pytest.raises(SnapshotError, match="after the snapshot trailer"):
        loads(data + b"\x00", 4)
    with pytest.raises(SnapshotError, match="after the snapshot trailer"):
        load(stream(data + b"junk", 7)[0], 4)


def test_impossible_lengths_are_refused_without_allocating() -> None:
    store = KVStore(1)
    store.dbs[0].data[b"key"] = b"value"
    data = dumps(store, META)
    record = data.index(b"\x01\x03\x00\x00\x00\x05\x00\x00\x00key")
    huge = bytearray(data)
    huge[record + 5 : record + 9] = b"\xff\xff\xff\xff"  # value length 4 GiB
    with pytest.raises(SnapshotError, match=r"needs \d+ bytes but only"):
        loads(bytes(huge), 1)
    read, asked = stream(bytes(huge))
    with pytest.raises(SnapshotError, match="truncated"):
        load(read, 1)
    assert max(asked) <= CHUNK_SIZE  # never asked the stream for the bad length

    store.dbs[0].data[b"key"] = deque([b"a"])
    data = dumps(store, META)
    count_at = data.index(b"key\x01\x00\x00\x00") + 3
    many = bytearray(data)
    many[count_at : count_at + 4] = b"\x00\x00\x00\x40"
    with pytest.raises(SnapshotError, match="claims 1073741824 elements"):
        loads(bytes(many), 1)


def test_nan_scores_and_duplicates_are_refused() -> None:
    store = KVStore(1)
    store.dbs[0].data[b"z"] = ZSet.from_items([(b"m", 2.0)])
    data = bytearray(dumps(store, META))
    score_at = data.index(b"\x01\x00\x00\x00m") + 5
    data[score_at : score_at + 8] = bytes.fromhex("000000000000f87f")  # NaN
    with pytest.raises(SnapshotError, match="NaN score"):
        loads(bytes(data), 1)

    store.dbs[0].data = {b"s": {b"a", b"b"}}
    data = bytearray(dumps(store, META))
    member_b = data.index(b"\x01\x00\x00\x00b")
    data[member_b + 4] = ord("a")
    with pytest.raises(SnapshotError, match="duplicate elements"):
        loads(bytes(data), 1)


# -- files --------------------------------------------------------------------------------


def file_names(node: Path) -> list[str]:
    return sorted(os.listdir(snapshot_dir(node)))


def meta_at(index: int, term: int = 1) -> SnapshotMeta:
    return SnapshotMeta(index, term, ["n1 127.0.0.1:7001"], 1000 + index)


def flip_byte(path: str, position: int) -> None:
    with open(path, "r+b") as file:
        file.seek(position)
        byte = file.read(1)
        file.seek(position)
        file.write(bytes([byte[0] ^ 0x40]))


def test_write_snapshot_durably_and_read_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    store = sample_store()
    info = write_snapshot(tmp_path, store, META)
    directory = snapshot_dir(tmp_path)
    assert info.path == os.path.join(directory, snapshot_name(1234, 7))
    assert os.path.basename(info.path) == f"snap-{1234:020d}-{7:020d}.snap"
    assert (info.index, info.term) == (1234, 7)
    assert info.size == os.path.getsize(info.path)
    assert info.seconds > 0
    assert file_names(tmp_path) == [os.path.basename(info.path)]
    # The new snapshots directory's own entry, the temp file's data, then
    # the directory holding the rename.
    assert len(synced) == 3
    assert synced[0] == str(tmp_path)
    assert synced[1].endswith(".snap.tmp") and synced[2] == directory
    meta, loaded = read_snapshot(info.path, 16)
    assert meta == META
    assert_same_store(store, loaded)
    assert verify_snapshot(info.path) == (META, sum(len(db.data) for db in store.dbs))
    assert list_snapshots(tmp_path) == [
        SnapshotInfo(info.path, info.index, info.term, info.size)
    ]

    synced.clear()
    write_snapshot(tmp_path, store, meta_at(2000), fsync=False)
    assert synced == []


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    good = write_snapshot(tmp_path, sample_store(), meta_at(10))
    store = KVStore(1)
    store.dbs[0].data[b"a"] = b"fine"
    store.dbs[0].data[b"b"] = 3.5
    with pytest.raises(ValueError):
        write_snapshot(tmp_path, store, meta_at(20))
    assert file_names(tmp_path) == [os.path.basename(good.path)]


def test_retention_keeps_the_newest_two(tmp_path: Path) -> None:
    store = sample_store()
    written = [
        write_snapshot(tmp_path, store, meta_at(index)) for index in (5, 9, 30, 31)
    ]
    assert [info.index for info in list_snapshots(tmp_path)] == [31, 30]
    assert file_names(tmp_path) == sorted(
        os.path.basename(info.path) for info in written[2:]
    )


def test_newest_corrupt_falls_back_to_the_previous(tmp_path: Path) -> None:
    old_store = sample_store()
    old = write_snapshot(tmp_path, old_store, meta_at(100, 2))
    new_store = sample_store()
    new_store.dbs[0].data[b"newer"] = b"yes"
    new = write_snapshot(tmp_path, new_store, meta_at(200, 3))
    flip_byte(new.path, new.size // 2)

    found = load_newest_valid(tmp_path, 16)
    assert found is not None
    meta, store, info, warnings = found
    assert meta == meta_at(100, 2) and info.path == old.path
    assert_same_store(old_store, store)
    assert len(warnings) == 1
    assert new.path in warnings[0] and "checksum mismatch" in warnings[0]
    # The bad file is set aside, so retention cannot keep it as "previous".
    assert file_names(tmp_path) == sorted(
        [os.path.basename(old.path), os.path.basename(new.path) + ".corrupt"]
    )


def test_all_corrupt_is_an_error_naming_every_file(tmp_path: Path) -> None:
    first = write_snapshot(tmp_path, sample_store(), meta_at(100))
    second = write_snapshot(tmp_path, sample_store(), meta_at(200))
    flip_byte(first.path, 3)
    with open(second.path, "r+b") as file:
        file.truncate(second.size - 1)
    before = file_names(tmp_path)
    with pytest.raises(SnapshotError) as caught:
        load_newest_valid(tmp_path, 16)
    message = str(caught.value)
    assert first.path in message and second.path in message
    assert "not a Prez snapshot" in message and "truncated" in message
    assert file_names(tmp_path) == before  # nothing renamed or removed


def test_header_must_match_the_file_name(tmp_path: Path) -> None:
    older = write_snapshot(tmp_path, sample_store(), meta_at(10))
    wrong = write_snapshot(tmp_path, sample_store(), meta_at(20))
    renamed = os.path.join(snapshot_dir(tmp_path), snapshot_name(30, 1))
    os.rename(wrong.path, renamed)
    found = load_newest_valid(tmp_path, 16)
    assert found is not None
    assert found[2].path == older.path
    assert renamed in found[3][0] and "header says index 20" in found[3][0]


def test_no_snapshots_and_leftover_temp_files(tmp_path: Path) -> None:
    assert load_newest_valid(tmp_path, 16) is None
    directory = Path(snapshot_dir(tmp_path))
    directory.mkdir()
    leftover = directory / (snapshot_name(50, 1) + ".tmp")
    leftover.write_bytes(b"half a snapshot")
    found = load_newest_valid(tmp_path, 16)
    assert found is None
    assert not leftover.exists()

    good = write_snapshot(tmp_path, sample_store(), meta_at(40))
    leftover.write_bytes(b"half a snapshot")
    (directory / "recv-abc.snap.tmp").write_bytes(b"half a transfer")
    found = load_newest_valid(tmp_path, 16)
    assert found is not None and found[2].path == good.path
    warnings = found[3]
    assert len(warnings) == 2
    assert any(str(leftover) in w for w in warnings)
    assert file_names(tmp_path) == [os.path.basename(good.path)]


# -- transfer ------------------------------------------------------------------------------


def send(source: str, node: Path, chunk_size: int) -> SnapshotInfo:
    receiver = SnapshotReceiver(node)
    offset = 0
    for chunk in iter_chunks(source, chunk_size):
        receiver.write_chunk(offset, chunk)
        offset += len(chunk)
    return receiver.finish()


def test_chunks_in_order_give_an_identical_file(tmp_path: Path) -> None:
    store = sample_store()
    store.dbs[3].data[b"bulk"] = os.urandom(3 * CHUNK_SIZE // 2)
    source = write_snapshot(tmp_path / "leader", store, META)
    with open_snapshot_reader(source.path) as file:
        original = file.read()
    for chunk_size in (CHUNK_SIZE, 4099):
        node = tmp_path / f"follower-{chunk_size}"
        info = send(source.path, node, chunk_size)
        assert (info.index, info.term, info.size) == (1234, 7, len(original))
        assert os.path.basename(info.path) == os.path.basename(source.path)
        assert Path(info.path).read_bytes() == original
        assert file_names(node) == [os.path.basename(info.path)]
        meta, loaded = read_snapshot(info.path, 16)
        assert meta == META
        assert_same_store(store, loaded)


def test_received_snapshot_applies_retention(tmp_path: Path) -> None:
    node = tmp_path / "follower"
    for index in (1, 2):
        write_snapshot(node, sample_store(), meta_at(index))
    source = write_snapshot(tmp_path / "leader", sample_store(), meta_at(50))
    send(source.path, node, 1000)
    assert [info.index for info in list_snapshots(node)] == [50, 2]


def test_gap_and_overlap_are_refused(tmp_path: Path) -> None:
    source = write_snapshot(tmp_path / "leader", sample_store(), META)
    data = Path(source.path).read_bytes()
    receiver = SnapshotReceiver(tmp_path / "follower")
    receiver.write_chunk(0, data[:100])
    with pytest.raises(SnapshotError, match="offset 150 but 100 bytes.*gap"):
        receiver.write_chunk(150, data[150:200])
    with pytest.raises(SnapshotError, match="offset 50 but 100 bytes.*overlap"):
        receiver.write_chunk(50, data[50:200])
    # A refused chunk changes nothing: the transfer can go on.
    receiver.write_chunk(100, data[100:])
    info = receiver.finish()
    assert Path(info.path).read_bytes() == data


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_bad_transfer_leaves_no_file(tmp_path: Path, damage: str) -> None:
    source = write_snapshot(tmp_path / "leader", sample_store(), META)
    data = bytearray(Path(source.path).read_bytes())
    if damage == "flip":
        data[len(data) // 3] ^= 0x01
    elif damage == "truncate":
        del data[-1:]
    else:
        data.clear()
    node = tmp_path / "follower"
    receiver = SnapshotReceiver(node)
    receiver.write_chunk(0, bytes(data))
    with pytest.raises(SnapshotError, match="received snapshot rejected"):
        receiver.finish()
    assert file_names(node) == []
    assert list_snapshots(node) == []


def test_abort_and_context_manager_remove_the_temp_file(tmp_path: Path) -> None:
    node = tmp_path / "follower"
    receiver = SnapshotReceiver(node)
    receiver.write_chunk(0, b"partial")
    assert os.path.exists(receiver.temp_path)
    receiver.abort()
    receiver.abort()
    assert file_names(node) == []
    with pytest.raises(RuntimeError):
        receiver.write_chunk(7, b"more")

    with pytest.raises(ConnectionError), SnapshotReceiver(node) as receiving:
        receiving.write_chunk(0, b"partial")
        raise ConnectionError("leader went away")
    assert file_names(node) == []
