"""Plain-Python twin of `prez._core.resp`: RESP request parsing and reply encoding.

Same API and behaviour as the compiled module, written for clarity rather
than speed: it is the executable spec, the oracle of the differential tests
and the baseline of the benchmarks. Select it explicitly; it is never a silent
fallback for a missing extension. Pure computation over bytes: no I/O, and
nothing from prez.server, prez.kv or prez.raft is imported here.

Parsing follows Redis's networking.c (processMultibulkBuffer,
processInlineBuffer, sdssplitargs) including its error texts and its
tolerances: a non-positive multibulk count is an empty request, and the two
bytes after a bulk's payload are skipped without being checked.
"""

from __future__ import annotations

import math

from prez._core.replytypes import NullArray, PairList, Raw
from prez.errors import CommandError

# Redis's PROTO_INLINE_MAX_SIZE: a count line ("*3", "$5") with no CR within
# this many bytes is refused instead of being buffered without end.
HEADER_LINE_MAX = 64 * 1024
# A string longer than this cannot hold a 64-bit integer (Redis's LONG_STR_SIZE).
_LONG_STR_SIZE = 21
_LLONG_MIN = -(2**63)
_LLONG_MAX = 2**63 - 1
# Before AUTH (Redis's authRequired): at most this many arguments, and bulks
# of at most this many bytes (networking.c, Redis 7.0).
NOAUTH_MAX_ARGS = 10
NOAUTH_MAX_BULK = 16384
# What one argument already read costs on top of its payload, as the query
# buffer limit counts it (a list slot and a bytes header).
ARG_OVERHEAD = 16

ERR_MBULK_LEN = "ERR Protocol error: invalid multibulk length"
ERR_BULK_LEN = "ERR Protocol error: invalid bulk length"
ERR_UNBALANCED = "ERR Protocol error: unbalanced quotes in request"
ERR_BIG_INLINE = "ERR Protocol error: too big inline request"
ERR_BIG_MBULK = "ERR Protocol error: too big mbulk count string"
ERR_BIG_BULK = "ERR Protocol error: too big bulk count string"
ERR_NOAUTH_MBULK = "ERR Protocol error: unauthenticated multibulk length"
ERR_NOAUTH_BULK = "ERR Protocol error: unauthenticated bulk length"
# Not sent to the client: Redis closes a client past client-query-buffer-limit
# without a reply (and logs it); the server recognises this text.
ERR_QUERY_LIMIT = "ERR Protocol error: query buffer limit reached"


class OutputLimitExceeded(Exception):
    """Raised by ReplyBuffer.append once the buffer holds more than its limit."""


_C_SPACE = b" \t\n\v\f\r"  # C isspace() in the "C" locale
_TOKEN_END = b" \n\r\t"  # what ends an unquoted token in sdssplitargs
_HEX = b"0123456789abcdefABCDEF"
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}


def _string2ll(text: bytes) -> int | None:
    """Redis's string2ll: strict decimal, no '+', no leading zeros, fits 64 bits."""
    if not text or len(text) >= _LONG_STR_SIZE:
        return None
    if text == b"0":
        return 0
    digits = text[1:] if text[:1] == b"-" else text
    if not digits or not digits.isdigit() or digits[:1] == b"0":
        return None
    value = int(text)
    if value < _LLONG_MIN or value > _LLONG_MAX:
        return None
    return value


def _split_args(line: bytes) -> list[bytes] | None:
    """Redis's sdssplitargs: the arguments of an inline command, None if a quote is unbalanced.

    The line ends at its first NUL byte, as it does for the C string Redis
    hands to sdssplitargs.
    """
    nul = line.find(b"\0")
    if nul >= 0:
        line = line[:nul]
    n = len(line)
    args: list[bytes] = []
    i = 0
    while True:
        while i < n and line[i] in _C_SPACE:
            i += 1
        if i >= n:
            return args
        token = bytearray()
        in_double = in_single = False
        while True:
            c = line[i] if i < n else 0
            following = line[i + 1] if i + 1 < n else 0
            if in_double:
                if (
                    c == 0x5C  # backslash
                    and following == ord("x")
                    and i + 3 < n
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    token.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and following:
                    i += 1
                    token.append(_ESCAPES.get(line[i], line[i]))
                elif c == ord('"'):
                    # A closing quote must be followed by a space or the end.
                    if following and following not in _C_SPACE:
                        return None
                    i += 1
                    break
                elif not c:
                    return None
                else:
                    token.append(c)
            elif in_single:
                if c == 0x5C and following == ord("'"):
                    i += 1
                    token.append(following)
                elif c == ord("'"):
                    if following and following not in _C_SPACE:
                        return None
                    i += 1
                    break
                elif not c:
                    return None
                else:
                    token.append(c)
            elif not c or c in _TOKEN_END:
                i += 1
                break
            elif c == ord('"'):
                in_double = True
            elif c == ord("'"):
                in_single = True
            else:
                token.append(c)
            i += 1
        args.append(bytes(token))


class RequestParser:
    """Incremental parser of client requests (multibulk and inline).

    `feed` returns every command completed so far; bytes of an unfinished
    command stay buffered. After a protocol error `error` holds Redis's reply
    text (without the '-'), the buffer is dropped and `feed` returns nothing.

    Limits: `max_bulk_len` (proto-max-bulk-len), `max_multibulk_len`
    (Redis 7: INT_MAX), `max_inline_len`, and `max_query_len`
    (client-query-buffer-limit: unparsed bytes plus the arguments already
    read of the command in progress, checked after each feed; ERR_QUERY_LIMIT).
    With `noauth` set (a connection before AUTH) a multibulk of more than 10
    arguments or a bulk over 16384 bytes is refused, and `feed` returns at
    most one command, so that an AUTH is run before what follows it is
    parsed (Redis parses and runs one command at a time).
    """

    def __init__(
        self,
        max_bulk_len: int = 512 * 1024 * 1024,
        max_multibulk_len: int = 2**31 - 1,
        max_inline_len: int = 64 * 1024,
        max_query_len: int = 1024 * 1024 * 1024,
        noauth: bool = False,
    ) -> None:
        self.max_bulk_len = max_bulk_len
        self.max_multibulk_len = max_multibulk_len
        self.max_inline_len = max_inline_len
        self.max_query_len = max_query_len
        self.noauth = noauth
        self.error: str | None = None
        self._buf = bytearray()
        self._pos = 0  # bytes before this offset are consumed
        self._args_left = 0  # arguments still to read for the current multibulk
        self._bulk_len = -1  # length of the bulk being read, -1 before its header
        self._args: list[bytes] = []
        self._args_bytes = 0  # what `_args` counts against max_query_len

    @property
    def buffered(self) -> int:
        """Bytes held for a command not yet complete."""
        return len(self._buf) - self._pos

    @property
    def pending(self) -> int:
        """What client-query-buffer-limit counts: `buffered` plus the
        arguments already read of the command in progress."""
        return len(self._buf) - self._pos + self._args_bytes

    def feed(self, data: bytes | bytearray | memoryview) -> list[list[bytes]]:
        if self.error is not None:
            return []
        self._buf += data
        commands: list[list[bytes]] = []
        self._parse(commands)
        if self.error is None and self.pending > self.max_query_len:
            self._fail(ERR_QUERY_LIMIT)
        if self.error is not None:
            self._buf = bytearray()
            self._pos = 0
            self._args = []
            self._args_bytes = 0
        elif self._pos:
            # Drop consumed bytes once per feed, not once per command.
            del self._buf[: self._pos]
            self._pos = 0
        return commands

    def _fail(self, message: str) -> None:
        self.error = message

    def _parse(self, commands: list[list[bytes]]) -> None:
        buf = self._buf
        end = len(buf)
        while True:
            pos = self._pos
            if self._args_left == 0:
                if pos >= end:
                    return
                if buf[pos] != ord("*"):
                    if not self._parse_inline(commands):
                        return
                    if self.noauth and commands:
                        return
                    continue
                cr = buf.find(b"\r", pos)
                if cr < 0:
                    if end - pos > HEADER_LINE_MAX:
                        self._fail(ERR_BIG_MBULK)
                    return
                if cr + 1 >= end:
                    return  # the LF is still to come
                count = _string2ll(bytes(buf[pos + 1 : cr]))
                if count is None or count > self.max_multibulk_len:
                    self._fail(ERR_MBULK_LEN)
                    return
                if self.noauth and count > NOAUTH_MAX_ARGS:
                    self._fail(ERR_NOAUTH_MBULK)
                    return
                self._pos = cr + 2
                if count > 0:
                    self._args_left = count
                    self._args = []
                    self._args_bytes = 0
                continue
            if self._bulk_len < 0:
                cr = buf.find(b"\r", pos)
                if cr < 0:
                    if end - pos > HEADER_LINE_MAX:
                        self._fail(ERR_BIG_BULK)
                    return
                if cr + 1 >= end:
                    return
                if buf[pos] != ord("$"):
                    self._fail(
                        f"ERR Protocol error: expected '$', got '{chr(buf[pos])}'"
                    )
                    return
                length = _string2ll(bytes(buf[pos + 1 : cr]))
                if length is None or length < 0 or length > self.max_bulk_len:
                    self._fail(ERR_BULK_LEN)
                    return
                if self.noauth and length > NOAUTH_MAX_BULK:
                    self._fail(ERR_NOAUTH_BULK)
                    return
                self._bulk_len = length
                pos = self._pos = cr + 2
            if end - pos < self._bulk_len + 2:
                return
            self._args.append(bytes(buf[pos : pos + self._bulk_len]))
            # Like Redis, the CRLF after the payload is skipped, not checked.
            self._pos = pos + self._bulk_len + 2
            self._args_bytes += self._bulk_len + ARG_OVERHEAD
            self._bulk_len = -1
            self._args_left -= 1
            if self._args_left == 0:
                commands.append(self._args)
                self._args = []
                self._args_bytes = 0
                if self.noauth:
                    return

    def _parse_inline(self, commands: list[list[bytes]]) -> bool:
        """Parse one inline line; False when more bytes are needed or on error."""
        buf = self._buf
        pos = self._pos
        newline = buf.find(b"\n", pos)
        if newline < 0:
            if len(buf) - pos > self.max_inline_len:
                self._fail(ERR_BIG_INLINE)
            return False
        line_end = newline - 1 if newline > pos and buf[newline - 1] == 13 else newline
        args = _split_args(bytes(buf[pos:line_end]))
        if args is None:
            self._fail(ERR_UNBALANCED)
            return False
        self._pos = newline + 1
        if args:
            commands.append(args)
        return True


def _format_double(value: float) -> bytes:
    """Redis's text of a double (as prez.kv.keyspace.format_double): 3 not 3.0, inf, -inf."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if value.is_integer() and abs(value) < 1e17:
        return b"%d" % int(value)
    return float.__repr__(value).encode()


def _one_line(text: str) -> bytes:
    # CR or LF inside a status or error line would end it early and let the
    # rest be read as another reply, so Redis turns them into spaces.
    return text.encode().replace(b"\r", b" ").replace(b"\n", b" ")


class ReplyBuffer:
    """Accumulates encoded replies; the mapping is documented in prez._core.replytypes."""

    def __init__(self, resp3: bool = False, limit: int = 0) -> None:
        self.resp3 = resp3
        self.limit = limit
        self._out = bytearray()

    def __len__(self) -> int:
        return len(self._out)

    def append(self, value: object) -> None:
        """Encode one reply. A value that cannot be encoded leaves the buffer as it was.

        With a `limit` (0: none), raises OutputLimitExceeded once the buffer
        holds more than that, the reply just encoded included.
        """
        mark = len(self._out)
        try:
            self._encode(value, self._out)
        except BaseException:
            # A half-written reply would desynchronise the client's stream.
            del self._out[mark:]
            raise
        if self.limit and len(self._out) > self.limit:
            raise OutputLimitExceeded(len(self._out))

    def take(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def _encode(self, value: object, out: bytearray) -> None:
        resp3 = self.resp3
        if isinstance(value, Raw):
            out += value
        elif isinstance(value, bytes):
            out += b"$%d\r\n%s\r\n" % (len(value), value)
        elif isinstance(value, str):
            out += b"+%s\r\n" % _one_line(value)
        elif isinstance(value, bool):
            if resp3:
                out += b"#t\r\n" if value else b"#f\r\n"
            else:
                out += b":1\r\n" if value else b":0\r\n"
        elif isinstance(value, int):
            if _LLONG_MIN <= value <= _LLONG_MAX:
                out += b":%d\r\n" % value
            elif resp3:
                out += b"(%d\r\n" % value  # RESP3 big number
            else:
                digits = b"%d" % value
                out += b"$%d\r\n%s\r\n" % (len(digits), digits)
        elif value is None:
            out += b"_\r\n" if resp3 else b"$-1\r\n"
        elif isinstance(value, float):
            self._encode_double(value, out)
        elif isinstance(value, CommandError):
            out += b"-%s\r\n" % _one_line(value.message)
        elif isinstance(value, NullArray):
            out += b"_\r\n" if resp3 else b"*-1\r\n"
        elif isinstance(value, PairList):
            if resp3:
                out += b"*%d\r\n" % len(value)
                for member, score in value:
                    out += b"*2\r\n"
                    self._encode(member, out)
                    self._encode_pair_value(score, out)
            else:
                out += b"*%d\r\n" % (2 * len(value))
                for member, score in value:
                    self._encode(member, out)
                    self._encode_pair_value(score, out)
        elif isinstance(value, (list, tuple)):
            out += b"*%d\r\n" % len(value)
            for item in value:
                self._encode(item, out)
        elif isinstance(value, dict):
            if resp3:
                out += b"%%%d\r\n" % len(value)
            else:
                out += b"*%d\r\n" % (2 * len(value))
            for key, item in value.items():
                self._encode(key, out)
                self._encode(item, out)
        elif isinstance(value, (set, frozenset)):
            out += b"%s%d\r\n" % (b"~" if resp3 else b"*", len(value))
            for item in value:
                self._encode(item, out)
        else:
            raise TypeError(f"cannot encode {type(value).__name__} as a RESP reply")

    def _encode_pair_value(self, value: object, out: bytearray) -> None:
        if type(value) is bytes:  # HRANDFIELD WITHVALUES pairs field, value
            self._encode(value, out)
        else:
            self._encode_double(float(value), out)  # type: ignore[arg-type]

    def _encode_double(self, value: float, out: bytearray) -> None:
        text = _format_double(value)
        if self.resp3:
            out += b",%s\r\n" % text
        else:
            out += b"$%d\r\n%s\r\n" % (len(text), text)


def encode(value: object, resp3: bool = False) -> bytes:
    """One reply, encoded."""
    buffer = ReplyBuffer(resp3)
    buffer.append(value)
    return buffer.take()
