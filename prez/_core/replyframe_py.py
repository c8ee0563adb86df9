"""Framing of RESP replies: where each reply ends in a byte stream, without decoding it.

A follower that forwards a write to the leader hands the leader's reply to
its own client byte for byte, so it needs to know only where one reply ends
and the next begins. `ReplyFramer.feed` returns every reply completed so far
as the exact bytes received; an unfinished reply stays buffered.

RESP2 and RESP3 types are understood: + - : $ * and _ , # ( = ! % ~ > |,
nested to any depth, with the nulls $-1 and *-1 (and -1 for the other bulk
and aggregate types, as hiredis reads them). An attribute (|) is framed
together with the reply it annotates. Streamed strings and aggregates ($?,
*?) are not supported. A stream that is not RESP raises ProtocolError.

Plain Python, the reference for a compiled twin that may come later. Pure
computation over bytes: nothing from prez.server, prez.kv or prez.raft is
imported here.
"""

from __future__ import annotations

import re

from prez.errors import ProtocolError

# Consumed bytes are dropped once they pass this size (or when nothing is
# left unconsumed), so that a large read costs one compaction, not one per
# reply.
COMPACT_AT = 64 * 1024
_LLONG_MAX = 2**63 - 1
_LLONG_MIN = -(2**63)

_LINE_TYPES = frozenset(b"+-")
_INTEGER = ord(":")
_NULL = ord("_")
_DOUBLE = ord(",")
_BOOLEAN = ord("#")
_BIG_NUMBER = ord("(")
_BULK_TYPES = frozenset(b"$=!")
# Aggregate type -> elements per counted item (a map counts pairs).
_AGGREGATE_TYPES = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2}
_ATTRIBUTE = ord("|")

_SIGNED_DIGITS = re.compile(rb"-?[0-9]+\Z")
# What Redis writes for a RESP3 double: %.17g output, inf, -inf or nan.
_DOUBLE_TEXT = re.compile(
    rb"[-+]?(?:inf|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\Z"
)


def _parse_length(buf: bytearray, start: int, cr: int, what: str) -> int:
    """The count after a bulk or aggregate type byte: -1 (null) or more."""
    text = bytes(buf[start:cr])
    if _SIGNED_DIGITS.match(text) is None:
        raise ProtocolError(f"RESP reply: bad {what} length {text[:32]!r}")
    value = int(text)
    if value < -1 or value > _LLONG_MAX:
        raise ProtocolError(f"RESP reply: {what} length {value} out of range")
    return value


class ReplyFramer:
    """Splits a stream of RESP replies into the raw bytes of each reply.

    After a ProtocolError the stream cannot be resynchronised: the framer
    keeps raising and the connection must be dropped.
    """

    __slots__ = ("_buf", "_start", "_pos", "_line_from", "_bulk_end", "_open", "_error")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._start = 0  # where the reply being framed begins
        self._pos = 0  # the next element header to read
        self._line_from = 0  # where to resume looking for the header's CRLF
        self._bulk_end = 0  # while waiting for a bulk's payload: where it ends
        # Elements still to come in each open aggregate, outermost first.
        self._open: list[int] = []
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for a reply not yet complete."""
        return len(self._buf) - self._start

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Every reply completed by `data`, each as the bytes it arrived as."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        spans: list[tuple[int, int]] = []
        try:
            self._frame(spans)
        except ProtocolError as e:
            self._error = e
            self._buf = bytearray()
            raise
        if spans:
            # One view for the whole read: bytes() of a bytearray slice would
            # copy every reply twice.
            with memoryview(buf) as view:
                replies = [view[begin:end].tobytes() for begin, end in spans]
        else:
            replies = []
        start = self._start
        if start == len(buf):
            buf.clear()
            self._start = self._pos = self._line_from = 0
        elif start >= COMPACT_AT:
            del buf[:start]
            self._start = 0
            self._pos -= start
            self._line_from -= start
            if self._bulk_end:
                self._bulk_end -= start
        return replies

    def _frame(self, spans: list[tuple[int, int]]) -> None:
        buf = self._buf
        end = len(buf)
        open_ = self._open
        pos = self._pos
        while True:
            if self._bulk_end:
                bulk_end = self._bulk_end
                if bulk_end > end:
                    break
                if buf[bulk_end - 2 : bulk_end] != b"\r\n":
                    raise ProtocolError("RESP reply: bulk payload not followed by CRLF")
                self._bulk_end = 0
                pos = bulk_end
            else:
                if pos >= end:
                    break
                cr = buf.find(b"\r\n", max(pos, self._line_from))
                if cr < 0:
                    # The CR may be the last byte, its LF still to come.
                    self._line_from = end - 1
                    break
                kind = buf[pos]
                if kind in _LINE_TYPES:
                    pos = cr + 2
                elif kind in _BULK_TYPES:
                    length = _parse_length(buf, pos + 1, cr, "bulk")
                    if length >= 0:
                        self._bulk_end = cr + 2 + length + 2
                        pos = cr + 2
                        self._line_from = pos
                        continue
                    pos = cr + 2
                elif kind in _AGGREGATE_TYPES:
                    count = _parse_length(buf, pos + 1, cr, "aggregate")
                    pos = self._line_from = cr + 2
                    if count > 0:
                        open_.append(count * _AGGREGATE_TYPES[kind])
                        continue
                elif kind == _ATTRIBUTE:
                    count = _parse_length(buf, pos + 1, cr, "attribute")
                    if count < 0:
                        raise ProtocolError("RESP reply: null attribute")
                    pos = self._line_from = cr + 2
                    # The attribute's pairs, then the reply it annotates: the
                    # two together count as one element of any outer aggregate.
                    open_.append(2 * count + 1)
                    continue
                else:
                    _check_scalar(kind, bytes(buf[pos + 1 : cr]))
                    pos = cr + 2
            self._line_from = pos
            # One element is complete: close every aggregate it completes.
            while open_:
                open_[-1] -= 1
                if open_[-1]:
                    break
                open_.pop()
            if not open_:
                spans.append((self._start, pos))
                self._start = pos
        self._pos = pos


def _check_scalar(kind: int, text: bytes) -> None:
    """Validate a one-line reply whose type byte is not + or -."""
    if kind == _INTEGER:
        if _SIGNED_DIGITS.match(text) is None or not (
            _LLONG_MIN <= int(text) <= _LLONG_MAX
        ):
            raise ProtocolError(f"RESP reply: bad integer {text[:32]!r}")
    elif kind == _NULL:
        if text:
            raise ProtocolError("RESP reply: null with a payload")
    elif kind == _BOOLEAN:
        if text != b"t" and text != b"f":
            raise ProtocolError(f"RESP reply: bad boolean {text[:32]!r}")
    elif kind == _DOUBLE:
        if _DOUBLE_TEXT.match(text) is None:
            raise ProtocolError(f"RESP reply: bad double {text[:32]!r}")
    elif kind == _BIG_NUMBER:
        if _SIGNED_DIGITS.match(text) is None:
            raise ProtocolError(f"RESP reply: bad big number {text[:32]!r}")
    else:
        raise ProtocolError(f"RESP reply: unknown type byte {bytes([kind])!r}")
