"""Sets: the S* commands, and SPOP's determinism across replicas.

In-process tests run the commands through `prez.kv.execute`; the ones marked
`integration` go through redis-py against a real prez-server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import hiredis
import pytest
import redis

from prez._core.resp_py import encode
from prez.errors import WRONGTYPE
from prez.testing.kvrunner import Runner

SYNTAX = "ERR syntax error"
MUST_BE_POSITIVE = "ERR value is out of range, must be positive"


def test_sadd_srem_smembers_scard(run: Runner) -> None:
    assert run("SADD", "s", "a", "b", "a") == 2
    assert run("SADD", "s", "b", "c") == 1
    assert run("SMEMBERS", "s") == {b"a", b"b", b"c"}
    assert run("SCARD", "s") == 3
    assert run("SREM", "s", "a", "x") == 1
    assert run("SREM", "nokey", "a") == 0
    assert run("SMEMBERS", "nokey") == set()
    assert run("SCARD", "nokey") == 0
    reply = run("SMEMBERS", "s")
    assert run("SREM", "s", "b", "c") == 2
    assert b"s" not in run.db.data  # emptied set is deleted
    assert reply == {b"b", b"c"}  # the reply is not a view of the live set


def test_sismember_smismember(run: Runner) -> None:
    run("SADD", "s", "a", "b")
    assert run("SISMEMBER", "s", "a") == 1
    assert run("SISMEMBER", "s", "x") == 0
    assert run("SISMEMBER", "nokey", "x") == 0
    assert run("SMISMEMBER", "s", "a", "x", "b") == [1, 0, 1]
    assert run("SMISMEMBER", "nokey", "a", "b") == [0, 0]


def test_spop_single_and_count(run: Runner) -> None:
    members = {b"m%d" % i for i in range(10)}
    run("SADD", "s", *members)
    first = run("SPOP", "s")
    assert first in members
    assert run("SISMEMBER", "s", first) == 0
    popped = run("SPOP", "s", 3)
    assert isinstance(popped, set) and len(popped) == 3 and popped <= members
    assert first not in popped
    assert run("SCARD", "s") == 6
    assert run("SPOP", "s", 0) == set()
    rest = run("SPOP", "s", 100)
    assert rest == members - popped - {first}
    assert b"s" not in run.db.data
    assert run("SPOP", "s") is None
    assert run("SPOP", "s", 2) == set()
    assert run.error("SPOP", "s", -1) == MUST_BE_POSITIVE
    assert run.error("SPOP", "s", "x") == MUST_BE_POSITIVE
    assert run.error("SPOP", "s", 1, 2) == SYNTAX


def test_spop_is_a_function_of_state_args_and_time() -> None:
    def replay(now: int) -> list[Any]:
        run = Runner()
        run("SADD", "s", *[b"m%d" % i for i in range(200)])
        return [run("SPOP", "s", now=now), sorted(run("SPOP", "s", 5, now=now))]

    assert replay(5_000) == replay(5_000)
    assert any(replay(5_000) != replay(t) for t in range(5_001, 5_010))


_SPOP_SCRIPT = """
from prez.kv import KVStore, execute
store = KVStore()
execute(store, 0, [b"SADD", b"s"] + [b"member-%d" % i for i in range(300)], 1)
one = execute(store, 0, [b"SPOP", b"s"], 12345)
some = execute(store, 0, [b"SPOP", b"s", b"7"], 12346)
print(one, sorted(some), sorted(store.dbs[0].data[b"s"]))
"""


def test_spop_agrees_across_processes_with_different_hash_seeds() -> None:
    outputs = []
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = subprocess.run(
            [sys.executable, "-c", _SPOP_SCRIPT],
            env=env,
            capture_output=True,
            check=True,
            timeout=60,
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0]


def test_srandmember(run: Runner) -> None:
    members = {b"a", b"b", b"c"}
    run("SADD", "s", *members)
    assert run("SRANDMEMBER", "s") in members
    assert run("SRANDMEMBER", "nokey") is None
    assert run("SRANDMEMBER", "nokey", 2) == []
    assert run("SRANDMEMBER", "s", 0) == []
    two = run("SRANDMEMBER", "s", 2)
    assert isinstance(two, list) and len(set(two)) == 2 and set(two) <= members
    assert sorted(run("SRANDMEMBER", "s", 10)) == sorted(members)
    many = run("SRANDMEMBER", "s", -10)
    assert len(many) == 10 and set(many) <= members
    assert run("SCARD", "s") == 3  # a read: nothing removed
    assert run.error("SRANDMEMBER", "s", "x") == (
        "ERR value is not an integer or out of range"
    )
    assert run.error("SRANDMEMBER", "s", 1, 2) == SYNTAX


def test_sinter_sunion_sdiff(run: Runner) -> None:
    run("SADD", "a", "1", "2", "3", "4")
    run("SADD", "b", "3", "4", "5")
    run("SADD", "c", "4", "6")
    assert run("SINTER", "a", "b", "c") == {b"4"}
    assert run("SINTER", "a", "nokey") == set()
    assert run("SINTER", "a") == {b"1", b"2", b"3", b"4"}
    assert run("SUNION", "a", "nokey", "c") == {b"1", b"2", b"3", b"4", b"6"}
    assert run("SDIFF", "a", "b", "c") == {b"1", b"2"}
    assert run("SDIFF", "nokey", "a") == set()
    assert run("SDIFF", "a", "nokey") == {b"1", b"2", b"3", b"4"}
    run.db.set(b"str", b"x")
    # Every key is type-checked, even after a missing one.
    for name in ("SINTER", "SUNION", "SDIFF"):
        assert run.error(name, "nokey", "str") == WRONGTYPE
        assert run.error(name, "a", "str") == WRONGTYPE


def test_store_variants(run: Runner) -> None:
    run("SADD", "a", "1", "2", "3")
    run("SADD", "b", "2", "3", "4")
    assert run("SINTERSTORE", "dst", "a", "b") == 2
    assert run("SMEMBERS", "dst") == {b"2", b"3"}
    assert run("SUNIONSTORE", "dst", "a", "b") == 4
    assert run("SDIFFSTORE", "dst", "a", "b") == 1
    assert run("SMEMBERS", "dst") == {b"1"}
    run("SADD", "a", "9")
    assert run("SMEMBERS", "dst") == {b"1"}  # the result is its own set
    run.db.set(b"str", b"x")
    run.db.expire_at(b"str", 50_000)
    assert run("SUNIONSTORE", "str", "a") == 4  # overwrites any type, drops TTL
    assert run.db.ttl_ms(b"str") is None
    assert run("SINTERSTORE", "dst", "a", "nokey") == 0
    assert b"dst" not in run.db.data
    assert run("SUNIONSTORE", "a", "a", "b") == 5  # destination among sources


def test_smove(run: Runner) -> None:
    run("SADD", "src", "a", "b")
    assert run("SMOVE", "src", "dst", "a") == 1
    assert run("SMOVE", "src", "dst", "zz") == 0
    assert run("SMOVE", "nokey", "dst", "a") == 0
    assert run("SMOVE", "src", "src", "b") == 1
    assert run("SMOVE", "src", "src", "zz") == 0
    assert run("SMOVE", "src", "dst", "b") == 1
    assert b"src" not in run.db.data
    assert run("SMEMBERS", "dst") == {b"a", b"b"}
    run.db.set(b"str", b"x")
    assert run.error("SMOVE", "dst", "str", "a") == WRONGTYPE
    assert run.error("SMOVE", "str", "dst", "a") == WRONGTYPE
    assert run("SMOVE", "nokey", "str", "a") == 0  # no source: no type check
    assert run("SMEMBERS", "dst") == {b"a", b"b"}


def test_wrong_type_for_every_set_command(run: Runner) -> None:
    run.db.set(b"s", b"string")
    for args in (
        ("SADD", "s", "a"),
        ("SREM", "s", "a"),
        ("SMEMBERS", "s"),
        ("SISMEMBER", "s", "a"),
        ("SMISMEMBER", "s", "a"),
        ("SCARD", "s"),
        ("SPOP", "s"),
        ("SPOP", "s", 1),
        ("SRANDMEMBER", "s"),
        ("SRANDMEMBER", "s", 1),
        ("SINTERSTORE", "d", "s"),
    ):
        assert run.error(*args) == WRONGTYPE, args
    assert run.db.data[b"s"] == b"string"


def test_arity_is_checked(run: Runner) -> None:
    for args in (("SADD", "s"), ("SCARD",), ("SMOVE", "a", "b"), ("SINTER",)):
        name = args[0].lower()
        assert run.error(*args) == f"ERR wrong number of arguments for '{name}' command"


def test_expired_set_is_invisible_to_reads_and_replaced_by_writes(
    run: Runner,
) -> None:
    run("SADD", "s", "old")
    run.db.expire_at(b"s", 2_000)
    assert run("SISMEMBER", "s", "old", now=2_000) == 0
    assert b"s" in run.db.data  # reads never delete
    assert run("SADD", "s", "new", now=2_000) == 1
    assert run("SMEMBERS", "s", now=2_000) == {b"new"}


def test_smembers_is_a_set_in_resp3() -> None:
    assert encode({b"a"}, resp3=True) == b"~1\r\n$1\r\na\r\n"
    assert encode({b"a"}) == b"*1\r\n$1\r\na\r\n"


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
def test_set_commands_through_redis_py(r: redis.Redis) -> None:
    assert r.sadd("s", "a", "b", "c") == 3
    assert r.smembers("s") == {b"a", b"b", b"c"}
    assert r.sismember("s", "a") == 1
    assert r.smismember("s", ["a", "x"]) == [1, 0]
    assert r.scard("s") == 3
    assert r.srem("s", "c") == 1
    r.sadd("t", "b", "d")
    assert r.sinter("s", "t") == {b"b"}
    assert r.sunion("s", "t") == {b"a", b"b", b"d"}
    assert r.sdiff("s", "t") == {b"a"}
    assert r.sinterstore("i", ["s", "t"]) == 1
    assert r.smove("t", "s", "d") is True
    assert r.srandmember("s") in {b"a", b"b", b"d"}
    assert len(r.srandmember("s", -5)) == 5
    popped = r.spop("s", 2)
    assert len(popped) == 2
    assert r.scard("s") == 1
    assert r.spop("nokey") is None


@pytest.mark.integration
def test_set_errors_through_redis_py(r: redis.Redis) -> None:
    r.set("str", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.sadd("str", "a")
    with pytest.raises(redis.ResponseError, match="must be positive"):
        r.execute_command("SPOP", "s", -1)
    with pytest.raises(
        redis.ResponseError, match="wrong number of arguments for 'sadd'"
    ):
        r.execute_command("SADD", "s")
    with pytest.raises(
        redis.ResponseError, match="value is not an integer or out of range"
    ):
        r.execute_command("SRANDMEMBER", "s", "x")


@pytest.mark.integration
def test_set_resp3_replies(r3: redis.Redis) -> None:
    r3.sadd("s", "a")
    assert _raw_resp3(r3, "SMEMBERS", "s") == b"~1\r\n$1\r\na\r\n"
    assert _raw_resp3(r3, "SINTER", "s", "nokey") == b"~0\r\n"
    assert _raw_resp3(r3, "SPOP", "s", "5") == b"~1\r\n$1\r\na\r\n"
