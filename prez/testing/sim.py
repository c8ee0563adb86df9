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
- `Network` (prez.testing.network): the synchronous harness for unit tests.

The simulated state machine is the list of applied entries; a snapshot
(`SnapshotFile`) is its prefix up to an index, so the checker can compare a
node's whole applied sequence, restored prefix included, with the history.

Both run every node through the production ReadyLoop (prez.raft.ready_loop).
Test support: imports the Raft core, never prez.server or prez.storage.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
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
    Membership,
    Message,
    MessageType,
)
from prez.testing import simend
from prez.testing.invariants import InvariantViolation, SafetyChecker
from prez.testing.linearizability import Operation
from prez.testing.simdisk import (
    SnapshotFile,
    bootstrap_membership,
    describe_message,
    take_snapshot,
)
from prez.testing.simnodes import (
    SimFailure,
    SimNode,
    SimParams,
    SimRead,
    SimReport,
    SimWrite,
    _MemberAdapter,
)

TICK = 10  # simulated time units per tick; message and disk delays use units

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

    # The end of the run (prez/testing/simend.py).
    _await_final_reads = simend.await_final_reads
    _check_history = simend.check_client_history
    _heal = simend.heal
    _await_liveness = simend.await_liveness
    _liveness_failure = simend.liveness_failure


def _describe(membership: Membership) -> str:
    text = "voters " + ",".join(sorted(membership.voters))
    if membership.learners:
        text += " learners " + ",".join(sorted(membership.learners))
    return text


def run_seed(seed: int, replay_hint: str = "", **kwargs: Any) -> SimReport:
    return Simulation(seed, replay_hint=replay_hint, **kwargs).run()
