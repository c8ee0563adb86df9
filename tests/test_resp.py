"""Tests of the RESP core: request parsing and reply encoding.

Every behaviour test runs against both the compiled module (prez._core.resp)
and its plain-Python twin (prez._core.resp_py); differential tests check the
two agree on random input, and hiredis serves as an independent oracle for
both directions (hiredis.pack_command for requests, hiredis.Reader for
replies).
"""

from __future__ import annotations

import math
import tracemalloc
from types import ModuleType
from typing import Any

import hiredis
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prez._core import resp as compiled
from prez._core import resp_py as twin
from prez._core.replytypes import NULL_ARRAY, NullArray, PairList, Raw
from prez.errors import CommandError
from prez.kv.keyspace import format_double

IMPLEMENTATIONS = [pytest.param(compiled, id="compiled"), pytest.param(twin, id="twin")]

ERR_MBULK_LEN = "ERR Protocol error: invalid multibulk length"
ERR_BULK_LEN = "ERR Protocol error: invalid bulk length"
ERR_UNBALANCED = "ERR Protocol error: unbalanced quotes in request"
ERR_BIG_INLINE = "ERR Protocol error: too big inline request"
ERR_BIG_MBULK = "ERR Protocol error: too big mbulk count string"
ERR_BIG_BULK = "ERR Protocol error: too big bulk count string"

Command = list[bytes]


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


def pack(commands: list[Command]) -> bytes:
    """Multibulk encoding of client commands, as clients send them."""
    out = bytearray()
    for args in commands:
        out += b"*%d\r\n" % len(args)
        for arg in args:
            out += b"$%d\r\n%s\r\n" % (len(arg), arg)
    return bytes(out)


def feed_pieces(parser: Any, data: bytes, cuts: list[int]) -> list[Command]:
    commands: list[Command] = []
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        commands += parser.feed(data[previous:cut])
        previous = cut
    return commands


ARG = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"", b"\r\n", b"\r", b"\n", b"*1\r\n", b"$3\r\n", b"\x00"]),
)
COMMANDS = st.lists(st.lists(ARG, min_size=1, max_size=6), max_size=8)


# --- multibulk -------------------------------------------------------------


def test_multibulk_commands_are_returned_in_order(impl: ModuleType) -> None:
    parser = impl.RequestParser()
    data = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n"
    assert parser.feed(data) == [[b"SET", b"k", b"hello"], [b"PING"]]
    assert parser.error is None
    assert parser.buffered == 0


def test_multibulk_is_binary_safe(impl: ModuleType) -> None:
    args = [b"SET", b"a\r\nb", b"", b"\x00\xff*3\r\n$1\r\n"]
    assert impl.RequestParser().feed(pack([args])) == [args]


def test_incomplete_command_stays_buffered(impl: ModuleType) -> None:
    parser = impl.RequestParser()
    data = pack([[b"GET", b"key"]])
    assert parser.feed(data[:-3]) == []
    # Parsed arguments are already bytes objects: only the partial "ke" is held.
    assert parser.buffered == 2
    assert parser.feed(data[-3:]) == [[b"GET", b"key"]]
    assert parser.buffered == 0


@pytest.mark.parametrize("empty", [b"*0\r\n", b"*-1\r\n", b"*-10\r\n"])
def test_non_positive_multibulk_count_is_an_empty_request(
    impl: ModuleType, empty: bytes
) -> None:
    # Redis skips these silently (tests/unit/protocol.tcl "Negative multibulk length").
    parser = impl.RequestParser()
    assert parser.feed(empty + pack([[b"PING"]])) == [[b"PING"]]
    assert parser.error is None


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_feed_accepts_any_bytes_like(impl: ModuleType, kind: type) -> None:
    assert impl.RequestParser().feed(kind(pack([[b"PING"]]))) == [[b"PING"]]


def test_pack_matches_hiredis_pack_command() -> None:
    # Keeps the test helper honest: it must produce what real clients send.
    args = [b"SET", b"key", b"va\r\nlue", b""]
    # hiredis's stub types the argument as a 1-tuple; it takes any length.
    packed = hiredis.pack_command(tuple(args))  # type: ignore[arg-type]
    assert pack([args]) == packed


@settings(max_examples=60, deadline=None)
@given(commands=COMMANDS)
@example(commands=[[b""], [b"\r\n"]])
def test_split_feed_every_offset(commands: list[Command]) -> None:
    data = pack(commands)
    for module in (compiled, twin):
        for cut in range(len(data) + 1):
            assert feed_pieces(module.RequestParser(), data, [cut]) == commands


@settings(max_examples=150, deadline=None)
@given(commands=COMMANDS, data=st.data())
def test_random_multiway_splits(commands: list[Command], data: st.DataObject) -> None:
    stream = pack(commands)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    for module in (compiled, twin):
        parser = module.RequestParser()
        assert feed_pieces(parser, stream, cuts) == commands
        assert parser.buffered == 0
        assert parser.error is None


def test_byte_by_byte_feed(impl: ModuleType) -> None:
    commands = [[b"SET", b"k" * 300, b"v\r\n"], [b"PING"]]
    data = pack(commands) + b"GET k\r\n"
    assert feed_pieces(impl.RequestParser(), data, list(range(len(data)))) == [
        *commands,
        [b"GET", b"k"],
    ]


def test_many_pipelined_commands_in_one_feed(impl: ModuleType) -> None:
    commands = [[b"SET", b"key:%06d" % i, b"v" * (i % 50)] for i in range(3000)]
    assert impl.RequestParser().feed(pack(commands)) == commands


def test_empty_feed_is_harmless(impl: ModuleType) -> None:
    parser = impl.RequestParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"*1\r\n$4\r\nPI") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"NG\r\n") == [[b"PING"]]


def test_memory_stays_bounded_over_a_long_stream(impl: ModuleType) -> None:
    # 2 MB of pipelined commands in 16 KiB reads: consumed bytes must be
    # dropped as we go, so what stays allocated is about one read.
    chunk = pack([[b"SET", b"key:%06d" % i, b"x" * 100] for i in range(130)])[:16384]
    parser = impl.RequestParser()
    tracemalloc.start()
    try:
        for _ in range(2_000_000 // len(chunk)):
            parser.feed(chunk)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parser.error is None
    assert current < 200_000


def test_large_bulk_across_many_feeds(impl: ModuleType) -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    data = pack([[b"SET", b"k", value]])
    parser = impl.RequestParser()
    assert feed_pieces(parser, data, list(range(0, len(data), 16 * 1024))) == [
        [b"SET", b"k", value]
    ]


# --- inline ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"PING\r\n", [[b"PING"]]),
        (b"PING\n", [[b"PING"]]),
        (b"set k v\r\nget k\n", [[b"set", b"k", b"v"], [b"get", b"k"]]),
        (b"  SET\t key   value  \r\n", [[b"SET", b"key", b"value"]]),
        (b'SET key "hello world"\r\n', [[b"SET", b"key", b"hello world"]]),
        (
            b'SET k "a\\x41\\x4a\\n\\r\\t\\b\\a\\\\\\"z"\r\n',
            [[b"SET", b"k", b'aAJ\n\r\t\b\a\\"z']],
        ),
        (b'"\\xZZ\\q"\n', [[b"xZZq"]]),  # not an escape: the character itself
        (b"'it\\'s' 'a\\nb'\n", [[b"it's", b"a\\nb"]]),  # single quotes: only \'
        (b'foo"bar baz" x\n', [[b"foobar baz", b"x"]]),
        (b"\"\" ''\n", [[b"", b""]]),
        (b"a\rb\n", [[b"a", b"b"]]),
        (b"a\x0bb \x0c c\n", [[b"a\x0bb", b"c"]]),  # \v, \f: blanks only between tokens
        (b"a\x00b c\n", [[b"a"]]),  # the line ends at NUL, as a C string does
        (
            b"\"a\"\x0bb 'c'\x0c\n",
            [[b"a", b"b", b"c"]],
        ),  # any C space may follow a quote
        (b"\r\n", []),
        (b"\n", []),
        (b" \t \r\n", []),
    ],
)
def test_inline_commands(
    impl: ModuleType, line: bytes, expected: list[Command]
) -> None:
    parser = impl.RequestParser()
    assert parser.feed(line) == expected
    assert parser.error is None
    assert parser.buffered == 0


@pytest.mark.parametrize(
    "line",
    [b'"foo"bar\n', b"'foo'bar\n", b'"abc\r\n', b"'abc\n", b'"a\\"\n', b'x "y\n'],
)
def test_unbalanced_quotes(impl: ModuleType, line: bytes) -> None:
    parser = impl.RequestParser()
    assert parser.feed(b"PING\r\n" + line + b"PING\r\n") == [[b"PING"]]
    assert parser.error == ERR_UNBALANCED


def test_inline_and_multibulk_mix(impl: ModuleType) -> None:
    data = b"PING\r\n" + pack([[b"ECHO", b"x y"]]) + b'ECHO "x y"\n'
    expected = [[b"PING"], [b"ECHO", b"x y"], [b"ECHO", b"x y"]]
    assert impl.RequestParser().feed(data) == expected


def test_partial_inline_line_waits_for_newline(impl: ModuleType) -> None:
    parser = impl.RequestParser()
    assert parser.feed(b"PIN") == []
    assert parser.buffered == 3
    assert parser.feed(b"G\r") == []
    assert parser.feed(b"\n") == [[b"PING"]]


def test_inline_line_limit(impl: ModuleType) -> None:
    parser = impl.RequestParser()
    assert parser.feed(b"a" * (64 * 1024)) == []
    assert parser.error is None
    parser.feed(b"a")
    assert parser.error == ERR_BIG_INLINE
    assert parser.buffered == 0
    small = impl.RequestParser(max_inline_len=10)
    assert small.feed(b"0123456789\n") == [[b"0123456789"]]
    small.feed(b"0123456789a")
    assert small.error == ERR_BIG_INLINE


# --- protocol errors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"*abc\r\n", ERR_MBULK_LEN),
        (b"*\r\n", ERR_MBULK_LEN),
        (b"*01\r\n", ERR_MBULK_LEN),
        (b"*+1\r\n", ERR_MBULK_LEN),
        (b"*-0\r\n", ERR_MBULK_LEN),
        (b"* 1\r\n", ERR_MBULK_LEN),
        # Redis 7 takes up to INT_MAX arguments (Redis 5 stopped at 1048576).
        (b"*2147483648\r\n", ERR_MBULK_LEN),
        (b"*4000000000\r\n", ERR_MBULK_LEN),
        (b"*99999999999999999999\r\n", ERR_MBULK_LEN),
        (b"*-99999999999999999999\r\n", ERR_MBULK_LEN),
        (b"*1\r\n$-1\r\n", ERR_BULK_LEN),
        (b"*1\r\n$-10\r\n", ERR_BULK_LEN),
        (b"*1\r\n$\r\n", ERR_BULK_LEN),
        (b"*1\r\n$1x\r\n", ERR_BULK_LEN),
        (b"*1\r\n$536870913\r\n", ERR_BULK_LEN),
        (b"*1\r\n$2147483648\r\n", ERR_BULK_LEN),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
            "ERR Protocol error: expected '$', got 'f'",
        ),
        (b"*1\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"),
    ],
)
def test_protocol_errors_use_redis_text(
    impl: ModuleType, data: bytes, error: str
) -> None:
    parser = impl.RequestParser()
    assert parser.feed(pack([[b"PING"]]) + data) == [[b"PING"]]
    assert parser.error == error
    assert parser.buffered == 0


def test_limits_are_inclusive(impl: ModuleType) -> None:
    for header in (
        b"*1048577\r\n",
        b"*2147483647\r\n",
        b"*1\r\n$536870912\r\n",
        b"*-9223372036854775808\r\n",
    ):
        parser = impl.RequestParser()
        assert parser.feed(header) == []
        assert parser.error is None


def test_nothing_is_returned_after_an_error(impl: ModuleType) -> None:
    parser = impl.RequestParser()
    parser.feed(b"*x\r\n")
    assert parser.error == ERR_MBULK_LEN
    assert parser.feed(pack([[b"PING"]])) == []
    assert parser.feed(b"PING\r\n") == []
    assert parser.buffered == 0
    assert parser.error == ERR_MBULK_LEN


@pytest.mark.parametrize(
    ("prefix", "error"), [(b"*", ERR_BIG_MBULK), (b"*1\r\n$", ERR_BIG_BULK)]
)
def test_header_without_cr_is_refused_past_64k(
    impl: ModuleType, prefix: bytes, error: str
) -> None:
    # The header line starts at the prefix's last byte; Redis allows 64 KiB of it.
    parser = impl.RequestParser()
    parser.feed(prefix + b"1" * (64 * 1024 - 1))
    assert parser.error is None
    assert parser.buffered == 64 * 1024
    parser.feed(b"1")
    assert parser.error == error
    assert parser.buffered == 0


@pytest.mark.parametrize("header", [b"*2147483648\r\n", b"*1\r\n$2147483648\r\n"])
def test_oversized_header_fails_at_once_and_buffers_nothing(
    impl: ModuleType, header: bytes
) -> None:
    parser = impl.RequestParser()
    parser.feed(header)
    assert parser.error is not None
    assert parser.buffered == 0
    parser.feed(b"x" * 1_000_000)
    assert parser.buffered == 0


def test_declared_bulk_length_is_not_allocated(impl: ModuleType) -> None:
    # 100 MB announced, 1 kB sent: memory must follow what arrived.
    parser = impl.RequestParser()
    tracemalloc.start()
    try:
        parser.feed(b"*1\r\n$100000000\r\n")
        parser.feed(b"x" * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parser.error is None
    assert parser.buffered == 1000
    assert peak < 1_000_000


def test_max_bulk_len_is_settable(impl: ModuleType) -> None:
    parser = impl.RequestParser()
    parser.max_bulk_len = 5
    assert parser.feed(pack([[b"12345"]])) == [[b"12345"]]
    parser.feed(pack([[b"123456"]]))
    assert parser.error == ERR_BULK_LEN


def test_max_multibulk_len_is_configurable(impl: ModuleType) -> None:
    parser = impl.RequestParser(max_multibulk_len=2)
    assert parser.feed(pack([[b"a", b"b"]])) == [[b"a", b"b"]]
    parser.feed(pack([[b"a", b"b", b"c"]]))
    assert parser.error == ERR_MBULK_LEN


# --- random input, both implementations ----------------------------------------

NOISE = st.lists(
    st.one_of(
        st.binary(max_size=8),
        st.sampled_from(
            [
                b"*",
                b"$",
                b"\r\n",
                b"\r",
                b"\n",
                b"1",
                b"3",
                b"-",
                b"0",
                b'"',
                b"'",
                b"\\x4",
                b" ",
                b"\x00",
                b"\x0b",
                b"\t",
                b"SET",
            ]
        ),
    ),
    max_size=40,
).map(b"".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=COMMANDS, noise=NOISE, data=st.data())
def test_random_bytes_never_crash_and_both_agree(
    prefix: list[Command], noise: bytes, data: st.DataObject
) -> None:
    stream = pack(prefix) + noise
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    results = []
    for module in (compiled, twin):
        parser = module.RequestParser(max_inline_len=16)
        per_feed = []
        previous = 0
        for cut in [*cuts, len(stream)]:
            got = parser.feed(stream[previous:cut])
            per_feed.append(got)
            previous = cut
            if parser.error is not None:
                assert parser.buffered == 0
                assert parser.feed(b"PING\r\n" + pack([[b"PING"]])) == []
        for command in (c for batch in per_feed for c in batch):
            assert all(type(arg) is bytes for arg in command)
        results.append((per_feed, parser.error, parser.buffered))
    assert results[0] == results[1]


# --- reply encoding -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "resp2", "resp3"),
    [
        ("OK", b"+OK\r\n", b"+OK\r\n"),
        ("été", "+été\r\n".encode(), "+été\r\n".encode()),
        (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
        (b"a\r\nb", b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n"),
        (0, b":0\r\n", b":0\r\n"),
        (-(2**63), b":-9223372036854775808\r\n", b":-9223372036854775808\r\n"),
        (2**63 - 1, b":9223372036854775807\r\n", b":9223372036854775807\r\n"),
        (2**64, b"$20\r\n18446744073709551616\r\n", b"(18446744073709551616\r\n"),
        (True, b":1\r\n", b"#t\r\n"),
        (False, b":0\r\n", b"#f\r\n"),
        (None, b"$-1\r\n", b"_\r\n"),
        (NULL_ARRAY, b"*-1\r\n", b"_\r\n"),
        (1.5, b"$3\r\n1.5\r\n", b",1.5\r\n"),
        (3.0, b"$1\r\n3\r\n", b",3\r\n"),
        (-2.0, b"$2\r\n-2\r\n", b",-2\r\n"),
        (float("inf"), b"$3\r\ninf\r\n", b",inf\r\n"),
        (float("-inf"), b"$4\r\n-inf\r\n", b",-inf\r\n"),
        (1e17, b"$5\r\n1e+17\r\n", b",1e+17\r\n"),
        (0.1, b"$3\r\n0.1\r\n", b",0.1\r\n"),
        ([], b"*0\r\n", b"*0\r\n"),
        ((b"a", 1), b"*2\r\n$1\r\na\r\n:1\r\n", b"*2\r\n$1\r\na\r\n:1\r\n"),
        ([[None]], b"*1\r\n*1\r\n$-1\r\n", b"*1\r\n*1\r\n_\r\n"),
        ({b"k": 1}, b"*2\r\n$1\r\nk\r\n:1\r\n", b"%1\r\n$1\r\nk\r\n:1\r\n"),
        ({}, b"*0\r\n", b"%0\r\n"),
        ({7}, b"*1\r\n:7\r\n", b"~1\r\n:7\r\n"),
        (frozenset(), b"*0\r\n", b"~0\r\n"),
        (
            PairList([(b"m", 1.5), (b"n", 2.0)]),
            b"*4\r\n$1\r\nm\r\n$3\r\n1.5\r\n$1\r\nn\r\n$1\r\n2\r\n",
            b"*2\r\n*2\r\n$1\r\nm\r\n,1.5\r\n*2\r\n$1\r\nn\r\n,2\r\n",
        ),
        (CommandError("ERR nope"), b"-ERR nope\r\n", b"-ERR nope\r\n"),
        (Raw(b"+PONG\r\n"), b"+PONG\r\n", b"+PONG\r\n"),
    ],
)
def test_reply_encoding(
    impl: ModuleType, value: object, resp2: bytes, resp3: bytes
) -> None:
    assert impl.encode(value) == resp2
    assert impl.encode(value, resp3=True) == resp3


def test_line_breaks_in_status_and_error_lines_become_spaces(impl: ModuleType) -> None:
    assert impl.encode("a\r\nb\rc\nd") == b"+a  b c d\r\n"
    assert impl.encode(CommandError("ERR bad\r\nthing")) == b"-ERR bad  thing\r\n"


def test_reply_buffer_accumulates_and_take_empties(impl: ModuleType) -> None:
    buffer = impl.ReplyBuffer()
    assert len(buffer) == 0
    assert buffer.take() == b""
    buffer.append("OK")
    buffer.append(b"v")
    assert len(buffer) == len(b"+OK\r\n$1\r\nv\r\n")
    assert buffer.take() == b"+OK\r\n$1\r\nv\r\n"
    assert len(buffer) == 0
    assert buffer.take() == b""
    buffer.append(1)
    assert buffer.take() == b":1\r\n"


def test_reply_buffer_switches_protocol(impl: ModuleType) -> None:
    buffer = impl.ReplyBuffer()
    assert buffer.resp3 is False
    buffer.append(None)
    buffer.resp3 = True
    buffer.append(None)
    assert buffer.take() == b"$-1\r\n_\r\n"
    assert impl.ReplyBuffer(resp3=True).resp3 is True


@pytest.mark.parametrize(
    "bad", [object(), bytearray(b"x"), [b"ok", object()], {b"k": [1, 2, {3j}]}]
)
def test_unknown_type_raises_and_leaves_buffer_unchanged(
    impl: ModuleType, bad: object
) -> None:
    buffer = impl.ReplyBuffer()
    buffer.append(b"x")
    with pytest.raises(TypeError):
        buffer.append(bad)
    assert buffer.take() == b"$1\r\nx\r\n"


def test_absurd_nesting_raises(impl: ModuleType) -> None:
    nested: list[object] = []
    for _ in range(5000):
        nested = [nested]
    buffer = impl.ReplyBuffer()
    with pytest.raises(RecursionError):
        buffer.append(nested)
    assert len(buffer) == 0


def test_large_replies(impl: ModuleType) -> None:
    value = b"z" * 3_000_000
    buffer = impl.ReplyBuffer()
    for _ in range(3):
        buffer.append(value)
    assert (
        buffer.take()
        == b"$3000000\r\n" + value + b"\r\n" + (b"$3000000\r\n" + value + b"\r\n") * 2
    )
    buffer.append("OK")
    assert buffer.take() == b"+OK\r\n"


@settings(max_examples=300, deadline=None)
@given(value=st.floats(allow_nan=False) | st.integers(-(2**60), 2**60).map(float))
def test_double_text_matches_keyspace_format_double(value: float) -> None:
    text = format_double(value)
    for module in (compiled, twin):
        assert module.encode(value, resp3=True) == b",%s\r\n" % text
        assert module.encode(value) == b"$%d\r\n%s\r\n" % (len(text), text)


LEAVES = st.one_of(
    st.binary(max_size=20),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=10),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.just(NULL_ARRAY),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=10).map(CommandError),
)
HASHABLE = st.one_of(st.binary(max_size=8), st.integers(-1000, 1000))
REPLIES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.binary(max_size=8), inner, max_size=4),
        st.frozensets(HASHABLE, max_size=4),
        st.lists(
            st.tuples(st.binary(max_size=8), st.floats(allow_nan=False)), max_size=3
        ).map(PairList),
    ),
    max_leaves=20,
)


def decoded(value: object, resp3: bool) -> object:
    """What hiredis.Reader gives back for the encoding of `value`."""
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str):
        return value.encode().replace(b"\r", b" ").replace(b"\n", b" ")
    if isinstance(value, bool):
        return value if resp3 else int(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else b"%d" % value
    if value is None or isinstance(value, NullArray):
        return None
    if isinstance(value, float):
        return float(format_double(value)) if resp3 else format_double(value)
    if isinstance(value, CommandError):
        return ("error", decoded(value.message, resp3))
    if isinstance(value, PairList):
        if resp3:
            return [[decoded(m, resp3), decoded(float(s), resp3)] for m, s in value]
        return [
            x for m, s in value for x in (decoded(m, resp3), decoded(float(s), resp3))
        ]
    if isinstance(value, dict):
        if resp3:
            return {decoded(k, resp3): decoded(v, resp3) for k, v in value.items()}
        return [
            x for k, v in value.items() for x in (decoded(k, resp3), decoded(v, resp3))
        ]
    assert isinstance(value, (list, tuple, set, frozenset))
    return [decoded(item, resp3) for item in value]


def read_back(data: bytes) -> object:
    reader = hiredis.Reader()
    reader.feed(data)
    reply = reader.gets()
    assert reader.gets() is False  # exactly one reply, nothing left over
    return normalise_errors(reply)


def normalise_errors(reply: object) -> object:
    if isinstance(reply, hiredis.ReplyError):
        return ("error", str(reply).encode())
    if isinstance(reply, list):
        return [normalise_errors(item) for item in reply]
    if isinstance(reply, dict):
        return {k: normalise_errors(v) for k, v in reply.items()}
    return reply


@settings(max_examples=300, deadline=None)
@given(value=REPLIES, resp3=st.booleans())
def test_encoder_agrees_with_twin_and_hiredis_reads_it_back(
    value: object, resp3: bool
) -> None:
    encoded = compiled.encode(value, resp3)
    assert encoded == twin.encode(value, resp3)
    assert read_back(encoded) == decoded(value, resp3)
    # Raw passes an encoded reply through untouched.
    assert compiled.encode([Raw(encoded)], resp3) == b"*1\r\n" + encoded


@settings(max_examples=100, deadline=None)
@given(values=st.lists(REPLIES, max_size=6), resp3=st.booleans())
def test_reply_buffer_concatenates_replies(values: list[object], resp3: bool) -> None:
    for module in (compiled, twin):
        buffer = module.ReplyBuffer(resp3)
        for value in values:
            buffer.append(value)
        assert buffer.take() == b"".join(module.encode(v, resp3) for v in values)


def test_nan_double(impl: ModuleType) -> None:
    assert impl.encode(math.nan, resp3=True) == b",nan\r\n"
    assert impl.encode(math.nan) == b"$3\r\nnan\r\n"
