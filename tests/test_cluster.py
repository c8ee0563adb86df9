"""Raft replication with real prez-server processes on 127.0.0.1.

Clusters use cluster-node-timeout 500 so elections take well under a
second. Every test ends with every process stopped (the Cluster context).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from prez.testing.cluster import Cluster
from prez.testing.procs import HOST, ServerProcess, wait_until
from prez.testing.writeload import WriteLoad

pytestmark = pytest.mark.integration

TIMEOUT_MS = 500


def cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), "--no-raw", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()


def assert_all_present(
    cluster: Cluster, node: ServerProcess, acked: dict[bytes, bytes]
) -> None:
    with cluster.client(node) as c:
        keys = list(acked)
        missing = []
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            for key, got in zip(chunk, c.mget(chunk), strict=True):
                if got != acked[key]:
                    missing.append((key, acked[key], got))
        assert not missing, (
            f"{len(missing)} acknowledged writes lost on {cluster.name(node)}: {missing[:5]}"
        )


def digest(cluster: Cluster, node: ServerProcess) -> dict[bytes, bytes | None]:
    with cluster.client(node) as c:
        keys = sorted(c.keys("*"))
        return dict(zip(keys, c.mget(keys), strict=True)) if keys else {}


def test_original_readme_session(tmp_path: Path) -> None:
    with Cluster(tmp_path, size=5, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        assert cli(leader.port, "set", "key", "value") == "OK"
        assert cli(leader.port, "set", "key1", "value1") == "OK"
        assert cli(leader.port, "get", "key") == '"value"'
        cluster.wait_applied(int(cluster.raft_info(leader)["raft_commit_index"]))
        for follower in cluster.followers(leader):
            assert cli(follower.port, "get", "key") == '"value"'
            assert cli(follower.port, "get", "key1") == '"value1"'
        follower = cluster.followers(leader)[0]
        # Forwarded by default, answered transparently.
        assert cli(follower.port, "set", "key3", "value3") == "OK"
        assert cli(leader.port, "get", "key3") == '"value3"'
        # The original's reply, and Redis Cluster's.
        assert cli(follower.port, "config", "set", "follower-writes", "ask") == "OK"
        reply = cli(follower.port, "set", "key4", "value4")
        assert reply == f"(error) ASK {cluster.name(leader)} {HOST}:{leader.port}"
        assert cli(follower.port, "config", "set", "follower-writes", "moved") == "OK"
        reply = cli(follower.port, "set", "key4", "value4")
        slot = cluster.client(leader).execute_command("CLUSTER", "KEYSLOT", "key4")
        assert reply == f"(error) MOVED {slot} {HOST}:{leader.port}"
        # redis-cli -c follows MOVED to the leader.
        out = subprocess.run(
            ["redis-cli", "-c", "-p", str(follower.port), "set", "key5", "v5"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert out.strip() == "OK"
        role = cluster.client(follower).execute_command("ROLE")
        assert role[0] == b"slave" and role[2] == leader.port
        role = cluster.client(leader).execute_command("ROLE")
        assert role[0] == b"master" and len(role[2]) == 4
        # The original's log lines at loglevel debug.
        cluster.client(leader).config_set("loglevel", "debug")
        cluster.client(follower).config_set("loglevel", "debug")
        wait_until(
            lambda: ". Sending heartbeat to port" in leader.log(),
            10,
            what="heartbeat log",
        )
        wait_until(
            lambda: "--- Received AppendEntries term" in follower.log(),
            10,
            what="append log",
        )


def test_kill_leader_under_load(tmp_path: Path) -> None:
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        load = WriteLoad(cluster, clients=4)
        with load.running():
            wait_until(lambda: load.count() >= 200, 20, what="writes before the kill")
            killed_at = time.monotonic()
            leader.kill()
            survivors = cluster.followers(leader)
            new_leader = cluster.leader(timeout=10, among=survivors)
            elapsed = time.monotonic() - killed_at
            before = load.count()
            wait_until(
                lambda: load.count() >= before + 200, 20, what="writes after failover"
            )
        # Election timeouts are drawn from [T, 2T); allow the polling interval on top.
        print(f"new leader {elapsed:.3f}s after the kill (T = {TIMEOUT_MS} ms)")
        assert elapsed < 2 * TIMEOUT_MS / 1000 + 0.5, f"new leader after {elapsed:.2f}s"
        assert new_leader is not leader
        for node in survivors:
            assert_all_present(cluster, node, load.acked)
        leader.start()
        commit = int(cluster.raft_info(new_leader)["raft_commit_index"])
        cluster.wait_applied(commit, nodes=cluster.nodes)
        assert_all_present(cluster, leader, load.acked)
        reference = digest(cluster, new_leader)
        for node in cluster.nodes:
            wait_until(
                lambda node=node: digest(cluster, node) == reference,
                20,
                what="agreement",
            )


def test_kill_all_nodes_and_restart(tmp_path: Path) -> None:
    with Cluster(
        tmp_path, size=3, node_timeout=TIMEOUT_MS, config={"raft-log-fsync": "yes"}
    ) as cluster:
        cluster.leader()
        load = WriteLoad(cluster, clients=4)
        with load.running():
            wait_until(lambda: load.count() >= 500, 30, what="writes before the crash")
            for node in cluster.nodes:
                node.kill()
        assert load.acked
        for node in cluster.nodes:
            node.start(wait=False)
        for node in cluster.nodes:
            node.wait_ready()
        leader = cluster.leader(timeout=15)
        # A write of the new term commits everything before it.
        cluster.client(leader).set("after-restart", "1")
        commit = int(cluster.raft_info(leader)["raft_commit_index"])
        cluster.wait_applied(commit, nodes=cluster.nodes)
        for node in cluster.nodes:
            assert_all_present(cluster, node, load.acked)


def single_node(tmp_path: Path) -> Cluster:
    return Cluster(tmp_path, size=1, node_timeout=200)


def wal_segments(node: ServerProcess) -> list[Path]:
    return sorted((node.dir / "raft").glob("wal-*.log"))


def test_torn_tail_is_cut_and_the_node_recovers(tmp_path: Path) -> None:
    cluster = single_node(tmp_path)
    with cluster:
        node = cluster.nodes[0]
        cluster.leader()
        c = cluster.client(node)
        for i in range(50):
            c.set(f"k{i}", "x" * 100)
        c.set("last", "y" * 1000)
        c.close()
        node.kill()
        segment = wal_segments(node)[-1]
        size = segment.stat().st_size
        with open(segment, "r+b") as f:
            f.truncate(size - 500)  # the last record cut in half
        node.start()
        cluster.leader()
        c = cluster.client(node)
        wait_until(lambda: c.get("k49") == b"x" * 100, 10, what="replay")
        assert c.get("last") is None
        assert all(c.get(f"k{i}") == b"x" * 100 for i in range(50))
        assert "torn" in node.log().lower()
        c.close()


def test_flipped_byte_in_an_early_record_refuses_to_start(tmp_path: Path) -> None:
    cluster = single_node(tmp_path)
    with cluster:
        node = cluster.nodes[0]
        cluster.leader()
        c = cluster.client(node)
        for i in range(50):
            c.set(f"k{i}", "x" * 100)
        c.close()
        node.kill()
        segment = wal_segments(node)[0]
        data = bytearray(segment.read_bytes())
        data[200] ^= 0x40
        segment.write_bytes(bytes(data))
        node.start(wait=False)
        assert node.proc is not None
        assert node.proc.wait(20) == 1
        out = node.log()
        assert str(segment.name) in out and "offset" in out, out[-2000:]


def test_garbage_on_the_cluster_port_is_ignored(tmp_path: Path) -> None:
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        bus_port = int(leader.config["cluster-port"])
        rng = random.Random(7)
        for _ in range(5):
            with socket.create_connection((HOST, bus_port), timeout=2) as s:
                s.sendall(bytes(rng.randrange(256) for _ in range(4096)))
        with socket.create_connection((HOST, bus_port), timeout=2) as s:
            s.sendall(b"\xff\xff\xff\x7f" + b"\x00" * 100)  # an absurd frame length
        c = cluster.client(leader)
        for i in range(20):
            assert c.set(f"g{i}", i)
        assert cluster.leader() is leader
        assert leader.alive()
        c.close()


def test_leader_losing_quorum_answers_waiting_writes(tmp_path: Path) -> None:
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        followers = cluster.followers(leader)
        for f in followers:
            f.pause()
        try:
            c = cluster.client(leader)
            started = time.monotonic()
            with pytest.raises(redis.ResponseError) as info:
                c.set("stranded", "1")
            assert str(info.value).startswith("UNKNOWN"), info.value
            assert time.monotonic() - started < 5
            # With no leader, writes are refused as safe to retry.
            wait_until(
                lambda: _error_of(c) == "ClusterDownError: No leader elected",
                10,
                what="CLUSTERDOWN",
            )
            c.close()
        finally:
            for f in followers:
                f.resume()
        cluster.leader(timeout=15)


def _error_of(c: redis.Redis) -> str | None:
    """The error a write gets, as `ExceptionClass: text` (redis-py maps
    -CLUSTERDOWN to ClusterDownError and drops the prefix)."""
    try:
        c.set("probe", "1")
    except redis.ResponseError as e:
        return f"{type(e).__name__}: {e}"
    return None


def test_a_follower_alone_reports_no_leader(tmp_path: Path) -> None:
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        follower = cluster.followers(leader)[0]
        others = [n for n in cluster.nodes if n is not follower]
        for n in others:
            n.pause()
        try:
            c = cluster.client(follower)
            wait_until(
                lambda: _error_of(c) == "ClusterDownError: No leader elected",
                10,
                what="CLUSTERDOWN",
            )
            c.close()
        finally:
            for n in others:
                n.resume()


def test_one_line_nodes_conf_is_a_one_node_cluster(tmp_path: Path) -> None:
    with single_node(tmp_path) as cluster:
        node = cluster.leader()
        c = cluster.client(node)
        assert c.set("a", "1") and c.get("a") == b"1"
        assert c.execute_command("ROLE")[0] == b"master"
        c.close()
    assert os.path.exists(cluster.nodes[0].dir / "raft")


def test_prez_cluster_tool_start_status_stop(tmp_path: Path) -> None:
    from prez.testing.procs import child_env, free_port_block

    root = tmp_path / "cluster"
    base, bus = free_port_block(3), free_port_block(3)

    def tool(*args: str) -> str:
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "from prez.cli import cluster_main; cluster_main()",
                "--dir",
                str(root),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=child_env(),
            check=True,
        ).stdout

    out = tool(
        "start",
        "3",
        "--port",
        str(base),
        "--cluster-port",
        str(bus),
        "--node-timeout",
        "500",
    )
    try:
        assert "leader" in out
        for i in range(3):
            conf = (root / str(base + i) / "prez.conf").read_text()
            assert (
                f"name node-{base + i}\nport {base + i}\ncluster-port {bus + i}\n"
                in conf
            )
            assert (root / str(base + i) / "nodes.conf").read_text().count("\n") == 3
        assert cli(base + 1, "set", "key", "value") == "OK"
        assert cli(base, "get", "key") == '"value"' or wait_until(
            lambda: cli(base, "get", "key") == '"value"', 10
        )
        status = tool("status")
        lines = status.strip().splitlines()
        assert len(lines) == 4 and sum("leader" in line for line in lines[1:]) == 1, (
            status
        )
    finally:
        out = tool("stop")
    assert out.count("stopped") == 3
    assert "down" in tool("status")


def test_write_too_large_for_the_log_is_refused_and_the_cluster_carries_on(
    tmp_path: Path,
) -> None:
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        c = cluster.client(leader, socket_timeout=30)
        with pytest.raises(
            redis.ResponseError, match="larger than the replicated log takes"
        ):
            c.set("huge", b"x" * (61 * 1024 * 1024))
        assert c.set("small", "1")
        follower = cluster.followers(leader)[0]
        f = cluster.client(follower, socket_timeout=30)
        with pytest.raises(
            redis.ResponseError, match="larger than the replicated log takes"
        ):
            f.set("huge", b"x" * (61 * 1024 * 1024))  # forwarded, refused by the leader
        assert f.set("small2", "2")
        c.close()
        f.close()


def test_active_expiry_is_replicated(tmp_path: Path) -> None:
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        leader = cluster.leader()
        c = cluster.client(leader)
        for i in range(30):
            c.set(f"e{i}", i, px=50)
        c.set("kept", "1")
        # Deleted from memory (not only hidden) by the sweeper, on every replica.
        for node in cluster.nodes:
            with cluster.client(node) as client:
                wait_until(
                    lambda client=client: client.info("stats")["expired_keys"] >= 30,
                    10,
                    what="the sweep applied",
                )
        digests = {
            cluster.client(n).execute_command("DEBUG", "DIGEST") for n in cluster.nodes
        }
        assert len(digests) == 1
        with cluster.client(leader) as client:
            assert client.dbsize() == 1 and client.get("kept") == b"1"
        c.close()
