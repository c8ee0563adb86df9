"""Membership changes on real prez-server processes (issue 5 benchmark).

Two measurements, in the same run:

1. Time from `RAFT.NODE ADD` to the new node being a caught-up voter
   (promoted, and its match index at the leader's commit index) in a
   3-node cluster holding N keys. The node is started right after the ADD
   is answered, with an empty data directory, so the time includes its
   start-up and its whole catch-up.
2. redis-benchmark SET throughput against the leader without any change,
   then while a node joins (the ADD is sent as the benchmark starts), with
   the ratio of the two.

N is 100,000 small string keys when benchmarking and 10,000 under
`--benchmark-disable` (the CI smoke run). Numbers are printed, not
asserted (a shared 2-core machine); what is asserted is behaviour: the new
node ends a voter holding every key.

Run: python -m pytest bench/test_membership.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from prez.testing.cluster import Cluster
from prez.testing.loadtools import redis_benchmark
from prez.testing.procs import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

FULL_KEYS = 100_000
SMOKE_KEYS = 10_000
PIPELINE = 2_000
BENCH_REQUESTS = 30_000


def _caught_up_voter(cluster: Cluster, leader: object, name: str) -> bool:
    members = cluster.members(leader)  # type: ignore[arg-type]
    row = members.get(name)
    if row is None or row[b"role"] != b"voter":
        return False
    commit = int(cluster.raft_info(leader)["raft_commit_index"])  # type: ignore[arg-type]
    return int(row[b"match_index"]) >= commit - 1


def test_join_time_and_throughput(
    tmp_path: Path, request: pytest.FixtureRequest, ratio_report: list[str]
) -> None:
    smoke = bool(request.config.getoption("benchmark_disable"))
    keys = SMOKE_KEYS if smoke else FULL_KEYS
    requests = BENCH_REQUESTS // 10 if smoke else BENCH_REQUESTS
    with Cluster(
        tmp_path, size=3, node_timeout=1000, config={"loglevel": "notice"}
    ) as cluster:
        leader = cluster.leader()
        with cluster.client(leader, socket_timeout=60) as c:
            for start in range(0, keys, PIPELINE):
                pipe = c.pipeline(transaction=False)
                for i in range(start, min(keys, start + PIPELINE)):
                    pipe.set(f"key:{i:08d}", f"value-{i}")
                pipe.execute()

        # 1. ADD -> caught-up voter, nothing else running.
        started = time.perf_counter()
        first = cluster.add_node(via=leader)
        name = cluster.name(first)
        wait_until(
            lambda: _caught_up_voter(cluster, leader, name),
            300,
            interval=0.02,
            what=f"{name} a caught-up voter",
        )
        join_seconds = time.perf_counter() - started

        # 2. SET throughput without a change, then while a node joins.
        baseline = redis_benchmark(leader.port, "set", requests)["SET"]
        joined: list[float] = []

        def join_one() -> None:
            t0 = time.perf_counter()
            node = cluster.add_node(via=leader)
            wait_until(
                lambda: _caught_up_voter(cluster, leader, cluster.name(node)),
                300,
                interval=0.02,
                what="the second node caught up",
            )
            joined.append(time.perf_counter() - t0)

        joiner = threading.Thread(target=join_one)
        joiner.start()
        during = redis_benchmark(leader.port, "set", requests)["SET"]
        joiner.join(300)
        assert joined, "the second node did not join"

        for node in cluster.nodes:
            with cluster.client(node) as c:
                wait_until(
                    lambda c=c: (
                        c.get(f"key:{keys - 1:08d}") == f"value-{keys - 1}".encode()
                    ),
                    30,
                    what="the last key everywhere",
                )
        line = (
            f"membership: {keys} keys; RAFT.NODE ADD -> caught-up voter "
            f"{join_seconds:.2f} s (idle), {joined[0]:.2f} s (under SET load); "
            f"SET {baseline:.0f}/s without a change, {during:.0f}/s while a node "
            f"joins (ratio {during / baseline:.2f})"
        )
        print(line)
        ratio_report.append(line)
