"""Power loss on every node at once (issue 11, part 2).

A 3-node cluster keeps its node directories in a PowerFS mount
(prez.testing.powerfs: an in-memory FUSE filesystem that keeps, across a
power cut, exactly what was fsynced: file data on fsync of the file,
directory entries on fsync of the directory). Each cycle starts (or
restarts) all three servers, waits for a leader, checks that every write
acknowledged in any earlier cycle is still there with its value, runs a
write load of unique keys, notes each node's term once the cluster is
stable, SIGKILLs all three servers at once (with anything they forked:
a snapshot child dies with the power too), and cuts the power. Small
`raft-snapshot-entries` and `raft-log-max-size` make snapshots (written by
a forked child, put in place by rename), segment roll-overs and
compaction happen during the cycles.

It fails if an acknowledged write is lost, or if a node comes back with a
lower term than it had answered with (or the leader without the vote it
gave itself), after `PREZ_POWERLOSS_CYCLES` cycles (default 20). The
figures are printed (`-s` shows them). Needs root, /dev/fuse and mfusepy:
skipped without them unless PREZ_REQUIRE_FUSE=1 (CI), which fails instead.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from prez.errors import StorageError
from prez.storage.state import STATE_FILE, decode_hard_state
from prez.storage.wal import RAFT_SUBDIR
from prez.testing.cluster import Cluster
from prez.testing.powerfs import (
    REQUIRE_ENV,
    PowerFSMount,
    is_mounted,
    unavailable_reason,
)
from prez.testing.procs import Fatal, ServerProcess, ping, wait_until
from prez.testing.writeload import WriteLoad

pytestmark = pytest.mark.integration

CYCLES = int(os.environ.get("PREZ_POWERLOSS_CYCLES", "20"))
# How long the load runs before the power goes (drawn per cycle).
LOAD_SECONDS = (1.0, 2.0)
CLIENTS = 6
NODE_CONFIG = {
    # A snapshot every 1000 entries, and 64 KiB WAL segments (a quarter of
    # the log size limit, at least 64 KiB): snapshots, roll-overs and
    # compaction all happen within a cycle.
    "raft-snapshot-entries": "1000",
    "raft-log-max-size": "256kb",
}
RECOVERED = re.compile(rb"Raft log recovered: term (\d+)")
SNAPSHOT_WRITTEN = re.compile(rb"Snapshot of index \d+ written")
SNAPSHOT_RECEIVED = re.compile(rb"Received snapshot \d+/\d+")
# Writes the others take before a late node starts: more than two
# snapshots' worth, so that its log is compacted away on the others.
LATE_AFTER = 2500
MGET_CHUNK = 1000


@pytest.fixture
def powerfs(tmp_path: Path) -> Iterator[PowerFSMount]:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"FUSE required ({REQUIRE_ENV}=1) but {reason}")
        pytest.skip(f"the power-loss test needs FUSE: {reason}")
    mount = PowerFSMount(tmp_path / "mnt", tmp_path / "powerfs")
    mount.start()
    try:
        yield mount
    finally:
        mount.close()
        assert not is_mounted(mount.mountpoint), "the PowerFS mount was left behind"


@pytest.fixture
def cluster(powerfs: PowerFSMount, tmp_path: Path) -> Iterator[Cluster]:
    """Three nodes whose directories are in the mount and whose logs are not
    (a log must survive the power cut to be read)."""
    c = Cluster(powerfs.mountpoint / "cluster", size=3, config=NODE_CONFIG)
    logs = tmp_path / "logs"
    logs.mkdir()
    for node in c.nodes:
        node.own_group = True
        node.log_path = logs / f"{c.name(node)}.log"
        node.write_config()
    # What an operator set up is on disk before the first power cut.
    powerfs.sync()
    try:
        yield c
    finally:
        # Before the unmount (nothing may hold the mount), every node even
        # if one of them fails to go.
        errors = []
        for node in c.nodes:
            try:
                node.kill()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        if errors:
            raise errors[0]


@dataclass
class Figures:
    cycles: int = 0
    acked: dict[bytes, bytes] = field(default_factory=dict)
    lost: dict[bytes, bytes | None] = field(default_factory=dict)
    # name -> (highest term it answered with, the vote it gave in that term
    # if known: its own name when it led that term)
    answered: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    regressions: list[str] = field(default_factory=list)
    cut_reverted: int = 0  # Raft files that lost unsynced data in a cut
    cut_vanished: int = 0  # names under raft/ or snapshots/ that were not durable
    bytes_lost: int = 0
    vanished_examples: list[str] = field(default_factory=list)
    leaders: set[str] = field(default_factory=set)

    def summary(self) -> str:
        return (
            f"{self.cycles} power cycles of all 3 nodes: {len(self.acked)} "
            f"acknowledged writes, {len(self.lost)} lost; "
            f"{len(self.regressions)} term/vote regressions; leaders "
            f"{len(self.leaders)} distinct; cuts dropped unsynced data from "
            f"{self.cut_reverted} Raft files ({self.bytes_lost} bytes) and "
            f"{self.cut_vanished} names not durable"
        )


def log_size(node: ServerProcess) -> int:
    try:
        return node.log_path.stat().st_size
    except FileNotFoundError:
        return 0


def log_since(node: ServerProcess, offset: int) -> bytes:
    with open(node.log_path, "rb") as f:
        f.seek(offset)
        return f.read()


def recovered_term(node: ServerProcess, offset: int) -> int:
    """The term the node's log says it recovered, from its log since `offset`."""

    def found() -> re.Match[bytes] | None:
        return RECOVERED.search(log_since(node, offset))

    match = wait_until(found, 20, what=f"'Raft log recovered' from {node.port}")
    return int(match.group(1))


def check_acknowledged(
    cluster: Cluster, leader: ServerProcess, figures: Figures
) -> int:
    """Read back every acknowledged write (linearizable reads through the
    leader); record the keys missing or changed. Returns how many are new."""
    keys = list(figures.acked)
    newly_lost = 0
    with cluster.client(leader, socket_timeout=30) as c:
        for start in range(0, len(keys), MGET_CHUNK):
            chunk = keys[start : start + MGET_CHUNK]
            values = c.mget(chunk)
            for key, value in zip(chunk, values, strict=True):
                if value != figures.acked[key] and key not in figures.lost:
                    figures.lost[key] = value
                    newly_lost += 1
    return newly_lost


def stable_terms(cluster: Cluster, timeout: float = 15.0) -> tuple[str, int]:
    """(leader, term) once all nodes agree on both and each has applied
    entries since saying so: a node persists its Ready's hard state before
    it applies that Ready's entries, so the term it reported is on its disk
    (and the leader's own vote with it) before anything it answered in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            infos = [cluster.raft_info(n) for n in cluster.nodes]
        except redis.RedisError:
            time.sleep(0.02)
            continue
        leaders = {str(i["raft_leader"]) for i in infos}
        terms = {int(i["raft_term"]) for i in infos}
        if len(leaders) != 1 or len(terms) != 1 or "" in leaders:
            time.sleep(0.02)  # an election is under way
            continue
        applied = [int(i["raft_applied_index"]) for i in infos]
        try:

            def moved_on(applied: list[int] = applied, terms: set[int] = terms) -> bool:
                now = [cluster.raft_info(n) for n in cluster.nodes]
                return (
                    all(
                        int(i["raft_applied_index"]) > a
                        for i, a in zip(now, applied, strict=True)
                    )
                    and {int(i["raft_term"]) for i in now} == terms
                )

            wait_until(moved_on, max(0.1, deadline - time.monotonic()), what="applies")
        except TimeoutError:
            continue
        return leaders.pop(), terms.pop()
    raise TimeoutError(f"the cluster did not settle on a leader and term in {timeout}s")


def durable_hard_state(node: ServerProcess) -> tuple[int, str]:
    """Term and vote in the node's raft/state as the power cut left it (read,
    not loaded: loading would tidy the directory, which is the server's job)."""
    path = node.dir / RAFT_SUBDIR / STATE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0, ""
    try:
        state = decode_hard_state(data, str(path))
    except StorageError as e:
        return 0, f"<{e}>"
    return state.term, state.vote


def power_cut(cluster: Cluster) -> None:
    """SIGKILL every server and whatever it forked, all at once, and wait
    until none of them runs: only then may the filesystem lose power."""
    for node in cluster.nodes:
        if node.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.proc.pid, signal.SIGKILL)
    for node in cluster.nodes:
        node.kill()


def start_nodes(
    cluster: Cluster, nodes: list[ServerProcess], cycle: int, figures: Figures
) -> None:
    """Start `nodes` together; fail at once if one exits (a node that cannot
    recover its storage says why in its log). Records a recovered term lower
    than one the node had answered with."""
    offsets = {cluster.name(n): log_size(n) for n in nodes}
    for node in nodes:
        node.start(wait=False)
    for node in nodes:
        name = cluster.name(node)

        def ready(node: ServerProcess = node, name: str = name) -> bool:
            assert node.proc is not None
            if node.proc.poll() is not None:
                tail = log_since(node, offsets[name]).decode(errors="replace")
                raise Fatal(
                    f"after power cut {cycle}, {name} exited with "
                    f"{node.proc.returncode} at start:\n{tail[-3000:]}"
                )
            return ping(node.port)

        wait_until(ready, 30, what=f"{name} serving")
        term = recovered_term(node, offsets[name])
        before, _ = figures.answered.get(name, (0, None))
        if term < before:
            figures.regressions.append(
                f"cycle {cycle}: {name} recovered term {term}, "
                f"had answered in term {before}"
            )


def record_cut(report: dict[str, Any], figures: Figures) -> None:
    def raft(path: str) -> bool:
        return "/raft" in path or "/snapshots" in path

    not_durable = [
        p for kind in ("vanished", "replaced", "reappeared") for p in report[kind]
    ]
    figures.cut_vanished += sum(map(raft, not_durable))
    room = 10 - len(figures.vanished_examples)
    figures.vanished_examples.extend([p for p in not_durable if raft(p)][:room])
    figures.cut_reverted += sum(map(raft, report["reverted"]))
    figures.bytes_lost += int(report["bytes_lost"])


def check_durable_hard_states(cluster: Cluster, cycle: int, figures: Figures) -> None:
    """After the cut: each node's raft/state holds at least the term it had
    answered with, and the leader of that term its vote for itself."""
    for node in cluster.nodes:
        name = cluster.name(node)
        answered_term, vote = figures.answered[name]
        durable_term, durable_vote = durable_hard_state(node)
        if durable_term < answered_term or (
            durable_term == answered_term and vote is not None and durable_vote != vote
        ):
            figures.regressions.append(
                f"cycle {cycle}: after the cut {name} has term "
                f"{durable_term} vote {durable_vote!r} on disk, had "
                f"answered in term {answered_term}"
                + (f" having voted for {vote}" if vote else "")
            )


def test_power_loss_on_every_node_loses_no_acknowledged_write(
    powerfs: PowerFSMount, cluster: Cluster
) -> None:
    rng = random.Random(11)
    figures = Figures()
    started = time.monotonic()
    try:
        for cycle in range(CYCLES + 1):
            # Every third cycle one node comes back late, once the others
            # have written and compacted past its log: it catches up by
            # InstallSnapshot (a received snapshot, a reset log).
            late = cluster.nodes[cycle // 3 % 3] if cycle % 3 == 2 else None
            first = [n for n in cluster.nodes if n is not late]
            start_nodes(cluster, first, cycle, figures)
            leader = cluster.leader(timeout=20, among=first)
            newly_lost = check_acknowledged(cluster, leader, figures)
            print(
                f"cycle {cycle}: {len(figures.acked)} acknowledged so far, "
                f"{newly_lost} newly lost"
            )
            if cycle == CYCLES:
                if late is not None:
                    start_nodes(cluster, [late], cycle, figures)
                break
            load = WriteLoad(cluster, clients=CLIENTS, seconds=30, prefix=f"c{cycle}:")
            load_started = time.monotonic()
            with load.running():
                if late is not None:
                    load.wait_more(LATE_AFTER, what=f"writes before {late.port} starts")
                    start_nodes(cluster, [late], cycle, figures)
                load.wait_more(100, what=f"writes acknowledged in cycle {cycle}")
                leader_name, term = stable_terms(cluster)
                figures.leaders.add(leader_name)
                for node in cluster.nodes:
                    name = cluster.name(node)
                    vote = name if name == leader_name else None
                    if term >= figures.answered.get(name, (0, None))[0]:
                        figures.answered[name] = (term, vote)
                duration = rng.uniform(*LOAD_SECONDS)
                # The load's own length, not a wait for a condition.
                time.sleep(max(0.0, load_started + duration - time.monotonic()))
                power_cut(cluster)
            figures.acked.update(load.acked)
            record_cut(powerfs.cut(), figures)
            figures.cycles += 1
            check_durable_hard_states(cluster, cycle, figures)
    except BaseException:
        print(figures.summary())
        raise
    elapsed = time.monotonic() - started
    logs = [log_since(n, 0) for n in cluster.nodes]
    snapshots = sum(len(SNAPSHOT_WRITTEN.findall(text)) for text in logs)
    received = sum(len(SNAPSHOT_RECEIVED.findall(text)) for text in logs)
    stats = powerfs.stats()
    print(figures.summary())
    print(
        f"{snapshots} snapshots written, {received} received; filesystem: "
        f"{stats['fsyncs']} fsyncs, {stats['fsyncdirs']} directory fsyncs, "
        f"{stats['renames']} renames, {stats['unlinks']} unlinks; {elapsed:.1f}s"
    )
    if figures.vanished_examples:
        print("not durable at a cut, e.g.: " + ", ".join(figures.vanished_examples))
    lost_examples = list(figures.lost.items())[:5]
    lost, regressions = len(figures.lost), len(figures.regressions)
    assert lost == 0 and regressions == 0, (
        f"{figures.summary()}; lost e.g. {lost_examples}; "
        f"regressions: {figures.regressions[:10]}; not durable at a cut, e.g.: "
        f"{figures.vanished_examples}"
    )
    assert figures.cycles >= CYCLES
    # The test exercised what it claims: writes, snapshots written and
    # received, and cuts that actually threw unsynced Raft data away.
    assert len(figures.acked) > 100 * CYCLES
    assert snapshots > 0, "no snapshot was written"
    assert received > 0 or CYCLES < 3, "no lagging node needed a snapshot"
    assert figures.cut_reverted + figures.cut_vanished > 0, "no cut dropped anything"
    assert stats["late_ops"] == 0, "a process wrote after the power cut"
