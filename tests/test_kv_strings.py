"""String commands: in-process through prez.kv.execute, and through redis-py.

The in-process tests pin replies and error texts to Redis 7's; the
`integration` ones run the same commands against a real prez-server
(fixtures `r` and `r3` from conftest.py).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import pytest
import redis

from prez.errors import CommandError
from prez.kv import KVStore, execute

NOW = 1_700_000_000_000
SYNTAX = "ERR syntax error"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
OVERFLOW = "ERR increment or decrement would overflow"
TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"


def _encode(arg: Any) -> bytes:
    return arg if isinstance(arg, bytes) else str(arg).encode()


def run(store: KVStore, *args: Any, now: int = NOW, db: int = 0) -> Any:
    return execute(store, db, [_encode(a) for a in args], now)


def error(store: KVStore, *args: Any, now: int = NOW) -> str:
    with pytest.raises(CommandError) as info:
        run(store, *args, now=now)
    return info.value.message


@pytest.fixture
def kv() -> KVStore:
    return KVStore()


@pytest.fixture
def typed(kv: KVStore) -> KVStore:
    """A store holding one key of each non-string type."""
    db = kv.dbs[0]
    db.set(b"hash", {b"f": b"v"})
    db.set(b"list", deque([b"a"]))
    db.set(b"set", {b"m"})
    return kv


NON_STRING_KEYS = ["hash", "list", "set"]


# --- GET / SET ------------------------------------------------------------------


def test_get_missing_and_present(kv: KVStore) -> None:
    assert run(kv, "GET", "k") is None
    assert run(kv, "SET", "k", b"\x00bin\xff") == "OK"
    assert run(kv, "get", "k") == b"\x00bin\xff"


@pytest.mark.parametrize("key", NON_STRING_KEYS)
def test_get_wrong_type(typed: KVStore, key: str) -> None:
    assert error(typed, "GET", key) == WRONGTYPE


def test_set_overwrites_any_type_and_clears_ttl(typed: KVStore) -> None:
    run(typed, "SET", "hash", "v", "EX", 100)
    assert run(typed, "SET", "hash", "w") == "OK"
    assert run(typed, "GET", "hash") == b"w"
    assert run(typed, "PTTL", "hash") == -1


@pytest.mark.parametrize(
    ("option", "amount", "expected_pttl"),
    [("EX", 10, 10_000), ("PX", 1234, 1234), ("EXAT", NOW // 1000 + 20, 20_000),
     ("PXAT", NOW + 777, 777), ("ex", 1, 1000), ("pX", 5, 5)],
)  # fmt: skip
def test_set_expire_options(
    kv: KVStore, option: str, amount: int, expected_pttl: int
) -> None:
    assert run(kv, "SET", "k", "v", option, amount) == "OK"
    assert run(kv, "PTTL", "k") == expected_pttl
    assert run(kv, "GET", "k", now=NOW + expected_pttl - 1) == b"v"
    assert run(kv, "GET", "k", now=NOW + expected_pttl) is None


def test_set_repeated_same_expire_option_last_wins(kv: KVStore) -> None:
    assert run(kv, "SET", "k", "v", "EX", 1, "EX", 5) == "OK"
    assert run(kv, "PTTL", "k") == 5000


@pytest.mark.parametrize(
    "options",
    [["NX", "XX"], ["XX", "NX"], ["EX", 1, "PX", 1], ["PX", 1, "EXAT", 1],
     ["KEEPTTL", "EX", 1], ["PXAT", 1, "KEEPTTL"], ["EX"], ["PX"], ["FOO"],
     ["PERSIST"], ["EX", 1, "GET", "bogus"], ["NX", "EXAT"]],
)  # fmt: skip
def test_set_option_syntax_errors(kv: KVStore, options: list[Any]) -> None:
    assert error(kv, "SET", "k", "v", *options) == SYNTAX
    assert run(kv, "EXISTS", "k") == 0


@pytest.mark.parametrize(
    ("options", "text"),
    [(["EX", 0], "ERR invalid expire time in 'set' command"),
     (["PX", -5], "ERR invalid expire time in 'set' command"),
     (["EXAT", 0], "ERR invalid expire time in 'set' command"),
     (["EX", 2**63 // 1000 + 1], "ERR invalid expire time in 'set' command"),
     (["PX", 2**63 - 1], "ERR invalid expire time in 'set' command"),
     (["EX", "1.5"], NOT_INTEGER), (["PX", "x"], NOT_INTEGER), (["EX", "01"], NOT_INTEGER)],
)  # fmt: skip
def test_set_invalid_expire(kv: KVStore, options: list[Any], text: str) -> None:
    run(kv, "SET", "k", "old")
    assert error(kv, "SET", "k", "v", *options) == text
    assert run(kv, "GET", "k") == b"old"


def test_set_absolute_time_in_past_leaves_no_key(kv: KVStore) -> None:
    run(kv, "SET", "k", "old")
    assert run(kv, "SET", "k", "v", "PXAT", NOW - 1) == "OK"
    assert run(kv, "EXISTS", "k") == 0
    assert b"k" not in kv.dbs[0].data


def test_set_nx_xx(kv: KVStore) -> None:
    assert run(kv, "SET", "k", "1", "XX") is None
    assert run(kv, "EXISTS", "k") == 0
    assert run(kv, "SET", "k", "1", "NX") == "OK"
    assert run(kv, "SET", "k", "2", "NX") is None
    assert run(kv, "GET", "k") == b"1"
    assert run(kv, "SET", "k", "3", "XX") == "OK"
    assert run(kv, "GET", "k") == b"3"


def test_set_nx_treats_expired_key_as_missing(kv: KVStore) -> None:
    run(kv, "SET", "k", "old", "PX", 10)
    assert run(kv, "SET", "k", "new", "NX", now=NOW + 10) == "OK"
    assert run(kv, "GET", "k", now=NOW + 10) == b"new"
    assert run(kv, "PTTL", "k", now=NOW + 10) == -1


def test_set_get_returns_old_value(kv: KVStore) -> None:
    assert run(kv, "SET", "k", "1", "GET") is None
    assert run(kv, "SET", "k", "2", "GET") == b"1"
    assert run(kv, "SET", "k", "3", "NX", "GET") == b"2"
    assert run(kv, "GET", "k") == b"2"  # NX failed, but GET still answers
    assert run(kv, "SET", "other", "x", "XX", "GET") is None
    assert run(kv, "EXISTS", "other") == 0
    assert run(kv, "SET", "k", "4", "GET", "EX", 5) == b"2"
    assert run(kv, "PTTL", "k") == 5000


@pytest.mark.parametrize("key", NON_STRING_KEYS)
def test_set_get_wrong_type_sets_nothing(typed: KVStore, key: str) -> None:
    assert error(typed, "SET", key, "v", "GET") == WRONGTYPE
    assert run(typed, "TYPE", key) != "string"


def test_set_keepttl(kv: KVStore) -> None:
    run(kv, "SET", "k", "1", "PX", 500)
    assert run(kv, "SET", "k", "2", "KEEPTTL", now=NOW + 100) == "OK"
    assert run(kv, "PTTL", "k", now=NOW + 100) == 400
    assert run(kv, "GET", "k", now=NOW + 100) == b"2"
    # An already expired key has no TTL to keep.
    assert run(kv, "SET", "k", "3", "KEEPTTL", now=NOW + 500) == "OK"
    assert run(kv, "PTTL", "k", now=NOW + 600) == -1


def test_setnx(kv: KVStore) -> None:
    assert run(kv, "SETNX", "k", "1") == 1
    assert run(kv, "SETNX", "k", "2") == 0
    assert run(kv, "GET", "k") == b"1"


def test_setex_and_psetex(kv: KVStore) -> None:
    assert run(kv, "SETEX", "a", 10, "v") == "OK"
    assert run(kv, "PTTL", "a") == 10_000
    assert run(kv, "PSETEX", "b", 250, "w") == "OK"
    assert run(kv, "PTTL", "b") == 250
    assert run(kv, "GET", "b") == b"w"


@pytest.mark.parametrize(
    ("name", "amount", "text"),
    [("SETEX", 0, "ERR invalid expire time in 'setex' command"),
     ("SETEX", -1, "ERR invalid expire time in 'setex' command"),
     ("PSETEX", 0, "ERR invalid expire time in 'psetex' command"),
     ("SETEX", "abc", NOT_INTEGER), ("PSETEX", "1e3", NOT_INTEGER)],
)  # fmt: skip
def test_setex_errors(kv: KVStore, name: str, amount: Any, text: str) -> None:
    assert error(kv, name, "k", amount, "v") == text
    assert run(kv, "EXISTS", "k") == 0


def test_getset(kv: KVStore) -> None:
    assert run(kv, "GETSET", "k", "1") is None
    run(kv, "EXPIRE", "k", 100)
    assert run(kv, "GETSET", "k", "2") == b"1"
    assert run(kv, "GET", "k") == b"2"
    assert run(kv, "TTL", "k") == -1


def test_getdel(kv: KVStore) -> None:
    assert run(kv, "GETDEL", "k") is None
    run(kv, "SET", "k", "v")
    assert run(kv, "GETDEL", "k") == b"v"
    assert run(kv, "EXISTS", "k") == 0


@pytest.mark.parametrize(
    "name", ["GETSET", "GETDEL", "GETEX", "STRLEN", "APPEND", "INCR"]
)
@pytest.mark.parametrize("key", NON_STRING_KEYS)
def test_string_commands_reject_other_types(
    typed: KVStore, name: str, key: str
) -> None:
    extra = {"GETSET": ["v"], "APPEND": ["v"]}.get(name, [])
    assert error(typed, name, key, *extra) == WRONGTYPE


def test_getex(kv: KVStore) -> None:
    assert run(kv, "GETEX", "missing", "EX", 10) is None
    run(kv, "SET", "k", "v")
    assert run(kv, "GETEX", "k") == b"v"
    assert run(kv, "PTTL", "k") == -1
    assert run(kv, "GETEX", "k", "EX", 10) == b"v"
    assert run(kv, "PTTL", "k") == 10_000
    assert run(kv, "GETEX", "k", "PX", 50) == b"v"
    assert run(kv, "PTTL", "k") == 50
    assert run(kv, "GETEX", "k", "EXAT", NOW // 1000 + 30) == b"v"
    assert run(kv, "PTTL", "k") == 30_000
    assert run(kv, "GETEX", "k", "PXAT", NOW + 9) == b"v"
    assert run(kv, "PTTL", "k") == 9
    assert run(kv, "GETEX", "k", "PERSIST") == b"v"
    assert run(kv, "PTTL", "k") == -1
    assert run(kv, "GETEX", "k", "PXAT", NOW - 1) == b"v"
    assert run(kv, "EXISTS", "k") == 0


@pytest.mark.parametrize(
    "options",
    [["NX"], ["XX"], ["GET"], ["KEEPTTL"], ["EX"], ["EX", 1, "PX", 1],
     ["PERSIST", "EX", 1], ["EX", 1, "PERSIST"], ["BOGUS"]],
)  # fmt: skip
def test_getex_syntax_errors(kv: KVStore, options: list[Any]) -> None:
    run(kv, "SET", "k", "v")
    assert error(kv, "GETEX", "k", *options) == SYNTAX


def test_getex_invalid_expire(kv: KVStore) -> None:
    run(kv, "SET", "k", "v")
    assert (
        error(kv, "GETEX", "k", "EX", 0) == "ERR invalid expire time in 'getex' command"
    )
    assert error(kv, "GETEX", "k", "PX", "z") == NOT_INTEGER
    # A missing key answers nil before the time is even checked, as in Redis.
    assert run(kv, "GETEX", "nokey", "EX", 0) is None


def test_mget_mset(typed: KVStore) -> None:
    assert run(typed, "MSET", "a", "1", "b", "2", "a", "3") == "OK"
    assert run(typed, "MGET", "a", "b", "c", "hash", "a") == [
        b"3",
        b"2",
        None,
        None,
        b"3",
    ]
    assert (
        error(typed, "MSET", "a", "1", "b")
        == "ERR wrong number of arguments for 'mset' command"
    )


def test_mset_clears_ttl(kv: KVStore) -> None:
    run(kv, "SET", "a", "1", "EX", 5)
    run(kv, "MSET", "a", "2")
    assert run(kv, "TTL", "a") == -1


def test_msetnx(kv: KVStore) -> None:
    assert run(kv, "MSETNX", "a", "1", "b", "2") == 1
    assert run(kv, "MSETNX", "c", "3", "a", "9") == 0
    assert run(kv, "MGET", "a", "b", "c") == [b"1", b"2", None]
    text = "ERR wrong number of arguments for 'msetnx' command"
    assert error(kv, "MSETNX", "a", "1", "b") == text


# --- counters ---------------------------------------------------------------------


def test_incr_decr_family(kv: KVStore) -> None:
    assert run(kv, "INCR", "n") == 1
    assert run(kv, "INCRBY", "n", 10) == 11
    assert run(kv, "DECR", "n") == 10
    assert run(kv, "DECRBY", "n", 15) == -5
    assert run(kv, "INCRBY", "n", -5) == -10
    assert run(kv, "GET", "n") == b"-10"


def test_incr_keeps_ttl(kv: KVStore) -> None:
    run(kv, "SET", "n", "5", "PX", 100)
    assert run(kv, "INCR", "n") == 6
    assert run(kv, "PTTL", "n") == 100


def test_incr_expired_counter_starts_again(kv: KVStore) -> None:
    run(kv, "SET", "n", "5", "PX", 100)
    assert run(kv, "INCR", "n", now=NOW + 100) == 1
    assert run(kv, "PTTL", "n", now=NOW + 100) == -1


@pytest.mark.parametrize(
    "value", ["abc", "1.5", " 1", "1 ", "+1", "01", "-0", "", "9223372036854775808"]
)
def test_incr_non_integer_value(kv: KVStore, value: str) -> None:
    run(kv, "SET", "n", value)
    assert error(kv, "INCR", "n") == NOT_INTEGER
    assert run(kv, "GET", "n") == value.encode()


def test_incr_overflow(kv: KVStore) -> None:
    run(kv, "SET", "n", 2**63 - 1)
    assert error(kv, "INCR", "n") == OVERFLOW
    run(kv, "SET", "n", -(2**63))
    assert error(kv, "DECR", "n") == OVERFLOW
    assert error(kv, "INCRBY", "n", -1) == OVERFLOW
    assert run(kv, "INCRBY", "n", 2**63 - 1) == -1


def test_incrby_argument_errors(kv: KVStore) -> None:
    assert error(kv, "INCRBY", "n", "x") == NOT_INTEGER
    assert error(kv, "INCRBY", "n", 2**63) == NOT_INTEGER
    assert error(kv, "DECRBY", "n", "1.0") == NOT_INTEGER
    assert error(kv, "DECRBY", "n", -(2**63)) == "ERR decrement would overflow"
    assert run(kv, "EXISTS", "n") == 0


@pytest.mark.parametrize(
    ("start", "increment", "expected"),
    [(None, "10.5", b"10.5"), ("10.50", "0.1", b"10.6"), ("10.6", "-5", b"5.6"),
     ("5.0e3", "2.0e2", b"5200"), ("0.1", "0.2", b"0.3"), ("1", "-1", b"0"),
     ("1", "-1.1", b"-0.1"), ("3", "1.5", b"4.5"), (None, "1e2", b"100"),
     ("17179869184", "1.5", b"17179869185.5"), (None, "-0.000000000000000001", b"0"),
     ("1", "0x10", b"17"), (None, ".5", b"0.5"), (None, "+5.", b"5")],
)  # fmt: skip
def test_incrbyfloat(
    kv: KVStore, start: str | None, increment: str, expected: bytes
) -> None:
    if start is not None:
        run(kv, "SET", "f", start)
    assert run(kv, "INCRBYFLOAT", "f", increment) == expected
    assert run(kv, "GET", "f") == expected


def test_incrbyfloat_shows_long_double_rounding_like_redis() -> None:
    # x87 long double: 10.6 + 5000 is not exactly 5010.6 at 17 decimals.
    kv = KVStore()
    run(kv, "SET", "f", "10.6")
    assert run(kv, "INCRBYFLOAT", "f", "5.0e3") == b"5010.60000000000000009"


@pytest.mark.parametrize(
    ("value", "increment", "text"),
    [("abc", "1", NOT_FLOAT), ("1", "abc", NOT_FLOAT), ("1", " 1", NOT_FLOAT),
     ("1", "1_0", NOT_FLOAT), ("1", "nan", NOT_FLOAT), ("1", "", NOT_FLOAT),
     ("1", "1e5000", NOT_FLOAT), ("1", "1e-5000", NOT_FLOAT),
     ("1", "inf", "ERR increment would produce NaN or Infinity"),
     ("inf", "-inf", "ERR increment would produce NaN or Infinity"),
     ("1e4932", "1e4932", "ERR increment would produce NaN or Infinity")],
)  # fmt: skip
def test_incrbyfloat_errors(kv: KVStore, value: str, increment: str, text: str) -> None:
    run(kv, "SET", "f", value)
    assert error(kv, "INCRBYFLOAT", "f", increment) == text
    assert run(kv, "GET", "f") == value.encode()


def test_incrbyfloat_keeps_ttl(kv: KVStore) -> None:
    run(kv, "SET", "f", "1", "EX", 10)
    run(kv, "INCRBYFLOAT", "f", "1")
    assert run(kv, "TTL", "f") == 10


# --- APPEND, STRLEN, ranges ---------------------------------------------------------


def test_append_and_strlen(kv: KVStore) -> None:
    assert run(kv, "STRLEN", "k") == 0
    assert run(kv, "APPEND", "k", "abc") == 3
    run(kv, "EXPIRE", "k", 100)
    assert run(kv, "APPEND", "k", "de") == 5
    assert run(kv, "GET", "k") == b"abcde"
    assert run(kv, "STRLEN", "k") == 5
    assert run(kv, "TTL", "k") == 100


def test_append_size_limit(kv: KVStore) -> None:
    kv.dbs[0].set(b"k", b"x" * (512 * 1024 * 1024))
    assert error(kv, "APPEND", "k", "y") == TOO_LONG
    assert run(kv, "APPEND", "k", "") == 512 * 1024 * 1024


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(0, 3, b"This"), (-3, -1, b"ing"), (0, -1, b"This is a string"), (10, 100, b"string"),
     (5, 3, b""), (-1, -5, b""), (-100, 2, b"Thi"), (100, 200, b""), (3, -100, b""),
     (0, 0, b"T"),
     # Redis clamps a negative end below -len to 0 (redis/redis#12272 was reverted).
     (-100, -50, b"T"), (0, -100, b"T")],
)  # fmt: skip
def test_getrange(kv: KVStore, start: int, end: int, expected: bytes) -> None:
    run(kv, "SET", "k", "This is a string")
    assert run(kv, "GETRANGE", "k", start, end) == expected
    assert run(kv, "SUBSTR", "k", start, end) == expected


def test_getrange_missing_and_errors(typed: KVStore) -> None:
    assert run(typed, "GETRANGE", "missing", 0, -1) == b""
    assert error(typed, "GETRANGE", "hash", 0, 1) == WRONGTYPE
    assert error(typed, "GETRANGE", "missing", "a", 1) == NOT_INTEGER
    assert error(typed, "GETRANGE", "hash", 0, "1.5") == NOT_INTEGER
    run(typed, "SET", "empty", "")
    assert run(typed, "GETRANGE", "empty", 0, -1) == b""


def test_setrange(kv: KVStore) -> None:
    assert run(kv, "SETRANGE", "k", 0, "") == 0
    assert run(kv, "EXISTS", "k") == 0
    assert run(kv, "SETRANGE", "k", 2, "ab") == 4
    assert run(kv, "GET", "k") == b"\x00\x00ab"
    run(kv, "SET", "s", "Hello World")
    run(kv, "EXPIRE", "s", 10)
    assert run(kv, "SETRANGE", "s", 6, "Redis") == 11
    assert run(kv, "GET", "s") == b"Hello Redis"
    assert run(kv, "SETRANGE", "s", 9, "xyz") == 12
    assert run(kv, "GET", "s") == b"Hello Redxyz"
    assert run(kv, "SETRANGE", "s", 100, "") == 12
    assert run(kv, "TTL", "s") == 10


def test_setrange_errors(typed: KVStore) -> None:
    assert error(typed, "SETRANGE", "k", -1, "x") == "ERR offset is out of range"
    assert error(typed, "SETRANGE", "k", "x", "x") == NOT_INTEGER
    assert error(typed, "SETRANGE", "hash", 0, "x") == WRONGTYPE
    assert error(typed, "SETRANGE", "k", 512 * 1024 * 1024, "x") == TOO_LONG
    assert error(typed, "SETRANGE", "k", 2**62, "x") == TOO_LONG
    assert run(typed, "SETRANGE", "k", 512 * 1024 * 1024 - 1, "") == 0
    assert run(typed, "EXISTS", "k") == 0


@pytest.mark.parametrize(
    ("name", "argc"),
    [("get", 1), ("get", 3), ("set", 2), ("setnx", 2), ("setex", 3), ("psetex", 5),
     ("getset", 2), ("getdel", 3), ("getex", 1), ("mget", 1), ("mset", 2), ("msetnx", 1),
     ("incr", 3), ("decr", 1), ("incrby", 2), ("decrby", 4), ("incrbyfloat", 2),
     ("append", 2), ("strlen", 3), ("getrange", 3), ("substr", 5), ("setrange", 3)],
)  # fmt: skip
def test_wrong_arity(kv: KVStore, name: str, argc: int) -> None:
    args = [name.upper()] + ["x"] * (argc - 1)
    assert error(kv, *args) == f"ERR wrong number of arguments for '{name}' command"


def test_replay_is_deterministic() -> None:
    """Two stores fed the same writes with the same stamps end up equal."""
    script = [
        ("SET", "a", "1", "EX", 5), ("INCRBYFLOAT", "f", "0.1"), ("SETRANGE", "r", 3, "x"),
        ("GETEX", "a", "PX", 70), ("MSETNX", "m", "1", "n", "2"), ("APPEND", "a", "z"),
    ]  # fmt: skip
    stores = [KVStore(), KVStore()]
    for store in stores:
        for step, command in enumerate(script):
            run(store, *command, now=NOW + step)
    assert stores[0].dbs[0].data == stores[1].dbs[0].data
    assert stores[0].dbs[0].expires == stores[1].dbs[0].expires


# --- through a real server -------------------------------------------------------


def _server_error(text: str) -> str:
    """The message redis-py keeps: it strips the "ERR " code, keeps others."""
    return text[4:] if text.startswith("ERR ") else text


def _wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


@pytest.mark.integration
def test_server_get_set(r: redis.Redis) -> None:
    assert r.get("k") is None
    assert r.set("k", b"v\x00") is True
    assert r.get("k") == b"v\x00"
    assert r.set("k", "w", nx=True) is None
    assert r.set("k", "w", xx=True, get=True) == b"v\x00"
    assert r.set("new", "1", nx=True, get=True) is None
    assert r.get("new") == b"1"


@pytest.mark.integration
def test_server_set_expiry_options(r: redis.Redis) -> None:
    r.set("a", "1", ex=100)
    assert 99_000 < r.pttl("a") <= 100_000
    r.set("b", "1", px=5000)
    assert 4000 < r.pttl("b") <= 5000
    r.set("c", "1", exat=int(time.time()) + 100)
    assert 95 <= r.ttl("c") <= 101
    r.set("d", "1", pxat=int(time.time() * 1000) + 100_000)
    assert 95 <= r.ttl("d") <= 100
    r.set("d", "2", keepttl=True)
    assert r.ttl("d") > 90
    assert r.get("d") == b"2"


@pytest.mark.integration
def test_server_key_expires(r: redis.Redis) -> None:
    r.set("short", "v", px=50)
    _wait_until(lambda: r.get("short") is None)
    assert r.exists("short") == 0
    assert r.ttl("short") == -2


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "text"),
    [(["SET", "k", "v", "NX", "XX"], SYNTAX),
     (["SET", "k", "v", "EX", 1, "PX", 1], SYNTAX),
     (["SET", "k", "v", "EX", 0], "ERR invalid expire time in 'set' command"),
     (["SET", "k", "v", "EX", "x"], NOT_INTEGER),
     (["SETEX", "k", -1, "v"], "ERR invalid expire time in 'setex' command"),
     (["PSETEX", "k", 0, "v"], "ERR invalid expire time in 'psetex' command"),
     (["GETEX", "s", "NX"], SYNTAX),
     (["GETEX", "s", "EX", 0], "ERR invalid expire time in 'getex' command"),
     (["INCRBY", "k", "1.5"], NOT_INTEGER), (["DECRBY", "k", "x"], NOT_INTEGER),
     (["INCR", "s"], NOT_INTEGER), (["INCRBYFLOAT", "s", "1"], NOT_FLOAT),
     (["INCRBYFLOAT", "k", "nan"], NOT_FLOAT),
     (["SETRANGE", "k", -1, "x"], "ERR offset is out of range"),
     (["SETRANGE", "k", 536870912, "x"], TOO_LONG),
     (["GETRANGE", "k", "a", 1], NOT_INTEGER),
     (["MSET", "a", "1", "b"], "ERR wrong number of arguments for 'mset' command"),
     (["GET"], "ERR wrong number of arguments for 'get' command"),
     (["SET", "k"], "ERR wrong number of arguments for 'set' command"),
     (["GET", "h"], WRONGTYPE), (["APPEND", "h", "x"], WRONGTYPE),
     (["INCR", "h"], WRONGTYPE), (["GETRANGE", "h", 0, 1], WRONGTYPE)],
)  # fmt: skip
def test_server_errors(r: redis.Redis, args: list[Any], text: str) -> None:
    r.set("s", "text")
    r.hset("h", "f", "v")
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command(*args)
    assert str(info.value) == _server_error(text)
    assert r.exists("k") == 0


@pytest.mark.integration
def test_server_getset_getdel_getex(r: redis.Redis) -> None:
    assert r.getset("k", "1") is None
    assert r.getset("k", "2") == b"1"
    assert r.getex("k", ex=100) == b"2"
    assert 99 <= r.ttl("k") <= 100
    assert r.getex("k", persist=True) == b"2"
    assert r.ttl("k") == -1
    assert r.getdel("k") == b"2"
    assert r.getdel("k") is None
    assert r.getex("k") is None


@pytest.mark.integration
def test_server_setnx_setex_psetex(r: redis.Redis) -> None:
    assert r.setnx("k", "1") is True
    assert r.setnx("k", "2") is False
    assert r.execute_command("SETEX", "e", 100, "v") is True
    assert 99 <= r.ttl("e") <= 100
    assert r.psetex("p", 100_000, "v") is True
    assert 99_000 < r.pttl("p") <= 100_000


@pytest.mark.integration
def test_server_multi_key(r: redis.Redis) -> None:
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "c") == [b"1", b"2", None]
    assert r.msetnx({"c": "3", "a": "9"}) is False
    assert r.msetnx({"c": "3", "d": "4"}) is True
    assert r.mget(["a", "c", "d"]) == [b"1", b"3", b"4"]


@pytest.mark.integration
def test_server_counters(r: redis.Redis) -> None:
    assert r.incr("n") == 1
    assert r.incrby("n", 41) == 42
    assert r.decr("n") == 41
    assert r.decrby("n", 50) == -9
    r.set("max", 2**63 - 1)
    with pytest.raises(
        redis.ResponseError, match="increment or decrement would overflow"
    ):
        r.incr("max")
    assert r.incrbyfloat("f", 10.5) == 10.5
    assert r.incrbyfloat("f", 0.1) == 10.6
    assert r.get("f") == b"10.6"
    assert r.incrbyfloat("g", 0.1) == 0.1
    assert r.incrbyfloat("g", 0.2) == 0.3  # not 0.30000000000000004
    assert r.get("g") == b"0.3"


@pytest.mark.integration
def test_server_append_strlen_ranges(r: redis.Redis) -> None:
    assert r.append("k", "Hello") == 5
    assert r.append("k", " World") == 11
    assert r.strlen("k") == 11
    assert r.getrange("k", 0, 4) == b"Hello"
    assert r.getrange("k", -5, -1) == b"World"
    assert r.execute_command("SUBSTR", "k", 6, 100) == b"World"
    assert r.setrange("k", 6, "Redis") == 11
    assert r.get("k") == b"Hello Redis"
    assert r.setrange("z", 2, "x") == 3
    assert r.get("z") == b"\x00\x00x"


@pytest.mark.integration
def test_server_resp3_string_replies(r3: redis.Redis) -> None:
    assert r3.set("k", "v") is True
    assert r3.get("k") == b"v"
    assert r3.get("missing") is None
    assert r3.mget("k", "missing") == [b"v", None]
    assert r3.incrbyfloat("f", 1.5) == 1.5
