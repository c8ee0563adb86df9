"""Benchmark group "raft-core": proposals per second through a 3-node
in-process cluster with no faults and no I/O, 64 proposals per Ready round.

This is the Python cost of the Raft core per committed entry: propose, the
leader's batched AppendEntries, the followers' append and answer, commit and
the committed-entries hand-out, all through ready()/advance(). Writes are
free and messages are delivered at once, so nothing but the core is timed.
The same with every node compacting its log every 1024 entries gives the
cost of compaction in the core (the ratio is printed at the end).

Benchmark group "raft-catch-up": the core's work to bring a follower that
was down while 20,000 entries were committed up to date again, by
replaying the log (no compaction) or by one InstallSnapshot (the leader
compacted): time and messages. Moving the snapshot bytes is the driver's
and not timed here; bench/test_snapshot.py measures that.

    pytest bench/test_raft_sim.py --benchmark-only
    pytest bench/test_raft_sim.py --benchmark-disable   # smoke test
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from prez.raft.core import RaftConfig, RaftNode, Ready, Role
from prez.raft.ready_loop import ReadyLoop
from prez.raft.types import Entry, HardState, Message, MessageType, SnapshotMeta

BATCH = 64
NAMES = ["n1", "n2", "n3"]
COMPACT_EVERY = 1024
CATCH_UP_ENTRIES = 20_000


class _FreeIO:
    """Log, transport and state machine for the ReadyLoop at no cost:
    writes are durable at once, messages join one queue."""

    def __init__(self, queue: deque[Message]) -> None:
        self.send = self.send_durable = queue.extend

    def install_snapshot_base(self, snapshot: SnapshotMeta) -> None:
        pass

    def write(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        pass

    def sync(self) -> None:
        pass

    def restore(self, snapshot: SnapshotMeta) -> None:
        pass

    def apply(self, rd: Ready) -> None:
        pass


class LeanCluster:
    """The driver contract with instant writes and an instant network; with
    `compact_every`, every node compacts once it applied that many entries
    past its last snapshot (the snapshot itself is free here)."""

    def __init__(self, compact_every: int = 0) -> None:
        self.compact_every = compact_every
        self.down: set[str] = set()  # nodes that receive nothing
        self.delivered: dict[str, int] = {name: 0 for name in NAMES}
        self.nodes = {
            name: RaftNode(
                RaftConfig(name=name, peers=list(NAMES)),
                random.Random(i),
                HardState(),
                [],
            )
            for i, name in enumerate(NAMES)
        }
        # The server's Ready order (prez.raft.ready_loop), with free writes
        # and an instant network.
        self.queue: deque[Message] = deque()
        self.free = _FreeIO(self.queue)
        self.loops: dict[str, ReadyLoop] = {}
        self.applied = 0  # entries the leader handed out for applying
        self.rounds = 0
        self.nodes["n1"].campaign()
        self.settle()
        assert self.nodes["n1"].role is Role.LEADER
        self.payload = b"x" * 100

    def settle(self) -> None:
        queue = self.queue
        nodes = self.nodes
        compact_every = self.compact_every
        busy = True
        while busy:
            busy = False
            for name, node in nodes.items():
                loop = self.loops.get(name)
                if loop is None or loop.node is not node:  # (re)started
                    free = self.free
                    loop = self.loops[name] = ReadyLoop(node, free, free, free)
                while (rd := loop.run_sync()) is not None:
                    busy = True
                    if name == "n1":
                        self.applied += len(rd.committed_entries)
                    if (
                        compact_every
                        and node.applied_index - node.log.offset >= compact_every
                    ):
                        node.compact(node.applied_index)
            while queue:
                busy = True
                msg = queue.popleft()
                if msg.dst in self.down:
                    continue
                self.delivered[msg.dst] += 1
                if msg.type == MessageType.SNAPSHOT:
                    # The driver's transfer, done at once: the follower
                    # steps the leader's snapshot point, the leader hears ok.
                    nodes[msg.dst].step(msg)
                    nodes[msg.src].report_snapshot(msg.dst, True)
                    continue
                nodes[msg.dst].step(msg)

    def round(self) -> None:
        self.rounds += 1
        leader = self.nodes["n1"]
        payload = self.payload
        for _ in range(BATCH):
            leader.propose(payload)
        self.settle()


@pytest.mark.benchmark(group="raft-core")
def test_proposals_through_three_nodes(benchmark: BenchmarkFixture) -> None:
    cluster = LeanCluster()
    before = cluster.applied
    benchmark(cluster.round)
    # Every round's batch committed and reached the leader's state machine
    # within the round itself.
    assert cluster.rounds >= 1
    assert cluster.applied - before == cluster.rounds * BATCH
    leader = cluster.nodes["n1"]
    assert all(
        node.commit_index == leader.last_index for node in cluster.nodes.values()
    )
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["proposals_per_second"] = round(BATCH / stats.stats.mean)


@pytest.mark.benchmark(group="raft-core")
def test_proposals_through_three_compacting_nodes(benchmark: BenchmarkFixture) -> None:
    cluster = LeanCluster(compact_every=COMPACT_EVERY)
    before = cluster.applied
    benchmark(cluster.round)
    assert cluster.applied - before == cluster.rounds * BATCH
    for node in cluster.nodes.values():
        # Bounded: never more than a threshold and a batch past the snapshot.
        assert len(node.log.entries) <= COMPACT_EVERY + BATCH
        if node.last_index > COMPACT_EVERY + BATCH:
            assert node.snapshot is not None


def lagging_follower_cluster(compact: bool) -> LeanCluster:
    """n3 down while the others commit CATCH_UP_ENTRIES entries (and, with
    `compact`, compact everything), then n3 restarted from its disk."""
    cluster = LeanCluster()
    stopped = cluster.nodes["n3"]
    durable = (
        HardState(stopped.term, stopped.vote, stopped.commit_index),
        list(stopped.log.entries),
    )
    cluster.down.add("n3")
    leader = cluster.nodes["n1"]
    for _ in range(CATCH_UP_ENTRIES // BATCH):
        cluster.round()
    if compact:
        for name in ("n1", "n2"):
            node = cluster.nodes[name]
            node.compact(node.applied_index)
    cluster.nodes["n3"] = RaftNode(
        RaftConfig(name="n3", peers=list(NAMES)), random.Random(3), *durable
    )
    cluster.down.clear()
    cluster.delivered["n3"] = 0
    assert leader.role is Role.LEADER
    return cluster


def catch_up(cluster: LeanCluster) -> None:
    leader = cluster.nodes["n1"]
    while cluster.nodes["n3"].commit_index < leader.commit_index:
        leader.tick()  # a heartbeat: its answer starts the probe
        cluster.settle()


@pytest.mark.benchmark(group="raft-catch-up")
@pytest.mark.parametrize("by", ["log-replay", "snapshot"])
def test_catch_up_a_follower_that_was_down(
    benchmark: BenchmarkFixture, by: str
) -> None:
    cluster = lagging_follower_cluster(compact=by == "snapshot")
    # One round: a caught-up follower has nothing left to catch up.
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        catch_up, args=(cluster,), rounds=1, iterations=1
    )
    follower = cluster.nodes["n3"]
    assert follower.commit_index == cluster.nodes["n1"].commit_index
    # Caught up by the means named: one snapshot at the leader's compaction
    # point, or the whole log.
    leader_snapshot = cluster.nodes["n1"].snapshot
    if by == "snapshot":
        assert (
            leader_snapshot is not None
            and leader_snapshot.index > CATCH_UP_ENTRIES // 2
        )
        assert follower.snapshot == leader_snapshot
    else:
        assert leader_snapshot is None and follower.snapshot is None
        assert len(follower.log.entries) == follower.last_index
    benchmark.extra_info["messages_to_follower"] = cluster.delivered["n3"]


def best_seconds(
    run: Callable[[object], None], repeat: int, setup: Callable[[], object] = object
) -> float:
    """The best of `repeat` timed runs, each on a fresh untimed setup."""
    best = float("inf")
    for _ in range(repeat):
        prepared = setup()
        started = time.perf_counter()
        run(prepared)
        best = min(best, time.perf_counter() - started)
    return best


def test_compaction_and_catch_up_ratios(ratio_report: list[str]) -> None:
    """Side by side in one run: the core's cost of compacting every 1024
    entries, and catching a far-behind follower up by snapshot vs by log."""
    rounds = 200

    def proposals(cluster: object) -> None:
        assert isinstance(cluster, LeanCluster)
        for _ in range(rounds):
            cluster.round()

    plain = best_seconds(proposals, 5, LeanCluster)
    compacting = best_seconds(proposals, 5, lambda: LeanCluster(COMPACT_EVERY))

    def run_catch_up(cluster: object) -> None:
        assert isinstance(cluster, LeanCluster)
        catch_up(cluster)

    by_log = best_seconds(run_catch_up, 3, lambda: lagging_follower_cluster(False))
    by_snapshot = best_seconds(run_catch_up, 3, lambda: lagging_follower_cluster(True))
    ratio_report.append(
        f"raft-core: compacting every {COMPACT_EVERY} entries costs "
        f"{compacting / plain:.2f}x the proposals without compaction "
        f"({rounds * BATCH / plain / 1e3:.0f}k vs {rounds * BATCH / compacting / 1e3:.0f}k/s)"
    )
    ratio_report.append(
        f"raft-catch-up ({CATCH_UP_ENTRIES} entries behind): log replay "
        f"{by_log * 1e3:.2f} ms = {by_log / by_snapshot:.0f}x InstallSnapshot "
        f"{by_snapshot * 1e3:.3f} ms of core time"
    )
    # Loose floors only (a shared machine): compaction must not make the
    # core markedly slower, and a snapshot must beat shipping the log.
    assert compacting < 1.5 * plain
    assert by_snapshot < by_log
