"""Hostile input on the cluster ports of a real 3-node cluster (issue 11).

A process that can open a TCP connection to a cluster port sends what the
issue reports took clusters down, and fuzzed frames besides:

- a HEARTBEAT with term 2**64 - 1 after a valid-looking HELLO naming a
  member (nodes crashed at their next election, again at every restart);
- an APPEND carrying a CONFIG entry that does not parse ("Raft safety
  violation");
- 8 connections to each node, each sending the header of a 64 MiB frame and
  60 MiB of it, 4 of them before any HELLO (RSS went from 27 to 507 MiB);
- frames mutated from valid ones, of those the decoder refuses (a forged but
  well-formed message is another matter: cluster-bus authentication, #13).

Then every node must be up, with the same leader and term as before (the
term never near the attacker's), serving writes, and each node's peak RSS
(VmHWM) at most RSS_BOUND above its RSS before the attack: the shared
budget for large frames (one 64 MiB APPEND) plus 32 MiB for everything
else (a small frame per connection, socket buffers, the allocator).

Every target is 127.0.0.1, every loop has a deadline, the Cluster context
stops every process.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from prez._core import wire
from prez.errors import ProtocolError
from prez.raft.types import Entry, EntryKind, Membership, Message, MessageType
from prez.testing.cluster import Cluster
from prez.testing.procs import HOST, ServerProcess, wait_until

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
RSS_BOUND = 96 * MIB
ATTACK_DEADLINE = 60.0  # seconds for all the big-frame senders together
FUZZED_PER_NODE = 120


def rss(node: ServerProcess, field: str = "VmRSS") -> int:
    """Resident memory of the node's process from /proc, in bytes."""
    assert node.proc is not None
    for line in Path(f"/proc/{node.proc.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for pid {node.proc.pid}")


def bus_port(node: ServerProcess) -> int:
    return int(node.config["cluster-port"])


def hello(name: str) -> bytes:
    return wire.encode_hello(name, f"{HOST}:1", "")


def connect(node: ServerProcess) -> socket.socket:
    sock = socket.create_connection((HOST, bus_port(node)), timeout=5)
    sock.settimeout(5)
    return sock


def closed_by_node(sock: socket.socket, within: float = 5.0) -> bool:
    """Whether the node hangs up (EOF or reset) on this connection in time."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def state(cluster: Cluster) -> list[tuple[str, int, str]]:
    """(role, term, leader) of every node."""
    out = []
    for node in cluster.nodes:
        info = cluster.raft_info(node)
        out.append((info["raft_role"], int(info["raft_term"]), info["raft_leader"]))
    return out


def some_other(cluster: Cluster, node: ServerProcess) -> str:
    return next(cluster.name(n) for n in cluster.nodes if n is not node)


def send_refused(node: ServerProcess, data: bytes) -> bool:
    """Send `data` on a new connection; whether the node then hung up."""
    with connect(node) as sock:
        try:
            sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return closed_by_node(sock)


def mutated(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        how = rng.randrange(4)
        if how == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif how == 1:
            data[at : at + 8] = struct.pack(
                "<Q", rng.choice([2**64 - 1, 2**63, 2**62 + 1, 0])
            )
        elif how == 2:
            del data[max(at, 7) :]
        else:
            data[at:at] = rng.randbytes(rng.randint(1, 20))
    if rng.random() < 0.7:
        data[:4] = struct.pack("<I", len(data) - 4)
    return bytes(data)


def fuzz_seeds(src: str, dst: str, term: int) -> list[bytes]:
    config = Membership(frozenset({src, dst})).encode()
    return [
        wire.encode_message(m)
        for m in (
            Message(MessageType.HEARTBEAT, term, src, dst, commit=1, context=b"\0" * 8),
            Message(
                MessageType.APPEND,
                term,
                src,
                dst,
                index=1,
                log_term=1,
                commit=1,
                entries=[
                    Entry(2, term, EntryKind.NORMAL, b"\0" * 10 + b"\3\0\0\0SET"),
                    Entry(3, term, EntryKind.CONFIG, config),
                ],
            ),
            Message(MessageType.VOTE, term, src, dst, index=1, log_term=1),
            Message(MessageType.SNAPSHOT, term, src, dst, index=5, log_term=1),
            Message(MessageType.APPEND_RESP, term, src, dst, index=1),
        )
    ]


def refused_locally(frame: bytes) -> bool:
    try:
        wire.decode_message(frame)
    except ProtocolError:
        return True
    return False


class BigFrameSender(threading.Thread):
    """Announces a 64 MiB APPEND and sends 60 MiB of it, then holds on."""

    def __init__(self, node: ServerProcess, hello_as: str | None) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.hello_as = hello_as
        self.sent = 0
        self.sock: socket.socket | None = None

    def run(self) -> None:
        deadline = time.monotonic() + ATTACK_DEADLINE
        try:
            self.sock = connect(self.node)
            head = hello(self.hello_as) if self.hello_as else b""
            head += struct.pack("<IBB", 64 * MIB, 1, int(MessageType.APPEND))
            self.sock.sendall(head)
            chunk = b"\0" * MIB
            while self.sent < 60 * MIB and time.monotonic() < deadline:
                self.sock.sendall(chunk)
                self.sent += len(chunk)
        except OSError:
            pass  # refused: the node closed the connection

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def test_hostile_frames_leave_the_cluster_up_with_its_leader(tmp_path: Path) -> None:
    with Cluster(tmp_path, size=3, node_timeout=500) as cluster:
        leader = cluster.leader()
        with cluster.client(leader) as c:
            assert c.set("before", "1")
        cluster.wait_applied(int(cluster.raft_info(leader)["raft_commit_index"]))
        before = state(cluster)
        leader_name = cluster.name(leader)
        term = before[0][1]
        assert all(t == term and lead == leader_name for _, t, lead in before)
        baseline = {n.port: rss(n) for n in cluster.nodes}

        for node in cluster.nodes:
            name = cluster.name(node)
            others = [cluster.name(n) for n in cluster.nodes if n is not node]
            # The CONFIG entry "from the leader" where it can be; each claimed
            # name once, so that neither warning is rate-limited away.
            config_from = leader_name if leader_name in others else others[0]
            heartbeat_from = next(n for n in others if n != config_from)
            # 1. The heartbeat with the term that cannot be incremented.
            heartbeat = wire.encode_message(
                Message(
                    MessageType.HEARTBEAT, 2**64 - 1, heartbeat_from, name, commit=1
                )
            )
            assert send_refused(node, hello(heartbeat_from) + heartbeat)
            # 2. An APPEND whose CONFIG entry does not parse.
            bad_config = wire.encode_message(
                Message(
                    MessageType.APPEND,
                    term,
                    config_from,
                    name,
                    index=1,
                    log_term=1,
                    commit=1,
                    entries=[Entry(2, term, EntryKind.CONFIG, b"\x00not a membership")],
                )
            )
            assert send_refused(node, hello(config_from) + bad_config)

        # 3. 8 connections per node with 64 MiB headers, 4 before any HELLO.
        senders = [
            BigFrameSender(node, None if k < 4 else some_other(cluster, node))
            for node in cluster.nodes
            for k in range(8)
        ]
        for s in senders:
            s.start()
        for s in senders:
            s.join(ATTACK_DEADLINE + 10)
        try:
            assert not any(s.is_alive() for s in senders)
            pre_hello = [s for s in senders if s.hello_as is None]
            # Refused on the header: hardly anything of theirs was taken.
            assert all(s.sent < 16 * MIB for s in pre_hello), [
                s.sent for s in pre_hello
            ]
            peaks = {n.port: rss(n, "VmHWM") for n in cluster.nodes}
            during = {n.port: rss(n) for n in cluster.nodes}
            print(
                "\nRSS MiB per node (before, during the attack, peak): "
                + ", ".join(
                    f"{baseline[p] / MIB:.0f}/{during[p] / MIB:.0f}/{peaks[p] / MIB:.0f}"
                    for p in baseline
                )
            )
            for port, peak in peaks.items():
                assert peak <= baseline[port] + RSS_BOUND, (port, baseline[port], peak)
            # The cluster works while the attackers still hold their sockets.
            with cluster.client(leader) as c:
                assert c.set("during", "2")
        finally:
            for s in senders:
                s.close()

        # 4. Fuzzed frames the decoder refuses, each on its own connection.
        rng = random.Random(11)
        sent = 0
        for node in cluster.nodes:
            name, member = cluster.name(node), some_other(cluster, node)
            seeds = fuzz_seeds(member, name, term)
            frames: list[bytes] = []
            deadline = time.monotonic() + 10
            while len(frames) < FUZZED_PER_NODE and time.monotonic() < deadline:
                frame = mutated(rng, rng.choice(seeds))
                if refused_locally(frame):
                    frames.append(frame)
            for frame in frames:
                # Half after a HELLO (the body parser), half before (the handshake).
                data = (hello(member) + frame) if rng.random() < 0.5 else frame
                with connect(node) as sock, contextlib.suppress(OSError):
                    sock.sendall(data)
                sent += 1
        assert sent >= 3 * FUZZED_PER_NODE // 2

        # Every node up, same leader and term; writes still commit everywhere.
        for node in cluster.nodes:
            assert node.alive(), node.log()[-3000:]
        with cluster.client(leader) as c:
            assert c.set("after", "3")
            index = int(cluster.raft_info(leader)["raft_commit_index"])
        cluster.wait_applied(index)
        after = state(cluster)
        assert after == before, (before, after)
        for node in cluster.nodes:
            with cluster.client(node) as c:
                assert c.get("after") == b"3"
        logs = cluster.logs()
        assert "Raft safety violation" not in logs
        assert "Internal error" not in logs
        assert "term 18446744073709551615 over the limit" in logs
        assert "CONFIG entry 2 does not parse" in logs
        # (Rate-limited per claimed member: at least one such line per node.)
        assert "Closing cluster bus connection from unidentified peer" in logs

        def settled() -> bool:
            return all(rss(n) <= baseline[n.port] + RSS_BOUND for n in cluster.nodes)

        wait_until(settled, 10, what="RSS back within the bound")
