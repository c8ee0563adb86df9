"""Lists: the L*/R* commands.

In-process tests run the commands through `prez.kv.execute`; the ones marked
`integration` go through redis-py against a real prez-server.
"""

from __future__ import annotations

import random

import pytest
import redis

from prez._core.replytypes import NULL_ARRAY
from prez._core.resp_py import encode
from prez.errors import WRONGTYPE
from prez.testing.kvrunner import Runner

NOT_INTEGER = "ERR value is not an integer or out of range"


def _redis_range(items: list[bytes], start: int, end: int) -> list[bytes]:
    """Redis's LRANGE rule, stated independently: clamp, then inclusive."""
    size = len(items)
    first = start if start >= 0 else max(size + start, 0)
    last = end if end >= 0 else size + end
    if last < first:
        return []
    return items[first : last + 1]


def test_push_order_and_lengths(run: Runner) -> None:
    assert run("RPUSH", "l", "a", "b") == 2
    assert run("LPUSH", "l", "x", "y") == 4
    assert run.items("l") == [b"y", b"x", b"a", b"b"]
    assert run("LPUSHX", "l", "p") == 5
    assert run("RPUSHX", "l", "q", "r") == 7
    assert run("LPUSHX", "nokey", "p") == 0
    assert run("RPUSHX", "nokey", "p") == 0
    assert b"nokey" not in run.db.data
    assert run("LLEN", "l") == 7
    assert run("LLEN", "nokey") == 0


def test_pop_without_and_with_count(run: Runner) -> None:
    run("RPUSH", "l", "a", "b", "c", "d", "e")
    assert run("LPOP", "l") == b"a"
    assert run("RPOP", "l") == b"e"
    assert run("LPOP", "l", 2) == [b"b", b"c"]
    assert run("RPOP", "l", 0) == []
    assert run("RPOP", "l", 5) == [b"d"]
    assert b"l" not in run.db.data  # emptied list is deleted
    assert run("LPOP", "l") is None
    assert run("LPOP", "l", 2) is NULL_ARRAY
    assert run("RPOP", "l", 0) is NULL_ARRAY
    assert encode(NULL_ARRAY) == b"*-1\r\n"
    for bad in ("-1", "x"):
        assert (
            run.error("LPOP", "l", bad) == "ERR value is out of range, must be positive"
        )
    assert run.error("LPOP", "l", 1, 2) == (
        "ERR wrong number of arguments for 'lpop' command"
    )


def test_lrange_matches_the_redis_rule_on_both_walk_directions(run: Runner) -> None:
    items = [b"%d" % i for i in range(50)]
    run("RPUSH", "l", *items)
    rng = random.Random(3)
    for _ in range(400):
        start, end = rng.randint(-60, 60), rng.randint(-60, 60)
        assert run("LRANGE", "l", start, end) == _redis_range(items, start, end)
    assert run("LRANGE", "nokey", 0, -1) == []
    assert run.error("LRANGE", "l", "a", 1) == NOT_INTEGER


def test_lindex_and_lset(run: Runner) -> None:
    run("RPUSH", "l", "a", "b", "c")
    assert run("LINDEX", "l", 0) == b"a"
    assert run("LINDEX", "l", -1) == b"c"
    assert run("LINDEX", "l", 3) is None
    assert run("LINDEX", "l", -4) is None
    assert run("LINDEX", "nokey", 0) is None
    assert run("LSET", "l", -2, "B") == "OK"
    assert run.items("l") == [b"a", b"B", b"c"]
    assert run.error("LSET", "l", 3, "x") == "ERR index out of range"
    assert run.error("LSET", "nokey", 0, "x") == "ERR no such key"
    assert run.error("LSET", "l", "x", "x") == NOT_INTEGER
    assert run.error("LINDEX", "l", "1.0") == NOT_INTEGER


def test_lrem(run: Runner) -> None:
    run("RPUSH", "l", "a", "x", "b", "x", "c", "x")
    assert run("LREM", "l", 2, "x") == 2
    assert run.items("l") == [b"a", b"b", b"c", b"x"]
    run("RPUSH", "l", "x", "d", "x")
    assert run("LREM", "l", -2, "x") == 2
    assert run.items("l") == [b"a", b"b", b"c", b"x", b"d"]
    assert run("LREM", "l", 0, "x") == 1
    assert run("LREM", "l", 0, "nope") == 0
    assert run("LREM", "nokey", 0, "x") == 0
    run("RPUSH", "only", "x", "x")
    assert run("LREM", "only", 0, "x") == 2
    assert b"only" not in run.db.data
    assert run.error("LREM", "l", "x", "a") == NOT_INTEGER


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (1, -1, [b"b", b"c", b"d", b"e"]),
        (0, 1, [b"a", b"b"]),
        (-2, 100, [b"d", b"e"]),
        (-100, 2, [b"a", b"b", b"c"]),
        (2, 2, [b"c"]),
    ],
)
def test_ltrim_keeps_the_range(
    run: Runner, start: int, end: int, expected: list[bytes]
) -> None:
    run("RPUSH", "l", "a", "b", "c", "d", "e")
    assert run("LTRIM", "l", start, end) == "OK"
    assert run.items("l") == expected


def test_ltrim_to_nothing_deletes_the_key(run: Runner) -> None:
    run("RPUSH", "l", "a", "b")
    assert run("LTRIM", "l", 5, 10) == "OK"
    assert b"l" not in run.db.data
    run("RPUSH", "l", "a", "b")
    assert run("LTRIM", "l", 1, 0) == "OK"
    assert b"l" not in run.db.data
    assert run("LTRIM", "nokey", 0, 1) == "OK"
    assert run.error("LTRIM", "l", 0, "x") == NOT_INTEGER


def test_linsert(run: Runner) -> None:
    run("RPUSH", "l", "a", "c")
    assert run("LINSERT", "l", "BEFORE", "c", "b") == 3
    assert run("LINSERT", "l", "after", "c", "d") == 4
    assert run.items("l") == [b"a", b"b", b"c", b"d"]
    assert run("LINSERT", "l", "BEFORE", "zz", "x") == -1
    assert run("LINSERT", "nokey", "BEFORE", "a", "x") == 0
    assert run.error("LINSERT", "l", "MIDDLE", "a", "x") == "ERR syntax error"


def test_lpos_follows_redis_examples(run: Runner) -> None:
    run("RPUSH", "mylist", "a", "b", "c", "d", "1", "2", "3", "4", "3", "3", "3")
    assert run("LPOS", "mylist", "3") == 6
    assert run("LPOS", "mylist", "3", "COUNT", 0, "RANK", 2) == [8, 9, 10]
    assert run("LPOS", "mylist", "3", "RANK", -1) == 10
    assert run("LPOS", "mylist", "3", "RANK", -2, "COUNT", 2) == [9, 8]
    assert run("LPOS", "mylist", "3", "COUNT", 2) == [6, 8]
    assert run("LPOS", "mylist", "3", "MAXLEN", 6) is None
    assert run("LPOS", "mylist", "3", "MAXLEN", 7) == 6
    assert run("LPOS", "mylist", "3", "COUNT", 0, "MAXLEN", 9) == [6, 8]
    assert run("LPOS", "mylist", "nope") is None
    assert run("LPOS", "mylist", "nope", "COUNT", 1) == []
    assert run("LPOS", "nokey", "a") is None
    assert run("LPOS", "nokey", "a", "COUNT", 1) == []


def test_lpos_errors(run: Runner) -> None:
    assert run.error("LPOS", "l", "a", "RANK", 0) == (
        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
        "second ... or use negative to start from the end of the list"
    )
    assert run.error("LPOS", "l", "a", "COUNT", -1) == "ERR COUNT can't be negative"
    assert run.error("LPOS", "l", "a", "MAXLEN", -1) == "ERR MAXLEN can't be negative"
    assert run.error("LPOS", "l", "a", "RANK", "x") == NOT_INTEGER
    assert run.error("LPOS", "l", "a", "RANK") == "ERR syntax error"
    assert run.error("LPOS", "l", "a", "BOGUS", 1) == "ERR syntax error"


def test_lmove_and_rpoplpush(run: Runner) -> None:
    run("RPUSH", "src", "a", "b", "c")
    assert run("RPOPLPUSH", "src", "dst") == b"c"
    assert run("LMOVE", "src", "dst", "LEFT", "RIGHT") == b"a"
    assert run.items("dst") == [b"c", b"a"]
    assert run.items("src") == [b"b"]
    assert run("LMOVE", "src", "src", "LEFT", "RIGHT") == b"b"  # rotation of one
    assert run("LMOVE", "src", "dst", "right", "left") == b"b"
    assert b"src" not in run.db.data
    assert run("RPOPLPUSH", "src", "dst") is None
    assert run.error("LMOVE", "dst", "x", "UP", "LEFT") == "ERR syntax error"
    run.db.set(b"s", b"string")
    assert run.error("RPOPLPUSH", "dst", "s") == WRONGTYPE
    assert run.items("dst") == [b"b", b"c", b"a"]  # nothing popped on error


def test_wrong_type_for_every_list_command(run: Runner) -> None:
    run.db.set(b"s", b"string")
    for args in (
        ("LPUSH", "s", "a"),
        ("RPUSH", "s", "a"),
        ("LPUSHX", "s", "a"),
        ("RPUSHX", "s", "a"),
        ("LPOP", "s"),
        ("RPOP", "s", 2),
        ("LLEN", "s"),
        ("LRANGE", "s", 0, -1),
        ("LINDEX", "s", 0),
        ("LSET", "s", 0, "a"),
        ("LREM", "s", 0, "a"),
        ("LTRIM", "s", 0, 1),
        ("LINSERT", "s", "BEFORE", "a", "b"),
        ("LPOS", "s", "a"),
        ("LMOVE", "s", "d", "LEFT", "LEFT"),
    ):
        assert run.error(*args) == WRONGTYPE, args
    assert run.db.data[b"s"] == b"string"


def test_arity_is_checked(run: Runner) -> None:
    for args in (("LPUSH", "l"), ("LLEN",), ("LRANGE", "l", 0), ("LINSERT", "l", "a")):
        name = args[0].lower()
        assert run.error(*args) == f"ERR wrong number of arguments for '{name}' command"


def test_expired_list_is_invisible_to_reads_and_replaced_by_writes(
    run: Runner,
) -> None:
    run("RPUSH", "l", "old")
    run.db.expire_at(b"l", 2_000)
    assert run("LLEN", "l", now=2_000) == 0
    assert b"l" in run.db.data  # reads never delete
    assert run("RPUSHX", "l", "x", now=2_000) == 0
    assert b"l" not in run.db.data  # a write deletes the expired key it touches
    assert run("RPUSH", "l", "new", now=2_000) == 1
    assert run.items("l") == [b"new"]


# --- through a real server --------------------------------------------------


@pytest.mark.integration
def test_list_commands_through_redis_py(r: redis.Redis) -> None:
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lpush("l", "z") == 4
    assert r.lrange("l", 0, -1) == [b"z", b"a", b"b", b"c"]
    assert r.lpushx("l", "y") == 5
    assert r.rpushx("nokey", "y") == 0
    assert r.llen("l") == 5
    assert r.lindex("l", -1) == b"c"
    assert r.lset("l", 0, "Y") is True
    assert r.linsert("l", "AFTER", "a", "a2") == 6
    assert r.lpos("l", "a2") == 3
    assert r.lpos("l", "b", count=0) == [4]
    assert r.lrem("l", 0, "Y") == 1
    assert r.ltrim("l", 0, 3) is True
    assert r.lrange("l", 0, -1) == [b"z", b"a", b"a2", b"b"]
    assert r.lpop("l") == b"z"
    assert r.rpop("l", 2) == [b"b", b"a2"]
    assert r.rpoplpush("l", "other") == b"a"
    assert r.lmove("other", "l", "LEFT", "RIGHT") == b"a"
    assert r.lpop("nokey", 2) is None
    assert r.lpop("l", 0) == []


@pytest.mark.integration
def test_list_errors_through_redis_py(r: redis.Redis) -> None:
    r.set("s", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lpush("s", "a")
    with pytest.raises(redis.ResponseError, match="no such key"):
        r.lset("nokey", 0, "a")
    r.rpush("l", "a")
    with pytest.raises(redis.ResponseError, match="index out of range"):
        r.lset("l", 5, "a")
    with pytest.raises(
        redis.ResponseError, match="value is not an integer or out of range"
    ):
        r.execute_command("LRANGE", "l", "x", 1)
    with pytest.raises(redis.ResponseError, match="must be positive"):
        r.execute_command("LPOP", "l", -1)
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("LINSERT", "l", "NEAR", "a", "b")
    with pytest.raises(
        redis.ResponseError, match="wrong number of arguments for 'rpush'"
    ):
        r.execute_command("RPUSH", "l")
