"""MULTI/EXEC/DISCARD: queueing, Redis's errors and replies, and atomicity.

In-process for the replicated PREZ.EXEC command (prez/kv/transaction.py);
through redis-py and redis-cli on a real single node (the session server of
conftest.py) and on a real 3-node cluster, where a transaction is one log
entry: applied whole and at one point on every replica, through the leader
or forwarded by a follower.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from prez.errors import CommandError
from prez.kv import KVStore, execute
from prez.kv.transaction import exec_args, split_exec_args
from prez.testing.cluster import Cluster
from prez.testing.procs import HOST, ServerProcess, wait_until

TIMEOUT_MS = 500

# -- the replicated command, in process ------------------------------------------


def test_exec_args_round_trip() -> None:
    commands = [[b"SET", b"k", b"v"], [b"GET", b"k"], [b"DEL", b"a", b"b", b"3"]]
    args = exec_args(commands)
    assert args[0] == b"prez.exec"
    assert split_exec_args(args) == commands


@pytest.mark.parametrize(
    "args",
    [
        [b"prez.exec", b"1", b"x", b"GET", b"k"],  # not a count
        [b"prez.exec", b"1", b"3", b"GET", b"k"],  # runs past the end
        [b"prez.exec", b"1", b"0", b"GET"],  # an empty command
    ],
)
def test_malformed_exec_is_refused_whole(args: list[bytes]) -> None:
    store = KVStore()
    with pytest.raises(CommandError, match="malformed PREZ.EXEC"):
        execute(store, 0, args, 0)


def test_exec_of_an_unknown_format_is_refused() -> None:
    store = KVStore()
    args = exec_args([[b"SET", b"k", b"1"]])
    args[1] = b"2"
    with pytest.raises(CommandError, match="format b'2' is not one this version"):
        execute(store, 0, args, 0)
    assert execute(store, 0, [b"EXISTS", b"k"], 0) == 0


def test_exec_runs_in_order_and_keeps_each_error_in_its_place() -> None:
    store = KVStore()
    replies = execute(
        store,
        0,
        exec_args(
            [
                [b"SET", b"k", b"1"],
                [b"LPUSH", b"k", b"x"],  # WRONGTYPE: the others still run
                [b"INCR", b"k"],
                [b"GET", b"k"],
            ]
        ),
        0,
    )
    assert replies[0] == "OK"
    assert isinstance(replies[1], CommandError)
    assert replies[1].message.startswith("WRONGTYPE")
    assert replies[2:] == [2, b"2"]


@pytest.mark.parametrize(
    "bad, error",
    [
        ([b"NOSUCH", b"k"], "unknown command"),
        ([b"SET", b"k"], "wrong number of arguments"),
        ([b"prez.exec", b"1", b"2", b"GET", b"k"], "unknown command"),  # no nesting
    ],
)
def test_exec_with_a_bad_command_runs_nothing(bad: list[bytes], error: str) -> None:
    store = KVStore()
    with pytest.raises(CommandError, match=error):
        execute(store, 0, exec_args([[b"SET", b"k", b"1"], bad]), 0)
    assert execute(store, 0, [b"EXISTS", b"k"], 0) == 0


# -- a real single node ------------------------------------------------------------


def test_redis_py_transactional_pipeline(r: redis.Redis) -> None:
    pipe = r.pipeline()  # transaction=True: MULTI ... EXEC
    pipe.set("a", 1).incr("a").lpush("a", "x").get("a").hset("h", "f", "v")
    pipe.ping().echo("hi")  # connection commands that may be queued
    replies = pipe.execute(raise_on_error=False)
    assert replies[:2] == [True, 2]
    assert isinstance(replies[2], redis.ResponseError)
    assert "WRONGTYPE" in str(replies[2])
    assert replies[3:] == [b"2", 1, True, b"hi"]


def test_queueing_errors_abort_the_whole_transaction(r: redis.Redis) -> None:
    pipe = r.pipeline()
    pipe.set("k", "v").execute_command("SET", "only-a-key")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        pipe.execute()
    assert r.exists("k") == 0  # nothing ran


def test_transaction_commands_one_by_one(prez_server: ServerProcess) -> None:
    session = "\n".join(
        [
            "EXEC",
            "DISCARD",
            "MULTI",
            "MULTI",  # refused, but the transaction goes on
            "SET k v",
            "GET k",
            "EXEC",
            "MULTI",
            "INCR n",
            "DISCARD",
            "GET n",
            "MULTI",
            "FOO",
            "SET k w",
            "EXEC",
            "GET k",
            "MULTI",
            "CLIENT ID",
            "EXEC",
            "MULTI",
            "EXEC",
            "MULTI",
            "WATCH k",
            "RESET",
            "EXEC",
            "WATCH k",
            "UNWATCH",
            "MULTI",
            "UNWATCH",  # queued, as in Redis, like PING
            "PING",
            "EXEC",
            "MULTI",
            "EXEC extra",  # refused for its arity: the transaction is lost
            "EXEC",
            "",
        ]
    )
    out = subprocess.run(
        ["redis-cli", "-p", str(prez_server.port)],
        input=session,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split("\n")
    lines = [line for line in out if line]
    assert lines == [
        "ERR EXEC without MULTI",
        "ERR DISCARD without MULTI",
        "OK",
        "ERR MULTI calls can not be nested",
        "QUEUED",
        "QUEUED",
        "OK",
        "v",
        "OK",
        "QUEUED",
        "OK",
        # GET n after DISCARD: nil, which redis-cli prints as an empty line
        "OK",
        "ERR unknown command 'FOO', with args beginning with: ",
        "QUEUED",
        "EXECABORT Transaction discarded because of previous errors.",
        "v",
        "OK",
        "ERR Command not allowed inside a transaction",
        "EXECABORT Transaction discarded because of previous errors.",
        "OK",
        # EXEC of nothing: an empty array, printed as nothing
        "OK",
        "ERR WATCH inside MULTI is not allowed",
        "RESET",
        "ERR EXEC without MULTI",
        "ERR WATCH is not supported: MULTI/EXEC transactions are applied "
        "atomically, but without optimistic locking",
        "OK",
        "OK",
        "QUEUED",
        "QUEUED",
        "OK",
        "PONG",
        "OK",
        "ERR wrong number of arguments for 'exec' command",
        "EXECABORT Transaction discarded because of previous errors.",
    ]


def test_exec_reply_in_resp3(r3: redis.Redis) -> None:
    pipe = r3.pipeline()
    pipe.hset("h", mapping={"a": "1"}).hgetall("h").sadd("s", "x").smembers("s")
    assert pipe.execute() == [1, {b"a": b"1"}, 1, {b"x"}]


# -- a real cluster --------------------------------------------------------------


def test_transactions_on_a_cluster_are_atomic_and_replicated(tmp_path: Path) -> None:
    """Writers add 1 to both counters in one transaction through any node;
    a reader reading both in one transaction never sees them differ, and
    at the end every replica holds the same data."""
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        nodes = list(cluster.nodes)
        committed = [0] * len(nodes)
        torn: list[tuple[bytes, bytes]] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def writer(i: int) -> None:
            deadline = time.monotonic() + 30  # every load loop is bounded
            with redis.Redis(host=HOST, port=nodes[i].port, socket_timeout=10) as c:
                while not stop.is_set() and time.monotonic() < deadline:
                    pipe = c.pipeline()
                    pipe.incr("a").incr("b")
                    a, b = pipe.execute()
                    if a != b:
                        torn.append((a, b))
                    committed[i] += 1

        def reporting(body: Callable[..., None], *args: int) -> Callable[[], None]:
            def run() -> None:
                try:
                    body(*args)
                except BaseException as e:  # noqa: BLE001 - re-raised by the test
                    failures.append(e)

            return run

        def reader() -> None:
            deadline = time.monotonic() + 30
            follower = cluster.followers(leader)[0]
            with redis.Redis(host=HOST, port=follower.port, socket_timeout=10) as c:
                while not stop.is_set() and time.monotonic() < deadline:
                    pipe = c.pipeline()
                    pipe.get("a").get("b")
                    a, b = pipe.execute()
                    if a != b:
                        torn.append((a, b))

        threads = [threading.Thread(target=reporting(writer, i)) for i in range(3)]
        threads.append(threading.Thread(target=reporting(reader)))
        for t in threads:
            t.start()
        try:
            wait_until(lambda: sum(committed) >= 300, 30, what="transactions")
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not failures, failures
        assert not torn, torn[:5]
        total = sum(committed)
        with cluster.client(leader) as c:
            assert c.mget("a", "b") == [b"%d" % total] * 2
        commit = int(cluster.raft_info(leader)["raft_commit_index"])
        cluster.wait_applied(commit, nodes=nodes)
        digests = {cluster.client(n).execute_command("DEBUG", "DIGEST") for n in nodes}
        assert len(digests) == 1


def test_exec_on_a_follower_in_moved_mode_is_redirected(tmp_path: Path) -> None:
    with Cluster(
        tmp_path,
        size=3,
        node_timeout=TIMEOUT_MS,
        config={"follower-writes": "moved"},
    ) as cluster:
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        with cluster.client(follower) as c:
            pipe = c.pipeline()
            pipe.set("k", "v")
            with pytest.raises(redis.exceptions.MovedError) as moved:
                pipe.execute()
            assert str(moved.value) == f"0 {HOST}:{leader.port}"
        with cluster.client(leader) as c:
            pipe = c.pipeline()
            pipe.set("k", "v").get("k")
            assert pipe.execute() == [True, b"v"]
