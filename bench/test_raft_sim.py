"""Benchmark group "raft-core": proposals per second through a 3-node
in-process cluster with no faults and no I/O, 64 proposals per Ready round.

This is the Python cost of the Raft core per committed entry: propose, the
leader's batched AppendEntries, the followers' append and answer, commit and
the committed-entries hand-out, all through ready()/advance(). Writes are
free and messages are delivered at once, so nothing but the core is timed.

    pytest bench/test_raft_sim.py --benchmark-only
    pytest bench/test_raft_sim.py --benchmark-disable   # smoke test
"""

from __future__ import annotations

import random
from collections import deque

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from prez.raft.core import RaftConfig, RaftNode, Role
from prez.raft.types import HardState, Message

BATCH = 64
NAMES = ["n1", "n2", "n3"]


class LeanCluster:
    """The driver contract with instant writes and an instant network."""

    def __init__(self) -> None:
        self.nodes = {
            name: RaftNode(
                RaftConfig(name=name, peers=list(NAMES)),
                random.Random(i),
                HardState(),
                [],
            )
            for i, name in enumerate(NAMES)
        }
        self.applied = 0  # entries the leader handed out for applying
        self.rounds = 0
        self.nodes["n1"].campaign()
        self.settle()
        assert self.nodes["n1"].role is Role.LEADER
        self.payload = b"x" * 100

    def settle(self) -> None:
        queue: deque[Message] = deque()
        nodes = self.nodes
        busy = True
        while busy:
            busy = False
            for name, node in nodes.items():
                while node.has_ready():
                    busy = True
                    rd = node.ready()
                    queue.extend(rd.messages)
                    queue.extend(rd.persisted_messages)
                    if name == "n1":
                        self.applied += len(rd.committed_entries)
                    node.advance(rd)
            while queue:
                busy = True
                msg = queue.popleft()
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
