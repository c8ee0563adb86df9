"""Membership changes with real prez-server processes (issue 5).

Every test runs under a continuous write load from several redis-py clients
and ends with every acknowledged write present on every member. Clusters use
cluster-node-timeout 500; every process is stopped at the end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from prez.testing.cluster import Cluster
from prez.testing.procs import (
    HOST,
    ServerProcess,
    child_env,
    free_port,
    free_port_block,
    wait_until,
)
from prez.testing.writeload import WriteLoad

pytestmark = pytest.mark.integration

TIMEOUT_MS = 500


def assert_everywhere(cluster: Cluster, acked: dict[bytes, bytes]) -> None:
    """Every acknowledged write on every tracked member, once caught up."""
    leader = cluster.leader()
    commit = int(cluster.raft_info(leader)["raft_commit_index"])
    cluster.wait_applied(commit, nodes=cluster.nodes)
    for node in cluster.nodes:  # reads are confirmed through the leader
        wait_until(
            lambda node=node: (
                cluster.raft_info(node)["raft_leader"] == cluster.name(leader)
            ),
            10,
            what=f"{cluster.name(node)} following the leader",
        )
    keys = list(acked)
    assert keys
    for node in cluster.nodes:
        missing = []
        with cluster.client(node) as c:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                for key, got in zip(chunk, c.mget(chunk), strict=True):
                    if got != acked[key]:
                        missing.append(key)
        assert not missing, (
            f"{len(missing)} acknowledged writes missing on {cluster.name(node)}"
        )


def voters_and_learners(cluster: Cluster, node: ServerProcess) -> dict[str, bytes]:
    return {name: row[b"role"] for name, row in cluster.members(node).items()}


def nodes_conf_names(node: ServerProcess) -> set[str]:
    lines = (node.dir / "nodes.conf").read_text().splitlines()
    return {line.split()[0] for line in lines if line and not line.startswith("#")}


def error_of(node: ServerProcess, cluster: Cluster, *args: str) -> str:
    with (
        cluster.client(node, socket_timeout=30) as c,
        pytest.raises(redis.ResponseError) as info,
    ):
        c.execute_command(*args)
    return str(info.value)


def test_grow_to_five_then_shrink_removing_the_leader(tmp_path: Path) -> None:
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        try:
            cluster.leader()
            load = WriteLoad(cluster)
            with load.running():
                load.wait_more(200, "writes before growing")
                added = cluster.add_node()  # RAFT.NODE ADD, then started
                cluster.wait_voter(added)
                joined = cluster.join()  # cluster-join, no nodes.conf
                cluster.wait_voter(joined)
                load.wait_more(200, "writes with five members")
                leader = cluster.leader()
                roles = voters_and_learners(cluster, leader)
                assert sorted(roles.values()) == [b"voter"] * 5
                names = {cluster.name(n) for n in cluster.nodes}
                assert set(roles) == names
                for node in cluster.nodes:
                    wait_until(
                        lambda node=node: nodes_conf_names(node) == names,
                        10,
                        what="nodes.conf rewritten",
                    )
                # Shrink: the leader first (it leads until the removal
                # commits, then steps down), then one of the originals.
                cluster.remove_node(leader, via=leader)
                new_leader = cluster.leader(timeout=10)
                assert new_leader is not leader
                other = next(n for n in cluster.nodes if n is not new_leader)
                cluster.remove_node(other)
                load.wait_more(200, "writes after shrinking")
            survivors = {cluster.name(n) for n in cluster.nodes}
            assert len(survivors) == 3
            leader = cluster.leader()
            assert set(voters_and_learners(cluster, leader)) == survivors
            for node in cluster.nodes:
                wait_until(
                    lambda node=node: nodes_conf_names(node) == survivors,
                    10,
                    what="nodes.conf of three",
                )
            assert_everywhere(cluster, load.acked)
            # A member that restarts reads its rewritten nodes.conf and the
            # durable bootstrap membership, and rejoins its peers.
            restarted = next(n for n in cluster.nodes if n is not leader)
            restarted.stop()
            restarted.start()
            assert_everywhere(cluster, load.acked)
        except Exception:
            print(cluster.logs()[-30000:])
            raise
        finally:
            for node in cluster.removed:
                node.stop()


def test_replace_a_node_whose_data_was_wiped(tmp_path: Path) -> None:
    # Frequent snapshots: the replacement catches up from one (the log it
    # would need is compacted away), member registry included.
    with Cluster(
        tmp_path,
        size=3,
        node_timeout=TIMEOUT_MS,
        config={"raft-snapshot-entries": "300"},
    ) as cluster:
        try:
            leader = cluster.leader()
            load = WriteLoad(cluster)
            with load.running():
                load.wait_more(200, "writes before the loss")
                lost = cluster.followers(leader)[0]
                lost.kill()
                for path in sorted(lost.dir.rglob("*"), reverse=True):
                    if path.is_file():
                        path.unlink()
                cluster.remove_node(lost, via=leader)
                load.wait_more(100, "writes with two members")
                # The old identity is not reused.
                refused = error_of(
                    leader,
                    cluster,
                    "RAFT.NODE",
                    "ADD",
                    cluster.name(lost),
                    f"{HOST}:{free_port()}",
                )
                assert "was removed" in refused
                wait_until(  # the leader's core drops the log a snapshot covers
                    lambda: int(cluster.raft_info(leader)["raft_snapshot_index"]) > 0,
                    30,
                    what="a snapshot on the leader",
                )
                replacement = cluster.join(via=leader)
                cluster.wait_voter(replacement)
                info = cluster.raft_info(replacement)
                assert int(info["raft_snapshots_installed"]) >= 1
                load.wait_more(200, "writes after the replacement")
            assert len(cluster.nodes) == 3
            assert_everywhere(cluster, load.acked)
        except Exception:
            print(cluster.logs()[-30000:])
            raise


def test_paused_node_removed_then_resumed_does_not_disrupt(tmp_path: Path) -> None:
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        paused = None
        try:
            leader = cluster.leader()
            load = WriteLoad(cluster)
            with load.running():
                load.wait_more(200, "writes before the pause")
                paused = cluster.followers(leader)[0]
                cluster.nodes.remove(paused)  # the load stops choosing it
                cluster.removed.append(paused)
                paused.pause()
                with cluster.client(leader, socket_timeout=30) as c:
                    assert (
                        c.execute_command("RAFT.NODE", "REMOVE", cluster.name(paused))
                        == b"OK"
                    )
                load.wait_more(100, "writes after the removal")
                terms = {
                    cluster.name(n): int(cluster.raft_info(n)["raft_term"])
                    for n in cluster.nodes
                }
                paused.resume()
                # It never heard of its removal: once its election timer runs
                # out it tries to get elected, and the members ignore it.
                wait_until(
                    lambda: (
                        cluster.raft_info(paused)["raft_role"]
                        in ("precandidate", "candidate")
                    ),
                    30,
                    what="the removed node campaigning",
                )
                load.wait_more(200, "writes after the resume")
            after = {
                cluster.name(n): int(cluster.raft_info(n)["raft_term"])
                for n in cluster.nodes
            }
            assert after == terms, "a removed node raised the members' terms"
            assert cluster.leader() is leader
            assert set(voters_and_learners(cluster, leader)) == {
                cluster.name(n) for n in cluster.nodes
            }
            assert_everywhere(cluster, load.acked)
        except Exception:
            print(cluster.logs()[-30000:])
            raise
        finally:
            if paused is not None:
                paused.resume()


def test_refused_changes_leave_the_cluster_unchanged(tmp_path: Path) -> None:
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS) as cluster:
        paused = None
        try:
            leader = cluster.leader()
            follower_a, follower_b = cluster.followers(leader)
            load = WriteLoad(cluster)
            with load.running():
                load.wait_more(100, "writes before the refusals")
                before = voters_and_learners(cluster, leader)
                member_addr = cluster.bus_addr(follower_a)
                fresh_addr = f"{HOST}:{free_port()}"
                cases: list[tuple[tuple[str, ...], str]] = [
                    (
                        ("RAFT.NODE", "ADD", cluster.name(follower_a), fresh_addr),
                        "already a member",
                    ),
                    (("RAFT.NODE", "ADD", "node-new", member_addr), "already used"),
                    (("RAFT.NODE", "REMOVE", "node-unknown"), "no member"),
                    (
                        ("RAFT.NODE", "PROMOTE", cluster.name(follower_a)),
                        "not a learner",
                    ),
                    (("RAFT.NODE", "FROB", "x"), "unknown subcommand"),
                ]
                for via in (leader, follower_b):  # followers forward to the leader
                    for args, expected in cases:
                        assert expected in error_of(via, cluster, *args), args
                assert voters_and_learners(cluster, leader) == before
                # A second change while one is in progress (pipelined, so it
                # arrives before the first could commit).
                with cluster.client(leader, socket_timeout=30) as c:
                    pipe = c.pipeline(transaction=False)
                    pipe.execute_command(
                        "RAFT.NODE",
                        "ADD",
                        "node-l1",
                        f"{HOST}:{free_port()}",
                        "LEARNER",
                    )
                    pipe.execute_command(
                        "RAFT.NODE",
                        "ADD",
                        "node-l2",
                        f"{HOST}:{free_port()}",
                        "LEARNER",
                    )
                    first, second = pipe.execute(raise_on_error=False)
                assert first == b"OK"
                assert "in progress" in str(second)
                roles = voters_and_learners(cluster, leader)
                assert roles == {**before, "node-l1": b"learner"}
                with cluster.client(leader, socket_timeout=30) as c:
                    assert c.execute_command("RAFT.NODE", "REMOVE", "node-l1") == b"OK"
                assert voters_and_learners(cluster, leader) == before
                # A removed name comes back only when re-admitted explicitly.
                assert "was removed" in error_of(
                    leader,
                    cluster,
                    "RAFT.NODE",
                    "ADD",
                    "node-l1",
                    f"{HOST}:{free_port()}",
                    "LEARNER",
                )
                # REUSE re-admits it, through a follower too; then it leaves.
                with cluster.client(follower_b, socket_timeout=30) as c:
                    readd = ("RAFT.NODE", "ADD", "node-l1", f"{HOST}:{free_port()}")
                    assert c.execute_command(*readd, "LEARNER", "REUSE") == b"OK"
                assert voters_and_learners(cluster, leader) == {
                    **before,
                    "node-l1": b"learner",
                }
                with cluster.client(leader, socket_timeout=30) as c:
                    assert c.execute_command("RAFT.NODE", "REMOVE", "node-l1") == b"OK"
                assert voters_and_learners(cluster, leader) == before
                # With one voter paused, removing the other healthy follower
                # would leave no healthy majority.
                paused = follower_a
                paused.pause()
                timeout_ms = TIMEOUT_MS

                def unhealthy() -> bool:
                    row = cluster.members(leader)[cluster.name(paused)]
                    return int(row[b"last_contact_ms"]) > 2 * timeout_ms

                wait_until(unhealthy, 10, what="the paused node seen as silent")
                refused = error_of(
                    leader, cluster, "RAFT.NODE", "REMOVE", cluster.name(follower_b)
                )
                assert "healthy" in refused
                assert voters_and_learners(cluster, leader) == before
                paused.resume()
                paused = None
                load.wait_more(100, "writes after the refusals")
            assert voters_and_learners(cluster, cluster.leader()) == before
            assert_everywhere(cluster, load.acked)
        except Exception:
            print(cluster.logs()[-30000:])
            raise
        finally:
            if paused is not None:
                paused.resume()


def prez_cluster(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
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
    )


def test_prez_cluster_add_and_remove(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    base, bus = free_port_block(4), free_port_block(4)
    try:
        started = prez_cluster(
            root,
            "start",
            "3",
            "--port",
            str(base),
            "--cluster-port",
            str(bus),
            "--node-timeout",
            "500",
        )
        assert started.returncode == 0, started.stdout + started.stderr
        with redis.Redis(host=HOST, port=base, socket_timeout=10) as c:
            load = [c.set(f"k{i}", i) for i in range(100)]
        added = prez_cluster(root, "add")
        assert added.returncode == 0, added.stdout + added.stderr
        assert len([d for d in root.iterdir() if (d / "prez.conf").exists()]) == 4
        new_port = base + 3
        with redis.Redis(host=HOST, port=base, socket_timeout=10) as c:
            rows = [
                dict(zip(r[::2], r[1::2], strict=False))
                for r in c.execute_command("RAFT.NODES")
            ]
        assert sorted(row[b"role"] for row in rows) == [b"voter"] * 4
        assert f"node-{new_port}".encode() in {row[b"name"] for row in rows}
        with redis.Redis(host=HOST, port=new_port, socket_timeout=10) as c:
            wait_until(lambda: c.get("k99") == b"99", 10, what="data on the new node")
        removed = prez_cluster(root, "remove", str(new_port))
        assert removed.returncode == 0, removed.stdout + removed.stderr
        with redis.Redis(host=HOST, port=base, socket_timeout=10) as c:
            names = {
                dict(zip(r[::2], r[1::2], strict=False))[b"name"]
                for r in c.execute_command("RAFT.NODES")
            }
        assert names == {f"node-{base + i}".encode() for i in range(3)}
        assert all(load)
        assert len([d for d in root.iterdir() if (d / "prez.conf").exists()]) == 3
    finally:
        prez_cluster(root, "stop")
