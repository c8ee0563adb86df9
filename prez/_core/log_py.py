"""WAL record framing and CRC32C in plain Python: the twin of `prez._core.log`.

Same API and the same bytes as the compiled module, written for clarity;
tests use it as the oracle. It is never picked as a silent fallback.

A record is `u32 payload length | u32 CRC32C of payload | payload`, with the
payload `u64 index | u64 term | u8 kind | data`, all little-endian.

Pure computation over bytes: no I/O, and nothing from prez.server or
prez.storage may be imported here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from prez.raft.types import Entry

_HEADER = struct.Struct("<II")  # payload length, CRC32C of the payload
_PAYLOAD_FIXED = struct.Struct("<QQB")  # index, term, kind

RECORD_HEADER_SIZE = _HEADER.size
RECORD_OVERHEAD = _HEADER.size + _PAYLOAD_FIXED.size

_CRC32C_POLY_REFLECTED = 0x82F63B78
_U64_MAX = 2**64 - 1


def _make_crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _make_crc_table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32C (Castagnoli) of `data`, continuing from `crc` (0 to start)."""
    table = _CRC_TABLE
    crc ^= 0xFFFFFFFF
    for byte in bytes(data):
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


class ScanStatus(IntEnum):
    CLEAN = 0  # the buffer ends exactly at the end of a good record
    TORN = 1  # damage at the tail and nothing good after it: a crash mid-write
    CORRUPT = 2  # a bad record with at least one good record after it


@dataclass(slots=True)
class ScanResult:
    """What `scan_records` found: the good records and how the buffer ends.

    `end` is the offset just past the last good record; when the status is
    TORN or CORRUPT, `bad_offset` (== `end`) is where the bad record starts
    and `reason` says what is wrong with it. `offsets[k]` is the offset of
    the record holding `entries[k]`.
    """

    entries: list[Entry] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    end: int = 0
    status: ScanStatus = ScanStatus.CLEAN
    bad_offset: int = -1
    reason: str = ""


def frame_entries(
    entries: list[Entry], base_offset: int = 0, offsets_out: list[int] | None = None
) -> bytes:
    """Frame a batch of entries as consecutive records in one new buffer.

    When `offsets_out` is given, the offset of each record (counted from
    `base_offset`) is appended to it.
    """
    parts = []
    pos = 0
    for entry in entries:
        if not isinstance(entry.data, bytes):
            raise TypeError(
                f"entry data must be bytes, not {type(entry.data).__name__}"
            )
        # The same exception as the compiled twin's C integer conversion.
        if not (0 <= entry.index <= _U64_MAX and 0 <= entry.term <= _U64_MAX):
            raise OverflowError(
                f"entry index/term out of range: {entry.index}/{entry.term}"
            )
        if not 0 <= entry.kind <= 0xFF:
            raise OverflowError(f"entry kind out of range: {entry.kind}")
        payload = _PAYLOAD_FIXED.pack(entry.index, entry.term, entry.kind) + entry.data
        if len(payload) > 0xFFFFFFFF:
            raise ValueError(f"entry {entry.index} is too large to frame")
        parts.append(_HEADER.pack(len(payload), crc32c(payload)))
        parts.append(payload)
        if offsets_out is not None:
            offsets_out.append(base_offset + pos)
        pos += _HEADER.size + len(payload)
    return b"".join(parts)


def _bad_record_reason(buf: bytes, pos: int) -> str | None:
    """Why the record at `pos` is bad, or None if it is a good record."""
    left = len(buf) - pos
    if left < _HEADER.size:
        return f"incomplete record header ({left} of {_HEADER.size} bytes)"
    payload_len, checksum = _HEADER.unpack_from(buf, pos)
    if payload_len < _PAYLOAD_FIXED.size:
        return f"impossible record length {payload_len}"
    if payload_len > left - _HEADER.size:
        return (
            f"record length {payload_len} runs past the end "
            f"({left - _HEADER.size} bytes left)"
        )
    payload_start = pos + _HEADER.size
    if crc32c(buf[payload_start : payload_start + payload_len]) != checksum:
        return "checksum mismatch"
    return None


def _good_record_after(buf: bytes, bad: int) -> bool:
    # Damage followed by a good record is corruption; damage with nothing
    # good after it is a torn tail.
    last_start = len(buf) - RECORD_OVERHEAD
    return any(
        _bad_record_reason(buf, pos) is None for pos in range(bad + 1, last_start + 1)
    )


def scan_records(buf: bytes | bytearray | memoryview, start: int = 0) -> ScanResult:
    """Decode the records in `buf[start:]` and classify how the buffer ends.

    Stops at the first bad record: an incomplete header, an impossible
    length, a length running past the end, or a CRC mismatch. That record is
    CORRUPT when a good record follows somewhere after it (data would be
    lost by cutting there), otherwise TORN.
    """
    buf = bytes(buf)
    if start < 0 or start > len(buf):
        raise ValueError(f"start {start} outside buffer of {len(buf)} bytes")
    result = ScanResult()
    pos = start
    while pos < len(buf):
        reason = _bad_record_reason(buf, pos)
        if reason is not None:
            result.reason = reason
            break
        payload_len = _HEADER.unpack_from(buf, pos)[0]
        payload_start = pos + _HEADER.size
        index, term, kind = _PAYLOAD_FIXED.unpack_from(buf, payload_start)
        data = buf[payload_start + _PAYLOAD_FIXED.size : payload_start + payload_len]
        result.entries.append(Entry(index, term, kind, data))
        result.offsets.append(pos)
        pos = payload_start + payload_len
    result.end = pos
    if pos < len(buf):
        result.bad_offset = pos
        corrupt = _good_record_after(buf, pos)
        result.status = ScanStatus.CORRUPT if corrupt else ScanStatus.TORN
    return result
