"""Compiled RESP core: client request parsing and reply encoding.

`RequestParser` turns the bytes a client sends (multibulk or inline) into
commands, with Redis's limits and error texts; `ReplyBuffer` and `encode`
turn reply values into RESP2 or RESP3 following the mapping documented in
prez._core.replytypes. Pure computation over bytes: no I/O, no asyncio, and
nothing from prez.server, prez.kv or prez.raft is imported here.

The plain-Python twin `prez._core.resp_py` defines the same behaviour; the
test suite runs both and compares them.

Every byte is read through a C pointer whose bound is checked just before
(`pos < end`, `end - pos - 2 >= bulk_len`, `i + 3 < length`); no Python
indexing is used on buffers, so no boundscheck/wraparound directive is needed.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.conversion cimport Py_DTSF_ADD_DOT_0, PyOS_double_to_string
from cpython.list cimport PyList_Append
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport fabs, floor, isinf
from libc.string cimport memchr, memcpy, memmove

from prez._core.replytypes import NullArray, PairList, Raw
from prez.errors import CommandError

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void *op)
    int _PyBytes_Resize(PyObject **string, Py_ssize_t newsize) except -1

cdef enum:
    # Redis's PROTO_INLINE_MAX_SIZE: a count line ("*3", "$5") with no CR
    # within this many bytes is refused instead of being buffered without end.
    RESP_HEADER_LINE_MAX = 64 * 1024
    # A string this long cannot hold a 64-bit integer (Redis's LONG_STR_SIZE).
    RESP_LONG_STR_SIZE = 21
    RESP_MIN_CAPACITY = 16 * 1024
    # Above this, a buffer that has been drained is freed rather than kept
    # for the next feed, so one huge request does not pin memory forever.
    RESP_KEEP_CAPACITY = 1024 * 1024
    # First size of a reply buffer: small enough for pymalloc, so a lone
    # short reply costs no malloc.
    RESP_REPLY_MIN_CAPACITY = 256
    # Longest "<kind><64-bit integer>\r\n": 1 + 20 + 2.
    RESP_HEADER_MAX = 24
    # Nesting deeper than this is a bug in a command, not a real reply.
    RESP_MAX_DEPTH = 1000
    # Before AUTH (Redis's authRequired): at most this many arguments, and
    # bulks of at most this many bytes (networking.c, Redis 7.0).
    RESP_NOAUTH_MAX_ARGS = 10
    RESP_NOAUTH_MAX_BULK = 16384
    # What one argument already read costs on top of its payload, as the
    # query buffer limit counts it (a list slot and a bytes header).
    RESP_ARG_OVERHEAD = 16

HEADER_LINE_MAX = RESP_HEADER_LINE_MAX
NOAUTH_MAX_ARGS = RESP_NOAUTH_MAX_ARGS
NOAUTH_MAX_BULK = RESP_NOAUTH_MAX_BULK
ARG_OVERHEAD = RESP_ARG_OVERHEAD

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

cdef inline void untrack(list args) noexcept:
    # A command's argument list holds only bytes, so it cannot be part of a
    # reference cycle; keeping thousands of pipelined commands out of the
    # cycle collector's generations saves it from walking them (measured:
    # a 100,000-command feed parses ~1.5x faster).
    PyObject_GC_UnTrack(<void *>args)


cdef unsigned long long LLONG_MAX_MAGNITUDE = 9223372036854775807ULL


cdef inline bint string2ll(const char *text, Py_ssize_t length, long long *out) noexcept:
    """Redis's string2ll: strict decimal, no '+', no leading zeros, fits 64 bits."""
    cdef Py_ssize_t i = 0
    cdef bint negative = False
    cdef unsigned long long magnitude = 0
    cdef unsigned int digit
    if length <= 0 or length >= RESP_LONG_STR_SIZE:
        return False
    if length == 1 and text[0] == c'0':
        out[0] = 0
        return True
    if text[0] == c'-':
        negative = True
        i = 1
        if length == 1:
            return False
    if text[i] < c'1' or text[i] > c'9':
        return False
    while i < length:
        digit = <unsigned int>(<unsigned char>text[i]) - 48
        if digit > 9:
            return False
        # At most 20 digits, so the magnitude cannot wrap before this check fails.
        magnitude = magnitude * 10 + digit
        if magnitude > LLONG_MAX_MAGNITUDE + 1:
            return False
        i += 1
    if negative:
        out[0] = <long long>(0ULL - magnitude)
        return True
    if magnitude > LLONG_MAX_MAGNITUDE:
        return False
    out[0] = <long long>magnitude
    return True


cdef inline bint is_c_space(unsigned char c) noexcept:
    # C isspace() in the "C" locale, which sdssplitargs uses to skip blanks.
    return c == c' ' or c == c'\t' or c == c'\n' or c == c'\v' or c == c'\f' or c == c'\r'


cdef inline int hex_value(unsigned char c) noexcept:
    if c'0' <= c <= c'9':
        return c - c'0'
    if c'a' <= c <= c'f':
        return c - c'a' + 10
    if c'A' <= c <= c'F':
        return c - c'A' + 10
    return -1


cdef object split_inline_args(const unsigned char *line, Py_ssize_t length):
    """Redis's sdssplitargs: the arguments of an inline line, None if a quote is unbalanced.

    The line ends at its first NUL, as the C string Redis splits does.
    Indexes at or past `length` read as NUL, mirroring C's terminator.
    """
    cdef const unsigned char *nul = <const unsigned char *>memchr(line, 0, length)
    cdef list args = []
    cdef char *token
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t token_len
    cdef unsigned char c, following
    cdef bint in_double, in_single
    if nul != NULL:
        length = nul - line
    # A token never has more bytes than the line: each one consumes at least one.
    token = <char *>PyMem_Malloc(length + 1)
    if token == NULL:
        raise MemoryError()
    try:
        while True:
            while i < length and is_c_space(line[i]):
                i += 1
            if i >= length:
                return args
            token_len = 0
            in_double = in_single = False
            while True:
                c = line[i] if i < length else 0
                following = line[i + 1] if i + 1 < length else 0
                if in_double:
                    if (
                        c == c'\\' and following == c'x' and i + 3 < length
                        and hex_value(line[i + 2]) >= 0 and hex_value(line[i + 3]) >= 0
                    ):
                        token[token_len] = <char>(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3]))
                        token_len += 1
                        i += 3
                    elif c == c'\\' and following:
                        i += 1
                        c = line[i]
                        if c == c'n':
                            c = c'\n'
                        elif c == c'r':
                            c = c'\r'
                        elif c == c't':
                            c = c'\t'
                        elif c == c'b':
                            c = c'\b'
                        elif c == c'a':
                            c = c'\a'
                        token[token_len] = <char>c
                        token_len += 1
                    elif c == c'"':
                        # A closing quote must be followed by a space or the end.
                        if following and not is_c_space(following):
                            return None
                        i += 1
                        break
                    elif not c:
                        return None
                    else:
                        token[token_len] = <char>c
                        token_len += 1
                elif in_single:
                    if c == c'\\' and following == c"'":
                        i += 1
                        token[token_len] = c"'"
                        token_len += 1
                    elif c == c"'":
                        if following and not is_c_space(following):
                            return None
                        i += 1
                        break
                    elif not c:
                        return None
                    else:
                        token[token_len] = <char>c
                        token_len += 1
                elif not c or c == c' ' or c == c'\n' or c == c'\r' or c == c'\t':
                    i += 1
                    break
                elif c == c'"':
                    in_double = True
                elif c == c"'":
                    in_single = True
                else:
                    token[token_len] = <char>c
                    token_len += 1
                i += 1
            args.append(PyBytes_FromStringAndSize(token, token_len))
    finally:
        PyMem_Free(token)


@cython.final
@cython.no_gc  # holds only bytes, lists of bytes and a str: no cycle can go through it
cdef class RequestParser:
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

    The argument lists returned are not tracked by the cycle collector (they
    hold only bytes): never store containers in them.
    """

    def __init__(
        self,
        Py_ssize_t max_bulk_len=512 * 1024 * 1024,
        Py_ssize_t max_multibulk_len=2147483647,
        Py_ssize_t max_inline_len=64 * 1024,
        Py_ssize_t max_query_len=1024 * 1024 * 1024,
        bint noauth=False,
    ):
        self.max_bulk_len = max_bulk_len
        self.max_multibulk_len = max_multibulk_len
        self.max_inline_len = max_inline_len
        self.max_query_len = max_query_len
        self.noauth = noauth
        self.bulk_len = -1
        self.error = None

    def __dealloc__(self):
        PyMem_Free(self.buf)

    @property
    def buffered(self):
        """Bytes held for a command not yet complete."""
        return self.end - self.start

    @property
    def pending(self):
        """What client-query-buffer-limit counts: `buffered` plus the
        arguments already read of the command in progress."""
        return self.end - self.start + self.args_bytes

    @cython.always_allow_keywords(False)  # METH_O: the cheapest call for the hot path
    def feed(self, data):
        """Append bytes (bytes, bytearray, memoryview) and return the completed commands."""
        cdef list commands = []
        cdef Py_buffer view
        if self.error is not None:
            return commands
        if type(data) is bytes:
            self._append(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                self._append(<const char *>view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
        self._parse(commands)
        if (
            self.error is None
            and self.end - self.start + self.args_bytes > self.max_query_len
        ):
            self._fail(ERR_QUERY_LIMIT)
        if self.error is not None:
            self._release()
        elif self.start == self.end:
            if self.cap > RESP_KEEP_CAPACITY:
                self._release()
            self.start = self.end = 0
        return commands

    cdef int _append(self, const char *data, Py_ssize_t size) except -1:
        if size <= 0:
            return 0
        self._reserve(size)
        memcpy(self.buf + self.end, data, size)
        self.end += size
        return 0

    cdef int _reserve(self, Py_ssize_t size) except -1:
        """Make room for `size` more bytes; grows only with bytes that actually arrived."""
        cdef Py_ssize_t pending = self.end - self.start
        cdef Py_ssize_t new_cap
        cdef char *new_buf
        if self.end + size <= self.cap:
            return 0
        if pending + size <= self.cap and pending <= self.start:
            # Moving `pending` bytes costs no more than the bytes consumed
            # since the last move, so compaction stays linear overall.
            memmove(self.buf, self.buf + self.start, pending)
        else:
            new_cap = max(self.cap * 2, pending + size, <Py_ssize_t>RESP_MIN_CAPACITY)
            new_buf = <char *>PyMem_Malloc(new_cap)
            if new_buf == NULL:
                raise MemoryError()
            if pending:
                memcpy(new_buf, self.buf + self.start, pending)
            PyMem_Free(self.buf)
            self.buf = new_buf
            self.cap = new_cap
        self.start = 0
        self.end = pending
        return 0

    cdef void _release(self) noexcept:
        PyMem_Free(self.buf)
        self.buf = NULL
        self.cap = self.start = self.end = 0
        if self.error is not None:
            self.args = None
            self.args_bytes = 0

    cdef int _fail(self, str message) except -1:
        self.error = message
        return 0

    cdef int _parse(self, list commands) except -1:
        # `base` stays valid for the whole call: only _append moves the buffer.
        cdef const char *base = self.buf
        cdef Py_ssize_t pos = self.start
        cdef Py_ssize_t end = self.end
        cdef const char *found
        cdef Py_ssize_t line_end
        cdef long long number
        cdef object arg
        while True:
            if self.args_left == 0:
                if pos >= end:
                    break
                if base[pos] != c'*':
                    found = <const char *>memchr(base + pos, c'\n', end - pos)
                    if found == NULL:
                        if end - pos > self.max_inline_len:
                            self._fail(ERR_BIG_INLINE)
                        break
                    self.start = pos
                    self._parse_inline(commands, found - base)
                    if self.error is not None:
                        return 0
                    pos = self.start
                    if self.noauth and commands:
                        break
                    continue
                found = <const char *>memchr(base + pos, c'\r', end - pos)
                if found == NULL:
                    if end - pos > RESP_HEADER_LINE_MAX:
                        self._fail(ERR_BIG_MBULK)
                    break
                line_end = found - base
                if line_end + 1 >= end:
                    break  # the LF is still to come
                if (
                    not string2ll(base + pos + 1, line_end - pos - 1, &number)
                    or number > self.max_multibulk_len
                ):
                    self._fail(ERR_MBULK_LEN)
                    break
                if self.noauth and number > RESP_NOAUTH_MAX_ARGS:
                    self._fail(ERR_NOAUTH_MBULK)
                    break
                pos = line_end + 2
                if number > 0:
                    self.args_left = number
                    self.args = []
                    self.args_bytes = 0
                continue
            if self.bulk_len < 0:
                if pos >= end:
                    break
                found = <const char *>memchr(base + pos, c'\r', end - pos)
                if found == NULL:
                    if end - pos > RESP_HEADER_LINE_MAX:
                        self._fail(ERR_BIG_BULK)
                    break
                line_end = found - base
                if line_end + 1 >= end:
                    break
                if base[pos] != c'$':
                    self._fail(
                        f"ERR Protocol error: expected '$', got '{chr(<unsigned char>base[pos])}'"
                    )
                    break
                if (
                    not string2ll(base + pos + 1, line_end - pos - 1, &number)
                    or number < 0
                    or number > self.max_bulk_len
                ):
                    self._fail(ERR_BULK_LEN)
                    break
                if self.noauth and number > RESP_NOAUTH_MAX_BULK:
                    self._fail(ERR_NOAUTH_BULK)
                    break
                self.bulk_len = number
                pos = line_end + 2
            # Written so that a huge bulk_len cannot overflow the sum.
            if end - pos - 2 < self.bulk_len:
                break
            arg = PyBytes_FromStringAndSize(base + pos, self.bulk_len)
            PyList_Append(self.args, arg)
            # Like Redis, the CRLF after the payload is skipped, not checked.
            pos += self.bulk_len + 2
            self.args_bytes += self.bulk_len + RESP_ARG_OVERHEAD
            self.bulk_len = -1
            self.args_left -= 1
            if self.args_left == 0:
                untrack(self.args)
                PyList_Append(commands, self.args)
                self.args = None
                self.args_bytes = 0
                if self.noauth:
                    break
        self.start = pos
        return 0

    cdef int _parse_inline(self, list commands, Py_ssize_t newline) except -1:
        """Parse the inline line from `start` to the LF at `newline`."""
        cdef Py_ssize_t line_end = newline
        cdef object args
        if line_end > self.start and self.buf[line_end - 1] == c'\r':
            line_end -= 1
        args = split_inline_args(
            <const unsigned char *>self.buf + self.start, line_end - self.start
        )
        if args is None:
            return self._fail(ERR_UNBALANCED)
        self.start = newline + 1
        if args:
            untrack(args)
            PyList_Append(commands, args)
        return 0


cdef inline Py_ssize_t write_decimal(char *out, long long value) noexcept:
    """Write `value` in decimal at `out` (room for 20 bytes needed); return the length."""
    cdef char digits[20]
    cdef int count = 0
    cdef Py_ssize_t written = 0
    # Negate in unsigned arithmetic so LLONG_MIN has a magnitude too.
    cdef unsigned long long magnitude = (
        <unsigned long long>value if value >= 0 else 0ULL - <unsigned long long>value
    )
    while True:
        digits[count] = <char>(c'0' + magnitude % 10)
        count += 1
        magnitude = magnitude // 10
        if magnitude == 0:
            break
    if value < 0:
        out[0] = c'-'
        written = 1
    while count > 0:
        count -= 1
        out[written] = digits[count]
        written += 1
    return written


cdef inline Py_ssize_t put_header(char *out, char kind, long long number) noexcept:
    """Write `<kind><number>\\r\\n` at `out` (RESP_HEADER_MAX bytes of room); return the length."""
    cdef Py_ssize_t length = 1 + write_decimal(out + 1, number)
    out[0] = kind
    out[length] = c'\r'
    out[length + 1] = c'\n'
    return length + 2


@cython.final
cdef class ReplyBuffer:
    """Accumulates encoded replies; the mapping is documented in prez._core.replytypes.

    Replies are written straight into a bytes object that `take` hands over
    after shrinking it in place, so taking a large batch costs no copy.
    """

    def __init__(self, bint resp3=False, Py_ssize_t limit=0):
        self.resp3 = resp3
        self.limit = limit

    def __dealloc__(self):
        Py_XDECREF(self.out)

    def __len__(self):
        return self.size

    @cython.always_allow_keywords(False)
    def append(self, value):
        """Encode one reply. A value that cannot be encoded leaves the buffer as it was.

        With a `limit` (0: none), raises OutputLimitExceeded once the buffer
        holds more than that, the reply just encoded included.
        """
        cdef Py_ssize_t mark = self.size
        cdef type kind = type(value)
        # Bulk and simple strings fail, if at all, before writing a byte, so
        # they need no rollback.
        if kind is bytes:
            self._write_bulk(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
        elif kind is str:
            self._write_line(c'+', value)
        else:
            try:
                self._encode(value, 0)
            except BaseException:
                # A half-written reply would desynchronise the client's stream.
                self.size = mark
                raise
        if self.limit and self.size > self.limit:
            raise OutputLimitExceeded(self.size)

    def take(self):
        """Everything appended so far, as bytes; the buffer is left empty."""
        cdef object data
        if self.out == NULL:
            return b""
        if self.size != self.cap:
            self._resize(self.size)
        data = <object>self.out
        self._drop()
        return data

    cdef void _drop(self) noexcept:
        Py_XDECREF(self.out)
        self.out = NULL
        self.buf = NULL
        self.size = self.cap = 0

    cdef int _resize(self, Py_ssize_t new_cap) except -1:
        # We hold the only reference, which _PyBytes_Resize requires.
        if _PyBytes_Resize(&self.out, new_cap) < 0:
            # The old object is freed on failure: the pending replies are
            # lost, and the caller must close the connection.
            self.out = NULL
            self._drop()
            return -1
        self.buf = PyBytes_AS_STRING(<object>self.out)
        self.cap = new_cap
        return 0

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t new_cap
        cdef object fresh
        if self.size + extra <= self.cap:
            return 0
        new_cap = max(self.cap * 2, self.size + extra, <Py_ssize_t>RESP_REPLY_MIN_CAPACITY)
        if self.out != NULL:
            return self._resize(new_cap)
        fresh = PyBytes_FromStringAndSize(NULL, new_cap)
        Py_INCREF(fresh)
        self.out = <PyObject *>fresh
        self.buf = PyBytes_AS_STRING(fresh)
        self.cap = new_cap
        return 0

    cdef int _write(self, const char *data, Py_ssize_t length) except -1:
        self._reserve(length)
        memcpy(self.buf + self.size, data, length)
        self.size += length
        return 0

    cdef int _write_header(self, char kind, long long number) except -1:
        """`<kind><number>\\r\\n`: integers and the headers of every aggregate."""
        self._reserve(RESP_HEADER_MAX)
        self.size += put_header(self.buf + self.size, kind, number)
        return 0

    cdef int _write_bulk(self, const char *data, Py_ssize_t length) except -1:
        cdef char *out
        self._reserve(RESP_HEADER_MAX + length + 2)
        out = self.buf + self.size
        out += put_header(out, c'$', length)
        memcpy(out, data, length)
        out[length] = c'\r'
        out[length + 1] = c'\n'
        self.size = out + length + 2 - self.buf
        return 0

    cdef int _write_line(self, char kind, object text) except -1:
        """A simple string or error line; CR and LF become spaces, as Redis does."""
        cdef Py_ssize_t length
        cdef const char *data = PyUnicode_AsUTF8AndSize(text, &length)
        cdef char *out
        cdef Py_ssize_t i
        self._reserve(length + 3)
        out = self.buf + self.size
        out[0] = kind
        memcpy(out + 1, data, length)
        for i in range(1, length + 1):
            if out[i] == c'\r' or out[i] == c'\n':
                out[i] = c' '
        out[length + 1] = c'\r'
        out[length + 2] = c'\n'
        self.size += length + 3
        return 0

    cdef int _write_double(self, double value) except -1:
        """RESP3 double, or RESP2 bulk string, with Redis's text (3 not 3.0, inf, -inf)."""
        cdef char text[24]
        cdef Py_ssize_t length
        cdef char *repr_text
        if isinf(value):
            if value > 0:
                memcpy(text, b"inf", 3)
                length = 3
            else:
                memcpy(text, b"-inf", 4)
                length = 4
        elif value == floor(value) and fabs(value) < 1e17:
            length = write_decimal(text, <long long>value)
        else:
            # Same text as Python's repr(), which is what the twin writes.
            repr_text = PyOS_double_to_string(value, c'r', 0, Py_DTSF_ADD_DOT_0, NULL)
            try:
                if self.resp3:
                    self._write(b",", 1)
                    self._write(repr_text, len(repr_text))
                    self._write(b"\r\n", 2)
                else:
                    self._write_bulk(repr_text, len(repr_text))
            finally:
                PyMem_Free(repr_text)
            return 0
        if self.resp3:
            self._reserve(length + 3)
            self.buf[self.size] = c','
            memcpy(self.buf + self.size + 1, text, length)
            self.buf[self.size + length + 1] = c'\r'
            self.buf[self.size + length + 2] = c'\n'
            self.size += length + 3
        else:
            self._write_bulk(text, length)
        return 0

    cdef int _encode(self, object value, int depth) except -1:
        # Exact-type fast paths for the replies most commands return.
        cdef type kind = type(value)
        cdef long long number
        cdef int overflow = 0
        if kind is bytes:
            return self._write_bulk(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
        if kind is str:
            return self._write_line(c'+', value)
        if kind is int:
            number = PyLong_AsLongLongAndOverflow(value, &overflow)
            if not overflow:
                return self._write_header(c':', number)
        elif value is None:
            if self.resp3:
                return self._write(b"_\r\n", 3)
            return self._write(b"$-1\r\n", 5)
        elif kind is list or kind is tuple:
            if depth >= RESP_MAX_DEPTH:
                raise RecursionError("reply nested too deeply")
            self._write_header(c'*', len(value))
            for item in value:
                self._encode(item, depth + 1)
            return 0
        return self._encode_other(value, depth)

    cdef int _encode_other(self, object value, int depth) except -1:
        """Every type of the mapping, by isinstance, in the twin's order."""
        cdef long long number
        cdef int overflow = 0
        if depth >= RESP_MAX_DEPTH:
            raise RecursionError("reply nested too deeply")
        if isinstance(value, Raw):
            return self._write(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
        if isinstance(value, bytes):
            return self._write_bulk(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
        if isinstance(value, str):
            return self._write_line(c'+', value)
        if isinstance(value, bool):
            if self.resp3:
                return self._write(b"#t\r\n" if value else b"#f\r\n", 4)
            return self._write(b":1\r\n" if value else b":0\r\n", 4)
        if isinstance(value, int):
            number = PyLong_AsLongLongAndOverflow(value, &overflow)
            if not overflow:
                return self._write_header(c':', number)
            digits = b"%d" % value
            if self.resp3:
                # RESP3 big number; RESP2 has none, so Redis sends a bulk string.
                self._write(b"(", 1)
                self._write(digits, len(digits))
                return self._write(b"\r\n", 2)
            return self._write_bulk(digits, len(digits))
        if value is None:
            return self._encode(value, depth)
        if isinstance(value, float):
            return self._write_double(value)
        if isinstance(value, CommandError):
            return self._write_line(c'-', value.message)
        if isinstance(value, NullArray):
            if self.resp3:
                return self._write(b"_\r\n", 3)
            return self._write(b"*-1\r\n", 5)
        if isinstance(value, PairList):
            self._write_header(c'*', len(value) if self.resp3 else 2 * len(value))
            for member, score in value:
                if self.resp3:
                    self._write(b"*2\r\n", 4)
                self._encode(member, depth + 1)
                if type(score) is bytes:  # HRANDFIELD WITHVALUES pairs field, value
                    self._encode(score, depth + 1)
                else:
                    self._write_double(float(score))
            return 0
        if isinstance(value, (list, tuple)):
            self._write_header(c'*', len(value))
            for item in value:
                self._encode(item, depth + 1)
            return 0
        if isinstance(value, dict):
            self._write_header(c'%' if self.resp3 else c'*', len(value) if self.resp3 else 2 * len(value))
            for key, item in value.items():
                self._encode(key, depth + 1)
                self._encode(item, depth + 1)
            return 0
        if isinstance(value, (set, frozenset)):
            self._write_header(c'~' if self.resp3 else c'*', len(value))
            for item in value:
                self._encode(item, depth + 1)
            return 0
        raise TypeError(f"cannot encode {type(value).__name__} as a RESP reply")


def encode(value, bint resp3=False):
    """One reply, encoded."""
    cdef ReplyBuffer out = ReplyBuffer(resp3)
    out._encode(value, 0)
    return out.take()
