"""MULTI/EXEC/DISCARD: queueing, Redis's errors and replies, and atomicity.

In-process for the replicated PREZ.EXEC command (prez/kv/transaction.py);
through redis-py and redis-cli on a real single node (the session server of
conftest.py) and on a real 3-node cluster, where a transaction is one log
entry: applied whole and at one point on every replica, through the leader
or forwarded by a follower.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from prez._core.replytypes import NULL_ARRAY
from prez.errors import CommandError
from prez.kv import COMMANDS, KVStore, execute
from prez.kv.transaction import ABSENT, Watch, exec_args, split_exec_args, watch_digest
from prez.server.watch import WriteTracker
from prez.testing.cluster import Cluster
from prez.testing.procs import HOST, ServerProcess, wait_until

TIMEOUT_MS = 500

# -- the replicated command, in process ------------------------------------------


def test_exec_args_round_trip() -> None:
    commands = [[b"SET", b"k", b"v"], [b"GET", b"k"], [b"DEL", b"a", b"b", b"3"]]
    watches = [Watch(0, b"k", b"\x01" * 20, 7), Watch(2, b"3", ABSENT, 0)]
    args = exec_args(commands, watches)
    assert args[:2] == [b"prez.exec", b"2"]
    assert split_exec_args(args) == (watches, commands)
    assert split_exec_args(exec_args(commands)) == ([], commands)


@pytest.mark.parametrize(
    "args",
    [
        [b"prez.exec", b"2", b"0", b"x", b"GET", b"k"],  # not a count
        [b"prez.exec", b"2", b"0", b"3", b"GET", b"k"],  # runs past the end
        [b"prez.exec", b"2", b"0", b"0", b"GET"],  # an empty command
        [b"prez.exec", b"2", b"2", b"0", b"k", b"d", b"1"],  # fewer watches
        [b"prez.exec", b"2", b"1", b"99", b"k", b"d", b"1"],  # no such database
    ],
)
def test_malformed_exec_is_refused_whole(args: list[bytes]) -> None:
    store = KVStore()
    with pytest.raises(CommandError, match="malformed PREZ.EXEC"):
        execute(store, 0, args, 0)


def test_exec_of_an_unknown_format_is_refused() -> None:
    store = KVStore()
    args = exec_args([[b"SET", b"k", b"1"]])
    args[1] = b"3"
    with pytest.raises(CommandError, match="format b'3' is not one this version"):
        execute(store, 0, args, 0)
    assert execute(store, 0, [b"EXISTS", b"k"], 0) == 0
    # Format 1, the commands alone, is still read.
    old = [b"prez.exec", b"1", b"3", b"SET", b"k", b"1", b"2", b"GET", b"k"]
    assert execute(store, 0, old, 0) == ["OK", b"1"]


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


def test_exec_runs_only_if_every_watched_key_is_as_it_was() -> None:
    """At apply, each replica compares the digests (a key that expired
    or changed aborts); which writes came after WATCH is the leader's
    check (prez/server/watch.py)."""
    store = KVStore()
    db = store.dbs[0]
    execute(store, 0, [b"SET", b"k", b"1"], 0)
    watches = [Watch(0, b"k", watch_digest(db, b"k", 0), 0)]
    watches.append(Watch(3, b"absent", watch_digest(store.dbs[3], b"absent", 0), 0))
    assert watches[1][2] == ABSENT
    incr = [[b"INCR", b"k"]]
    assert execute(store, 0, exec_args(incr, watches), 0) == [2]
    # k is 2 now, not what was watched: nothing runs, the reply is nil.
    assert execute(store, 0, exec_args(incr, watches), 0) is NULL_ARRAY
    assert execute(store, 0, [b"GET", b"k"], 0) == b"2"
    # A new expiry is a change too, and so is a key appearing in db 3.
    watches = [Watch(0, b"k", watch_digest(db, b"k", 0), 0)]
    execute(store, 0, [b"PEXPIRE", b"k", b"100000"], 0)
    assert execute(store, 0, exec_args(incr, watches), 0) is NULL_ARRAY
    watches = [Watch(3, b"absent", ABSENT, 0)]
    execute(store, 3, [b"SET", b"absent", b"x"], 0)
    assert execute(store, 0, exec_args(incr, watches), 0) is NULL_ARRAY
    # Watches and no command: an empty reply when nothing changed.
    watches = [Watch(0, b"k", watch_digest(db, b"k", 0), 0)]
    assert execute(store, 0, exec_args([], watches), 0) == []


@pytest.mark.parametrize(
    "bad, error",
    [
        ([b"NOSUCH", b"k"], "unknown command"),
        ([b"SET", b"k"], "wrong number of arguments"),
        ([b"prez.exec", b"2", b"0", b"2", b"GET", b"k"], "unknown command"),
    ],
)
def test_exec_with_a_bad_command_runs_nothing(bad: list[bytes], error: str) -> None:
    store = KVStore()
    with pytest.raises(CommandError, match=error):
        execute(store, 0, exec_args([[b"SET", b"k", b"1"], bad]), 0)
    assert execute(store, 0, [b"EXISTS", b"k"], 0) == 0


def test_write_tracker_vouches_only_for_what_it_saw() -> None:
    """The leader's half of WATCH (prez/server/watch.py)."""
    specs = COMMANDS
    tracker = WriteTracker()
    tracker.enable(11)  # entries 1..10 came before tracking began
    tracker.for_term(3, 11)

    def seen_at(since: int, key: bytes = b"k", db: int = 0) -> list[Watch]:
        return [Watch(db, key, ABSENT, since)]

    assert tracker.written_since(seen_at(10)) is False  # nothing after 10
    assert tracker.written_since(seen_at(9)) is True  # 10 went by untracked
    tracker.note(specs["set"], 0, [b"SET", b"k", b"v"], 11)
    assert tracker.written_since(seen_at(10)) is True
    assert tracker.written_since(seen_at(11)) is False
    assert tracker.written_since(seen_at(10, key=b"other")) is False
    assert tracker.written_since(seen_at(10, db=1)) is False  # same key, db 1
    # A transaction's writes count, its reads do not.
    tx = exec_args([[b"GET", b"r"], [b"RENAME", b"a", b"b"]])
    tracker.note(specs["prez.exec"], 0, tx, 12)
    assert tracker.written_since(seen_at(11, key=b"b")) is True
    assert tracker.written_since(seen_at(11, key=b"r")) is False
    # A write that names no keys may have written any.
    tracker.note(specs["flushdb"], 0, [b"FLUSHDB"], 13)
    assert tracker.written_since(seen_at(12, key=b"r")) is True
    assert tracker.written_since(seen_at(13, key=b"r")) is False
    # Another term of leadership: nothing before it is known.
    tracker.for_term(5, 20)
    assert tracker.written_since(seen_at(13, key=b"r")) is True
    assert tracker.written_since(seen_at(19, key=b"r")) is False


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
            "SET k changed",
            "MULTI",
            "SET k mine",
            "EXEC",
            "GET k",
            "WATCH k",
            "UNWATCH",
            "SET k changed-again",
            "MULTI",
            "SET k mine",
            "EXEC",
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
        "OK",  # WATCH k
        "OK",  # SET k changed
        "OK",
        "QUEUED",
        # EXEC: nil (a watched key was written), printed as an empty line
        "changed",
        "OK",  # WATCH k
        "OK",  # UNWATCH
        "OK",
        "OK",
        "QUEUED",
        "OK",  # EXEC's one reply
        "OK",
        "QUEUED",
        "QUEUED",
        "OK",
        "PONG",
        "OK",
        "ERR wrong number of arguments for 'exec' command",
        "EXECABORT Transaction discarded because of previous errors.",
    ]


def test_redis_py_watch_aborts_when_the_key_was_written(
    r: redis.Redis, prez_server: ServerProcess
) -> None:
    r.set("k", "1")
    with r.pipeline() as pipe, _client(prez_server) as other:
        pipe.watch("k")
        assert pipe.get("k") == b"1"
        other.set("k", "2")
        pipe.multi()
        pipe.set("k", "from-1")
        with pytest.raises(redis.WatchError):
            pipe.execute()
        # Not written since WATCH: it goes through.
        pipe.watch("k")
        value = int(pipe.get("k"))
        pipe.multi()
        pipe.set("k", value + 1)
        assert pipe.execute() == [True]
    assert r.get("k") == b"3"


def test_watch_aborts_even_if_the_value_was_written_back(
    r: redis.Redis, prez_server: ServerProcess
) -> None:
    """k=5; WATCH k; another client sets 6; GET reads 6; a third sets 5
    again; EXEC must not run (its SET was computed from 6, and the write of
    5 would be lost): Redis aborts on a write, not on a different value."""
    r.set("k", "5")
    with r.pipeline() as pipe, _client(prez_server) as b, _client(prez_server) as c:
        pipe.watch("k")
        b.set("k", "6")
        seen = int(pipe.get("k"))
        c.set("k", "5")
        pipe.multi()
        pipe.set("k", seen + 1)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.get("k") == b"5"


def _client(server: ServerProcess) -> redis.Redis:
    return redis.Redis(host=HOST, port=server.port, socket_timeout=10)


def test_exec_reply_in_resp3(r3: redis.Redis) -> None:
    pipe = r3.pipeline()
    pipe.hset("h", mapping={"a": "1"}).hgetall("h").sadd("s", "x").smembers("s")
    assert pipe.execute() == [1, {b"a": b"1"}, 1, {b"x"}]


# -- a real cluster --------------------------------------------------------------


@pytest.mark.integration
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


@pytest.mark.integration
def test_watch_makes_read_modify_write_safe_through_every_node(
    tmp_path: Path,
) -> None:
    """Clients on all three nodes increment one counter by WATCH, GET,
    MULTI, SET, EXEC. Conflicts abort (and are retried), and no increment
    is lost: the counter ends equal to the number of successful EXECs."""
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        cluster.leader()
        nodes = list(cluster.nodes)
        done = [0] * len(nodes)
        aborted = [0] * len(nodes)

        def worker(i: int) -> None:
            deadline = time.monotonic() + 30  # every load loop is bounded
            with (
                redis.Redis(host=HOST, port=nodes[i].port, socket_timeout=10) as c,
                c.pipeline() as pipe,
            ):
                while sum(done) < 300 and time.monotonic() < deadline:
                    try:
                        pipe.watch("counter")
                        value = int(pipe.get("counter") or 0)
                        pipe.multi()
                        pipe.set("counter", value + 1)
                        pipe.execute()
                        done[i] += 1
                    except redis.WatchError:
                        aborted[i] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(done) >= 300, (done, aborted)
        assert sum(aborted) > 0, "no conflict happened: the test proved nothing"
        with cluster.client(cluster.leader()) as c:
            assert int(c.get("counter")) == sum(done), (done, aborted)


@pytest.mark.integration
def test_watch_on_a_follower_aborts_after_a_write_back(tmp_path: Path) -> None:
    """The lost-update case across nodes: WATCH and GET on a follower, the
    key written and written back through the leader, EXEC on the follower
    (forwarded): it must abort."""
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        with cluster.client(leader) as c:
            c.set("k", "5")
        with cluster.client(follower) as f, cluster.client(leader) as c:
            pipe = f.pipeline()
            pipe.watch("k")
            c.set("k", "6")
            seen = int(pipe.get("k"))  # linearizable: sees 6
            assert seen == 6
            c.set("k", "5")
            pipe.multi()
            pipe.set("k", seen + 1)
            with pytest.raises(redis.WatchError):
                pipe.execute()
            pipe.reset()
            assert c.get("k") == b"5"


@pytest.mark.integration
def test_watch_pipelined_with_its_exec_runs_through_any_node(tmp_path: Path) -> None:
    """WATCH, MULTI, INCR and EXEC sent in one write: EXEC waits for the
    WATCH's read (served later, through the read path) and then runs."""
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        request = b"WATCH k\r\nMULTI\r\nINCR k\r\nEXEC\r\nGET k\r\n"
        for expected, node in enumerate([leader, follower, leader], start=1):
            replies = _raw_exchange(node.port, request, count=5)
            assert replies == [
                b"+OK",
                b"+OK",
                b"+QUEUED",
                b"*1\r\n:%d" % expected,
                b"$1\r\n%d" % expected,
            ]


@pytest.mark.integration
def test_pipelined_transactions_keep_the_connection_order(tmp_path: Path) -> None:
    """Reads, writes, WATCH and EXEC sent in one write take effect in the
    order sent, as on Redis, through the leader and a follower."""
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        for node in (leader, follower):
            p = b"%d" % node.port
            a, k, w = b"a" + p, b"k" + p, b"w" + p
            cases = [
                # A write held behind a read is not overtaken by an EXEC.
                (
                    b"GET x\r\nSET %s 1\r\nMULTI\r\nINCR %s\r\nEXEC\r\nGET %s\r\n"
                    % (a, a, a),
                    [b"$-1", b"+OK", b"+OK", b"+QUEUED", b"*1\r\n:2", b"$1\r\n2"],
                ),
                # A write after an EXEC waiting for its WATCH comes after it.
                (
                    b"WATCH %s\r\nMULTI\r\nINCR %s\r\nEXEC\r\nSET %s 100\r\n"
                    b"GET %s\r\n" % (k, k, k, k),
                    [b"+OK", b"+OK", b"+QUEUED", b"*1\r\n:1", b"+OK", b"$3\r\n100"],
                ),
                # The connection's own write after WATCH aborts the EXEC.
                (
                    b"WATCH %s\r\nSET %s 1\r\nMULTI\r\nINCR %s\r\nEXEC\r\n"
                    b"GET %s\r\n" % (w, w, w, w),
                    [b"+OK", b"+OK", b"+OK", b"+QUEUED", b"*-1", b"$1\r\n1"],
                ),
            ]
            for request, expected in cases:
                assert _raw_exchange(node.port, request, len(expected)) == expected
            # EXEC applies in the database it was sent in, whatever SELECT
            # follows it in the pipeline.
            request = b"WATCH d\r\nMULTI\r\nSET d%s v\r\nEXEC\r\nSELECT 1\r\n" % p
            assert _raw_exchange(node.port, request, 5)[3] == b"*1\r\n+OK"
            with cluster.client(leader) as c:
                assert c.get(b"d" + p) == b"v"


def _raw_exchange(port: int, request: bytes, count: int) -> list[bytes]:
    """Send `request` in one write; the first `count` replies, unparsed
    (each a line, or a bulk or one-element array header with its line)."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            replies = _split_replies(data)
            if len(replies) >= count:
                return replies[:count]
            data += sock.recv(65536)
    raise AssertionError(f"no {count} replies in {data!r}")


def _split_replies(data: bytes) -> list[bytes]:
    lines = data.split(b"\r\n")[:-1]  # complete lines only
    replies, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line[:1] in (b"*", b"$") and not line.startswith((b"*-", b"$-")):
            if i + 1 >= len(lines):
                break
            replies.append(line + b"\r\n" + lines[i + 1])
            i += 2
        else:
            replies.append(line)
            i += 1
    return replies


@pytest.mark.integration
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
