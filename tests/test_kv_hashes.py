"""Hashes: the H* commands.

In-process tests run the commands through `prez.kv.execute`; the ones marked
`integration` go through redis-py against a real prez-server.
"""

from __future__ import annotations

import socket

import hiredis
import pytest
import redis

from prez._core.resp_py import encode
from prez.errors import WRONGTYPE
from prez.kv import KVStore, execute
from prez.kv.hashes import format_human_double
from prez.testing.kvrunner import Runner
from prez.testing.procs import ServerProcess


def test_hset_hget_and_counts(run: Runner) -> None:
    assert run("HSET", "h", "f1", "v1", "f2", "v2") == 2
    assert run("HSET", "h", "f1", "new", "f3", "v3") == 1
    assert run("HGET", "h", "f1") == b"new"
    assert run("HGET", "h", "nope") is None
    assert run("HGET", "nokey", "f") is None
    assert run("HSET", "h", "f1", "again") == 0
    assert run("HMSET", "h", "f4", "v4", "f5", "v5") == "OK"
    assert run("HLEN", "h") == 5
    assert run("HLEN", "nokey") == 0


def test_hset_odd_pairs_is_an_arity_error(run: Runner) -> None:
    assert run.error("HSET", "h", "f1", "v1", "f2") == (
        "ERR wrong number of arguments for 'hset' command"
    )
    assert run.error("HMSET", "h", "f1", "v1", "f2") == (
        "ERR wrong number of arguments for 'hmset' command"
    )
    assert run.error("HSET", "h", "f1") == (
        "ERR wrong number of arguments for 'hset' command"
    )
    assert b"h" not in run.db.data


def test_hgetall_hkeys_hvals_keep_insertion_order(run: Runner) -> None:
    run("HSET", "h", "b", "1", "a", "2", "c", "3")
    run("HSET", "h", "a", "20")
    assert run("HGETALL", "h") == {b"b": b"1", b"a": b"20", b"c": b"3"}
    assert list(run("HGETALL", "h")) == [b"b", b"a", b"c"]
    assert run("HKEYS", "h") == [b"b", b"a", b"c"]
    assert run("HVALS", "h") == [b"1", b"20", b"3"]
    assert run("HMGET", "h", "a", "nope", "c") == [b"20", None, b"3"]
    assert run("HMGET", "nokey", "a", "b") == [None, None]
    assert run("HGETALL", "nokey") == {}
    assert run("HKEYS", "nokey") == []
    assert run("HVALS", "nokey") == []
    reply = run("HGETALL", "h")
    run("HSET", "h", "d", "4")
    assert len(reply) == 3  # the reply is not a view of the live hash


def test_hdel_deletes_the_emptied_key(run: Runner) -> None:
    run("HSET", "h", "a", "1", "b", "2")
    assert run("HDEL", "h", "a", "nope", "a") == 1
    assert run("HDEL", "nokey", "a") == 0
    assert run("HDEL", "h", "b") == 1
    assert b"h" not in run.db.data


def test_hexists_hstrlen_hsetnx(run: Runner) -> None:
    assert run("HSETNX", "h", "f", "hello") == 1
    assert run("HSETNX", "h", "f", "other") == 0
    assert run("HGET", "h", "f") == b"hello"
    assert run("HEXISTS", "h", "f") == 1
    assert run("HEXISTS", "h", "g") == 0
    assert run("HEXISTS", "nokey", "g") == 0
    assert run("HSTRLEN", "h", "f") == 5
    assert run("HSTRLEN", "h", "g") == 0
    assert run("HSTRLEN", "nokey", "g") == 0


def test_hincrby(run: Runner) -> None:
    assert run("HINCRBY", "h", "n", 5) == 5
    assert run("HINCRBY", "h", "n", -7) == -2
    assert run("HGET", "h", "n") == b"-2"
    run("HSET", "h", "big", str(2**63 - 2), "text", "abc", "padded", " 1")
    assert run("HINCRBY", "h", "big", 1) == 2**63 - 1
    assert run.error("HINCRBY", "h", "big", 1) == (
        "ERR increment or decrement would overflow"
    )
    assert run.error("HINCRBY", "h", "text", 1) == "ERR hash value is not an integer"
    assert run.error("HINCRBY", "h", "padded", 1) == "ERR hash value is not an integer"
    assert run.error("HINCRBY", "h", "n", "1.5") == (
        "ERR value is not an integer or out of range"
    )
    assert run.error("HINCRBY", "h", "n", str(2**63)) == (
        "ERR value is not an integer or out of range"
    )
    assert run.error("HINCRBY", "fresh", "n", "x") == (
        "ERR value is not an integer or out of range"
    )
    assert b"fresh" not in run.db.data


def test_hincrbyfloat_follows_redis_examples(run: Runner) -> None:
    run("HSET", "mykey", "field", "10.50")
    assert run("HINCRBYFLOAT", "mykey", "field", "0.1") == b"10.6"
    assert run("HINCRBYFLOAT", "mykey", "field", "-5") == b"5.6"
    run("HSET", "mykey", "field", "5.0e3")
    assert run("HINCRBYFLOAT", "mykey", "field", "2.0e2") == b"5200"
    assert run("HGET", "mykey", "field") == b"5200"
    assert run("HINCRBYFLOAT", "mykey", "new", "1e20") == b"100000000000000000000"
    assert run("HINCRBYFLOAT", "mykey", "neg", "-0.0") == b"0"


def test_hincrbyfloat_errors(run: Runner) -> None:
    run("HSET", "h", "text", "abc", "huge", "1.7e308")
    assert run.error("HINCRBYFLOAT", "h", "f", "x") == "ERR value is not a valid float"
    assert run.error("HINCRBYFLOAT", "h", "f", "inf") == "ERR value is NaN or Infinity"
    assert (
        run.error("HINCRBYFLOAT", "h", "text", "1") == "ERR hash value is not a float"
    )
    assert run.error("HINCRBYFLOAT", "h", "huge", "1.7e308") == (
        "ERR increment would produce NaN or Infinity"
    )
    assert run("HGET", "h", "huge") == b"1.7e308"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.0, b"3"),
        (-2.5, b"-2.5"),
        (0.1 + 0.2, b"0.30000000000000004"),
        (1.5e-20, b"0"),
        (1.25e-5, b"0.0000125"),
        (123456789.125, b"123456789.125"),
    ],
)
def test_format_human_double(value: float, text: bytes) -> None:
    assert format_human_double(value) == text


def test_wrong_type_for_every_hash_command(run: Runner) -> None:
    run.db.set(b"s", b"string")
    for args in (
        ("HSET", "s", "f", "v"),
        ("HMSET", "s", "f", "v"),
        ("HSETNX", "s", "f", "v"),
        ("HGET", "s", "f"),
        ("HMGET", "s", "f"),
        ("HGETALL", "s"),
        ("HKEYS", "s"),
        ("HVALS", "s"),
        ("HDEL", "s", "f"),
        ("HLEN", "s"),
        ("HEXISTS", "s", "f"),
        ("HSTRLEN", "s", "f"),
        ("HINCRBY", "s", "f", 1),
        ("HINCRBYFLOAT", "s", "f", 1),
        ("HRANDFIELD", "s"),
        ("HRANDFIELD", "s", 2),
    ):
        assert run.error(*args) == WRONGTYPE, args
    assert run.db.data[b"s"] == b"string"


def test_arity_is_checked(run: Runner) -> None:
    for args in (("HGET", "h"), ("HLEN",), ("HDEL", "h"), ("HINCRBY", "h", "f")):
        name = args[0].lower()
        assert run.error(*args) == f"ERR wrong number of arguments for '{name}' command"


def test_expired_hash_is_invisible_to_reads_and_replaced_by_writes(
    run: Runner,
) -> None:
    run("HSET", "h", "old", "1")
    run.db.expire_at(b"h", 2_000)
    assert run("HGET", "h", "old", now=1_999) == b"1"
    assert run("HGET", "h", "old", now=2_000) is None
    assert b"h" in run.db.data  # reads never delete
    assert run("HSET", "h", "new", "2", now=2_000) == 1
    assert run("HGETALL", "h", now=2_000) == {b"new": b"2"}
    assert run.db.ttl_ms(b"h") is None


def test_hrandfield(run: Runner) -> None:
    fields = {b"a": b"1", b"b": b"2", b"c": b"3"}
    run("HSET", "h", *[x for pair in fields.items() for x in pair])
    assert run("HRANDFIELD", "h") in fields
    assert run("HRANDFIELD", "nokey") is None
    assert run("HRANDFIELD", "nokey", 2) == []
    assert run("HRANDFIELD", "h", 0) == []
    two = run("HRANDFIELD", "h", 2)
    assert len(two) == 2 and len(set(two)) == 2 and set(two) <= set(fields)
    assert sorted(run("HRANDFIELD", "h", 5)) == sorted(fields)
    many = run("HRANDFIELD", "h", -7)
    assert len(many) == 7 and set(many) <= set(fields)
    pairs = list(run("HRANDFIELD", "h", 2, "WITHVALUES"))
    assert len(pairs) == 2 and len({f for f, _ in pairs}) == 2
    assert all(fields[f] == v for f, v in pairs)
    assert (
        len(run("HRANDFIELD", "h", -5, "WITHVALUES")) == 5
    )  # five (field, value) pairs
    assert run.error("HRANDFIELD", "h", 1, "bogus") == "ERR syntax error"
    assert run.error("HRANDFIELD", "h", "x") == (
        "ERR value is not an integer or out of range"
    )
    assert run.error("HRANDFIELD", "h", str(-(2**62)), "WITHVALUES") == (
        "ERR value is out of range"
    )


def test_hgetall_is_a_map_in_resp3() -> None:
    store = KVStore()
    execute(store, 0, [b"HSET", b"h", b"f", b"v"], 1)
    reply = execute(store, 0, [b"HGETALL", b"h"], 1)
    assert encode(reply, resp3=True) == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    assert encode(reply) == b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n"


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
def test_hash_commands_through_redis_py(r: redis.Redis) -> None:
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", "a", "10") == 0
    assert r.hget("h", "a") == b"10"
    assert r.hmget("h", ["a", "x"]) == [b"10", None]
    assert r.hgetall("h") == {b"a": b"10", b"b": b"2"}
    assert r.hkeys("h") == [b"a", b"b"]
    assert r.hvals("h") == [b"10", b"2"]
    assert r.hlen("h") == 2
    assert r.hexists("h", "a") is True
    assert r.hstrlen("h", "a") == 2
    assert r.hsetnx("h", "a", "x") == 0
    assert r.hincrby("h", "a", 5) == 15
    assert r.hincrbyfloat("h", "b", 0.5) == 2.5
    assert r.hrandfield("h") in (b"a", b"b")
    assert sorted(r.hrandfield("h", 5)) == [b"a", b"b"]
    flat = r.hrandfield("h", 5, withvalues=True)
    assert dict(zip(flat[::2], flat[1::2], strict=True)) == {b"a": b"15", b"b": b"2.5"}
    assert r.hdel("h", "a", "b") == 2
    assert r.exists("h") == 0


@pytest.mark.integration
def test_hash_errors_through_redis_py(r: redis.Redis) -> None:
    r.set("s", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.hset("s", "f", "v")
    with pytest.raises(
        redis.ResponseError, match="wrong number of arguments for 'hset'"
    ):
        r.execute_command("HSET", "h", "f", "v", "g")
    r.hset("h", "t", "abc")
    with pytest.raises(redis.ResponseError, match="hash value is not an integer"):
        r.hincrby("h", "t", 1)
    with pytest.raises(
        redis.ResponseError, match="value is not an integer or out of range"
    ):
        r.execute_command("HINCRBY", "h", "t", "x")
    with pytest.raises(redis.ResponseError, match="hash value is not a float"):
        r.hincrbyfloat("h", "t", 1.0)


@pytest.mark.integration
def test_hash_resp3_replies(r3: redis.Redis) -> None:
    r3.hset("h", "f", "v")
    assert _raw_resp3(r3, "HGETALL", "h") == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    assert _raw_resp3(r3, "HGETALL", "nokey") == b"%0\r\n"
    assert r3.hgetall("h") == {b"f": b"v"}


@pytest.mark.integration
def test_hrandfield_withvalues_shapes(
    r: redis.Redis, r3: redis.Redis, prez_server: ServerProcess
) -> None:
    import socket

    r.hset("hr", mapping={"a": "1"})
    assert r.execute_command("HRANDFIELD", "hr", 1, "WITHVALUES") == [b"a", b"1"]
    with socket.create_connection(("127.0.0.1", prez_server.port), timeout=5) as s:
        s.sendall(b"HELLO 3\r\nHRANDFIELD hr 1 WITHVALUES\r\n")
        data = b""
        while not data.endswith(b"$1\r\na\r\n$1\r\n1\r\n"):
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
    assert data.endswith(b"*1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n")
