"""Plain-Python twin of `prez._core.entry`: the test oracle and baseline.

Layout, little-endian: i64 time in ms, u16 database, then each argument as
u32 length + bytes.
"""

from __future__ import annotations

import struct

from prez.errors import ProtocolError

_HEADER = struct.Struct("<qH")
_LEN = struct.Struct("<I")


def encode_command(now: int, db: int, args: list[bytes]) -> bytes:
    parts = [_HEADER.pack(now, db)]
    for arg in args:
        if type(arg) is not bytes:
            raise TypeError("command arguments must be bytes")
        parts.append(_LEN.pack(len(arg)))
        parts.append(arg)
    return b"".join(parts)


def decode_command(data: bytes) -> tuple[int, int, list[bytes]]:
    if len(data) < _HEADER.size:
        raise ProtocolError("log entry: shorter than its header")
    now, db = _HEADER.unpack_from(data, 0)
    args = []
    pos, end = _HEADER.size, len(data)
    while pos < end:
        if end - pos < 4:
            raise ProtocolError("log entry: truncated argument length")
        (size,) = _LEN.unpack_from(data, pos)
        pos += 4
        if size > end - pos:
            raise ProtocolError("log entry: argument runs past the end")
        args.append(data[pos : pos + size])
        pos += size
    if not args:
        raise ProtocolError("log entry: no command")
    return now, db, args
