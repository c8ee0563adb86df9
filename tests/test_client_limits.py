"""Bounded memory per client connection, and maxmemory, against real servers.

Each limit is checked on a real prez-server and, where the behaviour is
deterministic, on a real redis-server in the same test: the same bytes in,
the same error text (or silent close) out. The hostile inputs of issue 11
are measured by the server's peak resident set (VmHWM, reset through
/proc/<pid>/clear_refs before each one) and held to a stated bound.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from prez.testing.cluster import Cluster
from prez.testing.loadtools import redis_server
from prez.testing.procs import HOST, ServerProcess, wait_until

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
PASSWORD = "s3cret"
OOM = "OOM command not allowed when used memory > 'maxmemory'."
EXEC_OOM = "EXECABORT Transaction discarded because of: " + OOM


# --- helpers ----------------------------------------------------------------


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(rest.split()[0])
    return fields


def reset_peak(pid: int) -> None:
    # Writing 5 resets the peak RSS (VmHWM) to the current RSS (Linux 4.0+).
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def peak_growth_mib(pid: int, before_kib: int) -> float:
    return (memory_kib(pid)["VmHWM"] - before_kib) / 1024


def connect(port: int, password: str | None = None) -> socket.socket:
    s = socket.create_connection((HOST, port), timeout=10)
    if password is not None:
        s.sendall(f"AUTH {password}\r\n".encode())
        assert read_exactly(s, 5) == b"+OK\r\n"
    return s


def read_exactly(s: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def read_until_closed(s: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def send_until_refused(s: socket.socket, total: int, seconds: float = 20.0) -> int:
    """Send up to `total` bytes of payload; stop when the server closes.

    Returns the bytes sent. Bounded in time: a server that neither reads
    nor closes fails the test instead of hanging it.
    """
    chunk = b"x" * MiB
    sent = 0
    deadline = time.monotonic() + seconds
    s.settimeout(seconds)
    try:
        while sent < total and time.monotonic() < deadline:
            s.sendall(chunk[: min(MiB, total - sent)])
            sent += min(MiB, total - sent)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    return sent


def client_count(r: redis.Redis) -> int:
    return int(r.info("clients")["connected_clients"])


def accepted(r: redis.Redis) -> int:
    return int(r.info("stats")["total_connections_received"])


def wait_dropped(r: redis.Redis, clients: int, accepted_before: int) -> None:
    """Until a connection made after `accepted_before` was counted was
    accepted and is gone again (connect() returns before the accept)."""
    wait_until(
        lambda: accepted(r) > accepted_before and client_count(r) == clients,
        10,
        what="the slow reader dropped",
    )


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    """A prez-server and a redis-server, both with requirepass."""
    with (
        ServerProcess(
            tmp_path / "prez", config={"requirepass": PASSWORD}
        ) as prez_server,
        redis_server(tmp_path / "redis", "--requirepass", PASSWORD) as redis_port,
    ):
        yield prez_server, redis_port


# --- before AUTH ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "error"),
    [
        (b"*11\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n"),
        (b"*1\r\n$16385\r\n", b"-ERR Protocol error: unauthenticated bulk length\r\n"),
        (b"*1\r\n$600000000\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*3000000000\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
    ],
)
def test_unauthenticated_limits_close_as_redis_does(
    both: tuple[ServerProcess, int], request_bytes: bytes, error: bytes
) -> None:
    prez_server, redis_port = both
    for port in (prez_server.port, redis_port):
        with connect(port) as s:
            s.sendall(request_bytes)
            assert read_until_closed(s) == error, port


def test_unauthenticated_limits_are_inclusive(both: tuple[ServerProcess, int]) -> None:
    prez_server, redis_port = both
    ten = b"*10\r\n$4\r\nPING\r\n" + b"$1\r\nx\r\n" * 9
    big = b"*2\r\n$4\r\nECHO\r\n$16384\r\n" + b"x" * 16384 + b"\r\n"
    for port in (prez_server.port, redis_port):
        with connect(port) as s:
            s.sendall(ten + big)
            expected = b"-NOAUTH Authentication required.\r\n" * 2
            assert read_exactly(s, len(expected)) == expected


def test_auth_pipelined_before_a_big_command_lifts_the_limits(
    both: tuple[ServerProcess, int],
) -> None:
    """Redis runs AUTH before it parses what follows, pipelined or not."""
    prez_server, redis_port = both
    data = (
        f"AUTH {PASSWORD}\r\n".encode()
        + b"*12\r\n$4\r\nPING\r\n"
        + b"$1\r\nx\r\n" * 11
        + b"*2\r\n$4\r\nECHO\r\n$20000\r\n"
        + b"y" * 20000
        + b"\r\n"
    )
    expected = (
        b"+OK\r\n-ERR wrong number of arguments for 'ping' command\r\n$20000\r\n"
        + b"y" * 20000
        + b"\r\n"
    )
    for port in (prez_server.port, redis_port):
        with connect(port) as s:
            s.sendall(data)
            assert read_exactly(s, len(expected)) == expected, port


def test_unauthenticated_huge_bulk_costs_no_memory(
    both: tuple[ServerProcess, int],
) -> None:
    """Issue 11: two such connections took the server from 27 to 373 MiB."""
    prez_server, _ = both
    assert prez_server.proc is not None
    pid = prez_server.proc.pid
    before = memory_kib(pid)["VmRSS"]
    reset_peak(pid)
    sockets = [connect(prez_server.port) for _ in range(2)]
    try:
        for s in sockets:
            s.sendall(b"*1\r\n$500000000\r\n")
        sent = [send_until_refused(s, 150 * MiB) for s in sockets]
        for s in sockets:
            assert read_until_closed(s).startswith(
                b"-ERR Protocol error: unauthenticated bulk length\r\n"
            )
    finally:
        for s in sockets:
            s.close()
    growth = peak_growth_mib(pid, before)
    print(
        f"\nunauthenticated $500000000 + 150 MiB x2: sent {sent}, peak +{growth:.1f} MiB"
    )
    assert growth < 8


# --- client-query-buffer-limit ---------------------------------------------------


def test_query_buffer_limit_closes_silently_as_redis_does(
    both: tuple[ServerProcess, int],
) -> None:
    prez_server, redis_port = both
    assert prez_server.proc is not None
    pid = prez_server.proc.pid
    for port in (prez_server.port, redis_port):
        with redis.Redis(host=HOST, port=port, password=PASSWORD) as r:
            assert r.config_set("client-query-buffer-limit", "1mb")
            assert r.config_get("client-query-buffer-limit") == {
                "client-query-buffer-limit": "1048576"
            }
            # Under the limit: a 900 KB value is fine.
            assert r.set("k", b"v" * 900_000)
            before = memory_kib(pid)["VmRSS"] if port == prez_server.port else 0
            if port == prez_server.port:
                reset_peak(pid)
            with connect(port, PASSWORD) as s:
                s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$400000000\r\n")
                send_until_refused(s, 100 * MiB)
                # No reply at all: the connection is just closed.
                assert read_until_closed(s) == b"", port
            if port == prez_server.port:
                growth = peak_growth_mib(pid, before)
                print(
                    f"\nquery buffer past a 1mb limit (100 MiB sent): peak +{growth:.1f} MiB"
                )
                assert growth < 8
                stats = r.info("stats")
                assert stats["client_query_buffer_limit_disconnections"] == 1
            assert r.ping()
    assert "Closing client that reached max query buffer length" in prez_server.log()


def test_query_buffer_limit_counts_the_arguments_already_read(
    tmp_path: Path,
) -> None:
    """Many small arguments of one command are held as they arrive: they
    count against the limit too, or a command of 2**31 empty arguments
    would take gigabytes while the unparsed buffer stays empty."""
    server = ServerProcess(tmp_path, config={"client-query-buffer-limit": "1mb"})
    with server, connect(server.port) as s:
        s.sendall(b"*100000000\r\n")
        arg = b"$0\r\n\r\n" * 50_000  # 300 KB a send, 50,000 arguments
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                s.sendall(arg)
                time.sleep(0.001)
            raise AssertionError("the server kept reading")


# --- client-output-buffer-limit --------------------------------------------------


def _slow_reader(port: int, count: int, password: str | None) -> socket.socket:
    s = connect(port, password)
    # A small receive buffer, never read: the replies pile up in the server.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(b"GET big\r\n" * count)
    return s


def test_output_buffer_hard_limit_drops_a_slow_reader_as_redis_does(
    both: tuple[ServerProcess, int],
) -> None:
    prez_server, redis_port = both
    assert prez_server.proc is not None
    pid = prez_server.proc.pid
    for port in (prez_server.port, redis_port):
        with redis.Redis(host=HOST, port=port, password=PASSWORD) as r:
            assert r.config_set("client-output-buffer-limit", "normal 4mb 0 0")
            assert r.config_get("client-output-buffer-limit") == {
                "client-output-buffer-limit": "normal 4194304 0 0 "
                "slave 268435456 67108864 60 pubsub 33554432 8388608 60"
            }
            r.set("big", b"x" * 100_000)
            clients, seen = client_count(r), accepted(r)
            before = memory_kib(pid)["VmRSS"] if port == prez_server.port else 0
            if port == prez_server.port:
                reset_peak(pid)
            # 2,000 GETs of 100 KB: 200 MB of replies if nothing stopped them.
            with _slow_reader(port, 2000, PASSWORD):
                wait_dropped(r, clients, seen)
            if port == prez_server.port:
                growth = peak_growth_mib(pid, before)
                print(
                    f"\nslow reader, 2000 x 100 KB GETs, hard 4mb: peak +{growth:.1f} MiB"
                )
                assert growth < 24
                assert r.info("stats")["client_output_buffer_limit_disconnections"] == 1
            assert r.ping()
    assert "closed for overcoming of output buffer limits" in prez_server.log()


def test_output_buffer_soft_limit_drops_a_reader_over_it_for_too_long(
    tmp_path: Path,
) -> None:
    with ServerProcess(
        tmp_path, config={"client-output-buffer-limit": "normal 0 1mb 1"}
    ) as server:
        r = redis.Redis(host=HOST, port=server.port)
        r.set("big", b"x" * 100_000)
        seen = accepted(r)
        started = time.monotonic()
        with _slow_reader(server.port, 100, None):
            wait_dropped(r, 1, seen)
        # Over the soft limit at once, closed only once it lasted > 1 s.
        assert time.monotonic() - started > 1.0


def test_without_output_limit_a_slow_reader_is_paused_not_dropped(
    tmp_path: Path,
) -> None:
    """The default (normal 0 0 0, as Redis): never dropped. Its requests
    stop being read while its replies wait (pause_writing), but what one
    read's requests ask for is answered in full: memory is bounded by one
    read's replies, not by any limit (set a hard limit to bound it)."""
    with ServerProcess(tmp_path) as server:
        assert server.proc is not None
        pid = server.proc.pid
        r = redis.Redis(host=HOST, port=server.port)
        r.set("big", b"x" * 100_000)
        before = memory_kib(pid)["VmRSS"]
        reset_peak(pid)
        seen = accepted(r)
        with _slow_reader(server.port, 400, None) as s:  # 40 MB of replies
            wait_until(lambda: accepted(r) > seen, 5, what="accepted")
            s.sendall(b"GET big\r\n" * 400)
            wait_until(lambda: r.info("stats")["total_commands_processed"] > 800, 10)
            # Still connected, though it reads nothing.
            assert client_count(r) == 2
            growth = peak_growth_mib(pid, before)
        print(f"\nslow reader, 800 x 100 KB GETs, no limit: peak +{growth:.1f} MiB")
        assert growth < 160


# --- maxclients and timeout -----------------------------------------------------------


def test_maxclients_and_timeout_as_redis(tmp_path: Path) -> None:
    with (
        ServerProcess(tmp_path / "prez", config={"maxclients": "2"}) as prez_server,
        redis_server(tmp_path / "redis", "--maxclients", "2") as redis_port,
    ):
        for port in (prez_server.port, redis_port):
            a, b = connect(port), connect(port)
            with a, b, connect(port) as c:
                assert read_until_closed(c) == b"-ERR max number of clients reached\r\n"
            with redis.Redis(host=HOST, port=port) as r:
                # Until the server has seen the three connections go.
                wait_until(r.ping, 5, what="a free client slot")
                assert r.config_set("timeout", "1")
                idle = connect(port)
                started = time.monotonic()
                wait_until(
                    lambda s=idle: read_until_closed(s, 5) == b"", 10, what="idle close"
                )
                assert time.monotonic() - started > 0.9
                idle.close()
                # A client that keeps talking is not idle.
                for _ in range(6):
                    assert r.ping()
                    time.sleep(0.3)
                r.config_set("timeout", "0")


# --- CONFIG SET texts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("client-query-buffer-limit", "1000"),
        ("proto-max-bulk-len", "1000"),
        ("client-output-buffer-limit", "normal 1mb"),
        ("client-output-buffer-limit", "foo 1 2 3"),
        ("client-output-buffer-limit", "normal x 1 1"),
        ("maxmemory-policy", "foo"),
        ("maxmemory", "10x"),
        ("maxclients", "0"),
        ("timeout", "-1"),
    ],
)
def test_config_set_refusals_match_redis(
    both: tuple[ServerProcess, int], name: str, value: str
) -> None:
    prez_server, redis_port = both
    texts = []
    for port in (prez_server.port, redis_port):
        with redis.Redis(host=HOST, port=port, password=PASSWORD) as r:
            with pytest.raises(redis.ResponseError) as e:
                r.config_set(name, value)
            texts.append(str(e.value))
    assert texts[0] == texts[1]


def test_config_defaults_match_redis(both: tuple[ServerProcess, int]) -> None:
    prez_server, redis_port = both
    names = [
        "client-output-buffer-limit",
        "client-query-buffer-limit",
        "proto-max-bulk-len",
        "maxmemory",
        "maxmemory-policy",
        "timeout",
    ]
    got = []
    for port in (prez_server.port, redis_port):
        with redis.Redis(host=HOST, port=port, password=PASSWORD) as r:
            got.append({n: r.config_get(n)[n] for n in names})
    assert got[0] == got[1]


def test_eviction_policies_are_refused_clearly(tmp_path: Path) -> None:
    with ServerProcess(tmp_path) as server:
        r = redis.Redis(host=HOST, port=server.port)
        with pytest.raises(redis.ResponseError, match="Prez does not evict keys"):
            r.config_set("maxmemory-policy", "allkeys-lru")
    conf = tmp_path / "bad.conf"
    conf.write_text("port 9000\nmaxmemory-policy volatile-lru\n")
    from prez.config import Config
    from prez.errors import ConfigError

    with pytest.raises(ConfigError, match=r"bad.conf:2 'maxmemory-policy'"):
        Config.load(str(conf))


# --- maxmemory --------------------------------------------------------------------------


def _fill_until_oom(r: redis.Redis, prefix: str, value: bytes, seconds: float) -> int:
    """SET keys until -OOM; returns how many were written."""
    deadline = time.monotonic() + seconds
    written = 0
    while time.monotonic() < deadline:
        try:
            r.set(f"{prefix}{written}", value)
        except redis.exceptions.OutOfMemoryError as e:
            assert str(e) == OOM.removeprefix("OOM ")  # redis-py drops the code
            return written
        written += 1
    raise AssertionError(f"no -OOM after {written} writes")


def _check_refusals(r: redis.Redis) -> None:
    for command in (("set", "x", "1"), ("incr", "n"), ("lpush", "l", "a")):
        with pytest.raises(redis.exceptions.OutOfMemoryError, match="maxmemory"):
            r.execute_command(*command)
    pipe = r.pipeline(transaction=True)
    pipe.get("x")
    pipe.set("x", "1")
    with pytest.raises(redis.exceptions.ResponseError) as e:
        pipe.execute()
    assert "maxmemory" in str(e.value)


def test_maxmemory_standalone_matches_redis(tmp_path: Path) -> None:
    with (
        ServerProcess(tmp_path / "prez") as prez_server,
        redis_server(tmp_path / "redis") as redis_port,
    ):
        for port in (prez_server.port, redis_port):
            with redis.Redis(host=HOST, port=port) as r:
                r.set("keep", "v")
                assert r.config_set("maxmemory", "1")
                wait_until(
                    lambda: _refused(r), 5, what="-OOM once the limit is sampled"
                )
                _check_refusals(r)
                # What is not denyoom still works.
                assert r.get("keep") == b"v"
                assert r.delete("keep") == 1
                assert r.lpop("nothing") is None
                # EXEC of a transaction queued before the limit was reached.
                assert r.config_set("maxmemory", "0")
                with socket.create_connection((HOST, port), timeout=5) as s:
                    s.sendall(b"MULTI\r\nSET a b\r\n")
                    assert read_exactly(s, 14) == b"+OK\r\n+QUEUED\r\n"
                    assert r.config_set("maxmemory", "1")
                    wait_until(lambda: _refused(r), 5, what="-OOM again")
                    s.sendall(b"EXEC\r\n")
                    expected = f"-{EXEC_OOM}\r\n".encode()
                    assert read_exactly(s, len(expected)) == expected
                # MULTI while over the limit: the queued command is refused.
                with socket.create_connection((HOST, port), timeout=5) as s:
                    s.sendall(b"MULTI\r\nGET a\r\nEXEC\r\n")
                    expected = (
                        f"+OK\r\n-{OOM}\r\n-EXECABORT Transaction discarded "
                        "because of previous errors.\r\n"
                    ).encode()
                    assert read_exactly(s, len(expected)) == expected
                info = r.info("memory")
                assert info["maxmemory"] == 1
                assert info["maxmemory_policy"] == "noeviction"
                assert r.config_set("maxmemory", "0")
                assert r.set("again", "v")


def _refused(r: redis.Redis) -> bool:
    try:
        r.set("probe", "v")
    except redis.exceptions.OutOfMemoryError:
        return True
    return False


def test_maxmemory_in_a_cluster_is_decided_by_the_leader(tmp_path: Path) -> None:
    value = b"v" * MiB
    with Cluster(tmp_path, size=3, config={"raft-snapshot-entries": "20"}) as cluster:
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        lc, fc = cluster.client(leader), cluster.client(follower)
        lc.set("small", "1")
        used = int(lc.info("memory")["used_memory"])
        # Room for about 40 more values of 1 MiB (each is also held in
        # the in-memory log until a snapshot compacts it).
        lc.config_set("maxmemory", str(used + 80 * MiB))
        written = _fill_until_oom(lc, "k", value, 60)
        assert written > 5
        # Refused at the leader, and through the follower, which forwards
        # to the leader whatever its own memory.
        _check_refusals(lc)
        _check_refusals(fc)
        assert fc.get("small") == b"1"
        assert lc.get("k0") == value
        # A follower over its own limit does not refuse: the leader decides.
        fc.config_set("maxmemory", "1")
        lc.config_set("maxmemory", "0")
        assert fc.set("via-follower", "ok")
        assert lc.get("via-follower") == b"ok"
        fc.config_set("maxmemory", "0")
        lc.config_set("maxmemory", str(used + 80 * MiB))
        wait_until(lambda: _refused(lc), 5, what="-OOM again")
        # DEL is not denyoom: it goes through, and frees the room.
        assert fc.delete(*[f"k{i}" for i in range(written)]) == written
        # The log holding the values is compacted by the next snapshots,
        # which more entries bring: each try appends one (DEL is admitted).
        wait_until(
            lambda: lc.delete("nothing") == 0 and lc.set("after", "ok"),
            60,
            interval=0.1,
            what="room again",
        )
        assert fc.set("after-follower", "ok")
        assert cluster.client(follower).get("after") == b"ok"
