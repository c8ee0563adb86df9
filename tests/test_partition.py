"""Network partitions between real prez-server processes (issue 6).

Partitions are made outside the servers, with iptables DROP rules between
per-node loopback addresses (prez.testing.partition explains why rather
than network namespaces). The first tests check the Partitioner itself with
raw sockets; the others run clusters of 3 (cluster-node-timeout 500, each
node on its own 127.A.B.X address) and check CheckQuorum, PreVote and that
a minority never acknowledges a write.

Without iptables, or without the right to use it, every test here that
needs it is skipped with the reason; PREZ_REQUIRE_PARTITIONS=1 (for CI,
which runs as root) turns that skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from prez.server.forward import Forwarder
from prez.server.peer import PeerBus
from prez.testing.cluster import Cluster
from prez.testing.partition import (
    CHAIN_PREFIX,
    Partitioner,
    connection_sources,
    loopback_hosts,
    remove_stale_chains,
    unavailable_reason,
)
from prez.testing.procs import Fatal, ServerProcess, wait_until

TIMEOUT_MS = 500
ELECTION_TIMEOUT = TIMEOUT_MS / 1000
# A connect that gets no answer within this long is taken as dropped; a
# connect across a healthy loopback link answers in well under a millisecond.
SILENCE = 0.5


@pytest.fixture(scope="module")
def iptables() -> None:
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("PREZ_REQUIRE_PARTITIONS") == "1":
        pytest.fail(f"partitions required (PREZ_REQUIRE_PARTITIONS=1) but {reason}")
    pytest.skip(f"network partitions need iptables: {reason}")


def iptables_rules() -> str:
    return subprocess.run(
        ["iptables", "-w", "5", "-S"], capture_output=True, text=True, check=True
    ).stdout


# ---- the Partitioner itself, with raw sockets ----------------------------------


@dataclass
class Listener:
    sock: socket.socket

    @property
    def addr(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return str(host), int(port)


@pytest.fixture
def listen() -> Iterator[Any]:
    sockets: list[socket.socket] = []

    def make(host: str) -> Listener:
        s = socket.socket()
        s.bind((host, 0))
        s.listen(16)
        sockets.append(s)
        return Listener(s)

    yield make
    for s in sockets:
        s.close()


def connects(source: str, listener: Listener) -> bool:
    """Whether a TCP connection from source to the listener is made in time."""
    try:
        with socket.create_connection(
            listener.addr, timeout=SILENCE, source_address=(source, 0)
        ):
            pass
    except TimeoutError:
        return False
    conn, _ = listener.sock.accept()
    conn.close()
    return True


def test_cut_drops_loopback_traffic_both_ways_and_heal_restores_it(
    iptables: None, listen: Any
) -> None:
    a, b, c = loopback_hosts(3)
    at_a, at_b = listen(a), listen(b)
    assert connects(a, at_b) and connects(b, at_a)
    with Partitioner([a, b, c]) as partitioner:
        partitioner.cut(a, b)
        assert not connects(a, at_b), "a reached b across the cut"
        assert not connects(b, at_a), "b reached a across the cut"
        # Only that link: a third address still reaches both.
        assert connects(c, at_b) and connects(c, at_a)
        partitioner.heal()
        assert connects(a, at_b) and connects(b, at_a)


def test_cut_silences_an_established_connection_until_healed(
    iptables: None, listen: Any
) -> None:
    a, b = loopback_hosts(2)
    at_b = listen(b)
    with (
        Partitioner([a, b]) as partitioner,
        socket.create_connection(at_b.addr, timeout=5, source_address=(a, 0)) as out,
    ):
        conn, _ = at_b.sock.accept()
        with conn:
            conn.settimeout(SILENCE)
            partitioner.isolate(a)
            out.sendall(b"across")
            # Dropped, not refused: the connection stays open and silent.
            with pytest.raises(TimeoutError):
                conn.recv(16)
            partitioner.heal()
            # TCP retransmits once the link is back (after its backoff).
            conn.settimeout(10)
            assert conn.recv(16) == b"across"


def test_isolate_and_partition_name_every_link_both_ways(iptables: None) -> None:
    a, b, c = loopback_hosts(3)
    with Partitioner([a, b, c]) as partitioner:
        partitioner.isolate(a)
        expected = {(a, b), (b, a), (a, c), (c, a)}
        assert partitioner.cuts == expected
        rules = partitioner.rules()
        assert sorted(rules) == sorted(
            f"-A {partitioner.chain} -s {src}/32 -d {dst}/32 -j DROP"
            for src, dst in expected
        )
        partitioner.partition([a], [b, c])  # the same links: no duplicate rules
        assert len(partitioner.rules()) == 4
        partitioner.heal()
        assert partitioner.rules() == []
        partitioner.partition([a, b], [c])
        assert partitioner.cuts == {(a, c), (c, a), (b, c), (c, b)}
        with pytest.raises(ValueError, match="not one of the nodes"):
            partitioner.isolate("127.0.0.1")
        with pytest.raises(ValueError, match="not a loopback address"):
            partitioner.cut(a, "10.0.0.1")


def test_close_removes_only_its_own_chain(iptables: None) -> None:
    a, b = loopback_hosts(2)
    # Someone else's chain and rule, which cleanup must leave alone.
    other = f"PREZ-OTHER-{os.getpid()}"
    subprocess.run(["iptables", "-w", "5", "-N", other], check=True)
    try:
        subprocess.run(
            ["iptables", "-w", "5", "-A", other, "-s", a, "-d", b, "-j", "DROP"],
            check=True,
        )
        before = iptables_rules()
        partitioner = Partitioner([a, b]).install()
        partitioner.cut(a, b)
        during = iptables_rules()
        assert f"-A OUTPUT -j {partitioner.chain}" in during
        assert f"-A {partitioner.chain} -s {a}/32 -d {b}/32 -j DROP" in during
        partitioner.close()
        assert iptables_rules() == before
        partitioner.close()  # again: nothing left to do, no error
    finally:
        subprocess.run(["iptables", "-w", "5", "-F", other], check=False)
        subprocess.run(["iptables", "-w", "5", "-X", other], check=False)


def test_chain_left_by_a_killed_test_process_is_removed(iptables: None) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now names no process
    stale = f"{CHAIN_PREFIX}{gone.pid}-1"
    a, b = loopback_hosts(2)
    for args in (
        ["-N", stale],
        ["-A", stale, "-s", a, "-d", b, "-j", "DROP"],
        ["-I", "OUTPUT", "1", "-j", stale],
    ):
        subprocess.run(["iptables", "-w", "5", *args], check=True)
    try:
        with Partitioner([a, b]) as partitioner:
            rules = iptables_rules()
            assert stale not in rules
            assert f"-A OUTPUT -j {partitioner.chain}" in rules
    finally:
        remove_stale_chains()
    assert stale not in iptables_rules()


# ---- outbound connections start from the node's own address ----------------------


async def _source_of_first_connection(host: str, connect: Any) -> str:
    """Start a listener on host, run connect(port), return the peer's address."""
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def accept(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if not seen.done():
            seen.set_result(writer.get_extra_info("peername")[0])
        # Answer a forwarded PING so that the forwarder's Future resolves.
        data = await reader.read(1024)
        if b"PING" in data:
            writer.write(b"+PONG\r\n")
            await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(accept, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        closer = await connect(port)
        try:
            return await asyncio.wait_for(seen, 5)
        finally:
            await closer()
    finally:
        server.close()


@pytest.mark.parametrize("pinned", [True, False], ids=["source_host", "default"])
def test_peer_bus_dials_from_source_host(pinned: bool) -> None:
    own, other = loopback_hosts(2)

    async def run() -> str:
        async def connect(port: int) -> Any:
            bus = PeerBus(
                "a",
                f"{own}:1",
                {"a": (own, 0), "b": (other, port)},
                lambda msg: None,
                source_host=own if pinned else None,
            )
            await bus.start(own, 0)
            return bus.close

        return await _source_of_first_connection(other, connect)

    assert asyncio.run(run()) == (own if pinned else "127.0.0.1")


@pytest.mark.parametrize("pinned", [True, False], ids=["source_host", "default"])
def test_forwarder_dials_from_source_host(pinned: bool) -> None:
    own, leader = loopback_hosts(2)

    async def run() -> str:
        async def connect(port: int) -> Any:
            forwarder = Forwarder(source_host=own if pinned else None)
            reply = forwarder.forward(f"{leader}:{port}", 0, False, [b"PING"])

            async def close() -> None:
                assert bytes(await asyncio.wait_for(reply, 5)) == b"+PONG\r\n"
                await forwarder.close()

            return close

        return await _source_of_first_connection(leader, connect)

    assert asyncio.run(run()) == (own if pinned else "127.0.0.1")


# ---- real clusters ----------------------------------------------------------------


def info(cluster: Cluster, node: ServerProcess) -> dict[str, Any]:
    return cluster.raft_info(node)


def bus_addr(cluster: Cluster, node: ServerProcess) -> tuple[str, int]:
    return cluster.host(node), int(node.config["cluster-port"])


@pytest.fixture
def cluster(iptables: None, tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, size=3, node_timeout=TIMEOUT_MS, own_hosts=True) as c:
        hosts = {c.host(n) for n in c.nodes}

        def bus_sources_known() -> bool:
            # Every node has dialed every other: two connections per bus port.
            sources = [connection_sources(bus_addr(c, n)) for n in c.nodes]
            return all(len(s) == 2 for s in sources) or any(s - hosts for s in sources)

        wait_until(bus_sources_known, 20, what="cluster bus connections")
        for node in c.nodes:
            sources = connection_sources(bus_addr(c, node))
            assert sources <= hosts, (
                f"connections to {c.name(node)}'s cluster port come from {sources}, "
                f"not from the nodes' own addresses {hosts}: the server must pass "
                "its bind address as source_host to PeerBus and Forwarder, or no "
                "partition can be made"
            )
        try:
            yield c
        except BaseException:
            print(c.logs())
            raise


@pytest.fixture
def partitioner(cluster: Cluster) -> Iterator[Partitioner]:
    with Partitioner(cluster.nodes) as p:
        yield p


def set_ok(cluster: Cluster, node: ServerProcess, key: str, value: str) -> bool:
    with cluster.client(node, socket_timeout=10) as c:
        return bool(c.set(key, value))


def wait_converged(cluster: Cluster, acked: dict[str, str]) -> None:
    """After healing: one leader for all, same keyspace everywhere, nothing lost."""
    leader = cluster.leader(timeout=30)
    commit = int(info(cluster, leader)["raft_commit_index"])
    cluster.wait_applied(commit, timeout=30)

    def digests() -> set[bytes]:
        found = set()
        for node in cluster.nodes:
            with cluster.client(node, socket_timeout=5) as c:
                found.add(c.execute_command("DEBUG", "DIGEST"))
        return found

    wait_until(lambda: len(digests()) == 1, 30, interval=0.1, what="equal digests")
    keys = sorted(acked)
    for node in cluster.nodes:
        with cluster.client(node) as c:
            got = c.mget(keys) if keys else []
        lost = [
            (k, acked[k], v)
            for k, v in zip(keys, got, strict=True)
            if v != acked[k].encode()
        ]
        assert not lost, f"{cluster.name(node)} lacks acknowledged writes: {lost[:5]}"


@pytest.mark.integration
def test_leader_cut_off_from_majority_steps_down_while_majority_moves_on(
    cluster: Cluster, partitioner: Partitioner
) -> None:
    old = cluster.leader()
    majority = cluster.followers(old)
    acked = {f"before{i}": f"v{i}" for i in range(20)}
    for key, value in acked.items():
        assert set_ok(cluster, old, key, value)
    term_before = int(info(cluster, old)["raft_term"])

    cut_at = time.monotonic()
    partitioner.isolate(old)

    # CheckQuorum: the old leader notices within about an election timeout
    # (it checks once per election timeout, so at most two).
    wait_until(
        lambda: info(cluster, old)["raft_role"] != "leader",
        10,
        interval=0.01,
        what="the old leader stepping down",
    )
    stepped_down = time.monotonic() - cut_at
    new = cluster.leader(timeout=10, among=majority)
    elected = time.monotonic() - cut_at
    assert new is not old
    assert int(info(cluster, new)["raft_term"]) > term_before
    assert stepped_down < 4 * ELECTION_TIMEOUT, (
        f"the cut-off leader stepped down only after {stepped_down:.2f}s"
    )
    assert elected < 10 * ELECTION_TIMEOUT, f"new leader after {elected:.2f}s"

    for i in range(20):
        key, value = f"during{i}", f"v{i}"
        assert set_ok(cluster, new, key, value)
        acked[key] = value
    # A write sent to the old leader is refused, never acknowledged.
    with (
        pytest.raises(redis.RedisError) as refused,
        cluster.client(old, socket_timeout=5) as c,
    ):
        c.set("on-the-old-leader", "x")
    print(
        f"stepped down after {stepped_down:.3f}s, new leader after {elected:.3f}s; "
        f"write to the old leader: {refused.value!r}"
    )

    partitioner.heal()
    wait_converged(cluster, acked)
    with cluster.client(new) as c:
        assert c.get("on-the-old-leader") is None


@pytest.mark.integration
def test_follower_isolated_and_healed_again_and_again_leaves_the_leader_alone(
    cluster: Cluster, partitioner: Partitioner
) -> None:
    leader = cluster.leader()
    follower, other = cluster.followers(leader)
    majority = [leader, other]
    name = cluster.name(leader)
    term = info(cluster, leader)["raft_term"]

    def majority_changed(when: str) -> str | None:
        for node in majority:
            now = info(cluster, node)
            if (now["raft_leader"], now["raft_term"]) != (name, term):
                return (
                    f"{when}: {cluster.name(node)} follows {now['raft_leader']!r} "
                    f"in term {now['raft_term']}, not {name} in term {term}"
                )
        return None

    def assert_majority_unchanged(when: str) -> None:
        change = majority_changed(when)
        assert change is None, change

    acked: dict[str, str] = {}
    for cycle in range(8):
        partitioner.isolate(follower)
        isolated_at = time.monotonic()
        key, value = f"cycle{cycle}", f"v{cycle}"
        assert set_ok(cluster, leader, key, value)
        acked[key] = value
        written = int(info(cluster, leader)["raft_commit_index"])
        # Longer than any election timeout (randomized up to twice the
        # base): the follower's timer fires at least once while it is cut off.
        while time.monotonic() - isolated_at < 2.5 * ELECTION_TIMEOUT:
            assert_majority_unchanged(f"cycle {cycle}, isolated")
            time.sleep(0.05)
        # The cut is real: the follower has not seen the write.
        assert int(info(cluster, follower)["raft_applied_index"]) < written
        partitioner.heal()

        def rejoined(written: int = written, cycle: int = cycle) -> bool:
            change = majority_changed(f"cycle {cycle}, healing")
            if change is not None:
                raise Fatal(change)  # waiting longer cannot undo it
            now = info(cluster, follower)
            return (
                now["raft_leader"] == name and int(now["raft_applied_index"]) >= written
            )

        wait_until(rejoined, 20, interval=0.05, what=f"cycle {cycle}: rejoin")
        assert_majority_unchanged(f"cycle {cycle}, healed")
        assert info(cluster, follower)["raft_term"] == term
    wait_converged(cluster, acked)
    assert_majority_unchanged("at the end")


@dataclass
class Attempt:
    node: int
    key: str
    value: str
    sent_at: float
    answered_at: float
    ok: bool
    error: str = ""


class Writers:
    """One client per node, each writing fresh keys to its node in a loop."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.attempts: list[Attempt] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, args=(i,), daemon=True)
            for i in range(len(cluster.nodes))
        ]

    def run(self, index: int) -> None:
        node = self.cluster.nodes[index]
        # No retries: each attempt is one request, timed from send to answer.
        client = self.cluster.client(
            node, socket_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        deadline = time.monotonic() + 120  # bounded whatever happens
        n = 0
        while not self.stop.is_set() and time.monotonic() < deadline:
            key, value = f"n{index}:{n}", f"v{n}"
            n += 1
            sent_at = time.monotonic()
            try:
                ok, error = bool(client.set(key, value)), ""
            except redis.RedisError as e:
                ok, error = False, f"{type(e).__name__}: {e}"
                client.close()
                time.sleep(0.02)  # pacing: do not spin on a refusing node
            with self.lock:
                self.attempts.append(
                    Attempt(index, key, value, sent_at, time.monotonic(), ok, error)
                )
        client.close()

    def snapshot(self) -> list[Attempt]:
        with self.lock:
            return list(self.attempts)

    def acked(self) -> dict[str, str]:
        return {a.key: a.value for a in self.snapshot() if a.ok}

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


@pytest.mark.integration
@pytest.mark.parametrize("cut_off", ["follower", "leader"])
def test_minority_never_acknowledges_a_write(
    cluster: Cluster, partitioner: Partitioner, cut_off: str
) -> None:
    leader = cluster.leader()
    minority = leader if cut_off == "leader" else cluster.followers(leader)[0]
    lone = cluster.nodes.index(minority)
    majority = [n for n in cluster.nodes if n is not minority]

    with Writers(cluster) as writers:

        def acked_by(node: int, since: float) -> int:
            return sum(
                a.ok and a.node == node and a.sent_at > since
                for a in writers.snapshot()
            )

        started = time.monotonic()
        wait_until(
            lambda: all(acked_by(i, started) >= 5 for i in range(3)),
            20,
            what="writes acknowledged on every node before the partition",
        )
        partitioner.isolate(minority)
        cut_at = time.monotonic()
        cluster.leader(timeout=10, among=majority)
        # Long enough for the minority to give up on the leader it knew, and
        # for the majority to go on acknowledging writes.
        wait_until(
            lambda: (
                time.monotonic() - cut_at > 6 * ELECTION_TIMEOUT
                and all(
                    acked_by(cluster.nodes.index(n), cut_at) >= 10 for n in majority
                )
            ),
            20,
            interval=0.05,
            what="writes acknowledged by the majority during the partition",
        )
        healed_at = time.monotonic()
        partitioner.heal()
        wait_until(
            lambda: acked_by(lone, healed_at) >= 5,
            30,
            what="the healed minority acknowledging writes again",
        )

    during = [
        a
        for a in writers.snapshot()
        if a.node == lone and a.sent_at > cut_at and a.answered_at < healed_at
    ]
    assert during, "no write to the minority was answered during the partition"
    wrong = [a for a in during if a.ok]
    assert not wrong, f"the minority acknowledged {len(wrong)} writes: {wrong[:3]}"
    errors = sorted({a.error[:70] for a in during})
    print(f"minority ({cut_off}): {len(during)} writes refused, e.g. {errors[:3]}")
    wait_converged(cluster, writers.acked())
