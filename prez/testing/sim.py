"""Deterministic simulation of Raft clusters, for tests and benchmarks.

Two harnesses over the real `prez.raft` core, no I/O and no wall clock:

- `Simulation`: a seeded randomized run. ONE `random.Random(seed)` drives the
  logical clock, the network (FIFO links like TCP, plus drops, duplicates,
  messages that overtake others, partitions that come and go), the disks
  (writes that take time, so nodes take messages while their write is in
  flight), crashes and restarts (a node keeps only what it handed to its
  disk and the disk completed, possibly crashing between the write and
  sending its answers), and clients proposing values. `SafetyChecker` runs
  after every step; after the chaos the faults stop and the cluster must
  elect a leader, commit a new entry and apply it everywhere, each within a
  bound. Same seed, same run.
- `Network`: an etcd-style synchronous harness for unit tests: steps each
  message into its target and delivers the answers until the network is
  quiet, with per-link and per-type filters. Writes complete at once.

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

from prez.raft.core import NotLeader, RaftConfig, RaftNode, Ready, Role
from prez.raft.types import Entry, EntryKind, HardState, Message, MessageType
from prez.testing.invariants import InvariantViolation, SafetyChecker

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
}


def describe_message(msg: Message) -> str:
    """One line per message, etcd-transcript style."""
    text = (
        f"{msg.src}->{msg.dst} {_TYPE_NAMES.get(msg.type, str(msg.type))} t{msg.term}"
    )
    if msg.type in (MessageType.APPEND, MessageType.VOTE, MessageType.PRE_VOTE):
        text += f" log={msg.index}/{msg.log_term}"
    if msg.type in (MessageType.APPEND, MessageType.HEARTBEAT):
        text += f" commit={msg.commit}"
    if msg.type == MessageType.APPEND_RESP:
        text += f" index={msg.index}"
    if msg.reject:
        text += " REJECT"
        if msg.type == MessageType.APPEND_RESP:
            text += f" hint={msg.reject_hint}/{msg.hint_term}"
    if msg.entries:
        first, last = msg.entries[0], msg.entries[-1]
        text += f" entries=[{first.index}/{first.term}..{last.index}/{last.term}]"
    return text


class Disk:
    """A node's durable storage: what a completed Ready write left behind."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.entries: list[Entry] = []  # entries[i].index == i + 1

    def persist(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        if entries:
            first = entries[0].index
            if first > len(self.entries) + 1:
                raise InvariantViolation(
                    "ready entries contiguous",
                    f"write starts at {first} after {len(self.entries)} durable entries",
                )
            del self.entries[first - 1 :]
            self.entries.extend(entries)
        if hard_state is not None:
            self.hard_state = HardState(
                hard_state.term, hard_state.vote, hard_state.commit
            )


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


@dataclass
class SimNode:
    name: str
    config: RaftConfig
    disk: Disk = field(default_factory=Disk)
    node: RaftNode | None = None  # None while crashed
    life: int = 0  # bumped on every crash: in-flight writes of a dead life are lost
    writing: Ready | None = None  # the Ready whose write is in flight
    down_until: int = 0  # tick at which a crashed node restarts
    applied: list[Entry] = field(default_factory=list)  # this life's state machine


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


class SimFailure(AssertionError):
    pass


# Event kinds in the queue.
_DELIVER = 0
_WRITE_DONE = 1


class Simulation:
    """One seeded run; `run()` returns a report or raises SimFailure."""

    def __init__(
        self,
        seed: int,
        nodes: int | None = None,
        params: SimParams | None = None,
        replay_hint: str = "",
        trace_length: int = 40,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        if params is None:
            params = SimParams.draw(self.rng, nodes or (3 if seed % 2 == 0 else 5))
        self.params = params
        self.replay_hint = replay_hint
        self.trace_length = trace_length
        names = [f"n{i + 1}" for i in range(params.nodes)]
        self.names = names
        self.members: dict[str, SimNode] = {}
        for name in names:
            config = RaftConfig(
                name=name,
                peers=list(names),
                election_ticks=params.election_ticks,
                heartbeat_ticks=params.heartbeat_ticks,
                max_append_bytes=params.max_append_bytes,
                max_inflight=params.max_inflight,
                pre_vote=params.pre_vote,
                check_quorum=params.check_quorum,
            )
            self.members[name] = SimNode(name, config)
        self.checker = SafetyChecker(
            names, {n: m.disk for n, m in self.members.items()}
        )
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
        for member in self.members.values():
            self._start(member)

    # -- the run ------------------------------------------------------------------

    def run(self) -> SimReport:
        try:
            params = self.params
            for _ in range(params.chaos_ticks):
                self._chaos_step()
                self._run_tick()
            healed_at = self._heal()
            elected, committed, catch_up = self._await_liveness(healed_at)
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
            else:
                self._write_done(*payload)
        self.now = end
        self.tick_count += 1
        for member in self.members.values():
            if member.node is not None:
                member.node.tick()
                self._after_input(member)

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

    def _partition(self) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            # Isolate one node (often the leader, the interesting case).
            leaders = [m.name for m in self.members.values() if self._is_leader(m)]
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

    # -- nodes ---------------------------------------------------------------------

    def _start(self, member: SimNode) -> None:
        disk = member.disk
        member.node = RaftNode(
            member.config,
            random.Random(self.rng.getrandbits(32)),
            HardState(
                disk.hard_state.term, disk.hard_state.vote, disk.hard_state.commit
            ),
            list(disk.entries),
        )
        member.applied = []
        member.writing = None
        self._record(
            "start",
            f"{member.name} term {disk.hard_state.term} log {len(disk.entries)}",
        )
        self.checker.on_restart(member.node, disk)
        self._after_input(member)

    def _crash(self, member: SimNode, downtime: int) -> None:
        member.node = None
        member.writing = None
        member.life += 1
        member.down_until = self.tick_count + downtime
        self.crashes += 1
        self.checker.on_crash(member.name)
        self._record("crash", f"{member.name} for {downtime} ticks")

    def _after_input(self, member: SimNode) -> None:
        """Check invariants, then start the next Ready if no write is in flight."""
        node = member.node
        assert node is not None
        self.checker.check_node(node)
        if member.writing is not None or not node.has_ready():
            return
        rd = node.ready()
        if rd.soft_state is not None:
            soft = rd.soft_state
            self._record(
                "role",
                f"{member.name} {soft.role} term {soft.term} leader {soft.leader}",
            )
            if soft.role is Role.LEADER:
                self.elections.add((soft.term, member.name))
        self.checker.check_ready_entries(node, rd.entries)
        # 1. The leader's appends leave before its own write is durable.
        for msg in rd.messages:
            self._send(msg)
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
        node = member.node
        assert node is not None
        # 2. The write completes: entries, then hard state.
        before = member.disk.hard_state
        member.disk.persist(rd.hard_state, rd.entries)
        self.checker.check_persist(name, before, member.disk.hard_state)
        if self.chaos and self.rng.random() < self.params.crash_after_write_rate:
            # Durable, but the answers never left and nothing was applied.
            self._crash(member, self.rng.randrange(1, self.params.max_downtime + 1))
            return
        # 3. Answers that speak for durable state.
        for msg in rd.persisted_messages:
            self.checker.check_persisted_message(msg, member.disk)
            self._send(msg)
        # 4. Apply, 5. advance.
        self.checker.check_apply(name, rd.committed_entries)
        member.applied.extend(rd.committed_entries)
        member.writing = None
        node.advance(rd)
        self._after_input(member)

    # -- network -------------------------------------------------------------------

    def _push(self, when: int, kind: int, payload: Any) -> None:
        self.sequence += 1
        heapq.heappush(self.queue, (when, self.sequence, kind, payload))

    def _send(self, msg: Message) -> None:
        params, rng = self.params, self.rng
        self.messages += 1
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
        self._after_input(member)

    # -- the end: heal, then liveness ------------------------------------------------

    def _heal(self) -> int:
        self.chaos = False
        self.params.drop_rate = 0.0
        self.params.dup_rate = 0.0
        self.params.reorder_rate = 0.0
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
                        # A fresh marker per leadership: one proposed to a
                        # leader that then lost office need not commit.
                        proposed_in.add(key)
                        marker = f"live:{member.name}:{node.term}".encode()
                        markers.add(marker)
                        node.propose(marker)
                        self._record("propose", f"marker {marker!r}")
                        self._after_input(member)
                while not committed_marker and scanned < len(history):
                    if history[scanned].data in markers:
                        committed_marker = scanned + 1
                        committed_at = self.tick_count
                    scanned += 1
            if committed_marker and all(
                watch.applied >= committed_marker
                for watch in self.checker.watch.values()
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
        self.applied: dict[str, list[Entry]] = {name: [] for name in self.names}
        self.checker = SafetyChecker(self.names, self.disks)
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
        node = RaftNode(
            self.configs[name],
            random.Random(self.rng.getrandbits(32)),
            HardState(
                disk.hard_state.term, disk.hard_state.vote, disk.hard_state.commit
            ),
            list(disk.entries),
        )
        self.nodes[name] = node
        self.applied[name] = []
        if entries is None and hard is None:
            self.checker.on_restart(node, disk)
        return node

    def crash(self, name: str) -> None:
        """Stop a node: unflushed output is lost, its disk stays."""
        del self.nodes[name]
        self.checker.on_crash(name)

    def process(self, name: str) -> None:
        """Drain the node's Readys by the driver contract, queueing messages."""
        node = self.nodes[name]
        self.checker.check_node(node)
        while node.has_ready():
            rd = node.ready()
            self.checker.check_ready_entries(node, rd.entries)
            self.outbox.extend(rd.messages)
            before = self.disks[name].hard_state
            self.disks[name].persist(rd.hard_state, rd.entries)
            self.checker.check_persist(name, before, self.disks[name].hard_state)
            for msg in rd.persisted_messages:
                self.checker.check_persisted_message(msg, self.disks[name])
            self.outbox.extend(rd.persisted_messages)
            self.checker.check_apply(name, rd.committed_entries)
            self.applied[name].extend(rd.committed_entries)
            node.advance(rd)
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
                continue
            stepped += 1
            if stepped > max_messages:
                raise AssertionError("network did not quiesce")
            self.delivered.append(msg)
            self.nodes[msg.dst].step(msg)
            self.process(msg.dst)
        return stepped

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
