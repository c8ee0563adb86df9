"""Disk faults with real prez-server processes (issue 11, parts 5-7).

- A full disk (a size-limited tmpfs, filled up) on a follower and on the
  leader: the node stays up, says so in INFO and its log, refuses what
  needs its own log with -MISCONF, loses no acknowledged write, and resumes
  by itself once space returns.
- Restarts more often than the log fills raft-log-max-size: the snapshot
  trigger counts the log on disk, so the data directory stays bounded.
- Damage in the middle of the log or in the hard state: the node refuses
  to start, names the file and offset, says what the operator can do, and
  changes nothing on disk.

The tmpfs tests need root (CI runs as root).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from prez.testing.cluster import Cluster
from prez.testing.diskfull import can_mount, fill, small_tmpfs
from prez.testing.procs import ServerProcess, wait_until
from prez.testing.writeload import WriteLoad

pytestmark = pytest.mark.integration

needs_root = pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root")

DISK_BYTES = 24 * 1024 * 1024


@pytest.fixture
def tmpfs_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three nodes, each with its data directory on a tmpfs of its own."""
    cluster = Cluster(tmp_path)
    with ExitStack() as stack:
        for node in cluster.nodes:
            data = stack.enter_context(small_tmpfs(node.dir / "data", DISK_BYTES))
            shutil.copy(node.dir / "nodes.conf", data / "nodes.conf")
            node.config["dir"] = str(data)
        stack.callback(cluster.stop)
        cluster.start()
        yield cluster


def raft_field(cluster: Cluster, node: ServerProcess, field: str) -> str:
    return str(cluster.raft_info(node)[field])


def data_dir(node: ServerProcess) -> Path:
    return Path(node.config["dir"])


def check_every_acked_write(cluster: Cluster, acked: dict[bytes, bytes]) -> None:
    """Every acknowledged write reads back with its value on every node."""
    leader = cluster.leader()
    commit = int(cluster.raft_info(leader)["raft_commit_index"])
    cluster.wait_applied(commit, timeout=60)
    keys = sorted(acked)
    for node in cluster.nodes:
        with cluster.client(node) as c:
            c.execute_command("READMODE", "stale")  # its own applied state
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                values = c.mget(chunk)
                lost = [k for k, v in zip(chunk, values, strict=True) if v != acked[k]]
                assert not lost, f"{cluster.name(node)} lost {len(lost)}: {lost[:5]}"


def assert_misconf(call: object) -> None:
    with pytest.raises(
        redis.ResponseError, match="^MISCONF Errors writing to the Raft log: "
    ):
        call()  # type: ignore[operator]


@needs_root
def test_full_disk_on_a_follower(tmpfs_cluster: Cluster) -> None:
    cluster = tmpfs_cluster
    leader = cluster.leader()
    full = cluster.followers(leader)[0]
    pid = full.proc.pid if full.proc else 0
    load = WriteLoad(cluster, clients=3, seconds=90)
    with load.running():
        load.wait_more(300, "writes before the disk fills")
        filler = fill(data_dir(full))
        wait_until(
            lambda: raft_field(cluster, full, "raft_log_write_status") == "err",
            20,
            what="the follower to notice its full disk",
        )
        assert "No space left on device" in raft_field(
            cluster, full, "raft_log_write_error"
        )
        # The cluster goes on with the other two; writes sent to the full
        # follower are still forwarded to the leader's log.
        load.wait_more(500, "writes while one follower's disk is full")
        with cluster.client(full, socket_timeout=5) as c:
            assert c.set("via-full-follower", "yes")
            assert_misconf(lambda: c.get("via-full-follower"))
            c.execute_command("READMODE", "stale")
            c.get("via-full-follower")  # its own state still answers
        filler.unlink()
        wait_until(
            lambda: raft_field(cluster, full, "raft_log_write_status") == "ok",
            20,
            what="the follower to resume by itself",
        )
        load.wait_more(300, "writes after space returned")
    assert full.alive() and full.proc is not None and full.proc.pid == pid
    log = full.log()
    assert "Cannot write the Raft log" in log and "writable again" in log
    load.acked[b"via-full-follower"] = b"yes"
    check_every_acked_write(cluster, load.acked)
    print(f"\nfull follower: {len(load.acked)} acknowledged, 0 lost")


@needs_root
def test_full_disk_on_the_leader(tmpfs_cluster: Cluster) -> None:
    cluster = tmpfs_cluster
    leader = cluster.leader()
    others = cluster.followers(leader)
    pid = leader.proc.pid if leader.proc else 0
    load = WriteLoad(cluster, clients=3, nodes=others, seconds=90)
    extra: dict[bytes, bytes] = {}
    answers: list[str] = []
    stop = threading.Event()

    def write_to_the_full_node() -> None:
        # Every write to it is answered (OK, -MISCONF or -UNKNOWN), none hangs.
        with cluster.client(leader, socket_timeout=5) as c:
            n = 0
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                key = f"full-leader:{n}".encode()
                n += 1
                try:
                    if c.set(key, b"x"):
                        extra[key] = b"x"
                        answers.append("OK")
                except redis.exceptions.ClusterDownError:
                    answers.append("CLUSTERDOWN")  # during the election
                except redis.ResponseError as e:
                    answers.append(str(e).split()[0])
                time.sleep(0.005)

    writer = threading.Thread(target=write_to_the_full_node, daemon=True)
    with load.running():
        writer.start()
        load.wait_more(300, "writes before the disk fills")
        filler = fill(data_dir(leader))
        wait_until(
            lambda: raft_field(cluster, leader, "raft_log_write_status") == "err",
            20,
            what="the leader to notice its full disk",
        )
        # Its heartbeats stop with its log: the others elect a new leader.
        new_leader = cluster.leader(timeout=20, among=others)
        assert new_leader is not leader
        load.wait_more(500, "writes to the new leader")
        filler.unlink()
        wait_until(
            lambda: raft_field(cluster, leader, "raft_log_write_status") == "ok",
            20,
            what="the old leader to resume by itself",
        )
        load.wait_more(300, "writes after space returned")
        stop.set()
        writer.join(30)
    assert not writer.is_alive()
    assert leader.alive() and leader.proc is not None and leader.proc.pid == pid
    refused = {a for a in answers if a != "OK"}
    assert refused <= {"MISCONF", "UNKNOWN", "CLUSTERDOWN"}, refused
    assert "MISCONF" in refused
    check_every_acked_write(cluster, {**load.acked, **extra})
    print(
        f"\nfull leader: {len(load.acked) + len(extra)} acknowledged, 0 lost; "
        f"writes to it: "
        + ", ".join(f"{a} {answers.count(a)}" for a in sorted(set(answers)))
    )


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


MAX_LOG = 1024 * 1024


def test_a_node_restarted_often_still_snapshots_and_stays_bounded(
    tmp_path: Path,
) -> None:
    """Restarted every 2 s, the follower never logs raft-log-max-size since
    its last start; it must snapshot anyway (before the fix it never did, and
    its log grew by everything written)."""
    cluster = Cluster(
        tmp_path, node_timeout=1000, config={"raft-log-max-size": str(MAX_LOG)}
    )
    stop = threading.Event()
    written = [0]

    def overwrite_a_few_keys() -> None:
        # ~1,000 SETs a second over 500 keys: the data stays small while the
        # log grows by about 250 KB a second.
        deadline = time.monotonic() + 60
        c = cluster.client(leader, socket_timeout=5)
        value = b"v" * 200
        while not stop.is_set() and time.monotonic() < deadline:
            pipe = c.pipeline(transaction=False)
            for i in range(50):
                pipe.set(f"k{(written[0] + i) % 500}", value)
            try:
                pipe.execute()
                written[0] += 50
            except redis.RedisError:
                pass
            time.sleep(0.05)
        c.close()

    with cluster:
        leader = cluster.leader()
        restarted = cluster.followers(leader)[0]
        writer = threading.Thread(target=overwrite_a_few_keys, daemon=True)
        writer.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(2)
                restarted.kill()
                restarted.start()
        finally:
            stop.set()
            writer.join(30)
        taken = int(cluster.raft_info(restarted)["raft_snapshots_taken"])
        on_disk = dir_bytes(restarted.dir)
    print(
        f"\nrestarted node: {on_disk} bytes on disk after {written[0] * 230} bytes "
        f"of log written, {taken} snapshots since its last start"
    )
    # Two snapshots (~120 KB each) and the log since the older one (at most
    # twice raft-log-max-size plus a segment) and prez.log.
    assert on_disk < 4 * MAX_LOG, on_disk
    assert list((restarted.dir / "snapshots").glob("*.snap"))


def _one_node_with_data(tmp_path: Path) -> tuple[Cluster, ServerProcess]:
    cluster = Cluster(tmp_path, size=1, node_timeout=200)
    cluster.start()
    node = cluster.leader()
    with cluster.client(node) as c:
        for i in range(300):
            c.set(f"k{i}", "v" * 100)  # one log entry each
    node.stop()
    return cluster, node


def _start_fails(node: ServerProcess) -> str:
    node.start(wait=False)
    assert node.proc is not None and node.proc.wait(20) == 1
    return node.log()


def test_damage_in_the_middle_of_the_log_refuses_to_start(tmp_path: Path) -> None:
    cluster, node = _one_node_with_data(tmp_path)
    try:
        (segment,) = (node.dir / "raft").glob("wal-*.log")
        data = bytearray(segment.read_bytes())
        data[len(data) // 3] ^= 0xFF
        segment.write_bytes(bytes(data))
        out = _start_fails(node)
        assert str(segment) in out and "byte offset" in out, out[-2000:]
        assert "RAFT.NODE REMOVE" in out  # what the operator can do
        assert segment.read_bytes() == bytes(data)  # nothing cut or dropped
    finally:
        cluster.stop()


def test_damaged_hard_state_refuses_to_start(tmp_path: Path) -> None:
    cluster, node = _one_node_with_data(tmp_path)
    try:
        state = node.dir / "raft" / "state"
        data = bytearray(state.read_bytes())
        data[-1] ^= 0xFF
        state.write_bytes(bytes(data))
        out = _start_fails(node)
        assert f"{state}: hard-state file fails its checksum" in out, out[-2000:]
        assert "RAFT.NODE REMOVE" in out
        assert state.read_bytes() == bytes(data)
    finally:
        cluster.stop()


@needs_root
def test_a_snapshot_that_fails_on_a_full_disk_is_retried_not_fatal(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, size=1, node_timeout=200)
    node = cluster.nodes[0]
    with small_tmpfs(node.dir / "data", DISK_BYTES) as data:
        shutil.copy(node.dir / "nodes.conf", data / "nodes.conf")
        node.config["dir"] = str(data)
        with cluster:
            cluster.leader()
            pid = node.proc.pid if node.proc else 0
            with cluster.client(node) as c:
                for i in range(200):
                    c.set(f"k{i}", "v" * 1000)
                filler = fill(data)
                assert c.execute_command("RAFT.SNAPSHOT") == b"Snapshot started"
                wait_until(
                    lambda: (
                        raft_field(cluster, node, "raft_snapshot_last_status") == "err"
                    ),
                    20,
                    what="the snapshot to fail",
                )
                assert not list((data / "snapshots").glob("*.snap*"))  # no leftovers
                # The last page of the log segment may still take a write or two.
                refused = None
                for i in range(1000):
                    try:
                        c.set(f"more{i}", "x" * 100)
                    except redis.ResponseError as e:
                        refused = str(e)
                        break
                # The write that met the failure: its outcome is unknown.
                assert refused is not None and refused.startswith(
                    "UNKNOWN Cannot write the Raft log (No space left on device)"
                ), refused
                assert_misconf(lambda: c.set("after", "x"))  # refused at once
                filler.unlink()
                wait_until(
                    lambda: raft_field(cluster, node, "raft_log_write_status") == "ok",
                    20,
                    what="the log to be writable again",
                )
                c.set("more", "x")
                assert c.execute_command("RAFT.SNAPSHOT") == b"Snapshot started"
                wait_until(
                    lambda: (
                        raft_field(cluster, node, "raft_snapshot_last_status") == "ok"
                    ),
                    20,
                    what="a snapshot once space returned",
                )
                assert list((data / "snapshots").glob("*.snap"))
                assert c.get("k199") == b"v" * 1000
            assert node.alive() and node.proc is not None and node.proc.pid == pid
            assert "Snapshot of index" in node.log() and "next try in 5s" in node.log()
