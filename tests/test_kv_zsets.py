"""Sorted sets: the ZSet structure and the Z* commands.

In-process tests run the commands through `prez.kv.execute`; the ones marked
`integration` go through redis-py against a real prez-server.
"""

from __future__ import annotations

import math
import random
import socket

import hiredis
import pytest
import redis

from prez._core.replytypes import NULL_ARRAY, PairList
from prez._core.resp_py import encode
from prez.errors import WRONGTYPE
from prez.kv.zsets import ZSet
from prez.testing.kvrunner import Runner

SYNTAX = "ERR syntax error"


# --- the ZSet structure --------------------------------------------------


def test_zset_matches_a_naive_model_under_random_operations() -> None:
    rng = random.Random(7)
    zset = ZSet()
    model: dict[bytes, float] = {}
    members = [b"m%d" % i for i in range(40)]
    for _ in range(3000):
        member = rng.choice(members)
        action = rng.random()
        if action < 0.6:
            # few distinct scores, so ties (ordered by member) are common
            score = float(rng.randint(-5, 5)) if rng.random() < 0.7 else rng.random()
            zset.add(member, score)
            model[member] = score
        elif action < 0.9:
            assert zset.remove(member) == (member in model)
            model.pop(member, None)
        else:
            count = rng.randint(1, 3)
            expected = sorted((s, m) for m, s in model.items())
            if rng.random() < 0.5:
                popped = zset.pop_lowest(count)
                want = expected[:count]
            else:
                popped = zset.pop_highest(count)
                want = expected[::-1][:count]
            assert popped == want
            for _, m in popped:
                del model[m]
        expected = sorted((s, m) for m, s in model.items())
        assert zset.order == expected
        assert zset.scores == model
    for rank, (_, member) in enumerate(sorted((s, m) for m, s in model.items())):
        assert zset.rank(member) == rank


def test_zset_spans_copy_and_equality() -> None:
    zset = ZSet.from_items([(b"a", 1.0), (b"b", 2.0), (b"c", 2.0), (b"d", 3.0)])
    assert zset.score_span(2.0, False, 2.0, False) == (1, 3)
    assert zset.score_span(2.0, True, 3.0, False) == (3, 4)
    start, stop = zset.score_span(3.0, False, 1.0, False)
    assert stop == start
    twin = zset.copy()
    assert twin == zset
    twin.add(b"a", 5.0)
    assert twin != zset
    assert zset.items()[0] == (b"a", 1.0)


# --- ZADD ------------------------------------------------------------------


def test_zadd_adds_and_updates(run: Runner) -> None:
    assert run("ZADD", "z", 1, "a", 2, "b") == 2
    assert run("ZADD", "z", 3, "a", 4, "c") == 1  # a updated, c added
    assert run("ZRANGE", "z", 0, -1, "WITHSCORES") == [
        (b"b", 2.0),
        (b"a", 3.0),
        (b"c", 4.0),
    ]
    assert run("ZADD", "z", "CH", 5, "a", 4, "c", 9, "d") == 2  # a changed, d added


def test_zadd_nx_xx_gt_lt(run: Runner) -> None:
    run("ZADD", "z", 5, "a")
    assert run("ZADD", "z", "NX", 1, "a", 1, "b") == 1
    assert run("ZSCORE", "z", "a") == 5.0
    assert run("ZADD", "z", "XX", 7, "a", 1, "new") == 0
    assert run("ZSCORE", "z", "a") == 7.0
    assert run("ZSCORE", "z", "new") is None
    assert run("ZADD", "z", "GT", "CH", 6, "a") == 0
    assert run("ZADD", "z", "GT", "CH", 8, "a") == 1
    assert run("ZADD", "z", "LT", "CH", 9, "a") == 0
    assert run("ZADD", "z", "LT", "CH", 2, "a") == 1
    assert run("ZADD", "z", "GT", 1, "fresh") == 1  # GT/LT still add new members
    assert run("ZADD", "z", "XX", "GT", 100, "a", 100, "absent") == 0
    assert run("ZSCORE", "z", "a") == 100.0
    assert run("ZADD", "missing", "XX", 1, "a") == 0
    assert b"missing" not in run.db.data


def test_zadd_incr(run: Runner) -> None:
    assert run("ZADD", "z", "INCR", 2.5, "a") == 2.5
    assert run("ZADD", "z", "INCR", 1, "a") == 3.5
    assert run("ZADD", "z", "NX", "INCR", 1, "a") is None
    assert run("ZADD", "z", "XX", "INCR", 1, "b") is None
    assert run("ZADD", "z", "GT", "INCR", -1, "a") is None
    assert run("ZSCORE", "z", "a") == 3.5
    assert run("ZADD", "nokey", "XX", "INCR", 1, "a") is None


def test_zadd_errors(run: Runner) -> None:
    assert run.error("ZADD", "z", "NX", "XX", 1, "a") == (
        "ERR XX and NX options at the same time are not compatible"
    )
    for options in (("GT", "LT"), ("GT", "NX"), ("LT", "NX")):
        assert run.error("ZADD", "z", *options, 1, "a") == (
            "ERR GT, LT, and/or NX options at the same time are not compatible"
        )
    assert run.error("ZADD", "z", "INCR", 1, "a", 2, "b") == (
        "ERR INCR option supports a single increment-element pair"
    )
    assert run.error("ZADD", "z", 1, "a", 2) == SYNTAX
    assert run.error("ZADD", "z", "NX", "a") == SYNTAX
    assert run.error("ZADD", "z", "x", "a") == "ERR value is not a valid float"
    assert run.error("ZADD", "z", "nan", "a") == "ERR value is not a valid float"
    assert run.error("ZADD", "z", 1) == (
        "ERR wrong number of arguments for 'zadd' command"
    )
    # A bad score anywhere leaves the set untouched.
    assert (
        run.error("ZADD", "z", 1, "a", "bad", "b") == "ERR value is not a valid float"
    )
    assert b"z" not in run.db.data
    run("ZADD", "z", "inf", "a")
    assert run.error("ZADD", "z", "INCR", "-inf", "a") == (
        "ERR resulting score is not a number (NaN)"
    )
    assert run("ZSCORE", "z", "a") == math.inf
    run.db.set(b"s", b"string")
    assert run.error("ZADD", "s", 1, "a") == WRONGTYPE


def test_zincrby(run: Runner) -> None:
    assert run("ZINCRBY", "z", 2, "a") == 2.0
    assert run("ZINCRBY", "z", "-0.5", "a") == 1.5
    assert run.error("ZINCRBY", "z", "x", "a") == "ERR value is not a valid float"
    run("ZADD", "z", "+inf", "b")
    assert run.error("ZINCRBY", "z", "-inf", "b") == (
        "ERR resulting score is not a number (NaN)"
    )
    run.db.set(b"s", b"x")
    assert run.error("ZINCRBY", "s", 1, "a") == WRONGTYPE


# --- simple reads and ZREM --------------------------------------------------


def test_zscore_zmscore_zcard_zrem(run: Runner) -> None:
    run("ZADD", "z", 1, "a", 2, "b", 3, "c")
    assert run("ZSCORE", "z", "b") == 2.0
    assert run("ZSCORE", "z", "x") is None
    assert run("ZSCORE", "nokey", "x") is None
    assert run("ZMSCORE", "z", "a", "x", "c") == [1.0, None, 3.0]
    assert run("ZMSCORE", "nokey", "a", "b") == [None, None]
    assert run("ZCARD", "z") == 3
    assert run("ZCARD", "nokey") == 0
    assert run("ZREM", "z", "a", "x", "a") == 1
    assert run("ZREM", "nokey", "a") == 0
    assert run("ZREM", "z", "b", "c") == 2
    assert b"z" not in run.db.data  # emptied key is deleted
    run.db.set(b"s", b"x")
    for args in (("ZSCORE", "s", "a"), ("ZMSCORE", "s", "a"), ("ZCARD", "s")):
        assert run.error(*args) == WRONGTYPE
    assert run.error("ZREM", "s", "a") == WRONGTYPE


def test_expired_zset_is_invisible_to_reads_and_replaced_by_writes(
    run: Runner,
) -> None:
    run("ZADD", "z", 1, "a")
    run.db.expire_at(b"z", 2_000)
    assert run("ZCARD", "z", now=1_999) == 1
    assert run("ZCARD", "z", now=2_000) == 0
    assert b"z" in run.db.data  # reads never delete
    assert run("ZADD", "z", 5, "b", now=2_000) == 1
    assert run("ZRANGE", "z", 0, -1, now=2_000) == [b"b"]
    assert run.db.ttl_ms(b"z") is None


# --- ranges -----------------------------------------------------------------


@pytest.fixture
def filled(run: Runner) -> Runner:
    run("ZADD", "z", 1, "a", 2, "b", 2, "c", 3, "d", 4, "e")
    return run


def test_zrange_by_index(filled: Runner) -> None:
    run = filled
    assert run("ZRANGE", "z", 0, -1) == [b"a", b"b", b"c", b"d", b"e"]
    assert run("ZRANGE", "z", 1, 2) == [b"b", b"c"]
    assert run("ZRANGE", "z", -2, 100) == [b"d", b"e"]
    assert run("ZRANGE", "z", -100, 0) == [b"a"]
    assert run("ZRANGE", "z", 3, 1) == []
    assert run("ZRANGE", "z", 5, 10) == []
    assert run("ZRANGE", "z", 0, 1, "REV") == [b"e", b"d"]
    assert run("ZREVRANGE", "z", 0, 1) == [b"e", b"d"]
    assert run("ZREVRANGE", "z", -1, -1) == [b"a"]
    reply = run("ZRANGE", "z", 0, 0, "WITHSCORES")
    assert isinstance(reply, PairList) and reply == [(b"a", 1.0)]
    assert run("ZRANGE", "nokey", 0, -1) == []


def test_zrange_by_score(filled: Runner) -> None:
    run = filled
    assert run("ZRANGE", "z", 2, 3, "BYSCORE") == [b"b", b"c", b"d"]
    assert run("ZRANGE", "z", "(2", 3, "BYSCORE") == [b"d"]
    assert run("ZRANGE", "z", 2, "(3", "BYSCORE") == [b"b", b"c"]
    assert run("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", 1, 2) == [
        b"b",
        b"c",
    ]
    assert run("ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", 3, -1) == [
        b"d",
        b"e",
    ]
    assert run("ZRANGE", "z", "-inf", "inf", "BYSCORE", "LIMIT", -1, 2) == []
    assert run("ZRANGE", "z", "-inf", "inf", "BYSCORE", "LIMIT", 0, 0) == []
    assert run("ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", 1, 2) == [
        b"d",
        b"c",
    ]
    assert run("ZRANGEBYSCORE", "z", "(1", "(4", "WITHSCORES") == [
        (b"b", 2.0),
        (b"c", 2.0),
        (b"d", 3.0),
    ]
    assert run("ZREVRANGEBYSCORE", "z", 3, 2) == [b"d", b"c", b"b"]
    assert run("ZREVRANGEBYSCORE", "z", 2, 3) == []
    assert run("ZRANGEBYSCORE", "z", 3, 2) == []
    assert run("ZRANGEBYSCORE", "z", "(2", "(2") == []


def test_zrange_by_lex() -> None:
    run = Runner()
    run("ZADD", "z", 0, "a", 0, "b", 0, "c", 0, "d", 0, "e")
    assert run("ZRANGE", "z", "[b", "(d", "BYLEX") == [b"b", b"c"]
    assert run("ZRANGEBYLEX", "z", "-", "+") == [b"a", b"b", b"c", b"d", b"e"]
    assert run("ZRANGEBYLEX", "z", "(a", "[c", "LIMIT", 1, 5) == [b"c"]
    assert run("ZREVRANGEBYLEX", "z", "+", "[c") == [b"e", b"d", b"c"]
    assert run("ZRANGE", "z", "[d", "-", "BYLEX", "REV") == [b"d", b"c", b"b", b"a"]
    assert run("ZLEXCOUNT", "z", "[b", "+") == 4
    assert run("ZLEXCOUNT", "z", "+", "-") == 0
    for bad in ("b", ""):
        assert run.error("ZRANGEBYLEX", "z", bad, "+") == (
            "ERR min or max not valid string range item"
        )
    assert run.error("ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES") == (
        "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
    )


def test_zrange_errors(filled: Runner) -> None:
    run = filled
    assert run.error("ZRANGE", "z", 0, -1, "LIMIT", 0, 1) == (
        "ERR syntax error, LIMIT is only supported in combination with either "
        "BYSCORE or BYLEX"
    )
    assert run.error("ZRANGE", "z", 0, -1, "BOGUS") == SYNTAX
    assert run.error("ZRANGE", "z", 0, -1, "LIMIT", 0) == SYNTAX
    assert run.error("ZRANGE", "z", 0, -1, "BYSCORE", "BYLEX") == SYNTAX
    assert run.error("ZREVRANGE", "z", 0, -1, "REV") == SYNTAX
    assert run.error("ZRANGEBYSCORE", "z", 0, 1, "BYLEX") == SYNTAX
    assert run.error("ZRANGE", "z", "a", -1) == (
        "ERR value is not an integer or out of range"
    )
    assert (
        run.error("ZRANGE", "z", "x", 1, "BYSCORE") == "ERR min or max is not a float"
    )
    assert (
        run.error("ZRANGEBYSCORE", "z", "(", "nan") == "ERR min or max is not a float"
    )
    assert run.error("ZRANGE", "z", 0, 1, "BYSCORE", "LIMIT", "x", 1) == (
        "ERR value is not an integer or out of range"
    )
    assert run.error("ZRANGE", "z", 0) == (
        "ERR wrong number of arguments for 'zrange' command"
    )
    run.db.set(b"s", b"x")
    assert run.error("ZRANGE", "s", 0, -1) == WRONGTYPE
    # Argument errors are reported before the key's type is looked at.
    assert run.error("ZRANGE", "s", 0, -1, "BOGUS") == SYNTAX


def test_zcount(filled: Runner) -> None:
    run = filled
    assert run("ZCOUNT", "z", "-inf", "+inf") == 5
    assert run("ZCOUNT", "z", "(1", 3) == 3
    assert run("ZCOUNT", "z", 5, 10) == 0
    assert run("ZCOUNT", "nokey", 0, 1) == 0
    assert run.error("ZCOUNT", "z", "a", 1) == "ERR min or max is not a float"
    assert run.error("ZCOUNT", "z", 1, "(x") == "ERR min or max is not a float"


def test_zrank_and_zrevrank(filled: Runner) -> None:
    run = filled
    assert run("ZRANK", "z", "a") == 0
    assert run("ZRANK", "z", "c") == 2
    assert run("ZREVRANK", "z", "a") == 4
    assert run("ZRANK", "z", "x") is None
    assert run("ZRANK", "nokey", "x") is None
    assert run("ZRANK", "z", "d", "WITHSCORE") == [3, 3.0]
    assert run("ZREVRANK", "z", "d", "withscore") == [1, 3.0]
    assert run("ZRANK", "z", "x", "WITHSCORE") is NULL_ARRAY
    assert run("ZRANK", "nokey", "x", "WITHSCORE") is NULL_ARRAY
    assert run.error("ZRANK", "z", "a", "WITHSCORES") == SYNTAX
    assert run.error("ZRANK", "z", "a", "WITHSCORE", "x") == (
        "ERR wrong number of arguments for 'zrank' command"
    )


def test_zpopmin_zpopmax(filled: Runner) -> None:
    run = filled
    assert run("ZPOPMIN", "z") == [b"a", 1.0]
    assert run("ZPOPMAX", "z") == [b"e", 4.0]
    reply = run("ZPOPMIN", "z", 2)
    assert isinstance(reply, PairList) and reply == [(b"b", 2.0), (b"c", 2.0)]
    assert run("ZPOPMAX", "z", 0) == []
    assert run("ZPOPMAX", "z", 10) == [(b"d", 3.0)]
    assert b"z" not in run.db.data
    assert run("ZPOPMIN", "z") == []
    assert run("ZPOPMIN", "z", 3) == []
    assert (
        run.error("ZPOPMIN", "z", -1) == "ERR value is out of range, must be positive"
    )
    assert (
        run.error("ZPOPMIN", "z", "x") == "ERR value is out of range, must be positive"
    )
    assert run.error("ZPOPMIN", "z", 1, 2) == (
        "ERR wrong number of arguments for 'zpopmin' command"
    )


def test_zremrange_and_zrangestore(filled: Runner) -> None:
    run = filled
    assert run("ZRANGESTORE", "dst", "z", 1, 3, "BYSCORE", "LIMIT", 1, 2) == 2
    assert run("ZRANGE", "dst", 0, -1, "WITHSCORES") == [(b"b", 2.0), (b"c", 2.0)]
    assert run("ZRANGESTORE", "dst", "nokey", 0, -1) == 0
    assert b"dst" not in run.db.data
    assert run.error("ZRANGESTORE", "dst", "z", 0, -1, "WITHSCORES") == SYNTAX
    assert run("ZREMRANGEBYSCORE", "z", "(1", 2) == 2
    assert run("ZRANGE", "z", 0, -1) == [b"a", b"d", b"e"]
    assert run("ZREMRANGEBYRANK", "z", -2, -1) == 2
    assert run("ZREMRANGEBYRANK", "z", 5, 6) == 0
    assert run("ZREMRANGEBYLEX", "z", "-", "+") == 1
    assert b"z" not in run.db.data


def test_zrandmember(filled: Runner) -> None:
    run = filled
    members = {b"a", b"b", b"c", b"d", b"e"}
    assert run("ZRANDMEMBER", "z") in members
    assert run("ZRANDMEMBER", "nokey") is None
    assert run("ZRANDMEMBER", "nokey", 3) == []
    picked = run("ZRANDMEMBER", "z", 3)
    assert len(picked) == 3 and len(set(picked)) == 3 and set(picked) <= members
    assert sorted(run("ZRANDMEMBER", "z", 10)) == sorted(members)
    assert len(run("ZRANDMEMBER", "z", -12)) == 12
    pairs = run("ZRANDMEMBER", "z", 2, "WITHSCORES")
    assert isinstance(pairs, PairList)
    assert all(run("ZSCORE", "z", m) == s for m, s in pairs)
    assert run.error("ZRANDMEMBER", "z", 1, "bogus") == SYNTAX
    assert run.error("ZRANDMEMBER", "z", "x") == (
        "ERR value is not an integer or out of range"
    )


def test_ties_are_ordered_by_member_bytes(run: Runner) -> None:
    run("ZADD", "z", 1, "b", 1, "B", 1, "a", 1, b"\xff", 1, "ab", 0, "z")
    assert run("ZRANGE", "z", 0, -1) == [b"z", b"B", b"a", b"ab", b"b", b"\xff"]


def test_resp_shapes_of_scores() -> None:
    assert encode(2.5) == b"$3\r\n2.5\r\n"
    assert encode(2.5, resp3=True) == b",2.5\r\n"
    pairs = PairList([(b"a", 1.0)])
    assert encode(pairs) == b"*2\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert encode(pairs, resp3=True) == b"*1\r\n*2\r\n$1\r\na\r\n,1\r\n"


# --- through a real server --------------------------------------------------


def _raw_resp3(client: redis.Redis, *args: bytes | str) -> bytes:
    """The exact bytes a RESP3 connection receives for one command."""
    kwargs = client.connection_pool.connection_kwargs
    with socket.create_connection((kwargs["host"], kwargs["port"]), timeout=10) as sock:

        def exchange(command: tuple[bytes | str, ...]) -> bytes:
            parts = [a if isinstance(a, bytes) else a.encode() for a in command]
            request = b"*%d\r\n" % len(parts) + b"".join(
                b"$%d\r\n%s\r\n" % (len(p), p) for p in parts
            )
            sock.sendall(request)
            reader = hiredis.Reader()
            raw = b""
            while True:
                chunk = sock.recv(65536)
                assert chunk, "connection closed"
                raw += chunk
                reader.feed(chunk)
                if reader.gets() is not False:
                    return raw

        exchange(("HELLO", "3"))
        return exchange(args)


@pytest.mark.integration
def test_zset_commands_through_redis_py(r: redis.Redis) -> None:
    assert r.zadd("z", {"a": 1, "b": 2, "c": 3}) == 3
    assert r.zadd("z", {"a": 5}, xx=True, ch=True) == 1
    assert r.zadd("z", {"d": 1.5}, incr=True) == 1.5
    assert r.zincrby("z", 0.25, "d") == 1.75
    assert r.zscore("z", "a") == 5.0
    assert r.zmscore("z", ["a", "nope"]) == [5.0, None]
    assert r.zcard("z") == 4
    assert r.zrange("z", 0, -1) == [b"d", b"b", b"c", b"a"]
    assert r.zrange("z", 0, 1, withscores=True) == [(b"d", 1.75), (b"b", 2.0)]
    assert r.zrange("z", "(2", "+inf", byscore=True, offset=0, num=1) == [b"c"]
    assert r.zrevrange("z", 0, 0) == [b"a"]
    assert r.zrangebyscore("z", 2, 3) == [b"b", b"c"]
    assert r.zrevrangebyscore("z", "+inf", "(3") == [b"a"]
    assert r.zrank("z", "c") == 2
    assert r.zrevrank("z", "c") == 1
    assert r.zrank("z", "c", withscore=True) == [2, 3.0]
    assert r.zcount("z", "-inf", "(3") == 2
    assert r.zpopmin("z") == [(b"d", 1.75)]
    assert r.zpopmax("z", 2) == [(b"a", 5.0), (b"c", 3.0)]
    assert r.zrem("z", "b", "x") == 1
    assert r.exists("z") == 0


@pytest.mark.integration
def test_zset_errors_through_redis_py(r: redis.Redis) -> None:
    r.set("s", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.zadd("s", {"a": 1})
    with pytest.raises(redis.ResponseError, match="XX and NX options"):
        r.execute_command("ZADD", "z", "NX", "XX", 1, "a")
    with pytest.raises(redis.ResponseError, match="not a valid float"):
        r.execute_command("ZADD", "z", "x", "a")
    with pytest.raises(redis.ResponseError, match="min or max is not a float"):
        r.execute_command("ZCOUNT", "z", "x", 1)
    with pytest.raises(redis.ResponseError, match="LIMIT is only supported"):
        r.execute_command("ZRANGE", "z", 0, 1, "LIMIT", 0, 1)
    with pytest.raises(
        redis.ResponseError, match="wrong number of arguments for 'zscore'"
    ):
        r.execute_command("ZSCORE", "z")
    r.zadd("z", {"a": math.inf})
    with pytest.raises(redis.ResponseError, match=r"resulting score is not a number"):
        r.zincrby("z", -math.inf, "a")
    assert r.execute_command("ZADD", "z", "XX", "INCR", 1, "nope") is None


@pytest.mark.integration
def test_zset_resp3_replies(r3: redis.Redis) -> None:
    r3.zadd("z", {"a": 1.5, "b": 2})
    assert _raw_resp3(r3, "ZSCORE", "z", "a") == b",1.5\r\n"
    assert _raw_resp3(r3, "ZRANGE", "z", "0", "-1", "WITHSCORES") == (
        b"*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,2\r\n"
    )
    assert _raw_resp3(r3, "ZRANK", "z", "nope", "WITHSCORE") == b"_\r\n"
    assert _raw_resp3(r3, "ZPOPMIN", "z") == b"*2\r\n$1\r\na\r\n,1.5\r\n"
    assert _raw_resp3(r3, "ZPOPMIN", "z", "1") == b"*1\r\n*2\r\n$1\r\nb\r\n,2\r\n"
