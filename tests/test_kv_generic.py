"""Key, expiry and database commands: in-process and through redis-py.

Includes a property test of the glob matcher against a direct port of
Redis's recursive stringmatchlen, and SCAN's guarantee under concurrent
inserts and deletes.
"""

from __future__ import annotations

import random
import time
from collections import deque
from typing import Any
from zlib import crc32

import pytest
import redis
from hypothesis import example, given, settings
from hypothesis import strategies as st

from prez.errors import CommandError
from prez.kv import KVStore, execute
from prez.kv.generic import compile_glob, scan_hash, stringmatch
from prez.kv.zsets import ZSet

NOW = 1_700_000_000_000
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
OUT_OF_RANGE = "ERR DB index is out of range"


def _encode(arg: Any) -> bytes:
    return arg if isinstance(arg, bytes) else str(arg).encode()


def run(store: KVStore, *args: Any, now: int = NOW, db: int = 0) -> Any:
    return execute(store, db, [_encode(a) for a in args], now)


def error(store: KVStore, *args: Any, now: int = NOW, db: int = 0) -> str:
    with pytest.raises(CommandError) as info:
        run(store, *args, now=now, db=db)
    return info.value.message


@pytest.fixture
def kv() -> KVStore:
    return KVStore()


def scan_all(store: KVStore, *options: Any, db: int = 0) -> list[bytes]:
    cursor = b"0"
    found: list[bytes] = []
    for _ in range(100_000):
        cursor, keys = run(store, "SCAN", cursor, *options, db=db)
        found.extend(keys)
        if cursor == b"0":
            return found
    raise AssertionError("SCAN did not finish")


# --- glob matching ---------------------------------------------------------------


def reference_match(pattern: bytes, string: bytes) -> bool:
    """Redis's stringmatchlen, transcribed recursion and all (the oracle)."""
    skip_longer = [False]

    def at(buf: bytes, i: int) -> int:
        return buf[i] if i < len(buf) else 0  # C strings end in NUL

    def signed(c: int) -> int:
        return c - 256 if c > 127 else c

    def match(p: int, s: int, nesting: int) -> bool:
        if nesting > 1000:
            return False
        plen, slen = len(pattern) - p, len(string) - s
        while plen and slen:
            c = pattern[p]
            if c == ord("*"):
                while plen and at(pattern, p + 1) == ord("*"):
                    p += 1
                    plen -= 1
                if plen == 1:
                    return True
                while slen:
                    if match(p + 1, s, nesting + 1):
                        return True
                    if skip_longer[0]:
                        return False
                    s += 1
                    slen -= 1
                skip_longer[0] = True
                return False
            elif c == ord("?"):
                s += 1
                slen -= 1
            elif c == ord("["):
                p += 1
                plen -= 1
                negate = at(pattern, p) == ord("^")
                if negate:
                    p += 1
                    plen -= 1
                matched = False
                while True:
                    if at(pattern, p) == ord("\\") and plen >= 2:
                        p += 1
                        plen -= 1
                        if pattern[p] == string[s]:
                            matched = True
                    elif at(pattern, p) == ord("]"):
                        break
                    elif plen == 0:
                        p -= 1
                        plen += 1
                        break
                    elif plen >= 3 and pattern[p + 1] == ord("-"):
                        low, high = signed(pattern[p]), signed(pattern[p + 2])
                        if low > high:
                            low, high = high, low
                        p += 2
                        plen -= 2
                        if low <= signed(string[s]) <= high:
                            matched = True
                    elif pattern[p] == string[s]:
                        matched = True
                    p += 1
                    plen -= 1
                if negate:
                    matched = not matched
                if not matched:
                    return False
                s += 1
                slen -= 1
            else:
                if c == ord("\\") and plen >= 2:
                    p += 1
                    plen -= 1
                if pattern[p] != string[s]:
                    return False
                s += 1
                slen -= 1
            p += 1
            plen -= 1
            if slen == 0:
                while at(pattern, p) == ord("*"):
                    p += 1
                    plen -= 1
                break
        return plen == 0 and slen == 0

    return match(0, 0, 0)


@pytest.mark.parametrize(
    ("pattern", "string", "expected"),
    [(b"*", b"", False),  # as in Redis; KEYS * and MATCH * skip the matcher
     (b"*", b"abc", True), (b"a*", b"abc", True), (b"*c", b"abc", True),
     (b"a?c", b"abc", True), (b"a?c", b"ac", False), (b"h[ae]llo", b"hello", True),
     (b"h[ae]llo", b"hillo", False), (b"h[^e]llo", b"hallo", True),
     (b"h[^e]llo", b"hello", False), (b"h[a-b]llo", b"hbllo", True),
     (b"h[b-a]llo", b"hallo", True), (b"h[a-b]llo", b"hcllo", False),
     (b"h\\*llo", b"h*llo", True), (b"h\\*llo", b"hello", False), (b"[\\]]", b"]", True),
     (b"[abc", b"c", True), (b"[abc", b"d", False), (b"ab\\", b"ab\\", True),
     (b"a*b*c", b"aXbYc", True), (b"a*b*c", b"aXbY", False), (b"", b"", True),
     (b"", b"a", False), (b"a**", b"a", True), (b"?", b"", False),
     (b"[a-]", b"]", True), (b"[\xff-\x01]", b"\x00", True), (b"[\x01-\xff]", b"\x00", True)],
)  # fmt: skip
def test_stringmatch_cases(pattern: bytes, string: bytes, expected: bool) -> None:
    assert reference_match(pattern, string) is expected  # the oracle agrees
    assert stringmatch(pattern, string) is expected


def _bytes_from(alphabet: bytes, max_size: int) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(alphabet), max_size=max_size).map(bytes)


@settings(max_examples=1500, deadline=None)
@given(
    pattern=_bytes_from(b"ab*?[]^-\\\xff", 12),
    string=_bytes_from(b"ab]-\\*\xff", 10),
)
@example(pattern=b"*a*a*a*a*b", string=b"aaaaaaaaaaaaaaaaaaaa")
@example(pattern=b"[", string=b"[")
@example(pattern=b"[^", string=b"a")
def test_stringmatch_agrees_with_redis_port(pattern: bytes, string: bytes) -> None:
    expected = reference_match(pattern, string)
    assert stringmatch(pattern, string) is expected
    assert bool(compile_glob(pattern)(string)) is expected


@settings(max_examples=1000, deadline=None)
@given(pattern=_bytes_from(b"ab*\\", 8), string=_bytes_from(b"ab*\\", 6))
@example(pattern=b"*", string=b"")
@example(pattern=b"**", string=b"")
@example(pattern=b"", string=b"")
@example(pattern=b"a\\", string=b"a\\")
def test_compiled_glob_shortcuts_agree(pattern: bytes, string: bytes) -> None:
    assert bool(compile_glob(pattern)(string)) is reference_match(pattern, string)


def test_stringmatch_nesting_limit_like_redis() -> None:
    deep = b"a*" * 1001 + b"b"
    text = b"a" * 1002
    assert stringmatch(deep, text + b"b") is False  # Redis gives up past 1000 stars
    assert stringmatch(b"a*" * 999 + b"b", text + b"b") is True
    assert stringmatch(b"*a" * 3000 + b"*", b"a" * 10) is False  # and stays fast


# --- DEL, EXISTS, TYPE, KEYS ------------------------------------------------------


def test_del_and_unlink_count_live_keys(kv: KVStore) -> None:
    run(kv, "MSET", "a", 1, "b", 2, "c", 3)
    run(kv, "PEXPIRE", "c", 10)
    assert run(kv, "DEL", "a", "a", "missing", "c", now=NOW + 10) == 1
    assert b"c" not in kv.dbs[0].data  # the expired key was dropped, not counted
    assert run(kv, "UNLINK", "b", "a") == 1
    assert run(kv, "DBSIZE") == 0


def test_exists_counts_repeats(kv: KVStore) -> None:
    run(kv, "SET", "a", 1)
    run(kv, "SET", "t", 1, "PX", 5)
    assert run(kv, "EXISTS", "a", "a", "b", "t") == 3
    assert run(kv, "EXISTS", "t", now=NOW + 5) == 0
    assert b"t" in kv.dbs[0].data  # a read never deletes


def test_type(kv: KVStore) -> None:
    db = kv.dbs[0]
    db.set(b"s", b"v")
    db.set(b"h", {b"f": b"v"})
    db.set(b"l", deque([b"a"]))
    db.set(b"S", {b"m"})
    db.set(b"z", ZSet.from_items([(b"m", 1.0)]))
    kinds = [run(kv, "TYPE", key) for key in ("s", "h", "l", "S", "z", "none")]
    assert kinds == ["string", "hash", "list", "set", "zset", "none"]


def test_keys(kv: KVStore) -> None:
    run(kv, "MSET", "foo_a", 1, "foo_b", 2, "bar", 3, "f*o", 4)
    run(kv, "SET", "foo_gone", 1, "PX", 1)
    later = NOW + 1
    assert sorted(run(kv, "KEYS", "*", now=later)) == [
        b"bar",
        b"f*o",
        b"foo_a",
        b"foo_b",
    ]
    assert sorted(run(kv, "KEYS", "foo*", now=later)) == [b"foo_a", b"foo_b"]
    assert run(kv, "KEYS", "f\\*o", now=later) == [b"f*o"]
    assert run(kv, "KEYS", "bar", now=later) == [b"bar"]
    assert run(kv, "KEYS", "foo_gone", now=later) == []
    assert run(kv, "KEYS", "nothing*", now=later) == []


# --- SCAN -------------------------------------------------------------------------


def test_scan_returns_every_key_once_when_idle(kv: KVStore) -> None:
    keys = {b"key:%d" % i for i in range(500)}
    for key in keys:
        run(kv, "SET", key, 1)
    for count in (1, 7, 100, 1000):
        found = scan_all(kv, "COUNT", count)
        assert sorted(found) == sorted(keys)


def test_scan_batches_follow_count_on_small_keyspace(kv: KVStore) -> None:
    for i in range(100):
        run(kv, "SET", f"k{i}", 1)
    cursor, keys = run(kv, "SCAN", 0)
    assert cursor != b"0"
    assert len(keys) == 10  # the default COUNT
    cursor, keys = run(kv, "SCAN", 0, "COUNT", 3)
    assert len(keys) == 3


def test_scan_guarantee_under_concurrent_changes() -> None:
    """Keys present for the whole iteration are returned, whatever else happens."""
    rng = random.Random(7)
    kv = KVStore()
    stable = {b"stable:%d" % i for i in range(300)}
    for key in stable:
        run(kv, "SET", key, 1)
    volatile: list[bytes] = []
    cursor = b"0"
    found: set[bytes] = set()
    for step in range(10_000):
        cursor, keys = run(kv, "SCAN", cursor, "COUNT", rng.randint(1, 20))
        found.update(keys)
        if cursor == b"0":
            break
        for _ in range(rng.randint(0, 15)):  # churn between calls
            key = b"churn:%d:%d" % (step, rng.randrange(10**6))
            run(kv, "SET", key, 1)
            volatile.append(key)
        for _ in range(rng.randint(0, 10)):
            if volatile:
                run(kv, "DEL", volatile.pop(rng.randrange(len(volatile))))
    assert cursor == b"0"
    assert stable <= found
    assert found <= stable | {key for key in found if key.startswith(b"churn:")}


def test_scan_cursor_is_valid_on_another_replica() -> None:
    replicas = [KVStore(), KVStore()]
    keys = [b"k%d" % i for i in range(200)]
    for store, order in zip(replicas, (keys, keys[::-1]), strict=True):
        for key in order:  # different insertion order, same content
            run(store, "SET", key, 1)
    cursor = b"0"
    found: list[bytes] = []
    for turn in range(1000):
        cursor, batch = run(replicas[turn % 2], "SCAN", cursor, "COUNT", 9)
        found.extend(batch)
        if cursor == b"0":
            break
    assert sorted(found) == sorted(keys)


def test_scan_returns_keys_sharing_a_hash_together(kv: KVStore) -> None:
    twins = [b"c699378", b"c18020006"]
    assert scan_hash(twins[0]) == scan_hash(twins[1]) == crc32(twins[0])
    for key in twins + [b"x%d" % i for i in range(50)]:
        run(kv, "SET", key, 1)
    cursor = b"0"
    while True:
        cursor, batch = run(kv, "SCAN", cursor, "COUNT", 1)
        if twins[0] in batch or twins[1] in batch:
            assert set(twins) <= set(batch)
            break
        assert cursor != b"0"


def test_scan_match_type_and_expired(kv: KVStore) -> None:
    run(kv, "MSET", "user:1", 1, "user:2", 2, "other", 3)
    kv.dbs[0].set(b"user:h", {b"f": b"v"})
    run(kv, "SET", "user:gone", 1, "PX", 1)
    later = NOW + 1
    cursor, found = b"0", []
    while True:
        cursor, batch = run(
            kv, "SCAN", cursor, "MATCH", "user:*", "COUNT", 2, now=later
        )
        found.extend(batch)
        if cursor == b"0":
            break
    assert sorted(found) == [b"user:1", b"user:2", b"user:h"]
    assert sorted(scan_all(kv, "TYPE", "hash")) == [b"user:h"]
    assert sorted(scan_all(kv, "type", "STRING", "match", "user:?")) == [
        b"user:1",
        b"user:2",
    ]
    assert scan_all(kv, "TYPE", "nosuchtype") == []


@pytest.mark.parametrize(
    ("args", "text"),
    [(["-1"], "ERR invalid cursor"), (["abc"], "ERR invalid cursor"),
     (["18446744073709551616"], "ERR invalid cursor"), (["1.5"], "ERR invalid cursor"),
     (["0", "COUNT", "0"], SYNTAX), (["0", "COUNT", "-2"], SYNTAX),
     (["0", "COUNT", "x"], NOT_INTEGER), (["0", "COUNT"], SYNTAX), (["0", "MATCH"], SYNTAX),
     (["0", "BOGUS", "1"], SYNTAX), (["x", "BOGUS"], "ERR invalid cursor")],
)  # fmt: skip
def test_scan_errors(kv: KVStore, args: list[str], text: str) -> None:
    assert error(kv, "SCAN", *args) == text


def test_scan_accepts_cursors_like_strtoull(kv: KVStore) -> None:
    run(kv, "SET", "k", 1)
    assert run(kv, "SCAN", "18446744073709551615") == [b"0", []]
    assert run(kv, "SCAN", "00") == [b"0", [b"k"]]
    assert run(kv, "SCAN", "+0") == [b"0", [b"k"]]


# --- RENAME, RANDOMKEY ------------------------------------------------------------


def test_rename_moves_value_and_ttl(kv: KVStore) -> None:
    run(kv, "SET", "a", "1", "EX", 100)
    kv.dbs[0].set(b"b", {b"old": b"hash"})
    run(kv, "EXPIRE", "b", 5)
    assert run(kv, "RENAME", "a", "b") == "OK"
    assert run(kv, "EXISTS", "a") == 0
    assert run(kv, "GET", "b") == b"1"
    assert run(kv, "TTL", "b") == 100
    run(kv, "SET", "c", "x")
    assert run(kv, "RENAME", "c", "b") == "OK"
    assert run(kv, "TTL", "b") == -1


def test_rename_errors_and_same_key(kv: KVStore) -> None:
    assert error(kv, "RENAME", "missing", "x") == "ERR no such key"
    assert error(kv, "RENAMENX", "missing", "x") == "ERR no such key"
    assert error(kv, "RENAME", "missing", "missing") == "ERR no such key"
    run(kv, "SET", "a", "1", "PX", 10)
    assert error(kv, "RENAME", "a", "b", now=NOW + 10) == "ERR no such key"
    run(kv, "SET", "a", "1")
    assert run(kv, "RENAME", "a", "a") == "OK"
    assert run(kv, "RENAMENX", "a", "a") == 0
    assert run(kv, "GET", "a") == b"1"


def test_renamenx(kv: KVStore) -> None:
    run(kv, "MSET", "a", "1", "b", "2")
    assert run(kv, "RENAMENX", "a", "b") == 0
    assert run(kv, "MGET", "a", "b") == [b"1", b"2"]
    assert run(kv, "RENAMENX", "a", "c") == 1
    assert run(kv, "MGET", "a", "c") == [None, b"1"]
    run(kv, "SET", "d", "4", "PX", 5)
    assert run(kv, "RENAMENX", "c", "d", now=NOW + 5) == 1  # an expired target is free


def test_randomkey(kv: KVStore) -> None:
    assert run(kv, "RANDOMKEY") is None
    keys = {b"a", b"b", b"c"}
    for key in keys:
        run(kv, "SET", key, 1)
    seen = {run(kv, "RANDOMKEY") for _ in range(200)}
    assert seen == keys
    for key in keys:
        run(kv, "PEXPIRE", key, 1)
    run(kv, "SET", "live", 1)
    assert {run(kv, "RANDOMKEY", now=NOW + 1) for _ in range(50)} == {b"live"}
    run(kv, "DEL", "live")
    assert run(kv, "RANDOMKEY", now=NOW + 1) is None


# --- expiry -------------------------------------------------------------------------


def test_expire_family_sets_absolute_times(kv: KVStore) -> None:
    run(kv, "MSET", "a", 1, "b", 1, "c", 1, "d", 1)
    assert run(kv, "EXPIRE", "a", 10) == 1
    assert run(kv, "PEXPIRE", "b", 1500) == 1
    assert run(kv, "EXPIREAT", "c", NOW // 1000 + 100) == 1
    assert run(kv, "PEXPIREAT", "d", NOW + 2500) == 1
    expires = kv.dbs[0].expires
    assert expires == {b"a": NOW + 10_000, b"b": NOW + 1500, b"c": (NOW // 1000 + 100) * 1000,
                       b"d": NOW + 2500}  # fmt: skip
    assert run(kv, "EXPIRE", "missing", 10) == 0


@pytest.mark.parametrize(
    "args", [["EXPIRE", "k", 0], ["EXPIRE", "k", -5], ["PEXPIRE", "k", 0],
             ["EXPIREAT", "k", 1], ["PEXPIREAT", "k", NOW]],
)  # fmt: skip
def test_expire_in_past_deletes(kv: KVStore, args: list[Any]) -> None:
    run(kv, "SET", "k", 1)
    assert run(kv, *args) == 1
    assert b"k" not in kv.dbs[0].data


def test_expire_options(kv: KVStore) -> None:
    run(kv, "SET", "k", 1)
    assert run(kv, "EXPIRE", "k", 100, "XX") == 0
    assert run(kv, "EXPIRE", "k", 100, "GT") == 0  # no TTL is infinite
    assert run(kv, "EXPIRE", "k", 100, "NX") == 1
    assert run(kv, "EXPIRE", "k", 200, "NX") == 0
    assert run(kv, "EXPIRE", "k", 50, "GT") == 0
    assert run(kv, "EXPIRE", "k", 150, "gt") == 1
    assert run(kv, "EXPIRE", "k", 200, "LT") == 0
    assert run(kv, "EXPIRE", "k", 120, "LT", "XX") == 1
    assert run(kv, "TTL", "k") == 120
    run(kv, "PERSIST", "k")
    assert run(kv, "EXPIRE", "k", 100, "LT") == 1  # no TTL is infinite
    assert run(kv, "TTL", "k") == 100


@pytest.mark.parametrize(
    ("args", "text"),
    [(["EXPIRE", "k", "1.5"], NOT_INTEGER), (["PEXPIRE", "k", "x"], NOT_INTEGER),
     (["EXPIRE", "k", 10, "FOO"], "ERR Unsupported option FOO"),
     (["EXPIRE", "k", "x", "foo"], "ERR Unsupported option foo"),
     (["EXPIRE", "k", 10, "NX", "XX"], "ERR NX and XX, GT or LT options at the same time are not compatible"),
     (["EXPIRE", "k", 10, "GT", "NX"], "ERR NX and XX, GT or LT options at the same time are not compatible"),
     (["PEXPIRE", "k", 10, "GT", "LT"], "ERR GT and LT options at the same time are not compatible"),
     (["EXPIRE", "k", 2**63 // 1000 + 1], "ERR invalid expire time in 'expire' command"),
     (["EXPIRE", "k", -(2**63 // 1000) - 1], "ERR invalid expire time in 'expire' command"),
     (["PEXPIRE", "k", 2**63 - 1], "ERR invalid expire time in 'pexpire' command"),
     (["EXPIREAT", "k", 2**63 // 1000 + 1], "ERR invalid expire time in 'expireat' command")],
)  # fmt: skip
def test_expire_errors(kv: KVStore, args: list[Any], text: str) -> None:
    run(kv, "SET", "k", 1)
    assert error(kv, *args) == text
    assert run(kv, "PTTL", "k") == -1


def test_pexpireat_accepts_the_largest_time(kv: KVStore) -> None:
    run(kv, "SET", "k", 1)
    assert run(kv, "PEXPIREAT", "k", 2**63 - 1) == 1
    assert run(kv, "PEXPIRETIME", "k") == 2**63 - 1


def test_ttl_family(kv: KVStore) -> None:
    for name in ("TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"):
        assert run(kv, name, "missing") == -2
    run(kv, "SET", "k", 1)
    for name in ("TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"):
        assert run(kv, name, "k") == -1
    run(kv, "PEXPIRE", "k", 1499)
    assert run(kv, "PTTL", "k") == 1499
    assert run(kv, "TTL", "k") == 1  # rounded to the nearest second
    assert run(kv, "TTL", "k", now=NOW - 2) == 2
    assert run(kv, "PEXPIRETIME", "k") == NOW + 1499
    assert run(kv, "EXPIRETIME", "k") == (NOW + 1499 + 500) // 1000
    assert run(kv, "PTTL", "k", now=NOW + 1498) == 1
    assert run(kv, "PTTL", "k", now=NOW + 1499) == -2


def test_persist(kv: KVStore) -> None:
    assert run(kv, "PERSIST", "missing") == 0
    run(kv, "SET", "k", 1)
    assert run(kv, "PERSIST", "k") == 0
    run(kv, "EXPIRE", "k", 10)
    assert run(kv, "PERSIST", "k") == 1
    assert run(kv, "TTL", "k") == -1
    run(kv, "PEXPIRE", "k", 10)
    assert run(kv, "PERSIST", "k", now=NOW + 10) == 0  # too late: it expired


def test_expire_sweep_deletes_only_expired_keys(kv: KVStore) -> None:
    run(kv, "MSET", "a", 1, "b", 1, "c", 1)
    run(kv, "PEXPIRE", "a", 10)
    run(kv, "PEXPIRE", "b", 20)
    swept = kv.dbs[0].expired_keys(NOW + 15, 10)
    assert swept == [b"a"]
    # Between the sweep and its commit "a" got a new life: it must survive.
    run(kv, "SET", "a", 2, now=NOW + 12)
    assert run(kv, "PREZ.EXPIRE", "a", "b", "c", "missing", now=NOW + 15) == 0
    assert run(kv, "PREZ.EXPIRE", "a", "b", "c", now=NOW + 20) == 1
    assert sorted(kv.dbs[0].data) == [b"a", b"c"]
    assert run(kv, "PREZ.EXPIRE", "b", now=NOW + 20) == 0  # replay is harmless


def test_expire_sweep_declaration() -> None:
    from prez.kv import COMMANDS

    spec = COMMANDS["prez.expire"]
    assert spec.is_write and "fast" in spec.flags
    assert spec.keys([b"prez.expire", b"a", b"b"]) == [b"a", b"b"]


# --- databases ------------------------------------------------------------------------


def test_dbsize_flushdb_flushall(kv: KVStore) -> None:
    run(kv, "MSET", "a", 1, "b", 2)
    run(kv, "SET", "t", 1, "PX", 5)
    run(kv, "SET", "x", 1, db=3)
    assert run(kv, "DBSIZE") == 3
    assert run(kv, "DBSIZE", now=NOW + 5) == 2
    assert run(kv, "FLUSHDB", "ASYNC") == "OK"
    assert run(kv, "DBSIZE") == 0
    assert run(kv, "DBSIZE", db=3) == 1
    assert run(kv, "FLUSHALL", "sync") == "OK"
    assert run(kv, "DBSIZE", db=3) == 0
    run(kv, "SET", "a", 1)
    assert run(kv, "FLUSHDB") == "OK"
    assert run(kv, "FLUSHALL") == "OK"


@pytest.mark.parametrize("name", ["FLUSHDB", "FLUSHALL"])
@pytest.mark.parametrize("args", [["FOO"], ["ASYNC", "SYNC"], ["SYNC", "x"]])
def test_flush_syntax_errors(kv: KVStore, name: str, args: list[str]) -> None:
    run(kv, "SET", "a", 1)
    assert error(kv, name, *args) == SYNTAX
    assert run(kv, "DBSIZE") == 1


def test_swapdb(kv: KVStore) -> None:
    run(kv, "SET", "a", "zero", "EX", 10)
    run(kv, "SET", "b", "one", db=1)
    assert run(kv, "SWAPDB", 0, 1) == "OK"
    assert run(kv, "GET", "b") == b"one"
    assert run(kv, "GET", "a", db=1) == b"zero"
    assert run(kv, "TTL", "a", db=1) == 10
    assert run(kv, "SWAPDB", 1, 1) == "OK"
    assert run(kv, "GET", "a", db=1) == b"zero"


@pytest.mark.parametrize(
    ("first", "second", "text"),
    [("x", 1, "ERR invalid first DB index"), (0, "y", "ERR invalid second DB index"),
     ("1.0", 0, "ERR invalid first DB index"), (0, 2**31, "ERR invalid second DB index"),
     (-1, 0, OUT_OF_RANGE), (0, 16, OUT_OF_RANGE), (100, 0, OUT_OF_RANGE)],
)  # fmt: skip
def test_swapdb_errors(kv: KVStore, first: Any, second: Any, text: str) -> None:
    assert error(kv, "SWAPDB", first, second) == text


def test_move(kv: KVStore) -> None:
    run(kv, "SET", "k", "v", "EX", 50)
    assert run(kv, "MOVE", "k", 2) == 1
    assert run(kv, "EXISTS", "k") == 0
    assert run(kv, "GET", "k", db=2) == b"v"
    assert run(kv, "TTL", "k", db=2) == 50
    assert run(kv, "MOVE", "missing", 2) == 0
    run(kv, "SET", "k", "other")
    assert run(kv, "MOVE", "k", 2) == 0  # the target holds the key already
    assert run(kv, "GET", "k") == b"other"


@pytest.mark.parametrize(
    ("target", "text"),
    [(0, "ERR source and destination objects are the same"), (16, OUT_OF_RANGE),
     (-1, OUT_OF_RANGE), ("x", NOT_INTEGER), (2**31, NOT_INTEGER)],
)  # fmt: skip
def test_move_errors(kv: KVStore, target: Any, text: str) -> None:
    run(kv, "SET", "k", "v")
    assert error(kv, "MOVE", "k", target) == text


@pytest.mark.parametrize(
    ("name", "argc"),
    [("del", 1), ("unlink", 1), ("exists", 1), ("type", 3), ("keys", 1), ("scan", 1),
     ("rename", 2), ("renamenx", 4), ("randomkey", 2), ("expire", 2), ("pexpire", 2),
     ("expireat", 2), ("pexpireat", 2), ("ttl", 1), ("pttl", 3), ("expiretime", 1),
     ("pexpiretime", 3), ("persist", 1), ("dbsize", 2), ("swapdb", 2), ("move", 4),
     ("prez.expire", 1)],
)  # fmt: skip
def test_wrong_arity(kv: KVStore, name: str, argc: int) -> None:
    args = [name.upper()] + ["1"] * (argc - 1)
    assert error(kv, *args) == f"ERR wrong number of arguments for '{name}' command"


# --- through a real server ----------------------------------------------------------


def _server_error(text: str) -> str:
    return text[4:] if text.startswith("ERR ") else text


def _wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


def _client_for_db(r: redis.Redis, db: int) -> redis.Redis:
    settings = r.connection_pool.connection_kwargs
    return redis.Redis(
        host=settings["host"], port=settings["port"], db=db, socket_timeout=10
    )


@pytest.mark.integration
def test_server_keys_commands(r: redis.Redis) -> None:
    r.mset({"a": 1, "b": 2, "c": 3})
    r.hset("h", "f", "v")
    assert r.exists("a", "b", "zz", "a") == 3
    assert r.type("a") == b"string"
    assert r.type("h") == b"hash"
    assert r.type("none") == b"none"
    assert sorted(r.keys("*")) == [b"a", b"b", b"c", b"h"]
    assert sorted(r.keys("[ab]")) == [b"a", b"b"]
    assert r.delete("a", "zz") == 1
    assert r.unlink("b", "c") == 2
    assert r.randomkey() == b"h"
    assert r.dbsize() == 1


@pytest.mark.integration
def test_server_scan(r: redis.Redis) -> None:
    r.mset({f"user:{i}": i for i in range(300)})
    r.mset({f"item:{i}": i for i in range(30)})
    r.sadd("user:set", "m")
    assert sorted(r.scan_iter(match="item:*", count=17)) == sorted(
        f"item:{i}".encode() for i in range(30)
    )
    assert list(r.scan_iter(_type="set")) == [b"user:set"]
    assert len(set(r.scan_iter())) == 331
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.execute_command("SCAN", "-1")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("SCAN", "0", "COUNT", "0")


@pytest.mark.integration
def test_server_rename(r: redis.Redis) -> None:
    r.set("a", "1", ex=100)
    assert r.rename("a", "b") is True
    assert r.get("b") == b"1"
    assert 99 <= r.ttl("b") <= 100
    r.set("c", "3")
    assert r.renamenx("c", "b") is False
    assert r.renamenx("c", "d") is True
    with pytest.raises(redis.ResponseError) as info:
        r.rename("nokey", "x")
    assert str(info.value) == "no such key"


@pytest.mark.integration
def test_server_expiry(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.ttl("k") == -1
    assert r.ttl("missing") == -2
    assert r.expire("k", 100) is True
    assert 99 <= r.ttl("k") <= 100
    assert r.expire("k", 50, gt=True) is False
    assert r.expire("k", 50, lt=True) is True
    assert 49_000 < r.pttl("k") <= 50_000
    assert r.pexpire("k", 200_000, xx=True) is True
    at = int(time.time()) + 1000
    assert r.expireat("k", at) is True
    assert r.expiretime("k") == at
    assert r.pexpireat("k", at * 1000 + 5) is True
    assert r.pexpiretime("k") == at * 1000 + 5
    assert r.persist("k") is True
    assert r.persist("k") is False
    assert r.pexpire("k", 30) is True
    _wait_until(lambda: r.exists("k") == 0)
    r.set("k", "v")
    assert r.expire("k", -1) is True
    assert r.exists("k") == 0


@pytest.mark.integration
def test_server_active_expiry_eventually_removes_keys(r: redis.Redis) -> None:
    before = r.info("stats")["expired_keys"]
    r.mset({f"t{i}": i for i in range(20)})
    for i in range(20):
        r.pexpire(f"t{i}", 20)
    # DBSIZE hides expired keys at once; the digest covers every key still
    # held in memory, so it reaches zero only once the sweeper deleted them.
    _wait_until(lambda: r.execute_command("DEBUG", "DIGEST") == b"0" * 40)
    assert r.info("stats")["expired_keys"] - before == 20


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "text"),
    [(["EXPIRE", "k", "x"], NOT_INTEGER), (["EXPIRE", "k", 1, "NX", "XX"],
      "ERR NX and XX, GT or LT options at the same time are not compatible"),
     (["PEXPIRE", "k", 1, "GT", "LT"], "ERR GT and LT options at the same time are not compatible"),
     (["EXPIRE", "k", 1, "BAD"], "ERR Unsupported option BAD"),
     (["EXPIRE", "k", 2**62], "ERR invalid expire time in 'expire' command"),
     (["SWAPDB", "a", 1], "ERR invalid first DB index"),
     (["SWAPDB", 0, "b"], "ERR invalid second DB index"), (["SWAPDB", 0, 99], OUT_OF_RANGE),
     (["MOVE", "k", 0], "ERR source and destination objects are the same"),
     (["MOVE", "k", 99], OUT_OF_RANGE), (["FLUSHDB", "NOW"], SYNTAX),
     (["FLUSHALL", "SYNC", "ASYNC"], SYNTAX), (["RENAMENX", "nokey", "x"], "ERR no such key"),
     (["DEL"], "ERR wrong number of arguments for 'del' command"),
     (["TTL"], "ERR wrong number of arguments for 'ttl' command"),
     (["KEYS", "a", "b"], "ERR wrong number of arguments for 'keys' command")],
)  # fmt: skip
def test_server_errors(r: redis.Redis, args: list[Any], text: str) -> None:
    r.set("k", "v")
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command(*args)
    assert str(info.value) == _server_error(text)
    assert r.get("k") == b"v"
    assert r.ttl("k") == -1


@pytest.mark.integration
def test_server_databases(r: redis.Redis) -> None:
    other = _client_for_db(r, 1)
    try:
        r.set("k", "zero")
        assert r.move("k", 1) is True
        assert other.get("k") == b"zero"
        r.set("only0", "x")
        assert r.swapdb(0, 1) is True
        assert r.get("k") == b"zero"
        assert other.get("only0") == b"x"
        assert other.flushdb() is True
        assert other.dbsize() == 0
        assert r.dbsize() == 1
        assert other.set("again", 1) is True
        assert r.flushall() is True
        assert r.dbsize() == other.dbsize() == 0
    finally:
        other.close()


@pytest.mark.integration
def test_server_resp3_generic_replies(r3: redis.Redis) -> None:
    r3.set("k", "v")
    assert r3.type("k") == b"string"
    assert r3.keys("*") == [b"k"]
    assert r3.scan(0) == (0, [b"k"])
    assert r3.ttl("k") == -1
