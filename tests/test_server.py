"""The server process: connection and server commands, protocol errors,
config errors, limits, and real Redis tools (redis-cli, redis-benchmark)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from prez.testing.procs import HOST, ServerProcess, child_env, free_ports, wait_until

pytestmark = pytest.mark.integration


def raw(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send bytes on a new connection; return what came back and whether the
    server closed the connection."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(data)
        received = b""
        closed = False
        deadline = time.monotonic() + timeout
        s.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                if received:
                    break
                continue
            if not chunk:
                closed = True
                break
            received += chunk
        return received, closed


def rss(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory_rss"])


# Connection commands


def test_ping_echo(r: redis.Redis, prez_server: ServerProcess) -> None:
    assert r.ping() is True
    # redis-py turns any PING reply into a bool, so look at the bytes.
    assert raw(prez_server.port, b"PING hello\r\n")[0] == b"$5\r\nhello\r\n"
    assert r.echo(b"a\r\nb") == b"a\r\nb"
    with pytest.raises(
        redis.ResponseError, match="wrong number of arguments for 'ping' command"
    ):
        r.execute_command("PING", "a", "b")
    with pytest.raises(
        redis.ResponseError, match="wrong number of arguments for 'echo' command"
    ):
        r.execute_command("ECHO")


def test_unknown_command_text(prez_server: ServerProcess) -> None:
    reply, closed = raw(prez_server.port, b"*3\r\n$3\r\nfoo\r\n$1\r\na\r\n$1\r\nb\r\n")
    assert (
        reply == b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
    )
    assert not closed


def test_commands_are_case_insensitive(r: redis.Redis) -> None:
    assert r.execute_command("pInG") is True


def test_select_and_databases(r: redis.Redis) -> None:
    r.set("k", "db0")
    assert r.execute_command("SELECT", 15) is True
    assert r.get("k") is None
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        r.execute_command("SELECT", 16)
    with pytest.raises(
        redis.ResponseError, match="value is not an integer or out of range"
    ):
        r.execute_command("SELECT", "x")
    r.execute_command("SELECT", 0)
    assert r.get("k") == b"db0"


def test_hello_switches_protocol(prez_server: ServerProcess) -> None:
    reply, _ = raw(prez_server.port, b"HELLO 3\r\nPING\r\n")
    assert reply.startswith(b"%7\r\n")
    assert b"$5\r\nproto\r\n:3\r\n" in reply
    assert reply.endswith(b"+PONG\r\n")
    reply, _ = raw(prez_server.port, b"HELLO 4\r\n")
    assert reply == b"-NOPROTO unsupported protocol version\r\n"


def test_resp3_through_redis_py(r3: redis.Redis) -> None:
    assert r3.ping() is True
    hello = r3.execute_command("HELLO", 3)
    assert hello[b"proto"] == 3
    config = r3.config_get("port")
    assert isinstance(config, dict) and "port" in {
        k.decode() if isinstance(k, bytes) else k for k in config
    }


def test_client_subcommands(r: redis.Redis) -> None:
    cid = r.client_id()
    assert isinstance(cid, int) and cid > 0
    assert r.client_getname() is None
    assert r.client_setname("worker-1") is True
    assert r.client_getname() == "worker-1"
    with pytest.raises(redis.ResponseError, match="Client names cannot contain spaces"):
        r.client_setname("a b")
    listing = r.client_list()
    mine = [c for c in listing if int(c["id"]) == cid]
    assert mine and mine[0]["name"] == "worker-1"
    assert r.execute_command("CLIENT", "SETINFO", "LIB-NAME", "tests") == b"OK"
    with pytest.raises(redis.ResponseError, match="unknown subcommand 'NOPE'"):
        r.execute_command("CLIENT", "NOPE")


def test_client_kill_by_id(r: redis.Redis, prez_server: ServerProcess) -> None:
    other = redis.Redis(host=HOST, port=prez_server.port)
    other_id = other.client_id()
    assert r.execute_command("CLIENT", "KILL", "ID", other_id) == 1
    wait_until(
        lambda: other_id not in [int(c["id"]) for c in r.client_list()], 5, what="kill"
    )
    other.close()


def test_command_table(r: redis.Redis, prez_server: ServerProcess) -> None:
    count = r.command_count()
    assert count >= 100
    info = r.execute_command("COMMAND", "INFO", "get", "set")  # redis-py makes a dict
    assert info["get"]["arity"] == 2 and "readonly" in info["get"]["flags"]
    assert (info["get"]["first_key_pos"], info["get"]["last_key_pos"]) == (1, 1)
    assert info["set"]["arity"] == -3 and "write" in info["set"]["flags"]
    reply, _ = raw(prez_server.port, b"COMMAND INFO nosuch\r\n")
    assert reply == b"*1\r\n$-1\r\n"
    docs, _ = raw(prez_server.port, b"COMMAND DOCS get\r\n")
    assert docs.startswith(b"*2\r\n$3\r\nget\r\n") and b"summary" in docs
    assert r.command_getkeys("MSET", "a", "1", "b", "2") == ["a", "b"]
    assert len(r.execute_command("COMMAND")) == count


def test_config_get_set(r: redis.Redis, prez_server: ServerProcess) -> None:
    assert r.config_get("port") == {"port": str(prez_server.port)}
    assert r.config_get("save")["save"] == ""
    assert r.config_get("appendonly")["appendonly"] == "no"
    names = r.config_get("cluster-*")
    assert {"cluster-port", "cluster-node-timeout", "cluster-config-file"} <= set(names)
    assert r.config_set("maxclients", 5000) is True
    assert r.config_get("maxclients") == {"maxclients": "5000"}
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        r.config_set("port", 1)
    with pytest.raises(
        redis.ResponseError,
        match="Unknown option or number of arguments for CONFIG SET - 'nosuch'",
    ):
        r.config_set("nosuch", 1)
    with pytest.raises(
        redis.ResponseError, match="argument couldn't be parsed into an integer"
    ):
        r.config_set("maxclients", "many")
    assert r.config_get("maxclients") == {"maxclients": "5000"}
    r.config_set("maxclients", 10000)


def test_info_sections(r: redis.Redis) -> None:
    r.set("a", 1)
    info = r.info()
    for field in (
        "redis_version",
        "connected_clients",
        "used_memory_rss",
        "total_commands_processed",
        "db0",
    ):
        assert field in info
    assert info["db0"]["keys"] == 1
    stats = r.info("commandstats")
    assert stats["cmdstat_set"]["calls"] >= 1
    assert "redis_version" not in stats
    assert r.config_resetstat() is True
    assert "cmdstat_set" not in r.info("commandstats")


def test_time(r: redis.Redis) -> None:
    seconds, micros = r.time()
    assert abs(seconds - time.time()) < 5 and 0 <= micros < 1_000_000


def test_quit_answers_then_closes(prez_server: ServerProcess) -> None:
    reply, closed = raw(prez_server.port, b"PING\r\nQUIT\r\nPING\r\n")
    assert reply == b"+PONG\r\n+OK\r\n"
    assert closed


def test_pipeline_answered_in_order(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.set(f"k{i}", i)
        pipe.get(f"k{i}")
    replies = pipe.execute()
    assert replies[1::2] == [str(i).encode() for i in range(1000)]


def test_inline_commands(prez_server: ServerProcess) -> None:
    reply, _ = raw(prez_server.port, b'SET "inline key" "a b"\r\nGET "inline key"\n')
    assert reply == b"+OK\r\n$3\r\na b\r\n"


# Bad input: each closes only its own connection; the server carries on.


@pytest.mark.parametrize(
    ("request_bytes", "error"),
    [
        (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*x\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n+PING\r\n", b"-ERR Protocol error: expected '$', got '+'\r\n"),
        (b'SET "a b\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
        (b"*2147483648\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n$2147483648\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
    ],
)
def test_protocol_error_closes_only_that_connection(
    r: redis.Redis, prez_server: ServerProcess, request_bytes: bytes, error: bytes
) -> None:
    reply, closed = raw(prez_server.port, b"PING\r\n" + request_bytes)
    assert reply == b"+PONG\r\n" + error
    assert closed
    assert r.ping() is True


def test_huge_bulk_header_allocates_nothing(
    r: redis.Redis, prez_server: ServerProcess
) -> None:
    before = rss(r)
    # 2 GB: refused at once.
    reply, closed = raw(prez_server.port, b"*2\r\n$3\r\nSET\r\n$2147483648\r\n")
    assert reply == b"-ERR Protocol error: invalid bulk length\r\n" and closed
    # 500 MB, under the limit, with only a few bytes of body sent: the server
    # must not reserve the announced size.
    with socket.create_connection((HOST, prez_server.port), timeout=5) as s:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$524288000\r\nabc")
        wait_until(lambda: r.ping(), 5)
        assert rss(r) - before < 50 * 1024 * 1024
    assert rss(r) - before < 50 * 1024 * 1024


def test_maxclients_refuses_extra_connections(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, config={"maxclients": "2"}) as server:
        a = redis.Redis(host=HOST, port=server.port)
        b = redis.Redis(host=HOST, port=server.port)
        assert a.ping() and b.ping()
        # Send nothing: the refusal comes unasked, and an unread request
        # would turn the server's close into a connection reset.
        reply, closed = raw(server.port, b"")
        assert reply == b"-ERR max number of clients reached\r\n" and closed
        assert a.ping()
        a.close()
        b.close()


def test_requirepass(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, config={"requirepass": "s3cret"}) as server:
        reply, _ = raw(
            server.port, b"GET a\r\nAUTH wrong\r\nAUTH s3cret\r\nSET a 1\r\n"
        )
        assert reply == (
            b"-NOAUTH Authentication required.\r\n"
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
            b"+OK\r\n+OK\r\n"
        )
        client = redis.Redis(host=HOST, port=server.port, password="s3cret")
        assert client.get("a") == b"1"
        client.close()
        hello, _ = raw(server.port, b"HELLO 3 AUTH default s3cret\r\nPING\r\n")
        assert hello.startswith(b"%7") and hello.endswith(b"+PONG\r\n")


def test_auth_without_password_configured(r: redis.Redis) -> None:
    with pytest.raises(redis.RedisError, match="without any password configured"):
        r.execute_command("AUTH", "x")


def test_sigterm_exits_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    client = redis.Redis(host=HOST, port=server.port)
    client.set("a", "1")
    assert server.stop() == 0
    assert "ready to exit" in server.log()
    client.close()


def test_log_line_format(prez_server: ServerProcess) -> None:
    import re

    first = prez_server.log().splitlines()[0]
    assert re.match(
        r"^\d+: \d\d [A-Z][a-z]{2} \d\d:\d\d:\d\d\.\d{3} [.\-*#] ", first
    ), first


# Configuration errors


def run_server(conf: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prez", str(conf), *extra],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=conf.parent,
        env=child_env(),
    )


@pytest.mark.parametrize(
    ("body", "line", "key"),
    [
        ("port 9000\nbogus-key 1\n", 2, "bogus-key"),
        ("# comment\n\nport ninety\n", 3, "port"),
        ("port 9000\nloglevel loud\n", 2, "loglevel"),
        ('requirepass "unbalanced\n', 1, None),
        ("raft-log-fsync maybe\n", 1, "raft-log-fsync"),
    ],
)
def test_bad_config_line_names_file_line_and_key(
    tmp_path: Path, body: str, line: int, key: str | None
) -> None:
    conf = tmp_path / "prez.conf"
    conf.write_text(body)
    result = run_server(conf)
    assert result.returncode == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert f"{conf}:{line}" in message
    if key:
        assert f"'{key}'" in message


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_server(tmp_path / "nope.conf")
    assert result.returncode == 1
    assert "nope.conf" in result.stderr and "cannot read" in result.stderr


def test_original_prez_conf_is_accepted(tmp_path: Path) -> None:
    port, bus, bus_listed = free_ports(3)  # drawn together: never the same twice
    conf = tmp_path / "prez.conf"
    conf.write_text(
        f"name node-{port}\nport {port}\ncluster-port {bus}\n"
        "cluster-config-file nodes.conf\ncluster-node-timeout 5000\nloglevel debug\n"
    )
    (tmp_path / "nodes.conf").write_text(f"node-{port} 127.0.0.1:{bus_listed}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prez", str(conf)],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host=HOST, port=port)
        wait_until(client.ping, 20, what="server up")
        assert client.config_get("cluster-node-timeout") == {
            "cluster-node-timeout": "5000"
        }
        assert client.config_get("loglevel") == {"loglevel": "debug"}
        client.close()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# Real Redis tools


def test_redis_cli_session(prez_server: ServerProcess) -> None:
    def cli(*args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(prez_server.port), "--no-raw", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()

    assert cli("set", "key", "value") == "OK"
    assert cli("get", "key") == '"value"'
    assert cli("get", "missing") == "(nil)"
    assert "ERR wrong number of arguments for 'get' command" in cli("get")


def test_redis_benchmark_default_tests(prez_server: ServerProcess) -> None:
    result = subprocess.run(
        [
            "redis-benchmark",
            "-h",
            HOST,
            "-p",
            str(prez_server.port),
            "-q",
            "-n",
            "20000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    tests = {}
    for line in output.replace("\r", "\n").splitlines():
        if "requests per second" in line:
            tests[line.split(":")[0].strip()] = line
    expected = {
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "SADD",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "MSET (10 keys)",
    }
    assert expected <= set(tests), output
    assert any(name.startswith("LRANGE_") for name in tests), output
    errors = [
        line
        for line in output.splitlines()
        if "rror" in line and "XADD" not in line.upper()
    ]
    assert not errors, output


def fill(client: redis.Redis, order: list[int]) -> None:
    for i in order:
        client.set(f"s{i}", i)
        client.hset("h", f"f{i}", i)
        client.sadd("set", f"m{i}")
        client.zadd("z", {f"m{i}": i})
    client.rpush("l", *range(10))
    client.expireat("s1", 4_000_000_000)


def test_debug_digest_is_order_and_hashseed_independent(tmp_path: Path) -> None:
    a = ServerProcess(tmp_path / "a", env={"PYTHONHASHSEED": "1"}).start()
    b = ServerProcess(tmp_path / "b", env={"PYTHONHASHSEED": "2"}).start()
    try:
        ca, cb = (
            redis.Redis(host=HOST, port=a.port),
            redis.Redis(host=HOST, port=b.port),
        )
        empty = ca.execute_command("DEBUG", "DIGEST")
        assert empty == b"0" * 40
        fill(ca, list(range(50)))
        fill(cb, list(reversed(range(50))))
        assert ca.execute_command("DEBUG", "DIGEST") == cb.execute_command(
            "DEBUG", "DIGEST"
        )
        assert ca.execute_command("DEBUG", "DIGEST") != empty
        cb.set("s7", "changed")
        assert ca.execute_command("DEBUG", "DIGEST") != cb.execute_command(
            "DEBUG", "DIGEST"
        )
        cb.set("s7", 7)
        cb.persist("s1")  # the expiry is part of the data
        assert ca.execute_command("DEBUG", "DIGEST") != cb.execute_command(
            "DEBUG", "DIGEST"
        )
        one = ca.execute_command("DEBUG", "DIGEST-VALUE", "h", "missing")
        assert len(one[0]) == 40 and one[1] == b"0" * 40
        ca.close()
        cb.close()
    finally:
        a.stop()
        b.stop()


def test_read_mode_is_fixed_at_start_up(r: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        r.config_set("read-mode", "lease")
    assert r.config_get("read-mode") == {"read-mode": "linearizable"}
    assert r.execute_command("READMODE") == b"linearizable"
    assert r.execute_command("READMODE", "stale") == b"OK"
    assert r.execute_command("READMODE") == b"stale"
    with pytest.raises(redis.ResponseError, match="READMODE must be"):
        r.execute_command("READMODE", "fast")
