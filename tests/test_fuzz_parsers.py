"""Property-based fuzzing of the two parsers that read untrusted text.

- The RESP request parser: the compiled module and its plain-Python twin
  must agree on every input, fed in any chunking, with any limits and
  before or after AUTH; `feed` never raises, and a protocol error is only
  ever reported through `error`, with one of Redis's texts.
- The configuration parser: any file of random lines either loads into a
  valid Config or raises ConfigError naming the file, the line and the key.

Bounded in time for CI: a fixed number of examples each, no deadline per
example (a loaded CI machine must not make them flaky) but every input is
small. A failure found here is kept below as an `@example`.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prez._core import resp as compiled
from prez._core import resp_py as twin
from prez.config import PARAMS, Config
from prez.errors import ConfigError

KNOWN_ERRORS = {
    twin.ERR_MBULK_LEN,
    twin.ERR_BULK_LEN,
    twin.ERR_UNBALANCED,
    twin.ERR_BIG_INLINE,
    twin.ERR_BIG_MBULK,
    twin.ERR_BIG_BULK,
    twin.ERR_NOAUTH_MBULK,
    twin.ERR_NOAUTH_BULK,
    twin.ERR_QUERY_LIMIT,
}
EXPECTED_DOLLAR = re.compile(r"ERR Protocol error: expected '\$', got '.'", re.S)

# Pieces that steer random bytes into the parser's interesting states.
TOKENS = st.sampled_from(
    [
        b"*",
        b"$",
        b"\r\n",
        b"\r",
        b"\n",
        b"0",
        b"1",
        b"2",
        b"-1",
        b"10",
        b"11",
        b"16384",
        b"16385",
        b"2147483647",
        b"2147483648",
        b"99999999999999999999",
        b"SET",
        b"PING",
        b'"',
        b"'",
        b"\\x41",
        b" ",
        b"\x00",
    ]
)
NOISE = st.lists(TOKENS | st.binary(max_size=12), max_size=40).map(b"".join)


def _run(module: object, data: bytes, cuts: list[int], limits: dict[str, int]) -> tuple:
    parser = module.RequestParser(  # type: ignore[attr-defined]
        max_bulk_len=limits["bulk"],
        max_multibulk_len=limits["mbulk"],
        max_inline_len=limits["inline"],
        max_query_len=limits["query"],
        noauth=bool(limits["noauth"]),
    )
    commands: list[list[bytes]] = []
    trace = []
    last = 0
    for cut in [*sorted(cuts), len(data)]:
        commands += parser.feed(data[last:cut])
        # An unauthenticated parser returns one command per feed: drain it
        # as the server does.
        while parser.error is None and (more := parser.feed(b"")):
            commands += more
        trace.append((len(commands), parser.buffered, parser.pending, parser.error))
        last = cut
    return commands, trace, parser.error


LIMITS = st.fixed_dictionaries(
    {
        "bulk": st.sampled_from([0, 1, 5, 16384, 512 * 1024 * 1024]),
        "mbulk": st.sampled_from([0, 1, 3, 2**31 - 1]),
        "inline": st.sampled_from([4, 16, 64 * 1024]),
        "query": st.sampled_from([8, 64, 1024, 1024**3]),
        "noauth": st.integers(0, 1),
    }
)


@settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    data=NOISE,
    cuts=st.lists(st.integers(0, 200), max_size=5),
    limits=LIMITS,
)
@example(
    data=b"AUTH x\r\n*11\r\n",
    cuts=[],
    limits={
        "bulk": 16384,
        "mbulk": 2**31 - 1,
        "inline": 65536,
        "query": 1024**3,
        "noauth": 1,
    },
)
@example(
    data=b"*3\r\n$1\r\nx\r\n$1\r\ny\r\n",
    cuts=[9],
    limits={
        "bulk": 16384,
        "mbulk": 2**31 - 1,
        "inline": 65536,
        "query": 40,
        "noauth": 0,
    },
)
def test_resp_parsers_agree_and_fail_only_through_error(
    data: bytes, cuts: list[int], limits: dict[str, int]
) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    got = _run(compiled, data, cuts, limits)
    want = _run(twin, data, cuts, limits)
    assert got == want
    error = got[2]
    assert error is None or error in KNOWN_ERRORS or EXPECTED_DOLLAR.fullmatch(error)
    for command in got[0]:
        assert command and all(type(arg) is bytes for arg in command)
        if limits["noauth"]:
            assert len(command) <= twin.NOAUTH_MAX_ARGS or b"*" not in data


@settings(max_examples=300, deadline=None)
@given(
    replies=st.lists(st.binary(max_size=40) | st.text(max_size=20), max_size=12),
    limit=st.integers(0, 200),
)
def test_reply_buffer_limit_agrees(replies: list[object], limit: int) -> None:
    outcomes = []
    for module in (compiled, twin):
        out = module.ReplyBuffer(False, limit)
        raised_at = None
        for i, reply in enumerate(replies):
            try:
                out.append(reply)
            except module.OutputLimitExceeded:
                raised_at = i
                break
        outcomes.append((raised_at, out.take()))
    assert outcomes[0] == outcomes[1]
    raised_at, data = outcomes[0]
    if limit and raised_at is not None:
        assert len(data) > limit
    elif limit:
        assert len(data) <= limit


# --- the config parser ------------------------------------------------------------

VALUES = st.sampled_from(
    [
        "",
        "0",
        "1",
        "-1",
        "yes",
        "no",
        "1mb",
        "1gb",
        "10x",
        "512kb",
        "normal 0 0 0",
        "normal 1mb 512kb 10",
        "replica 1 2",
        "slave 1mb 1mb 60 pubsub 0 0 0",
        "noeviction",
        "allkeys-lru",
        "127.0.0.1:7000",
        "linearizable",
        '"quoted value"',
        "'single'",
        '"unbalanced',
        '"a"b',
        "\\x41",
        "9223372036854775808",
        "a b c",
    ]
)
KEYS = st.sampled_from(sorted(PARAMS)) | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12
)
LINES = st.one_of(
    st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]} {kv[1]}".rstrip()),
    st.sampled_from(["", "# comment", "   ", '"', "'x"]),
    st.text(
        alphabet=st.characters(
            blacklist_categories=["Cs"],
            blacklist_characters="\r\n\x85\u2028\u2029\x0b\x0c\x1c\x1d\x1e",
        ),
        max_size=30,
    ),
)


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(lines=st.lists(LINES, max_size=8))
@example(lines=["client-output-buffer-limit normal 1mb"])
@example(lines=["maxmemory-policy allkeys-lru"])
@example(lines=['"'])
def test_config_lines_load_or_name_file_line_and_key(
    tmp_path: Path, lines: list[str]
) -> None:
    path = tmp_path / "fuzz.conf"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        config = Config.load(str(path))
    except ConfigError as e:
        assert e.path == str(path)
        assert e.line is not None and 1 <= e.line <= len(lines)
        bad = lines[e.line - 1]
        assert str(e).startswith(f"Bad config {path}:{e.line}")
        if e.key is not None:
            assert e.key.lower() in bad.lower()
            assert f"'{e.key}'" in str(e)
        return
    # Loaded: every value is what its parser makes of its own rendering.
    for name, param in PARAMS.items():
        value = config[name]
        if param.multi and not param.merge:
            assert isinstance(value, list)
        else:
            text = config.get_text(name)
            if param.merge or name in ("cluster-port", "name"):
                continue
            if name == "cluster-join" and not value:
                continue
            assert param.parse(text) == value or text == str(value)
