"""What a `Simulation` run is made of: its parameters (`SimParams`, drawn
from the seed), the per-member state (`SimNode`), client operations
(`SimRead`, `SimWrite`), the report and the failure it raises, and the
adapter that runs each member through the production ReadyLoop
(prez.raft.ready_loop) with the safety checker watching every step."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prez.raft.core import (
    RaftConfig,
    RaftNode,
    Ready,
)
from prez.raft.ready_loop import ReadyLoop
from prez.raft.types import (
    Entry,
    HardState,
    Membership,
    Message,
    MessageType,
    SnapshotMeta,
)
from prez.testing.invariants import InvariantViolation
from prez.testing.simdisk import Disk, SnapshotFile

if TYPE_CHECKING:
    from prez.testing.sim import Simulation


@dataclass
class SimParams:
    """One run's knobs; `SimParams.draw` picks them from the seed."""

    nodes: int = 3
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    max_append_bytes: int = 1 << 20
    max_inflight: int = 64
    pre_vote: bool = True
    check_quorum: bool = True
    chaos_ticks: int = 200
    # Liveness bounds, in ticks: from healing to a leader, from healing to a
    # new entry committed (the leader may first have to replicate a backlog
    # of uncommitted entries), and from that commit to every node applying it.
    election_bound: int = 300
    commit_bound: int = 1500
    catch_up_bound: int = 3000
    drop_rate: float = 0.0
    dup_rate: float = 0.0
    max_delay: int = 5  # units; delays are uniform in [1, max_delay]
    # Links are FIFO like the TCP connections the server uses; this share of
    # messages ignores the order and may overtake earlier ones.
    reorder_rate: float = 0.0
    max_disk_delay: int = 0  # units
    crash_rate: float = 0.0  # per node per tick
    crash_after_write_rate: float = 0.0  # per completed write
    leader_crash_rate: float = 0.0  # per tick: crash whichever node leads
    max_downtime: int = 40  # ticks
    partition_rate: float = 0.0  # per tick
    max_partition: int = 60  # ticks
    proposal_rate: float = 0.5  # per tick
    # Clients hold back while the leader has this many uncommitted entries,
    # as a server's flow control would.
    max_backlog: int = 200
    max_value_bytes: int = 48
    # Log compaction: a node snapshots every `snapshot_every` applied
    # entries (0: never); writing the snapshot takes up to
    # `max_snapshot_delay` units; this share of snapshot transfers breaks
    # (on top of the network's drops), reported to the leader as a failure.
    snapshot_every: int = 0
    max_snapshot_delay: int = 0
    snapshot_fail_rate: float = 0.0
    # Client reads and register writes, recorded as a history and checked
    # for linearizability ("" = none). "linearizable" and "lease" go through
    # read_index() in that core read mode; "stale" answers from the node's
    # applied state at once (expected to fail the check). Rates per tick.
    read_mode: str = ""
    read_rate: float = 0.0
    register_write_rate: float = 0.0
    register_keys: int = 3
    lease_drift_ticks: int = 2
    transfer_rate: float = 0.0  # per tick: the leader hands over to a random peer
    # Membership changes: per tick, the leader tries one (see
    # Simulation._change_membership); a learner is promoted once its match
    # is within `promote_lag` entries of the leader's commit index.
    membership_rate: float = 0.0
    leader_removal_share: float = 0.0  # of removals, this share removes the leader
    promote_lag: int = 5
    min_voters: int = 3
    max_voters: int = 5

    @classmethod
    def draw(cls, rng: random.Random, nodes: int) -> SimParams:
        election_ticks = rng.choice([6, 8, 10])
        return cls(
            nodes=nodes,
            election_ticks=election_ticks,
            heartbeat_ticks=rng.choice([1, 1, 2]),
            max_append_bytes=rng.choice([64, 256, 1 << 20]),
            max_inflight=rng.choice([1, 4, 256]),
            pre_vote=rng.random() < 0.75,
            check_quorum=rng.random() < 0.75,
            chaos_ticks=rng.randrange(600, 1000),
            election_bound=40 * election_ticks,
            drop_rate=rng.choice([0.0, 0.02, 0.1, 0.2]),
            dup_rate=rng.choice([0.0, 0.02, 0.1]),
            max_delay=rng.choice([2, 8, 15]),
            reorder_rate=rng.choice([0.0, 0.05, 0.3]),
            max_disk_delay=rng.choice([0, 4, 12]),
            crash_rate=rng.choice([0.002, 0.006, 0.015]),
            crash_after_write_rate=rng.choice([0.0, 0.002, 0.01]),
            leader_crash_rate=rng.choice([0.0, 0.005, 0.02]),
            max_downtime=rng.choice([5, 30, 80]),
            partition_rate=rng.choice([0.005, 0.01, 0.03]),
            max_partition=rng.choice([10, 40, 100]),
            proposal_rate=rng.choice([0.2, 0.6, 1.0]),
        )

    def draw_snapshots(self, rng: random.Random, every: int) -> None:
        """Turn compaction on, drawing its faults from the seed (separately
        from `draw`, so that runs without snapshots replay as before)."""
        self.snapshot_every = every
        self.max_snapshot_delay = rng.choice([0, 5, 20])
        self.snapshot_fail_rate = rng.choice([0.05, 0.2, 0.4])

    def draw_reads(self, rng: random.Random, read_mode: str) -> None:
        """Turn the client read/write workload and leadership transfers on
        (drawn separately from `draw`, like the snapshots). The simulated
        clocks never drift: every node ticks at the same instants, so the
        lease's clock assumption holds with the minimum margin of one tick.
        """
        self.read_mode = read_mode
        if read_mode == "lease":
            self.check_quorum = True  # the lease rests on it
            self.lease_drift_ticks = 1
        self.read_rate = rng.choice([0.3, 0.6, 1.0])
        self.register_write_rate = rng.choice([0.2, 0.5])
        self.register_keys = rng.choice([1, 3])
        self.transfer_rate = rng.choice([0.0, 0.005, 0.02])
        # Shorter runs: the history check grows with the operations.
        self.chaos_ticks = min(self.chaos_ticks, rng.randrange(300, 600))

    def draw_membership(self, rng: random.Random) -> None:
        """Turn membership changes on (drawn separately, like the reads).

        Always with PreVote: without it (and CheckQuorum) a removed node
        that missed its removal raises the terms of lagging members by
        campaigning, the disruption of thesis 4.2.3 that PreVote exists
        to prevent."""
        self.pre_vote = True
        self.membership_rate = rng.choice([0.02, 0.05, 0.1])
        self.leader_removal_share = rng.choice([0.2, 0.5])
        self.promote_lag = rng.choice([0, 5, 50])


@dataclass
class SimNode:
    name: str
    config: RaftConfig
    disk: Disk = field(default_factory=Disk)
    node: RaftNode | None = None  # None while crashed
    life: int = 0  # bumped on every crash: in-flight writes of a dead life are lost
    writing: Ready | None = None  # the Ready whose write is in flight
    down_until: int = 0  # tick at which a crashed node restarts
    # The state machine: every applied entry from index 1 (a restored
    # snapshot's followed by those applied since).
    applied: list[Entry] = field(default_factory=list)
    # Snapshots received from the leader and installed by the node, not yet
    # the durable base (temporary files: a crash loses them). A second one
    # may arrive while the Ready carrying the first is being written.
    incoming: dict[SnapshotMeta, SnapshotFile] = field(default_factory=dict)
    snapshotting: bool = False  # our own snapshot's write is in flight
    # Client reads: requested by read_index() (context -> read), then
    # answered and waiting for the state machine to reach their index.
    reads: dict[bytes, SimRead] = field(default_factory=dict)
    waiting_reads: list[SimRead] = field(default_factory=list)
    # Register writes proposed here, by index, until applied or lost.
    writes: dict[int, SimWrite] = field(default_factory=dict)
    # The membership the state machine started from: the restored
    # snapshot's, else the bootstrap one; applied CONFIG entries follow it.
    base_membership: Membership | None = None
    # The production order of each Ready (None while crashed), and the
    # received snapshot made the durable base and not yet loaded.
    loop: ReadyLoop | None = None
    installing: SnapshotFile | None = None


@dataclass
class SimRead:
    key: bytes
    invoke: int  # units
    requested_tick: int
    context: bytes = b""
    index: int = 0


@dataclass
class SimWrite:
    key: bytes
    value: bytes
    data: bytes
    invoke: int  # units


@dataclass
class SimReport:
    seed: int
    params: SimParams
    elections: int  # distinct (term, leader) pairs seen
    crashes: int
    partitions: int
    committed: int  # committed history length at the end
    proposals: int
    messages: int
    election_ticks: int  # ticks from healing to a leader
    commit_ticks: int  # ticks from healing to a new entry committed
    catch_up_ticks: int  # further ticks until every node applied it
    snapshots_taken: int = 0  # own snapshots written (each compacts the log)
    snapshots_sent: int = 0  # SNAPSHOT messages: transfers started
    snapshots_installed: int = 0  # transfers a follower's core installed
    snapshot_failures: int = 0  # transfers reported failed to the leader
    restarts_from_snapshot: int = 0  # crashed nodes restarted from a snapshot
    reads_served: int = 0  # reads answered with a value (checked)
    reads_failed: int = 0  # read requests answered READ_FAILED
    writes_acked: int = 0  # register writes acknowledged (applied by the proposer)
    transfers: int = 0  # leadership transfers started
    transfers_done: int = 0  # ... whose target became leader
    learners_added: int = 0  # CONFIG entries proposed, by kind
    promotions: int = 0
    removals: int = 0
    leader_removals: int = 0  # ... of those, a leader removing itself
    conf_changes_committed: int = 0  # CONFIG entries in the committed history
    final_voters: int = 0  # voters in the final membership


class SimFailure(AssertionError):
    pass


# Event kinds in the queue.

_PROMISE_NOTHING_DURABLE = frozenset(
    {MessageType.PRE_VOTE, MessageType.READ_INDEX, MessageType.READ_INDEX_RESP}
)


class _MemberAdapter:
    """A Simulation member's log, transport and state machine for the
    production ReadyLoop, with the safety checker watching each step."""

    def __init__(self, sim: Simulation, member: SimNode) -> None:
        self.sim = sim
        self.member = member

    # LogStore
    def install_snapshot_base(self, snapshot: SnapshotMeta) -> None:
        member = self.member
        installed = member.incoming.get(snapshot)
        if installed is None:
            raise InvariantViolation(
                "ready snapshot received",
                f"{member.name} was handed {snapshot}, holds {list(member.incoming)}",
            )
        member.incoming = {
            meta: file
            for meta, file in member.incoming.items()
            if meta.index > installed.index
        }
        member.disk.reset_to(installed)
        member.installing = installed

    def write(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        node = self.member.node
        assert node is not None
        self.sim.checker.check_ready_entries(node, entries)
        self.member.disk.write(hard_state, entries)

    def sync(self) -> None:
        disk = self.member.disk
        before = disk.hard_state
        disk.sync()
        self.sim.checker.check_persist(self.member.name, before, disk.hard_state)

    # Transport
    def send(self, messages: list[Message]) -> None:
        checker, disk = self.sim.checker, self.member.disk
        for msg in messages:
            # What leaves early must promise nothing beyond the disk either,
            # so a ReadyLoop that sent answers too early is caught whichever
            # way it sent them. Exempt: a pre-vote request names the term it
            # would enter, read-index requests and answers speak for
            # leadership only.
            if msg.type not in _PROMISE_NOTHING_DURABLE:
                checker.check_persisted_message(msg, disk)
            self.sim._send(msg)

    def send_durable(self, messages: list[Message]) -> None:
        for msg in messages:
            self.sim.checker.check_persisted_message(msg, self.member.disk)
            self.sim._send(msg)

    # Applier
    def restore(self, snapshot: SnapshotMeta) -> None:
        member = self.member
        installed = member.installing
        assert installed is not None and installed.meta == snapshot
        member.installing = None
        self.sim.checker.check_restore(member.name, installed)
        member.applied = list(installed.entries)
        if installed.config is not None:
            member.base_membership = installed.config

    def apply(self, rd: Ready) -> None:
        member = self.member
        self.sim.checker.check_apply(member.name, rd.committed_entries)
        member.applied.extend(rd.committed_entries)
        if member.writes:
            self.sim._acknowledge_writes(member, rd.committed_entries)
        if member.waiting_reads:
            self.sim._serve_reads(member)
