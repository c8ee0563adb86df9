"""Fuzzing what start-up reads from disk: WAL recovery, the hard state, snapshots.

Property-based (hypothesis), bounded for CI. A damaged file must give
either exactly what was written (a prefix of the log, cut only at a torn
tail of the last segment) or a StorageError naming the file; never another
exception, never data that was not written. Failures found are kept below
as `@example` regression cases.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prez._core.log import RECORD_OVERHEAD
from prez.errors import StorageError
from prez.kv.keyspace import KVStore
from prez.kv.snapshot import SnapshotError, SnapshotMeta, dumps, loads
from prez.raft.types import Entry, HardState
from prez.storage import WAL
from prez.storage.state import decode_hard_state, encode_hard_state
from prez.storage.wal import segment_name

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

entry_data = st.binary(min_size=0, max_size=60)
# (where in the whole log as a fraction, what to do there)
damage = st.tuples(
    st.floats(0, 1, exclude_max=True),
    st.sampled_from(["flip", "zero", "truncate", "junk"]),
    st.integers(1, 255),
)


def _write_log(node_dir: str, datas: list[bytes], segment_bytes: int) -> list[Entry]:
    entries = [Entry(i + 1, 1 + i // 7, i % 3, d) for i, d in enumerate(datas)]
    wal = WAL(node_dir, segment_bytes=segment_bytes, fsync=False)
    wal.open()
    for start in range(0, len(entries), 3):
        wal.append(entries[start : start + 3])
        wal.sync()
    wal.set_hard_state(HardState(entries[-1].term if entries else 0, "n1", 0))
    wal.close()
    return entries


def _segments(node_dir: str) -> list[Path]:
    return sorted(Path(node_dir, "raft").glob("wal-*.log"))


def _damage(files: list[Path], where: float, how: str, value: int) -> Path:
    """Damage the byte at `where` of all the files end to end; the file hit."""
    sizes = [f.stat().st_size for f in files]
    offset = int(where * sum(sizes))
    for path, size in zip(files, sizes, strict=True):
        if offset < size:
            data = bytearray(path.read_bytes())
            if how == "flip":
                data[offset] ^= value
            elif how == "zero":
                data[offset:] = bytes(len(data) - offset)
            elif how == "truncate":
                del data[offset:]
            else:
                data[offset:offset] = bytes([value]) * value
            path.write_bytes(bytes(data))
            return path
        offset -= size
    raise AssertionError("offset beyond the files")


@FUZZ
@given(
    datas=st.lists(entry_data, min_size=1, max_size=30),
    hit=damage,
    segment_records=st.integers(2, 12),
)
@example(datas=[b"a"] * 10, hit=(0.99, "truncate", 1), segment_records=4)
@example(datas=[b"a"] * 10, hit=(0.1, "flip", 1), segment_records=4)
def test_damaged_wal_recovers_a_prefix_or_names_the_file(
    datas: list[bytes], hit: tuple[float, str, int], segment_records: int
) -> None:
    with tempfile.TemporaryDirectory() as node_dir:
        written = _write_log(
            node_dir, datas, segment_bytes=segment_records * (RECORD_OVERHEAD + 30)
        )
        files = _segments(node_dir)
        damaged = _damage(files, *hit)
        try:
            wal = WAL(node_dir, fsync=False)
            _, recovered = wal.open()
            wal.close()
        except StorageError as e:
            # Named by file: the damaged one, or its neighbour at a gap.
            assert any(f.name in str(e) for f in files), str(e)
            return
        # Recovery may only ever give back what was written, in order.
        assert recovered == written[: len(recovered)]
        if len(recovered) < len(written):
            # Entries are dropped only by cutting a torn tail of the last segment.
            assert damaged == files[-1]


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_as_a_segment_never_crash_recovery(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as node_dir:
        raft = Path(node_dir, "raft")
        raft.mkdir()
        (raft / segment_name(1)).write_bytes(data)
        try:
            wal = WAL(node_dir, fsync=False)
            _, entries = wal.open()
            wal.close()
        except StorageError:
            return
        assert [e.index for e in entries] == list(range(1, len(entries) + 1))


@FUZZ
@given(
    state=st.builds(
        HardState,
        term=st.integers(0, 2**63),
        vote=st.text(max_size=40),
        commit=st.integers(0, 2**63),
    ),
    hit=st.tuples(st.integers(0, 200), st.integers(1, 255)),
)
def test_damaged_hard_state_is_refused_by_name(
    state: HardState, hit: tuple[int, int]
) -> None:
    data = bytearray(encode_hard_state(state))
    assert decode_hard_state(bytes(data), "state") == state
    position, value = hit
    if position < len(data):
        data[position] ^= value
    else:
        del data[position % len(data) :]
    try:
        decoded = decode_hard_state(bytes(data), "/x/raft/state")
    except StorageError as e:
        assert str(e).startswith("/x/raft/state: ")
    else:
        raise AssertionError(f"damaged hard state accepted: {decoded}")


def _store(
    keys: dict[bytes, bytes], hashes: dict[bytes, dict[bytes, bytes]]
) -> KVStore:
    store = KVStore(4)
    store.dbs[0].data.update(keys)
    for key, fields in hashes.items():
        store.dbs[1].data[key] = dict(fields)
    return store


@FUZZ
@given(
    keys=st.dictionaries(st.binary(max_size=12), st.binary(max_size=40), max_size=12),
    hashes=st.dictionaries(
        st.binary(max_size=8),
        st.dictionaries(st.binary(max_size=8), st.binary(max_size=8), min_size=1),
        max_size=4,
    ),
    hit=st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    truncate=st.booleans(),
)
def test_damaged_snapshot_is_refused_never_loaded_differently(
    keys: dict[bytes, bytes],
    hashes: dict[bytes, dict[bytes, bytes]],
    hit: tuple[float, int],
    truncate: bool,
) -> None:
    meta = SnapshotMeta(index=9, term=2, members=["voter a 127.0.0.1:1"])
    data = bytearray(dumps(_store(keys, hashes), meta))
    position = int(hit[0] * len(data))
    if truncate:
        del data[position:]
    else:
        data[position] ^= hit[1]
    try:
        loads(bytes(data), 4)
    except SnapshotError:
        return
    raise AssertionError(f"damaged snapshot loaded (byte {position} of {len(data)})")


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_as_a_snapshot_raise_snapshot_error(data: bytes) -> None:
    # Random bytes never pass the magic and the checksum.
    with pytest.raises(SnapshotError):
        loads(data, 4)
