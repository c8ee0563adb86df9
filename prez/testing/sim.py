"""Deterministic simulation of Raft clusters, for tests and benchmarks.

Two harnesses over the real `prez.raft` core, no I/O and no wall clock:

- `Simulation`: a seeded randomized run. ONE `random.Random(seed)` drives the
  logical clock, the network (FIFO links like TCP, plus drops, duplicates,
  messages that overtake others, partitions that come and go), the disks
  (writes that take time, so nodes take messages while their write is in
  flight), crashes and restarts (a node keeps only what it handed to its
  disk and the disk completed, possibly crashing between the write and
  sending its answers), clients proposing values and, with
  `SimParams(snapshot_every=N)`, log compaction: each node snapshots its
  state machine every N applied entries (the write takes time too) and
  compacts, and a leader's SNAPSHOT message becomes a transfer of its newest
  snapshot that the network may drop, delay, duplicate or break, reported
  back to the leader's core as the server's driver would. With
  `read_mode` ("linearizable", "lease" or "stale", see
  `SimParams.draw_reads`) clients also write and read a few registers
  (reads through `read_index()`, served once the node applied the read
  index; "stale" reads the applied state at once) and leaders hand over
  leadership at random points; the client history (invoke and completion on
  the simulated clock, unknown outcomes as such) must be linearizable
  (`prez.testing.linearizability`), every read request must be answered
  within two election timeouts, and after healing every node must serve a
  read. With `membership=True` the leader also changes the membership at
  random points (single-server changes: a fresh node joins as a learner
  and is promoted once caught up, voters are removed, the leader among
  them), growing 3 -> 5 and shrinking 5 -> 3, which replaces nodes along
  the way; removed nodes keep running (and ticking) and must not disturb
  anything. `SafetyChecker` runs
  after every step; after the chaos the faults stop and the cluster must
  elect a leader, commit a new entry and apply it everywhere, each within a
  bound. Same seed, same run.
- `Network`: an etcd-style synchronous harness for unit tests: steps each
  message into its target and delivers the answers until the network is
  quiet, with per-link and per-type filters, collecting each node's
  ReadStates in `read_states`. Writes, snapshots and
  snapshot transfers complete at once; a filtered-out transfer is reported
  failed to the leader.

The simulated state machine is the list of applied entries; a snapshot
(`SnapshotFile`) is its prefix up to an index, so the checker can compare a
node's whole applied sequence, restored prefix included, with the history.

Both follow the driver contract of `prez.raft.core` exactly. Test support:
imports the Raft core, never prez.server or prez.storage.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prez.raft.core import (
    ConfChangeRefused,
    NotLeader,
    RaftConfig,
    RaftNode,
    Ready,
    Role,
)
from prez.raft.ready_loop import ReadyLoop
from prez.raft.types import (
    ConfChange,
    ConfChangeKind,
    Entry,
    EntryKind,
    HardState,
    Membership,
    Message,
    MessageType,
    ReadState,
    SnapshotMeta,
)
from prez.testing.invariants import InvariantViolation, SafetyChecker
from prez.testing.linearizability import Operation, check_history

TICK = 10  # simulated time units per tick; message and disk delays use units

_TYPE_NAMES: dict[int, str] = {
    MessageType.VOTE: "VOTE",
    MessageType.VOTE_RESP: "VOTE_RESP",
    MessageType.APPEND: "APP",
    MessageType.APPEND_RESP: "APP_RESP",
    MessageType.PRE_VOTE: "PRE_VOTE",
    MessageType.PRE_VOTE_RESP: "PRE_VOTE_RESP",
    MessageType.TIMEOUT_NOW: "TIMEOUT_NOW",
    MessageType.HEARTBEAT: "HB",
    MessageType.HEARTBEAT_RESP: "HB_RESP",
    MessageType.SNAPSHOT: "SNAP",
    MessageType.READ_INDEX: "READ_INDEX",
    MessageType.READ_INDEX_RESP: "READ_INDEX_RESP",
}


def describe_message(msg: Message) -> str:
    """One line per message, etcd-transcript style."""
    text = (
        f"{msg.src}->{msg.dst} {_TYPE_NAMES.get(msg.type, str(msg.type))} t{msg.term}"
    )
    if msg.type in (
        MessageType.APPEND,
        MessageType.VOTE,
        MessageType.PRE_VOTE,
        MessageType.SNAPSHOT,
    ):
        text += f" log={msg.index}/{msg.log_term}"
    if msg.type in (MessageType.APPEND, MessageType.HEARTBEAT):
        text += f" commit={msg.commit}"
    if msg.type in (MessageType.APPEND_RESP, MessageType.READ_INDEX_RESP):
        text += f" index={msg.index}"
    if msg.context:
        if msg.type in (MessageType.HEARTBEAT, MessageType.HEARTBEAT_RESP):
            text += f" round={int.from_bytes(msg.context, 'big')}"
        else:
            text += f" ctx={msg.context!r}"
    if msg.reject:
        text += " REJECT"
        if msg.type == MessageType.APPEND_RESP:
            text += f" hint={msg.reject_hint}/{msg.hint_term}"
    if msg.entries:
        first, last = msg.entries[0], msg.entries[-1]
        text += f" entries=[{first.index}/{first.term}..{last.index}/{last.term}]"
    return text


@dataclass(frozen=True, eq=False)
class SnapshotFile:
    """A simulated state machine snapshot: the applied entries 1..index,
    and the membership in effect at index (as a real snapshot file records
    it; None: the bootstrap one)."""

    index: int
    term: int
    entries: tuple[Entry, ...] = field(repr=False)
    config: Membership | None = None

    @property
    def meta(self) -> SnapshotMeta:
        return SnapshotMeta(self.index, self.term, self.config)

    def step_context(self) -> bytes:
        """The context of the SNAPSHOT message a follower's driver steps in."""
        return self.config.encode() if self.config is not None else b""


class Disk:
    """A node's durable storage: what completed writes left behind, the
    newest snapshot and the log after it."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snapshot: SnapshotFile | None = None
        self.entries: list[Entry] = []  # entries[i].index == offset + i + 1
        # Written and not yet synced: what a crash loses (one Ready at most).
        self.unsynced: tuple[HardState | None, list[Entry]] | None = None

    def write(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        if self.unsynced is not None:
            raise InvariantViolation(
                "one write in flight", "a Ready was written before the last synced"
            )
        self.unsynced = (hard_state, list(entries))

    def sync(self) -> None:
        if self.unsynced is not None:
            hard_state, entries = self.unsynced
            self.unsynced = None
            self.persist(hard_state, entries)

    def lose_unsynced(self) -> None:
        self.unsynced = None

    @property
    def offset(self) -> int:
        return self.snapshot.index if self.snapshot is not None else 0

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def persist(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        if entries:
            first = entries[0].index
            offset = self.offset
            if first > self.last_index + 1 or first <= offset:
                raise InvariantViolation(
                    "ready entries contiguous",
                    f"write starts at {first}, durable log is {offset}+1.."
                    f"{self.last_index}",
                )
            del self.entries[first - offset - 1 :]
            self.entries.extend(entries)
        if hard_state is not None:
            self.hard_state = HardState(
                hard_state.term, hard_state.vote, hard_state.commit
            )

    def reset_to(self, snapshot: SnapshotFile) -> None:
        """A snapshot from the leader becomes the base. As the WAL does: a
        log holding the snapshot's last entry keeps what follows it (the
        core's kept suffix, durable and maybe acknowledged); any other log
        restarts empty after the snapshot."""
        position = snapshot.index - self.offset - 1
        keeps_suffix = (
            0 <= position < len(self.entries)
            and self.entries[position].term == snapshot.term
        )
        self.entries = self.entries[position + 1 :] if keeps_suffix else []
        self.snapshot = snapshot

    def compact(self, snapshot: SnapshotFile) -> bool:
        """Our own newer snapshot becomes the base; the entries it covers go."""
        if snapshot.index <= self.offset:
            return False
        if snapshot.index > self.last_index:
            raise InvariantViolation(
                "snapshot of durable entries",
                f"snapshot at {snapshot.index} but the log is durable up to "
                f"{self.last_index}",
            )
        del self.entries[: snapshot.index - self.offset]
        self.snapshot = snapshot
        return True

    def recovered(self) -> tuple[HardState, list[Entry], SnapshotMeta | None]:
        """What a restarting node is handed: copies of the durable state."""
        hard = self.hard_state
        snapshot = self.snapshot.meta if self.snapshot is not None else None
        return (
            HardState(hard.term, hard.vote, hard.commit),
            list(self.entries),
            snapshot,
        )


def take_snapshot(
    state: list[Entry], bootstrap: Membership | None = None
) -> SnapshotFile:
    """A snapshot of a state machine that applied `state` (indexes 1..n),
    its membership derived from the applied CONFIG entries (independently of
    the core, which the simulator checks against it)."""
    index = len(state)
    return SnapshotFile(
        index,
        state[-1].term if state else 0,
        tuple(state),
        membership_after(state, bootstrap),
    )


def membership_after(
    state: Iterable[Entry], bootstrap: Membership | None
) -> Membership | None:
    """The membership the last CONFIG entry of `state` sets, else `bootstrap`."""
    config = bootstrap
    for entry in state:
        if entry.kind == EntryKind.CONFIG:
            config = Membership.decode(entry.data)
    return config


def bootstrap_membership(config: RaftConfig) -> Membership:
    return Membership(frozenset(config.peers), frozenset(config.learners))


# -- the randomized simulation ------------------------------------------------


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
_DELIVER = 0
_WRITE_DONE = 1
_SNAPSHOT_DONE = 2  # own snapshot durable: (name, life, file)
_TRANSFER = 3  # a snapshot transfer arrives: (msg, file, duplicate)
_REPORT = 4  # the leader's driver learns a transfer's fate: (src, life, dst, ok)


class Simulation:
    """One seeded run; `run()` returns a report or raises SimFailure."""

    def __init__(
        self,
        seed: int,
        nodes: int | None = None,
        params: SimParams | None = None,
        replay_hint: str = "",
        trace_length: int = 40,
        snapshot_every: int = 0,
        read_mode: str = "",
        membership: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        if params is None:
            params = SimParams.draw(self.rng, nodes or (3 if seed % 2 == 0 else 5))
            if snapshot_every:
                params.draw_snapshots(self.rng, snapshot_every)
            if read_mode:
                params.draw_reads(self.rng, read_mode)
            if membership:
                params.draw_membership(self.rng)
        self.params = params
        self.replay_hint = replay_hint
        self.trace_length = trace_length
        names = [f"n{i + 1}" for i in range(params.nodes)]
        self.names = names
        self.bootstrap = list(names)  # every node's bootstrap voters
        self.members: dict[str, SimNode] = {}
        for name in names:
            self.members[name] = SimNode(name, self._raft_config(name))
        self.disks = {n: m.disk for n, m in self.members.items()}
        self.checker = SafetyChecker(names, self.disks)
        self.learners_added = 0
        self.promotions = 0
        self.removals = 0
        self.leader_removals = 0
        self.now = 0  # units
        self.tick_count = 0
        self.queue: list[tuple[int, int, int, Any]] = []
        self.sequence = 0
        self.group: dict[str, int] = {name: 0 for name in names}  # partition side
        self.link_clock: dict[tuple[str, str], int] = {}  # last delivery per link
        self.heal_at = 0
        self.chaos = True
        self.trace: deque[tuple[int, str, Any]] = deque(maxlen=max(trace_length, 1))
        self.proposals = 0
        self.messages = 0
        self.crashes = 0
        self.partitions = 0
        self.elections: set[tuple[int, str]] = set()
        self.snapshots_taken = 0
        self.snapshots_sent = 0
        self.snapshots_installed = 0
        self.snapshot_failures = 0
        self.restarts_from_snapshot = 0
        # The client history (register reads and writes) and its counters.
        self.operations: list[Operation] = []
        self.client_ops = 0
        self.reads_served = 0
        self.reads_failed = 0
        self.writes_acked = 0
        self.transfers = 0
        self.transfers_done = 0
        # Transfer target -> the term of the leader that started it.
        self.transfer_targets: dict[str, int] = {}
        self.served_contexts: set[bytes] = set()
        for member in self.members.values():
            self._start(member)

    def _raft_config(self, name: str, learner: bool = False) -> RaftConfig:
        params = self.params
        return RaftConfig(
            name=name,
            peers=list(self.bootstrap),
            learners=[name] if learner else [],
            election_ticks=params.election_ticks,
            heartbeat_ticks=params.heartbeat_ticks,
            max_append_bytes=params.max_append_bytes,
            max_inflight=params.max_inflight,
            pre_vote=params.pre_vote,
            check_quorum=params.check_quorum,
            read_mode="lease" if params.read_mode == "lease" else "linearizable",
            lease_drift_ticks=params.lease_drift_ticks,
        )

    # -- the run ------------------------------------------------------------------

    def run(self) -> SimReport:
        try:
            params = self.params
            for _ in range(params.chaos_ticks):
                self._chaos_step()
                self._run_tick()
            healed_at = self._heal()
            elected, committed, catch_up = self._await_liveness(healed_at)
            if params.read_mode:
                self._await_final_reads()
            self.checker.check_committed_durable()
            for member in self.members.values():
                self.checker.check_state_machine(member.name, member.applied)
            if params.read_mode:
                self._check_history()
        except (InvariantViolation, AssertionError) as failure:
            raise SimFailure(self._failure_text(failure)) from failure
        return SimReport(
            seed=self.seed,
            params=self.params,
            elections=len(self.elections),
            crashes=self.crashes,
            partitions=self.partitions,
            committed=len(self.checker.history),
            proposals=self.proposals,
            messages=self.messages,
            election_ticks=elected,
            commit_ticks=committed,
            catch_up_ticks=catch_up,
            snapshots_taken=self.snapshots_taken,
            snapshots_sent=self.snapshots_sent,
            snapshots_installed=self.snapshots_installed,
            snapshot_failures=self.snapshot_failures,
            restarts_from_snapshot=self.restarts_from_snapshot,
            reads_served=self.reads_served,
            reads_failed=self.reads_failed,
            writes_acked=self.writes_acked,
            transfers=self.transfers,
            transfers_done=self.transfers_done,
            learners_added=self.learners_added,
            promotions=self.promotions,
            removals=self.removals,
            leader_removals=self.leader_removals,
            conf_changes_committed=sum(
                1 for e in self.checker.history if e.kind == EntryKind.CONFIG
            ),
            final_voters=len(self._final_membership().voters),
        )

    def _failure_text(self, failure: BaseException) -> str:
        lines = [
            f"seed {self.seed} failed at tick {self.tick_count}: {failure}",
            f"params: {self.params}",
            f"last {len(self.trace)} events:",
        ]
        lines += [f"  {self._format_event(event)}" for event in self.trace]
        if self.replay_hint:
            lines.append(f"replay: {self.replay_hint}")
        return "\n".join(lines)

    @staticmethod
    def _format_event(event: tuple[int, str, Any]) -> str:
        when, kind, what = event
        if isinstance(what, Message):
            what = describe_message(what)
        return f"t={when / TICK:.1f} {kind} {what}"

    def _record(self, kind: str, what: Any) -> None:
        self.trace.append((self.now, kind, what))

    def _run_tick(self) -> None:
        end = (self.tick_count + 1) * TICK
        queue = self.queue
        while queue and queue[0][0] < end:
            when, _, kind, payload = heapq.heappop(queue)
            self.now = when
            if kind == _DELIVER:
                self._deliver(payload)
            elif kind == _WRITE_DONE:
                self._write_done(*payload)
            elif kind == _SNAPSHOT_DONE:
                self._snapshot_done(*payload)
            elif kind == _TRANSFER:
                self._transfer_arrives(*payload)
            else:
                self._report(*payload)
        self.now = end
        self.tick_count += 1
        for member in self.members.values():
            if member.node is not None:
                member.node.tick()
                self._after_input(member)
        if self.params.read_mode:
            self._check_reads_answered()

    def _chaos_step(self) -> None:
        params, rng = self.params, self.rng
        for member in self.members.values():
            if member.node is None:
                if self.tick_count >= member.down_until:
                    self._start(member)
            elif rng.random() < params.crash_rate or (
                params.leader_crash_rate
                and member.node.role is Role.LEADER
                and rng.random() < params.leader_crash_rate
            ):
                self._crash(member, rng.randrange(1, params.max_downtime + 1))
        if self.heal_at and self.tick_count >= self.heal_at:
            self._set_groups({name: 0 for name in self.names}, "heal")
            self.heal_at = 0
        elif not self.heal_at and rng.random() < params.partition_rate:
            self._partition()
        if rng.random() < params.proposal_rate:
            self._propose_somewhere(rng.randrange(1, 5))
        if params.read_mode:
            if rng.random() < params.register_write_rate:
                self._client_write()
            if rng.random() < params.read_rate:
                self._client_read()
            if params.transfer_rate and rng.random() < params.transfer_rate:
                self._transfer_leadership()
        if params.membership_rate and rng.random() < params.membership_rate:
            self._change_membership()

    def _partition(self) -> None:
        rng = self.rng
        leaders = [m.name for m in self.members.values() if self._is_leader(m)]
        if self.params.read_mode and leaders and rng.random() < 0.3:
            # The leader with as many followers as still make a minority: the
            # side where reads go stale if a leader answers them too early.
            # (Only in read runs: other runs keep the seeds they were soaked on.)
            leader = rng.choice(leaders)
            others = [name for name in self.names if name != leader]
            company = rng.sample(others, (len(self.names) - 1) // 2 - 1)
            minority = {leader, *company}
            groups = {name: int(name in minority) for name in self.names}
        elif rng.random() < 0.5:
            # Isolate one node (often the leader, the interesting case).
            victim = rng.choice(leaders or self.names)
            groups = {name: int(name == victim) for name in self.names}
        else:
            groups = {name: rng.randrange(2) for name in self.names}
        self.partitions += 1
        self.heal_at = self.tick_count + rng.randrange(1, self.params.max_partition + 1)
        self._set_groups(groups, "partition")

    def _set_groups(self, groups: dict[str, int], kind: str) -> None:
        self.group = groups
        sides: dict[int, list[str]] = {}
        for name, side in groups.items():
            sides.setdefault(side, []).append(name)
        self._record(kind, " | ".join(",".join(side) for side in sides.values()))

    def _is_leader(self, member: SimNode) -> bool:
        return member.node is not None and member.node.role is Role.LEADER

    def _propose_somewhere(self, count: int) -> list[tuple[str, int, bytes]]:
        """Clients send `count` values to a random live node; a follower
        refuses them (NotLeader), as the server would redirect."""
        live = [m for m in self.members.values() if m.node is not None]
        if not live:
            return []
        member = self.rng.choice(live)
        node = member.node
        assert node is not None
        accepted: list[tuple[str, int, bytes]] = []
        if node.last_index - node.commit_index >= self.params.max_backlog:
            return accepted
        for _ in range(count):
            self.proposals += 1
            value = (
                f"{self.seed}:{self.proposals}:".encode()
                + b"x" * self.rng.randrange(self.params.max_value_bytes)
            )
            try:
                index = node.propose(value)
            except NotLeader:
                return accepted
            accepted.append((member.name, index, value))
            self._record("propose", f"{member.name} index {index} term {node.term}")
        self._after_input(member)
        return accepted

    # -- membership changes ------------------------------------------------------

    def _change_membership(self) -> None:
        """The operator asks the leader for one change: promote a learner
        that caught up, else add a fresh node as a learner (towards
        max_voters) or remove a voter (towards min_voters), sometimes the
        leader itself. Names are never reused."""
        params, rng = self.params, self.rng
        leaders = [m for m in self.members.values() if self._is_leader(m)]
        if not leaders:
            return
        member = rng.choice(leaders)
        node = member.node
        assert node is not None
        membership = node.membership
        voters = len(membership.voters)
        if membership.learners:
            learner = min(membership.learners)
            progress = node.progress_of(learner)
            if progress is None or progress.match + params.promote_lag < (
                node.commit_index
            ):
                return  # not caught up yet: promoting it would stall commits
            change = ConfChange(ConfChangeKind.PROMOTE, learner)
        elif voters < params.max_voters and (
            voters < params.min_voters or rng.random() < 0.5
        ):
            change = ConfChange(ConfChangeKind.ADD_LEARNER, f"n{len(self.members) + 1}")
        elif voters > 1 and (voters > params.min_voters or rng.random() < 0.1):
            if rng.random() < params.leader_removal_share:
                victim = member.name
            else:
                victim = rng.choice(sorted(membership.voters - {member.name}))
            change = ConfChange(ConfChangeKind.REMOVE, victim)
        else:
            return
        try:
            index = node.propose_conf_change(change)
        except (NotLeader, ConfChangeRefused) as refused:
            self._record("conf change refused", f"{member.name} {change}: {refused}")
            return
        self._record(
            "conf change", f"{member.name} index {index} term {node.term} {change}"
        )
        if change.kind == ConfChangeKind.ADD_LEARNER:
            self.learners_added += 1
            self._add_member(change.name, beside=member.name)
        elif change.kind == ConfChangeKind.PROMOTE:
            self.promotions += 1
        else:
            self.removals += 1
            self.leader_removals += change.name == member.name
        self._after_input(member)

    def _add_member(self, name: str, beside: str) -> None:
        """A fresh node with an empty disk, started as a learner (the way a
        joining server is), on the same side of a partition as `beside`."""
        member = SimNode(name, self._raft_config(name, learner=True))
        self.members[name] = member
        self.names.append(name)
        self.group[name] = self.group[beside]
        self.disks[name] = member.disk
        self.checker.add_node(name)
        self._start(member)

    def _final_membership(self) -> Membership:
        """The membership of the newest leader (every node's last word if
        there is none)."""
        nodes = [m.node for m in self.members.values() if m.node is not None]
        leaders = [n for n in nodes if n.role is Role.LEADER]
        newest = max(leaders or nodes, key=lambda n: (n.term, n.last_index))
        return newest.membership

    # -- clients: register reads and writes, leadership transfers -------------------

    def _live_member(self, prefer_leader: float) -> SimNode | None:
        """A random live node; the leader with probability `prefer_leader`
        (clients mostly find it; a follower refuses writes)."""
        live = [m for m in self.members.values() if m.node is not None]
        if not live:
            return None
        leaders = [m for m in live if self._is_leader(m)]
        if leaders and self.rng.random() < prefer_leader:
            return self.rng.choice(leaders)
        return self.rng.choice(live)

    def _client_write(self) -> None:
        member = self._live_member(prefer_leader=0.8)
        if member is None:
            return
        node = member.node
        assert node is not None
        self.client_ops += 1
        key = b"k%d" % self.rng.randrange(self.params.register_keys)
        value = b"%d" % self.client_ops
        data = b"w:" + key + b"=" + value
        try:
            index = node.propose(data)
        except NotLeader:
            return  # refused: it did not happen, so it is not in the history
        # An index reused after a truncation: the earlier write there may or
        # may not survive elsewhere.
        lost = member.writes.pop(index, None)
        if lost is not None:
            self._write_outcome_unknown(lost)
        member.writes[index] = SimWrite(key, value, data, self.now)
        self._record("write", f"{member.name} index {index} {data!r}")
        self._after_input(member)

    def _acknowledge_writes(self, member: SimNode, applied: list[Entry]) -> None:
        """The proposer applied its entries: the server answers the client
        (OK when the index holds its write, else the outcome is unknown)."""
        for entry in applied:
            write = member.writes.pop(entry.index, None)
            if write is None:
                continue
            if entry.data == write.data:
                self.writes_acked += 1
                self.operations.append(
                    Operation(
                        member.name,
                        write.key,
                        "write",
                        write.value,
                        write.invoke,
                        self.now,
                        True,
                    )
                )
            else:
                self._write_outcome_unknown(write)

    def _write_outcome_unknown(self, write: SimWrite) -> None:
        self.operations.append(
            Operation("?", write.key, "write", write.value, write.invoke, None, None)
        )

    def _client_read(self) -> None:
        member = self._live_member(prefer_leader=0.5)
        if member is None:
            return
        node = member.node
        assert node is not None
        self.client_ops += 1
        key = b"k%d" % self.rng.randrange(self.params.register_keys)
        context = b"r%d" % self.client_ops
        read = SimRead(key, self.now, self.tick_count, context)
        if self.params.read_mode == "stale":
            # The original Prez: the node's own applied state, at once.
            read.index = len(member.applied)
            self._complete_read(member, read)
            return
        member.reads[context] = read
        node.read_index(context)
        self._record("read", f"{member.name} {context!r} {key!r}")
        self._after_input(member)

    def _take_read_states(self, member: SimNode, rd: Ready) -> None:
        for state in rd.read_states:
            read = member.reads.pop(state.context, None)
            if read is None:
                raise InvariantViolation(
                    "one answer per read request",
                    f"{member.name} answered {state} that is not pending",
                )
            if state.failed:
                self.reads_failed += 1
                self._record("read failed", f"{member.name} {state.context!r}")
                continue
            self.checker.check_read_state(member.name, state)
            read.index = state.index
            self._record("read index", f"{member.name} {state}")
            member.waiting_reads.append(read)
        self._serve_reads(member)

    def _serve_reads(self, member: SimNode) -> None:
        applied = len(member.applied)
        still: list[SimRead] = []
        for read in member.waiting_reads:
            if read.index <= applied:
                self._complete_read(member, read)
            else:
                still.append(read)
        member.waiting_reads = still

    def _complete_read(self, member: SimNode, read: SimRead) -> None:
        prefix = b"w:" + read.key + b"="
        value = None
        for entry in reversed(member.applied):
            if entry.data.startswith(prefix):
                value = entry.data[len(prefix) :]
                break
        self.reads_served += 1
        self.served_contexts.add(read.context)
        self.operations.append(
            Operation(member.name, read.key, "read", value, read.invoke, self.now, True)
        )

    def _lose_client_ops(self, member: SimNode) -> None:
        """A crash: pending writes have an unknown outcome; pending reads
        were never answered, so they constrain nothing."""
        for write in member.writes.values():
            self._write_outcome_unknown(write)
        member.writes = {}
        member.reads = {}
        member.waiting_reads = []

    def _check_reads_answered(self) -> None:
        """The core answers every read request (maybe READ_FAILED) within
        two election timeouts, plus slack for a write in flight."""
        bound = 2 * self.params.election_ticks + 3
        for member in self.members.values():
            for context, read in member.reads.items():
                if self.tick_count - read.requested_tick > bound:
                    raise InvariantViolation(
                        "read requests are answered",
                        f"{member.name} {context!r} unanswered for {bound} ticks",
                    )

    def _transfer_leadership(self) -> None:
        leaders = [m for m in self.members.values() if self._is_leader(m)]
        if not leaders:
            return
        member = self.rng.choice(leaders)
        node = member.node
        assert node is not None
        target = self.rng.choice([name for name in self.names if name != member.name])
        self.transfers += 1
        self.transfer_targets[target] = node.term
        self._record("transfer", f"{member.name} -> {target} term {node.term}")
        node.transfer_leader(target)
        self._after_input(member)

    def _await_final_reads(self) -> None:
        """After healing, a read at every node must be served (a failed one
        is retried, as a client would) within a bound."""
        bound = 20 * self.params.election_ticks
        start = self.tick_count
        contexts: dict[str, bytes] = {}
        while True:
            done = True
            for member in self.members.values():
                context = contexts.get(member.name)
                if context is not None and context in self.served_contexts:
                    continue
                done = False
                if context is not None and (
                    context in member.reads
                    or any(r.context == context for r in member.waiting_reads)
                ):
                    continue  # still on its way
                node = member.node
                assert node is not None
                self.client_ops += 1
                context = b"final%d" % self.client_ops
                contexts[member.name] = context
                member.reads[context] = SimRead(
                    b"k0", self.now, self.tick_count, context
                )
                node.read_index(context)
                self._after_input(member)
            if done:
                return
            if self.tick_count - start > bound:
                self._liveness_failure(f"reads not served within {bound} ticks")
            self._run_tick()

    def _check_history(self) -> None:
        for member in self.members.values():
            for write in member.writes.values():
                self._write_outcome_unknown(write)
            member.writes = {}
        result = check_history(self.operations, timeout=20.0)
        if result.ok is not True:
            raise InvariantViolation("linearizable history", result.describe())

    # -- nodes ---------------------------------------------------------------------

    def _start(self, member: SimNode) -> None:
        disk = member.disk
        hard, entries, snapshot = disk.recovered()
        member.node = RaftNode(
            member.config,
            random.Random(self.rng.getrandbits(32)),
            hard,
            entries,
            applied=disk.offset,
            snapshot=snapshot,
        )
        # The state machine restarts from the snapshot (the driver loads it).
        member.applied = list(disk.snapshot.entries) if disk.snapshot else []
        member.base_membership = bootstrap_membership(member.config)
        if disk.snapshot is not None and disk.snapshot.config is not None:
            member.base_membership = disk.snapshot.config
        if disk.snapshot is not None:
            self.restarts_from_snapshot += 1
        member.writing = None
        member.incoming = {}
        member.installing = None
        member.snapshotting = False
        adapter = _MemberAdapter(self, member)
        member.loop = ReadyLoop(member.node, adapter, adapter, adapter)
        self._record(
            "start",
            f"{member.name} term {hard.term} log {disk.offset}+1..{disk.last_index}",
        )
        self.checker.on_restart(member.node, disk)
        self._after_input(member)

    def _crash(self, member: SimNode, downtime: int) -> None:
        member.node = None
        member.loop = None
        member.installing = None
        member.disk.lose_unsynced()
        member.writing = None
        member.life += 1
        member.down_until = self.tick_count + downtime
        member.incoming = {}
        member.snapshotting = False
        self._lose_client_ops(member)
        self.crashes += 1
        self.checker.on_crash(member.name)
        self.checker.check_committed_durable()
        self._record("crash", f"{member.name} for {downtime} ticks")

    def _after_input(self, member: SimNode) -> None:
        """Check invariants, then start the next Ready if no write is in flight."""
        node = member.node
        assert node is not None
        self.checker.check_node(node)
        if member.writing is not None or not node.has_ready():
            return
        assert member.loop is not None
        # 1-2. The leader's appends leave before its own write is durable; a
        # received snapshot becomes the durable base.
        rd = member.loop.begin()
        assert rd is not None
        if rd.soft_state is not None:
            soft = rd.soft_state
            self._record(
                "role",
                f"{member.name} {soft.role} term {soft.term} leader {soft.leader}",
            )
            if soft.role is Role.LEADER:
                self.elections.add((soft.term, member.name))
                if self.transfer_targets.get(member.name) == soft.term - 1:
                    self.transfers_done += 1
        if rd.membership is not None:
            self._record("membership", f"{member.name} {_describe(rd.membership)}")
        if rd.read_states:
            self._take_read_states(member, rd)
        # 3. The write starts; it is durable once _write_done syncs it.
        member.loop.write(rd)
        member.writing = rd
        delay = self.rng.randint(0, self.params.max_disk_delay)
        if delay == 0:
            self._write_done(member.name, member.life)
        else:
            self._push(self.now + delay, _WRITE_DONE, (member.name, member.life))

    def _write_done(self, name: str, life: int) -> None:
        member = self.members[name]
        if member.life != life or member.writing is None:
            return  # the node crashed while writing: the write never happened
        rd = member.writing
        loop = member.loop
        assert loop is not None
        # The write completes: entries, then hard state, durable.
        loop.log.sync()
        if self.chaos and self.rng.random() < self.params.crash_after_write_rate:
            # Durable, but the answers never left and nothing was applied.
            self._crash(member, self.rng.randrange(1, self.params.max_downtime + 1))
            return
        # 4-6. Answers that speak for durable state, the snapshot loaded,
        # committed entries applied, advance.
        loop.finish(rd)
        member.writing = None
        self._maybe_snapshot(member)
        self._after_input(member)

    # -- snapshots -------------------------------------------------------------------

    def _maybe_snapshot(self, member: SimNode) -> None:
        """The node's own compaction policy: every `snapshot_every` applied
        entries, write a snapshot (taking time), then compact."""
        every = self.params.snapshot_every
        if (
            not every
            or member.snapshotting
            or len(member.applied) - member.disk.offset < every
        ):
            return
        snapshot = take_snapshot(member.applied, member.base_membership)
        self.checker.check_snapshot(member.name, snapshot)
        member.snapshotting = True
        delay = self.rng.randint(0, self.params.max_snapshot_delay)
        if delay == 0:
            self._snapshot_done(member.name, member.life, snapshot)
        else:
            self._push(
                self.now + delay, _SNAPSHOT_DONE, (member.name, member.life, snapshot)
            )

    def _snapshot_done(self, name: str, life: int, snapshot: SnapshotFile) -> None:
        member = self.members[name]
        if member.life != life:
            return  # crashed while writing: the temporary file is gone
        member.snapshotting = False
        node = member.node
        assert node is not None
        # A snapshot installed from the leader meanwhile may be newer.
        if member.disk.compact(snapshot):
            self.snapshots_taken += 1
            self._record("snapshot", f"{name} at {snapshot.index}/{snapshot.term}")
            node.compact(snapshot.index)
            compacted = node.snapshot
            if (
                compacted is not None
                and compacted.index == snapshot.index
                and compacted.config != snapshot.config
            ):
                raise InvariantViolation(
                    "snapshot membership",
                    f"{name} compacted to {snapshot.index} with membership "
                    f"{compacted.config}, its applied entries say {snapshot.config}",
                )

    def _newest_file(self, member: SimNode) -> SnapshotFile | None:
        files = list(member.incoming.values())
        if member.disk.snapshot is not None:
            files.append(member.disk.snapshot)
        return max(files, key=lambda f: f.index) if files else None

    def _start_transfer(self, msg: Message) -> None:
        """The leader's driver saw a SNAPSHOT message: stream its newest
        snapshot; the network decides whether it gets through."""
        params, rng = self.params, self.rng
        source = self.members[msg.src]
        file = self._newest_file(source)
        if file is None or file.index < msg.index:
            raise InvariantViolation(
                "snapshot to send",
                f"{msg.src} asked to send a snapshot at {msg.index}, holds {file}",
            )
        self.snapshots_sent += 1
        self._record("transfer", f"{msg.src}->{msg.dst} snapshot {file.index}")
        if (params.drop_rate and rng.random() < params.drop_rate) or (
            params.snapshot_fail_rate and rng.random() < params.snapshot_fail_rate
        ):
            self._record("transfer broken", msg)
            self._push_report(msg, ok=False)
            return
        when = self.now + rng.randint(1, params.max_delay)
        link = (msg.src, msg.dst)
        when = max(when, self.link_clock.get(link, 0))
        self.link_clock[link] = when
        self._push(when, _TRANSFER, (msg, file, False))
        if params.dup_rate and rng.random() < params.dup_rate:
            self._push(
                self.now + rng.randint(1, params.max_delay),
                _TRANSFER,
                (msg, file, True),
            )

    def _transfer_arrives(
        self, msg: Message, file: SnapshotFile, duplicate: bool
    ) -> None:
        member = self.members[msg.dst]
        node = member.node
        if node is None or self.group[msg.src] != self.group[msg.dst]:
            self._record("transfer lost", msg)
            if not duplicate:
                self._push_report(msg, ok=False)
            return
        # The follower's driver holds the whole verified file: step it in.
        stepped = Message(
            MessageType.SNAPSHOT,
            msg.term,
            msg.src,
            msg.dst,
            index=file.index,
            log_term=file.term,
            context=file.step_context(),
        )
        self._record("deliver", stepped)
        before = node.snapshot
        node.step(stepped)
        if node.snapshot == file.meta and before != file.meta:
            member.incoming[file.meta] = file
            self.snapshots_installed += 1
        self._after_input(member)
        if not duplicate:
            self._push_report(msg, ok=True)

    def _push_report(self, msg: Message, ok: bool) -> None:
        if not ok:
            self.snapshot_failures += 1
        source = self.members[msg.src]
        when = self.now + self.rng.randint(1, self.params.max_delay)
        self._push(when, _REPORT, (msg.src, source.life, msg.dst, ok))

    def _report(self, name: str, life: int, peer: str, ok: bool) -> None:
        member = self.members[name]
        if member.life != life or member.node is None:
            return  # the leader's driver died with its transfer
        self._record("report", f"{name} snapshot to {peer} {'ok' if ok else 'FAILED'}")
        member.node.report_snapshot(peer, ok)
        self._after_input(member)

    # -- network -------------------------------------------------------------------

    def _push(self, when: int, kind: int, payload: Any) -> None:
        self.sequence += 1
        heapq.heappush(self.queue, (when, self.sequence, kind, payload))

    def _send(self, msg: Message) -> None:
        params, rng = self.params, self.rng
        self.messages += 1
        if msg.type == MessageType.SNAPSHOT:
            self._start_transfer(msg)
            return
        if params.drop_rate and rng.random() < params.drop_rate:
            self._record("drop", msg)
            return
        when = self.now + rng.randint(1, params.max_delay)
        if not (params.reorder_rate and rng.random() < params.reorder_rate):
            link = (msg.src, msg.dst)
            when = max(when, self.link_clock.get(link, 0))
            self.link_clock[link] = when
        self._push(when, _DELIVER, msg)
        if params.dup_rate and rng.random() < params.dup_rate:
            self._push(self.now + rng.randint(1, params.max_delay), _DELIVER, msg)

    def _deliver(self, msg: Message) -> None:
        member = self.members[msg.dst]
        if member.node is None or self.group[msg.src] != self.group[msg.dst]:
            self._record("lost", msg)
            return
        self._record("deliver", msg)
        member.node.step(msg)
        if msg.type == MessageType.READ_INDEX:
            # As the server's driver does: the answer leaves at once, outside
            # any Ready (maybe while one is being written).
            for answer in member.node.take_messages():
                self._send(answer)
        self._after_input(member)

    # -- the end: heal, then liveness ------------------------------------------------

    def _heal(self) -> int:
        self.chaos = False
        self.params.drop_rate = 0.0
        self.params.dup_rate = 0.0
        self.params.reorder_rate = 0.0
        self.params.snapshot_fail_rate = 0.0
        self._set_groups({name: 0 for name in self.names}, "heal all")
        for member in self.members.values():
            if member.node is None:
                self._start(member)
        return self.tick_count

    def _await_liveness(self, healed_at: int) -> tuple[int, int, int]:
        """After healing: a leader within `election_bound` ticks, a new entry
        committed within `commit_bound`, and applied by every node within
        `catch_up_bound` more (a node that was down long may have a long log
        to fetch). Returns the three durations."""
        params = self.params
        markers: set[bytes] = set()
        proposed_in: set[tuple[str, int]] = set()
        history = self.checker.history
        scanned = len(history)
        elected_at = 0
        committed_marker = 0
        committed_at = 0
        while True:
            if not elected_at and self.tick_count - healed_at > params.election_bound:
                self._liveness_failure(
                    f"no leader within {params.election_bound} ticks"
                )
            if (
                not committed_marker
                and self.tick_count - healed_at > params.commit_bound
            ):
                self._liveness_failure(
                    f"no new entry committed within {params.commit_bound} ticks"
                )
            if (
                committed_marker
                and self.tick_count - committed_at > params.catch_up_bound
            ):
                self._liveness_failure(
                    f"committed entry {committed_marker} not applied everywhere "
                    f"within {params.catch_up_bound} ticks"
                )
            self._run_tick()
            if not committed_marker:
                for member in self.members.values():
                    node = member.node
                    assert node is not None
                    key = (member.name, node.term)
                    if node.role is Role.LEADER and key not in proposed_in:
                        elected_at = elected_at or self.tick_count
                        marker = f"live:{member.name}:{node.term}".encode()
                        try:
                            node.propose(marker)
                        except NotLeader:
                            continue  # handing over: the next leader will do
                        # A fresh marker per leadership: one proposed to a
                        # leader that then lost office need not commit.
                        proposed_in.add(key)
                        markers.add(marker)
                        self._record("propose", f"marker {marker!r}")
                        self._after_input(member)
                while not committed_marker and scanned < len(history):
                    if history[scanned].data in markers:
                        committed_marker = scanned + 1
                        committed_at = self.tick_count
                    scanned += 1
            # Removed nodes (and learners whose addition was lost) are no
            # longer fed by the leader: only the members must catch up.
            if committed_marker and all(
                self.checker.watch[name].applied >= committed_marker
                for name in self._final_membership().members
            ):
                return (
                    elected_at - healed_at,
                    committed_at - healed_at,
                    self.tick_count - committed_at,
                )

    def _liveness_failure(self, what: str) -> None:
        states = ", ".join(
            f"{m.name}:{m.node.role}:t{m.node.term}:c{m.node.commit_index}"
            f"/{m.node.last_index}:a{self.checker.watch[m.name].applied}"
            for m in self.members.values()
            if m.node is not None
        )
        raise InvariantViolation("liveness", f"{what} of healing ({states})")


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


class _NetworkAdapter:
    """A Network node's log, transport and state machine for the ReadyLoop."""

    def __init__(self, net: Network, name: str) -> None:
        self.net = net
        self.name = name
        self.disk = net.disks[name]
        self.installing: SnapshotFile | None = None

    def install_snapshot_base(self, snapshot: SnapshotMeta) -> None:
        installed = self.net.incoming.pop(self.name)
        assert installed.meta == snapshot
        self.disk.reset_to(installed)
        self.installing = installed

    def write(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        self.net.checker.check_ready_entries(self.net.nodes[self.name], entries)
        self.disk.write(hard_state, entries)

    def sync(self) -> None:
        before = self.disk.hard_state
        self.disk.sync()
        self.net.checker.check_persist(self.name, before, self.disk.hard_state)

    def send(self, messages: list[Message]) -> None:
        self.net.outbox.extend(messages)

    def send_durable(self, messages: list[Message]) -> None:
        for msg in messages:
            self.net.checker.check_persisted_message(msg, self.disk)
        self.net.outbox.extend(messages)

    def restore(self, snapshot: SnapshotMeta) -> None:
        installed = self.installing
        assert installed is not None
        self.net.checker.check_restore(self.name, installed)
        self.net.applied[self.name] = list(installed.entries)

    def apply(self, rd: Ready) -> None:
        self.net.checker.check_apply(self.name, rd.committed_entries)
        self.net.applied[self.name].extend(rd.committed_entries)
        self.net.read_states[self.name].extend(rd.read_states)


def _describe(membership: Membership) -> str:
    text = "voters " + ",".join(sorted(membership.voters))
    if membership.learners:
        text += " learners " + ",".join(sorted(membership.learners))
    return text


def run_seed(seed: int, replay_hint: str = "", **kwargs: Any) -> SimReport:
    return Simulation(seed, replay_hint=replay_hint, **kwargs).run()


# -- the synchronous harness for unit tests ----------------------------------------


class Network:
    """Nodes joined by a perfect synchronous network (etcd's raft_test
    `network`): writes complete at once, messages are stepped into their
    targets until nothing is left, minus what the filters drop."""

    def __init__(
        self,
        names: Iterable[str],
        seed: int = 0,
        configure: Callable[[RaftConfig], None] | None = None,
    ) -> None:
        self.names = list(names)
        self.rng = random.Random(seed)
        self.disks = {name: Disk() for name in self.names}
        self.configs: dict[str, RaftConfig] = {}
        for name in self.names:
            config = RaftConfig(name=name, peers=list(self.names))
            if configure is not None:
                configure(config)
            self.configs[name] = config
        self.nodes: dict[str, RaftNode] = {}
        # Each node's state machine: every applied entry from index 1.
        self.applied: dict[str, list[Entry]] = {name: [] for name in self.names}
        # Received and installed, not yet the base (writes here are
        # synchronous, so at most one per node).
        self.incoming: dict[str, SnapshotFile] = {}
        self.transfers: list[tuple[str, str, bool]] = []  # (src, dst, ok)
        # Every ReadState each node handed out, in order.
        self.read_states: dict[str, list[ReadState]] = {name: [] for name in self.names}
        self.checker = SafetyChecker(self.names, self.disks)
        self.configure = configure
        self.bootstrap = list(self.names)
        self.cut: set[frozenset[str]] = set()
        self.isolated: set[str] = set()
        self.dropped_types: set[int] = set()
        self.delivered: list[Message] = []  # every message stepped, in order
        self.hook: Callable[[Message], bool] | None = None  # False drops
        self.outbox: deque[Message] = deque()
        for name in self.names:
            self.start(name)

    def start(
        self,
        name: str,
        entries: list[Entry] | None = None,
        hard: HardState | None = None,
    ) -> RaftNode:
        """(Re)start `name` from its disk (or from the given state, written
        to its disk first, to set up a scenario)."""
        disk = self.disks[name]
        if entries is not None:
            disk.entries = list(entries)
        if hard is not None:
            disk.hard_state = hard
        recovered_hard, recovered_entries, snapshot = disk.recovered()
        node = RaftNode(
            self.configs[name],
            random.Random(self.rng.getrandbits(32)),
            recovered_hard,
            recovered_entries,
            applied=disk.offset,
            snapshot=snapshot,
        )
        self.nodes[name] = node
        self.applied[name] = list(disk.snapshot.entries) if disk.snapshot else []
        self.incoming.pop(name, None)
        if entries is None and hard is None:
            self.checker.on_restart(node, disk)
        return node

    def add(self, name: str) -> RaftNode:
        """Start a fresh node, empty disk, as a joining learner (bootstrap
        voters as the others', itself a learner): the leader's
        propose_conf_change makes it a member."""
        config = RaftConfig(name=name, peers=list(self.bootstrap), learners=[name])
        if self.configure is not None:
            self.configure(config)
        self.names.append(name)
        self.configs[name] = config
        self.disks[name] = Disk()
        self.applied[name] = []
        self.read_states[name] = []
        self.checker.add_node(name)
        return self.start(name)

    def crash(self, name: str) -> None:
        """Stop a node: unflushed output is lost, its disk stays."""
        del self.nodes[name]
        self.incoming.pop(name, None)
        self.checker.on_crash(name)

    def compact(self, name: str, index: int | None = None) -> SnapshotFile:
        """Snapshot `name`'s state machine at `index` (default: all it
        applied), durably, and compact its log there."""
        state = self.applied[name]
        snapshot = take_snapshot(
            state if index is None else state[:index],
            bootstrap_membership(self.configs[name]),
        )
        self.checker.check_snapshot(name, snapshot)
        self.disks[name].compact(snapshot)
        self.nodes[name].compact(snapshot.index)
        return snapshot

    def process(self, name: str) -> None:
        """Drain the node's Readys by the driver contract, queueing messages."""
        node = self.nodes[name]
        self.checker.check_node(node)
        adapter = _NetworkAdapter(self, name)
        loop = ReadyLoop(node, adapter, adapter, adapter)
        while loop.run_sync() is not None:
            self.checker.check_node(node)

    def _passes(self, msg: Message) -> bool:
        if msg.dst not in self.nodes:
            return False
        if msg.src in self.isolated or msg.dst in self.isolated:
            return False
        if frozenset((msg.src, msg.dst)) in self.cut or msg.type in self.dropped_types:
            return False
        return self.hook is None or self.hook(msg)

    def stabilize(self, max_messages: int = 100_000) -> int:
        """Process every node and deliver until quiet; returns messages stepped."""
        for name in list(self.nodes):
            self.process(name)
        stepped = 0
        while self.outbox:
            msg = self.outbox.popleft()
            if not self._passes(msg):
                if msg.type == MessageType.SNAPSHOT:
                    self._report(msg, ok=False)  # the transfer broke
                continue
            stepped += 1
            if stepped > max_messages:
                raise AssertionError("network did not quiesce")
            self.delivered.append(msg)
            if msg.type == MessageType.SNAPSHOT:
                self._transfer(msg)
                continue
            self.nodes[msg.dst].step(msg)
            self.process(msg.dst)
        return stepped

    def _transfer(self, msg: Message) -> None:
        """A SNAPSHOT message that got through: the leader's newest snapshot
        arrives whole, the follower's driver steps it in, the leader's
        driver reports success."""
        disk = self.disks[msg.src]
        file = max(
            (f for f in (disk.snapshot, self.incoming.get(msg.src)) if f is not None),
            key=lambda f: f.index,
        )
        node = self.nodes[msg.dst]
        before = node.snapshot
        node.step(
            Message(
                MessageType.SNAPSHOT,
                msg.term,
                msg.src,
                msg.dst,
                index=file.index,
                log_term=file.term,
                context=file.step_context(),
            )
        )
        if node.snapshot == file.meta and before != file.meta:
            self.incoming[msg.dst] = file
        self.process(msg.dst)
        self._report(msg, ok=True)

    def _report(self, msg: Message, ok: bool) -> None:
        self.transfers.append((msg.src, msg.dst, ok))
        if msg.src in self.nodes:
            self.nodes[msg.src].report_snapshot(msg.dst, ok)
            self.process(msg.src)

    def tick(self, name: str, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.nodes[name].tick()
            self.process(name)

    def tick_all(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            for name in list(self.nodes):
                self.nodes[name].tick()
                self.process(name)
            self.stabilize()

    def elect(self, name: str) -> RaftNode:
        """Make `name` campaign and run the election to the end."""
        self.nodes[name].campaign()
        self.stabilize()
        return self.nodes[name]

    def leaders(self) -> list[str]:
        return [name for name, node in self.nodes.items() if node.role is Role.LEADER]

    def propose(self, name: str, data: bytes) -> int:
        index = self.nodes[name].propose(data)
        self.stabilize()
        return index

    def recover(self) -> None:
        self.cut.clear()
        self.isolated.clear()
        self.dropped_types.clear()
        self.hook = None


def log_with_terms(terms: list[int]) -> list[Entry]:
    """A log with one entry per term in `terms`, for scenario setup."""
    return [
        Entry(index, term, EntryKind.NORMAL, f"{index}/{term}".encode())
        for index, term in enumerate(terms, start=1)
    ]
