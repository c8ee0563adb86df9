"""WAL record framing: CRC32C vectors, round trips, torn tails and corruption.

Every test runs against the compiled module and its plain-Python twin, and
the two are checked to produce identical bytes.
"""

from __future__ import annotations

import random
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prez._core import log as compiled_log
from prez._core import log_py
from prez.raft.types import Entry

IMPLS = [pytest.param(compiled_log, id="compiled"), pytest.param(log_py, id="twin")]


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


def sample_entries(count: int, first_index: int = 1, seed: int = 0) -> list[Entry]:
    rng = random.Random(seed)
    return [
        Entry(
            first_index + k,
            1 + k // 3,
            rng.randrange(3),
            rng.randbytes(rng.randrange(40)),
        )
        for k in range(count)
    ]


def record_bounds(entries: list[Entry]) -> list[int]:
    """Offsets where each record starts, plus the end of the last one."""
    bounds = [0]
    for entry in entries:
        bounds.append(bounds[-1] + compiled_log.RECORD_OVERHEAD + len(entry.data))
    return bounds


entry_lists = st.lists(
    st.builds(
        Entry,
        index=st.integers(0, 2**64 - 1),
        term=st.integers(0, 2**64 - 1),
        kind=st.integers(0, 255),
        data=st.binary(max_size=300),
    ),
    max_size=40,
)


# RFC 3720 appendix B.4 plus the common "123456789" check value.
CRC32C_VECTORS = [
    (b"", 0x00000000),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
]


@pytest.mark.parametrize(("data", "expected"), CRC32C_VECTORS)
def test_crc32c_known_vectors(impl: ModuleType, data: bytes, expected: int) -> None:
    assert impl.crc32c(data) == expected


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_crc32c_compiled_matches_twin_and_continues(head: bytes, tail: bytes) -> None:
    whole = compiled_log.crc32c(head + tail)
    assert whole == log_py.crc32c(head + tail)
    # Continuing from a previous value must equal one pass over the whole.
    assert compiled_log.crc32c(tail, compiled_log.crc32c(head)) == whole


@settings(max_examples=150, deadline=None)
@given(entry_lists)
def test_round_trip_and_identical_bytes(entries: list[Entry]) -> None:
    framed = compiled_log.frame_entries(entries)
    assert framed == log_py.frame_entries(entries)
    for impl in (compiled_log, log_py):
        result = impl.scan_records(framed)
        assert result.entries == entries
        assert result.status == impl.ScanStatus.CLEAN
        assert result.end == len(framed)
        assert result.bad_offset == -1
        assert result.offsets == record_bounds(entries)[:-1]


def test_offsets_out_are_counted_from_base(impl: ModuleType) -> None:
    entries = sample_entries(5)
    offsets: list[int] = [7]  # appended to, never replaced
    framed = impl.frame_entries(entries, 1000, offsets)
    assert offsets == [7] + [1000 + b for b in record_bounds(entries)[:-1]]
    assert len(framed) == record_bounds(entries)[-1]


def test_scan_from_start_offset(impl: ModuleType) -> None:
    entries = sample_entries(6)
    framed = impl.frame_entries(entries)
    bounds = record_bounds(entries)
    result = impl.scan_records(framed, bounds[2])
    assert result.entries == entries[2:]
    assert result.offsets == bounds[2:-1]
    assert result.status == impl.ScanStatus.CLEAN
    with pytest.raises(ValueError):
        impl.scan_records(framed, len(framed) + 1)
    with pytest.raises(ValueError):
        impl.scan_records(framed, -1)


def test_empty_buffer_is_clean(impl: ModuleType) -> None:
    result = impl.scan_records(b"")
    assert (result.entries, result.end, result.status) == ([], 0, impl.ScanStatus.CLEAN)


def test_accepts_bytearray_and_memoryview(impl: ModuleType) -> None:
    entries = sample_entries(3)
    framed = impl.frame_entries(entries)
    assert impl.scan_records(bytearray(framed)).entries == entries
    assert impl.scan_records(memoryview(framed)).entries == entries


def test_torn_tail_at_every_cut_point(impl: ModuleType) -> None:
    entries = sample_entries(5)
    framed = impl.frame_entries(entries)
    bounds = record_bounds(entries)
    for cut in range(len(framed) + 1):
        result = impl.scan_records(framed[:cut])
        complete = sum(1 for b in bounds[1:] if b <= cut)
        assert result.entries == entries[:complete], cut
        assert result.end == bounds[complete], cut
        if cut in bounds:
            assert result.status == impl.ScanStatus.CLEAN, cut
        else:
            assert result.status == impl.ScanStatus.TORN, cut
            assert result.bad_offset == bounds[complete], cut
            assert result.reason


def test_flipped_byte_before_the_tail_is_corruption(impl: ModuleType) -> None:
    entries = sample_entries(5)
    framed = impl.frame_entries(entries)
    bounds = record_bounds(entries)
    last_record_start = bounds[-2]
    for pos in range(last_record_start):
        damaged = bytearray(framed)
        damaged[pos] ^= 0x5A
        result = impl.scan_records(bytes(damaged))
        record = max(k for k, b in enumerate(bounds) if b <= pos)
        assert result.status == impl.ScanStatus.CORRUPT, pos
        assert result.bad_offset == bounds[record], pos
        assert result.end == bounds[record], pos
        assert result.entries == entries[:record], pos


def test_flipped_byte_in_last_record_is_torn(impl: ModuleType) -> None:
    """Damage with nothing good after it cannot be told from a crash mid-write."""
    entries = sample_entries(4)
    framed = impl.frame_entries(entries)
    last_record_start = record_bounds(entries)[-2]
    for pos in range(last_record_start, len(framed)):
        damaged = bytearray(framed)
        damaged[pos] ^= 0x01
        result = impl.scan_records(bytes(damaged))
        assert result.status == impl.ScanStatus.TORN, pos
        assert result.end == last_record_start, pos
        assert result.entries == entries[:-1], pos


def test_zero_filled_tail_is_torn(impl: ModuleType) -> None:
    """Some filesystems extend a file with zeros when a crash interrupts a write."""
    entries = sample_entries(3)
    framed = impl.frame_entries(entries)
    result = impl.scan_records(framed + bytes(4096))
    assert result.status == impl.ScanStatus.TORN
    assert result.end == len(framed)
    assert "impossible record length 0" in result.reason
    assert result.entries == entries


def test_garbage_between_good_records_is_corruption(impl: ModuleType) -> None:
    first = impl.frame_entries(sample_entries(2))
    second = impl.frame_entries(sample_entries(2, first_index=3, seed=1))
    result = impl.scan_records(first + bytes(64) + second)
    assert result.status == impl.ScanStatus.CORRUPT
    assert result.bad_offset == len(first)


def test_rejects_unframeable_entries(impl: ModuleType) -> None:
    with pytest.raises(TypeError):
        impl.frame_entries([Entry(1, 1, 0, bytearray(b"x"))])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        impl.frame_entries([Entry(1, 1, 0, None)])  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        impl.frame_entries([Entry(1, 1, 256, b"")])
    with pytest.raises(OverflowError):
        impl.frame_entries([Entry(-1, 1, 0, b"")])
    with pytest.raises(OverflowError):
        impl.frame_entries([Entry(1, 2**64, 0, b"")])
