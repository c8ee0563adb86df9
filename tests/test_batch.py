"""The compiled command loop (prez._core.batch) against its twin, and on a real server.

`run_local` must run exactly the leading local data commands of a batch,
in order, and stop at the first command the general path has to handle;
the compiled module and the plain-Python twin must agree on every input.
Through a real prez-server, a pipeline that switches between the loop and
the general path (SELECT, AUTH, unknown commands, arity errors) must be
answered in order with Redis's replies.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from prez._core import batch, batch_py
from prez.errors import CommandError
from prez.testing.procs import HOST, ServerProcess

IMPLEMENTATIONS = [batch, batch_py]
LOCAL = 0b011  # kinds 0 and 1 run locally; kind 2 never does


def make_table(impl: ModuleType) -> tuple[dict[bytes, Any], dict[str, Any]]:
    """A small command table over a dict keyspace: get/set/fail/boom/srv."""

    def get(db: dict[bytes, bytes], args: list[bytes], now: int) -> Any:
        return db.get(args[1])

    def set_(db: dict[bytes, bytes], args: list[bytes], now: int) -> Any:
        db[args[1]] = args[2]
        return "OK"

    def fail(db: dict[bytes, bytes], args: list[bytes], now: int) -> Any:
        raise CommandError(f"ERR failed at {now}")

    def boom(db: dict[bytes, bytes], args: list[bytes], now: int) -> Any:
        raise ZeroDivisionError("a bug in a handler")

    def variadic(db: dict[bytes, bytes], args: list[bytes], now: int) -> Any:
        return len(args)

    entries = {
        "get": impl.CommandSlot(get, 0, 2),
        "set": impl.CommandSlot(set_, 1, 3),
        "fail": impl.CommandSlot(fail, 0, 1),
        "boom": impl.CommandSlot(boom, 1, 1),
        "mget": impl.CommandSlot(variadic, 0, -2),
        "srv": impl.CommandSlot(variadic, 2, -1),
    }
    lookup: dict[bytes, Any] = {name.encode(): e for name, e in entries.items()}
    lookup[b"notaslot"] = object()
    return lookup, entries


def run(
    impl: ModuleType,
    commands: list[list[bytes]],
    start: int = 0,
    clock: Callable[[], int] | None = None,
) -> tuple[int, list[Any], dict[bytes, bytes], dict[str, Any]]:
    lookup, entries = make_table(impl)
    db: dict[bytes, bytes] = {}
    replies: list[Any] = []
    done = impl.run_local(commands, start, lookup, db, 7, replies.append, LOCAL, clock)
    return done, replies, db, entries


@pytest.fixture(params=IMPLEMENTATIONS, ids=["compiled", "twin"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


def test_runs_local_commands_in_order(impl: ModuleType) -> None:
    commands = [[b"set", b"k", b"v"], [b"get", b"k"], [b"mget", b"a", b"b"]]
    done, replies, db, entries = run(impl, commands)
    assert done == 3
    assert replies == ["OK", b"v", 3]
    assert db == {b"k": b"v"}
    assert (entries["set"].calls, entries["get"].calls) == (1, 1)


@pytest.mark.parametrize(
    ("stopper", "why"),
    [
        ([b"nosuch", b"x"], "unknown name"),
        ([b"GET", b"k"], "a case the table does not hold"),
        ([b"srv"], "a kind that is not local"),
        ([b"get"], "too few arguments for an exact arity"),
        ([b"get", b"k", b"extra"], "too many arguments for an exact arity"),
        ([b"mget"], "too few arguments for a minimum arity"),
        ([b"notaslot"], "a table value that is no slot"),
        ([], "an empty command"),
    ],
)
def test_stops_where_the_general_path_is_needed(
    impl: ModuleType, stopper: list[bytes], why: str
) -> None:
    commands = [[b"set", b"a", b"1"], stopper, [b"set", b"b", b"2"]]
    done, replies, db, entries = run(impl, commands)
    assert done == 1, why
    assert replies == ["OK"]
    assert db == {b"a": b"1"}, "nothing after the stop may run"
    assert entries["srv"].calls == 0


def test_starts_at_the_given_index(impl: ModuleType) -> None:
    commands = [[b"srv"], [b"set", b"a", b"1"], [b"get", b"a"]]
    done, replies, _, _ = run(impl, commands, start=1)
    assert (done, replies) == (3, ["OK", b"1"])
    assert run(impl, commands, start=3)[:2] == (3, [])


def test_a_negative_start_is_refused(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        run(impl, [[b"get", b"k"]], start=-1)


def test_command_errors_are_replies(impl: ModuleType) -> None:
    done, replies, _, entries = run(impl, [[b"fail"], [b"set", b"a", b"1"], [b"fail"]])
    assert done == 3
    assert [type(r) for r in replies] == [CommandError, str, CommandError]
    assert replies[0].message == "ERR failed at 7"
    assert (entries["fail"].calls, entries["fail"].failed) == (2, 2)


def test_other_exceptions_propagate_after_earlier_replies(impl: ModuleType) -> None:
    lookup, entries = make_table(impl)
    replies: list[Any] = []
    commands = [[b"set", b"a", b"1"], [b"boom"], [b"set", b"b", b"2"]]
    with pytest.raises(ZeroDivisionError):
        impl.run_local(commands, 0, lookup, {}, 7, replies.append, LOCAL)
    assert replies == ["OK"]
    assert entries["boom"].calls == 1 and entries["set"].calls == 1


def test_timing_is_sampled_per_command(impl: ModuleType) -> None:
    ticks = iter(range(0, 10**9, 5))

    def clock() -> int:
        return next(ticks)

    lookup, entries = make_table(impl)
    calls = 3 * impl.TIMING_SAMPLE
    for _ in range(calls):
        impl.run_local([[b"get", b"k"]], 0, lookup, {}, 7, list().append, LOCAL, clock)
    get = entries["get"]
    assert get.calls == calls
    assert get.timed == 3  # the 1st, 17th and 33rd call
    assert get.nanos == 3 * 5  # each timed call read the clock twice, 5 apart
    untimed = make_table(impl)[1]["get"]
    impl.run_local(
        [[b"get", b"k"]] * 40, 0, {b"get": untimed}, {}, 7, list().append, LOCAL
    )
    assert (untimed.calls, untimed.timed, untimed.nanos) == (40, 0, 0)


NAMES = [b"get", b"set", b"fail", b"mget", b"srv", b"nosuch", b"GET"]
command_strategy = st.builds(
    lambda name, args: [name, *args],
    st.sampled_from(NAMES),
    st.lists(st.binary(max_size=3), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(command_strategy, max_size=12), st.integers(0, 3))
def test_compiled_matches_twin(commands: list[list[bytes]], start: int) -> None:
    def outcome(impl: ModuleType) -> Any:
        done, replies, db, entries = run(impl, commands, min(start, len(commands)))
        shown = [r.message if isinstance(r, CommandError) else r for r in replies]
        counts = {n: (e.calls, e.failed) for n, e in entries.items()}
        return done, shown, db, counts

    assert outcome(batch) == outcome(batch_py)


# Through a real server: the loop and the general path interleaved.


def exchange(
    port: int, request: bytes, expected_len: int, timeout: float = 5.0
) -> bytes:
    """Send one write; read until `expected_len` bytes came back or the deadline."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(request)
        received = b""
        deadline = time.monotonic() + timeout
        while len(received) < expected_len and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_pipeline_switching_paths_answers_in_order(
    prez_server: ServerProcess, r: redis.Redis
) -> None:
    request = (
        b"SET k v0\r\n"
        b"SELECT 1\r\n"
        b"SET k v1\r\n"
        b"GET k\r\n"
        b"NOSUCH a\r\n"
        b"GET\r\n"
        b"get k\r\n"
        b"SELECT 0\r\n"
        b"GET k\r\n"
        b"Get k\r\n"
    )
    expected = (
        b"+OK\r\n+OK\r\n+OK\r\n$2\r\nv1\r\n"
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n"
        b"-ERR wrong number of arguments for 'get' command\r\n"
        b"$2\r\nv1\r\n+OK\r\n$2\r\nv0\r\n$2\r\nv0\r\n"
    )
    assert exchange(prez_server.port, request, len(expected)) == expected
    assert r.get("k") == b"v0"
    with redis.Redis(host=HOST, port=prez_server.port, db=1) as db1:
        assert db1.get("k") == b"v1"


def test_commandstats_and_client_list_follow_the_fast_path(
    prez_server: ServerProcess, r: redis.Redis
) -> None:
    r.config_resetstat()
    other = redis.Redis(host=HOST, port=prez_server.port)
    try:
        for i in range(40):
            other.set(f"key{i}", i)
        with other.pipeline(transaction=False) as pipe:
            for i in range(10):
                pipe.get(f"key{i}")
            assert pipe.execute() == [str(i).encode() for i in range(10)]
        stats = r.info("commandstats")
        assert stats["cmdstat_set"]["calls"] == 40
        assert stats["cmdstat_get"]["calls"] == 10
        assert stats["cmdstat_set"]["usec_per_call"] > 0
        other_id = other.client_id()
        other.get("key0")
        lines = [c for c in r.client_list() if int(c["id"]) == other_id]
        assert lines and lines[0]["cmd"] == "get"
    finally:
        other.close()


@pytest.mark.integration
def test_auth_inside_a_pipeline(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, config={"requirepass": "secret"}) as server:
        request = b"SET k v\r\nAUTH secret\r\nSET k v\r\nGET k\r\n"
        expected = b"-NOAUTH Authentication required.\r\n+OK\r\n+OK\r\n$1\r\nv\r\n"
        assert exchange(server.port, request, len(expected)) == expected
