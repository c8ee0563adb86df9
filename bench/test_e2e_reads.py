"""Read benchmarks for issue 6: GET per read mode, and follower reads.

1. GET throughput against the leader of a 3-node cluster started with
   read-mode linearizable, then lease, then stale, each measured interleaved
   with one redis-server (no persistence) in the same run:
   redis-benchmark -t get -c 50 -r 100000 at -P 1 and -P 16, keys preloaded
   with -t set. Target: linearizable GET at least 0.6 of redis-server at -P 1
   (one confirmation round serves every read of a batch).
2. Reads answered by followers must not load the leader: the same fixed
   number of linearizable GETs sent (a) to the leader and (b) split across
   the two followers; the leader process's CPU seconds (utime + stime from
   /proc/<pid>/stat) spent during each run, per 100,000 reads. Target:
   (b)/(a) at most 0.3, the median of a few rounds. (b) runs twice: with
   -c 25 per follower (the same 50 clients in all as (a): the headline
   figure) and with -c 50 per follower (each node as loaded as the leader
   was in (a)), since the leader's cost follows the followers' batch size.

Under --benchmark-disable (the CI smoke run) the request counts and rounds
are cut so that the file only proves the paths work, in well under 30 s.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from prez.testing.cluster import Cluster
from prez.testing.loadtools import redis_benchmark, redis_server
from prez.testing.procs import ServerProcess

pytestmark = pytest.mark.integration

CLIENTS = 50
KEYSPACE = 100_000
# prez-cluster's default: long enough that a loaded 2-core machine does not
# trigger needless elections in the middle of a measurement.
NODE_TIMEOUT_MS = 1000
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process `pid` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may hold spaces, so
    # count fields from after its closing parenthesis: state is field 3 and
    # utime, stime are fields 14 and 15.
    fields = stat.rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS_PER_SECOND


def pid_of(node: ServerProcess) -> int:
    assert node.proc is not None and node.alive(), "node is not running"
    return node.proc.pid


@contextmanager
def read_cluster(base: Path, read_mode: str) -> Iterator[Cluster]:
    cluster = Cluster(
        base,
        node_timeout=NODE_TIMEOUT_MS,
        config={"read-mode": read_mode, "loglevel": "warning"},
    )
    try:
        cluster.start()
        yield cluster
    except BaseException:
        print(cluster.logs()[-5000:])
        raise
    finally:
        cluster.stop()


def leader_changes(cluster: Cluster, node: ServerProcess) -> int:
    return int(cluster.raft_info(node)["raft_leader_changes"])


def preload(port: int, requests: int) -> None:
    """Fill the keyspace redis-benchmark's GETs draw from (-r KEYSPACE)."""
    redis_benchmark(port, "set", requests, pipeline=16, keyspace=KEYSPACE)


def get_rps(port: int, requests: int, pipeline: int, clients: int = CLIENTS) -> float:
    rates = redis_benchmark(
        port, "get", requests, clients=clients, pipeline=pipeline, keyspace=KEYSPACE
    )
    return rates["GET"]


def test_get_per_read_mode_vs_redis(
    request: pytest.FixtureRequest, tmp_path: Path, ratio_report: list[str]
) -> None:
    smoke = request.config.getoption("benchmark_disable")
    requests = 5_000 if smoke else 200_000
    rounds = 1 if smoke else 3
    pipelines = (1, 16)
    # (mode, pipeline) -> per-round (prez rps, redis rps), each pair back to back.
    samples: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with redis_server(tmp_path / "redis", "--appendonly", "no") as redis_port:
        preload(redis_port, requests)
        for mode in ("linearizable", "lease", "stale"):
            with read_cluster(tmp_path / mode, mode) as cluster:
                leader = cluster.leader()
                assert cluster.raft_info(leader)["raft_read_mode"] == mode
                preload(leader.port, requests)
                changes_before = leader_changes(cluster, leader)
                for _ in range(rounds):
                    for pipeline in pipelines:
                        # Interleave the two servers so that machine noise
                        # hits both alike.
                        ref = get_rps(redis_port, requests, pipeline)
                        got = get_rps(leader.port, requests, pipeline)
                        samples.setdefault((mode, pipeline), []).append((got, ref))
                # A leader change mid-run would have measured an election.
                assert leader_changes(cluster, leader) == changes_before, (
                    f"leadership changed during the {mode} GET runs"
                )
    rows = []
    for (mode, pipeline), pairs in samples.items():
        # The median of the per-round ratios: each round's pair ran back to back.
        pairs.sort(key=lambda pair: pair[0] / pair[1])
        got_rps, ref_rps = pairs[len(pairs) // 2]
        rows.append((mode, pipeline, got_rps, ref_rps, got_rps / ref_rps))
    print(
        f"\n3-node cluster GET at the leader vs redis-server (no persistence); "
        f"-c {CLIENTS} -r {KEYSPACE} -n {requests}, median of {rounds} rounds"
    )
    print(
        f"{'read-mode':<13} {'-P':>3} {'prez rps':>12} {'redis rps':>12} {'ratio':>6}"
    )
    for mode, pipeline, got_rps, ref_rps, ratio in rows:
        print(
            f"{mode:<13} {pipeline:>3} {got_rps:>12,.0f} {ref_rps:>12,.0f} {ratio:>6.2f}"
        )
        target = " (target >= 0.60)" if (mode, pipeline) == ("linearizable", 1) else ""
        ratio_report.append(
            f"GET {mode} -P {pipeline} vs redis-server: {ratio:.2f}{target}"
        )
    assert len(rows) == 3 * len(pipelines)
    assert all(row[2] > 0 for row in rows)


def test_follower_reads_spare_the_leader(
    request: pytest.FixtureRequest, tmp_path: Path, ratio_report: list[str]
) -> None:
    smoke = request.config.getoption("benchmark_disable")
    reads = 20_000 if smoke else 200_000
    rounds = 1 if smoke else 3
    # How many redis-benchmark clients each follower gets in (b): the same
    # total as (a), and, for comparison, as many as the leader had alone. A
    # follower asks the leader for one read index per batch of reads (one
    # turn of its event loop), so the leader's share falls as batches grow.
    splits = {"same total clients": CLIENTS // 2, "same clients per node": CLIENTS}
    with read_cluster(tmp_path / "cluster", "linearizable") as cluster:
        leader = cluster.leader()
        followers = cluster.followers(leader)
        leader_pid = pid_of(leader)
        preload(leader.port, reads)
        # Followers must have applied the preload before their reads are
        # compared with the leader's: otherwise (b) includes catching up.
        cluster.wait_applied(int(cluster.raft_info(leader)["raft_applied_index"]))
        changes_before = leader_changes(cluster, leader)

        def leader_cpu_during(run: Callable[[], object]) -> float:
            started = cpu_seconds(leader_pid)
            run()
            return cpu_seconds(leader_pid) - started

        def split_across_followers(clients_each: int) -> None:
            # Half the reads to each follower, both at once.
            with ThreadPoolExecutor(len(followers)) as pool:
                runs = [
                    pool.submit(
                        get_rps,
                        follower.port,
                        reads // len(followers),
                        1,
                        clients_each,
                    )
                    for follower in followers
                ]
                for run in runs:
                    run.result()

        def reads_at(node: ServerProcess) -> int:
            return int(cluster.raft_info(node)["raft_reads"])

        def forwarded_by(node: ServerProcess) -> int:
            return int(cluster.raft_info(node)["raft_forwarded"])

        at_leader: list[float] = []
        via_followers: dict[str, list[float]] = {split: [] for split in splits}
        for _ in range(rounds):
            cpu = leader_cpu_during(lambda: get_rps(leader.port, reads, 1))
            at_leader.append(cpu * 100_000 / reads)
            for split, clients_each in splits.items():
                leader_reads = reads_at(leader)
                follower_reads = [reads_at(f) for f in followers]
                forwarded = [forwarded_by(f) for f in followers]
                cpu = leader_cpu_during(partial(split_across_followers, clients_each))
                via_followers[split].append(cpu * 100_000 / reads)
                # The followers answered the GETs themselves: the leader ran
                # none (INFO counts as no read) and nothing was forwarded.
                served = [
                    reads_at(f) - before
                    for f, before in zip(followers, follower_reads, strict=True)
                ]
                assert served == [reads // len(followers)] * len(followers), served
                assert reads_at(leader) == leader_reads
                assert [forwarded_by(f) for f in followers] == forwarded

        idle_seconds = 1.0 if smoke else 3.0
        # A measurement window, not a wait: what the leader burns on ticks
        # and heartbeats alone, to read the figures above against.
        idle_cpu = leader_cpu_during(lambda: time.sleep(idle_seconds))
        assert leader_changes(cluster, leader) == changes_before, (
            "leadership changed during the follower-read runs"
        )
    at_leader_cpu = statistics.median(at_leader)
    print(
        f"\nleader CPU seconds per 100,000 linearizable GETs "
        f"(-n {reads} -P 1, median of {rounds} rounds)"
    )
    print(f"  (a) answered by the leader, -c {CLIENTS}: {at_leader_cpu:.3f}")
    print(f"      rounds: {[f'{x:.3f}' for x in at_leader]}")
    for split, clients_each in splits.items():
        cpu = statistics.median(via_followers[split])
        ratio = cpu / at_leader_cpu
        print(
            f"  (b) answered by the two followers, -c {clients_each} each "
            f"({split}): {cpu:.3f}, (b)/(a) {ratio:.2f} (target <= 0.30)"
        )
        print(f"      rounds: {[f'{x:.3f}' for x in via_followers[split]]}")
        ratio_report.append(
            f"leader CPU per 100k reads, via followers ({split}) / at leader: "
            f"{ratio:.2f} (target <= 0.30)"
        )
    print(f"  leader idle: {idle_cpu / idle_seconds:.3f} CPU s per wall second")
    assert at_leader_cpu > 0
