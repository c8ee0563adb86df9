"""Raft safety checks, run by the simulator after every step.

`SafetyChecker` watches a cluster from outside: the nodes' observable state
(role, term, commit index, log), what they hand to their simulated disks,
the persisted-only messages they send and the entries they apply. Any
breach raises `InvariantViolation`, naming the invariant. Test support only;
it imports the Raft core but nothing from prez.server or prez.storage.

Checked (Raft paper Figure 3, plus the durability rules of the Ready
contract):
- Election Safety: at most one leader per term.
- Log Matching: an (index, term) pair always names the same entry with the
  same predecessor term, so logs that share it agree on the whole prefix
  (checked incrementally as entries are handed out for persistence).
- Leader Completeness: a new leader holds every entry committed so far, and
  a newly committed entry is in the log of every leader of a later term.
- State Machine Safety: every applied sequence is a prefix of one history,
  applied in order without gaps; committed entries never change. A node's
  applied sequence includes the prefix it restored from a snapshot, which
  must be that history's prefix too.
- Snapshots cover only committed entries: a snapshot taken by a node is a
  prefix of the committed history, and a node's log is never compacted
  past (nor its commit index moved by a snapshot beyond) what committed.
- Durable commit: an entry is on a majority's disks (as a log entry, or
  inside a durable snapshot) when it first commits, and stays so: checked
  again over the whole history at every crash and at the end of a run.
  With membership changes the majority is one of the voters the committing
  node counted (its membership in effect then), and removed nodes keep
  their disks, so "stays so" means no committed entry is lost across a
  change. Election Safety and Leader Completeness span every node ever
  started, old and new configurations alike.
- Commit index never decreases, except across a restart, which reloads it
  from the persisted hard state.
- Term and vote never regress on disk; a vote once persisted for a term
  never changes; votes, vote requests and append answers leave a node only
  when the term, vote and acknowledged entries they speak for are durable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prez.raft.core import RaftNode, Role
from prez.raft.types import Entry, HardState, Message, MessageType, ReadState


class InvariantViolation(AssertionError):
    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


class SnapshotImage(Protocol):
    """A simulated state machine snapshot (the simulator's SnapshotFile)."""

    @property
    def index(self) -> int: ...
    @property
    def term(self) -> int: ...
    @property
    def entries(self) -> Sequence[Entry]: ...  # every applied entry, 1..index


class DurableState(Protocol):
    """What a node's disk holds (the simulator's Disk): the newest snapshot
    and the log after it, entries[i].index == offset + i + 1."""

    hard_state: HardState
    entries: list[Entry]

    @property
    def snapshot(self) -> SnapshotImage | None: ...
    @property
    def offset(self) -> int: ...
    @property
    def last_index(self) -> int: ...


@dataclass
class _NodeWatch:
    commit: int = 0  # last commit index seen (monotonic within a life)
    term: int = 0  # last in-memory term seen (monotonic within a life)
    applied: int = 0  # last index applied by this life's state machine
    leader_terms: set[int] = field(default_factory=set)


class SafetyChecker:
    def __init__(self, names: list[str], disks: Mapping[str, DurableState]) -> None:
        self.names = list(names)
        self.quorum = len(names) // 2 + 1
        self.disks = disks
        self.leader_of_term: dict[int, str] = {}
        # history[i - 1] is the committed entry at index i; the committing
        # leader's term is kept beside it for Leader Completeness, and the
        # voters whose majority it needed for the durability checks.
        self.history: list[Entry] = []
        self.committed_in_term: list[int] = []
        self.committed_by_voters: list[frozenset[str]] = []
        self.entry_ids: dict[tuple[int, int], tuple[int, int, bytes]] = {}
        self.watch = {name: _NodeWatch() for name in names}
        self.current_leaders: dict[str, RaftNode] = {}

    def add_node(self, name: str) -> None:
        """Watch a node that joins the cluster (its disk must be in `disks`)."""
        self.names.append(name)
        self.watch[name] = _NodeWatch()

    # -- after every input to a node -----------------------------------------

    def check_node(self, node: RaftNode) -> None:
        name = node.name
        watch = self.watch[name]
        term = node.term
        if term < watch.term:
            raise InvariantViolation(
                "term monotonic", f"{name} went from term {watch.term} to {term}"
            )
        watch.term = term
        if node.role is Role.LEADER:
            self._check_leader(node, watch)
        else:
            self.current_leaders.pop(name, None)
        commit = node.commit_index
        if commit < watch.commit:
            raise InvariantViolation(
                "commit monotonic",
                f"{name} commit went from {watch.commit} to {commit}",
            )
        if commit > watch.commit:
            self._check_committed(node, watch.commit + 1, commit)
            watch.commit = commit

    def _check_leader(self, node: RaftNode, watch: _NodeWatch) -> None:
        name, term = node.name, node.term
        self.current_leaders[name] = node
        if term in watch.leader_terms:
            return
        other = self.leader_of_term.setdefault(term, name)
        if other != name:
            raise InvariantViolation(
                "Election Safety", f"{other} and {name} both leader in term {term}"
            )
        watch.leader_terms.add(term)
        log = node.log
        history = self.history
        # A compacted prefix is in the node's snapshot, itself checked
        # against the history when it was taken; the snapshot point's term
        # must still agree.
        if log.offset > len(history):
            raise InvariantViolation(
                "snapshot within commit",
                f"{name} compacted to {log.offset}, only {len(history)} committed",
            )
        if log.offset and history[log.offset - 1].term != log.offset_term:
            raise InvariantViolation(
                "Leader Completeness",
                f"{name} leader of term {term} has snapshot point "
                f"{log.offset}/{log.offset_term}, committed {history[log.offset - 1]}",
            )
        for index in range(log.offset + 1, len(history) + 1):
            entry = history[index - 1]
            if log.term_at(index) is None or log.entry_at(index) != entry:
                held = log.entry_at(index) if log.term_at(index) is not None else None
                raise InvariantViolation(
                    "Leader Completeness",
                    f"{name} leader of term {term} lacks committed {entry} (has {held})",
                )

    def _check_committed(self, node: RaftNode, low: int, high: int) -> None:
        log = node.log
        history = self.history
        offset = log.offset
        if low <= offset:
            # Committed through a snapshot (installed or loaded at restart):
            # it may only cover what the cluster committed.
            if offset > len(history):
                raise InvariantViolation(
                    "snapshot within commit",
                    f"{node.name} holds a snapshot at {offset}, only "
                    f"{len(history)} committed",
                )
            if history[offset - 1].term != log.offset_term:
                raise InvariantViolation(
                    "State Machine Safety",
                    f"{node.name} snapshot point {offset}/{log.offset_term}, "
                    f"but {history[offset - 1]} was committed there",
                )
            low = offset + 1
        for index in range(low, high + 1):
            if log.term_at(index) is None:
                raise InvariantViolation(
                    "commit within log",
                    f"{node.name} commit {high} beyond its last index {log.last_index}",
                )
            entry = log.entry_at(index)
            if index <= len(history):
                if history[index - 1] != entry:
                    raise InvariantViolation(
                        "State Machine Safety",
                        f"{node.name} committed {entry} at {index}, "
                        f"but {history[index - 1]} was committed there",
                    )
                continue
            if index != len(history) + 1:
                raise InvariantViolation("commit gap", f"{node.name} at {index}")
            voters = node.membership.voters
            self._check_durable_majority(entry, voters)
            history.append(entry)
            self.committed_in_term.append(node.term)
            if self.committed_by_voters and self.committed_by_voters[-1] == voters:
                voters = self.committed_by_voters[-1]  # share one set per run
            self.committed_by_voters.append(voters)
            for leader in self.current_leaders.values():
                if leader.term > node.term:
                    held = leader.log.term_at(index)
                    if held is None or leader.log.entry_at(index) != entry:
                        raise InvariantViolation(
                            "Leader Completeness",
                            f"{leader.name} leader of term {leader.term} lacks "
                            f"{entry} just committed by {node.name} in term {node.term}",
                        )

    def _check_durable_majority(self, entry: Entry, voters: frozenset[str]) -> None:
        on_disk = [
            name for name in sorted(voters) if _disk_holds(self.disks[name], entry)
        ]
        if len(on_disk) < len(voters) // 2 + 1:
            raise InvariantViolation(
                "durable commit",
                f"{entry} committed while durable only on {on_disk} of "
                f"voters {sorted(voters)}",
            )

    def check_committed_durable(self) -> None:
        """Committed entries are never lost: every one of them is still on a
        majority of the voters that committed it, in a log or a snapshot."""
        history = self.history
        # Most disks hold an unbroken prefix of the history; count those in
        # bulk and look at single entries only past the shortest majority
        # (per run of entries committed by the same voters).
        held = {name: _held_prefix(disk, history) for name, disk in self.disks.items()}
        by_voters = self.committed_by_voters
        start = 0
        while start < len(history):
            voters = by_voters[start]
            stop = start
            while stop < len(history) and by_voters[stop] is voters:
                stop += 1
            prefixes = sorted((held[name] for name in voters), reverse=True)
            majority_holds = prefixes[len(voters) // 2]
            for index in range(max(start, majority_holds) + 1, stop + 1):
                self._check_durable_majority(history[index - 1], voters)
            start = stop

    def check_state_machine(self, name: str, applied: Sequence[Entry]) -> None:
        """`name`'s whole state machine (restored prefix and applied entries)
        is the history's prefix, as long as the checker says it applied."""
        watch = self.watch[name]
        if (
            len(applied) != watch.applied
            or list(applied) != self.history[: len(applied)]
        ):
            raise InvariantViolation(
                "State Machine Safety",
                f"{name} state machine of {len(applied)} entries (applied "
                f"{watch.applied}) is not a prefix of the committed history",
            )

    def check_snapshot(self, name: str, snapshot: SnapshotImage) -> None:
        """A snapshot `name` took of its state machine: committed entries
        only, exactly the committed prefix."""
        history = self.history
        index = snapshot.index
        if index > len(history):
            raise InvariantViolation(
                "snapshot within commit",
                f"{name} snapshot at {index}, only {len(history)} committed",
            )
        if len(snapshot.entries) != index or list(snapshot.entries) != history[:index]:
            raise InvariantViolation(
                "State Machine Safety",
                f"{name} snapshot at {index} is not the committed prefix",
            )
        if index and snapshot.term != history[index - 1].term:
            raise InvariantViolation(
                "snapshot term",
                f"{name} snapshot at {index} names term {snapshot.term}, "
                f"committed {history[index - 1]}",
            )

    def check_restore(self, name: str, snapshot: SnapshotImage) -> None:
        """`name`'s state machine was replaced by `snapshot` (InstallSnapshot):
        it must be the committed prefix, and move the state machine forward."""
        self.check_snapshot(name, snapshot)
        watch = self.watch[name]
        if snapshot.index <= watch.applied:
            raise InvariantViolation(
                "apply in order",
                f"{name} loaded a snapshot at {snapshot.index} after applying "
                f"{watch.applied}",
            )
        watch.applied = snapshot.index

    # -- the Ready contract ------------------------------------------------------

    def check_ready_entries(self, node: RaftNode, entries: list[Entry]) -> None:
        """Log Matching, incrementally: each (index, term) handed out for
        persistence must always name the same entry and predecessor term."""
        if not entries:
            return
        prev_term = node.log.term_at(entries[0].index - 1)
        if prev_term is None:
            raise InvariantViolation(
                "ready entries contiguous",
                f"{node.name} handed out {entries[0]} after a gap",
            )
        ids = self.entry_ids
        for entry in entries:
            key = (entry.index, entry.term)
            identity = (prev_term, entry.kind, entry.data)
            known = ids.setdefault(key, identity)
            if known != identity:
                raise InvariantViolation(
                    "Log Matching",
                    f"{node.name} holds {entry} after term {prev_term}; "
                    f"elsewhere ({entry.index}, {entry.term}) is {known}",
                )
            prev_term = entry.term

    def check_persist(self, name: str, before: HardState, after: HardState) -> None:
        if after.term < before.term:
            raise InvariantViolation(
                "term durable monotonic",
                f"{name} persisted term {after.term} after {before.term}",
            )
        if after.term == before.term and before.vote and after.vote != before.vote:
            raise InvariantViolation(
                "one vote per term",
                f"{name} changed its durable vote in term {after.term} "
                f"from {before.vote} to {after.vote}",
            )
        if after.commit < before.commit:
            raise InvariantViolation(
                "commit durable monotonic",
                f"{name} persisted commit {after.commit} after {before.commit}",
            )

    def check_persisted_message(self, msg: Message, disk: DurableState) -> None:
        """A message from Ready.persisted_messages, as it leaves the node."""
        hard = disk.hard_state
        msg_type = msg.type
        # A pre-vote grant names the term the candidate is about to enter,
        # which nobody holds yet; it promises nothing.
        pre_vote_grant = msg_type == MessageType.PRE_VOTE_RESP and not msg.reject
        if msg.term > hard.term and not pre_vote_grant:
            raise InvariantViolation(
                "term durable before answering",
                f"{msg.src} sent term {msg.term} with durable term {hard.term}",
            )
        # A vote (or the self-vote behind a request) binds once it is durable,
        # or once a later term is: either way the node cannot vote again in
        # that term.
        granted = msg_type == MessageType.VOTE_RESP and not msg.reject
        if granted and hard.term == msg.term and hard.vote != msg.dst:
            raise InvariantViolation(
                "vote durable before granting",
                f"{msg.src} granted {msg.dst} in term {msg.term}, durable {hard}",
            )
        if (
            msg_type == MessageType.VOTE
            and hard.term == msg.term
            and hard.vote != msg.src
        ):
            raise InvariantViolation(
                "self-vote durable before campaigning",
                f"{msg.src} asked for votes in term {msg.term}, durable {hard}",
            )
        # An acknowledgement counts toward commit: it must be on disk.
        acked = msg_type == MessageType.APPEND_RESP and not msg.reject
        if acked and msg.index > disk.last_index:
            raise InvariantViolation(
                "append durable before acknowledging",
                f"{msg.src} acknowledged {msg.index} holding {disk.last_index} on disk",
            )

    def check_read_state(self, name: str, state: ReadState) -> None:
        """A read index names a committed point: reads served once it is
        applied never see an entry that might still be lost."""
        if state.index > len(self.history):
            raise InvariantViolation(
                "read index committed",
                f"{name} got read index {state.index}, committed history "
                f"holds {len(self.history)}",
            )

    def check_apply(self, name: str, entries: list[Entry]) -> None:
        watch = self.watch[name]
        history = self.history
        for entry in entries:
            if entry.index != watch.applied + 1:
                raise InvariantViolation(
                    "apply in order",
                    f"{name} applied {entry.index} after {watch.applied}",
                )
            if entry.index > len(history) or history[entry.index - 1] != entry:
                raise InvariantViolation(
                    "State Machine Safety",
                    f"{name} applied {entry}, not the committed entry at {entry.index}",
                )
            watch.applied = entry.index

    def on_restart(self, node: RaftNode, disk: DurableState) -> None:
        watch = self.watch[node.name]
        hard = disk.hard_state
        if (node.term, node.vote) != (hard.term, hard.vote):
            raise InvariantViolation(
                "restart reloads term and vote",
                f"{node.name} restarted at {node.term}/{node.vote!r}, disk {hard}",
            )
        if node.commit_index != max(hard.commit, disk.offset):
            raise InvariantViolation(
                "durable commit within durable log",
                f"{node.name} disk commit {hard.commit} but log "
                f"{disk.offset}+1..{disk.last_index}",
            )
        if disk.snapshot is not None:
            self.check_snapshot(node.name, disk.snapshot)
        # Across a restart these are reloaded from disk, not remembered; the
        # reloaded committed prefix must still be the committed history.
        watch.term = node.term
        if node.commit_index:
            self._check_committed(node, 1, node.commit_index)
        watch.commit = node.commit_index
        watch.applied = node.applied_index
        self.check_node(node)

    def on_crash(self, name: str) -> None:
        self.current_leaders.pop(name, None)


def _disk_holds(disk: DurableState, entry: Entry) -> bool:
    index = entry.index
    offset = disk.offset
    if index <= offset:
        snapshot = disk.snapshot
        return snapshot is not None and snapshot.entries[index - 1] == entry
    position = index - offset - 1
    return position < len(disk.entries) and disk.entries[position] == entry


def _held_prefix(disk: DurableState, history: list[Entry]) -> int:
    """How many of the history's first entries `disk` holds, unbroken."""
    offset = min(disk.offset, len(history))
    snapshot = disk.snapshot
    if offset and (
        snapshot is None or snapshot.entries[offset - 1] != history[offset - 1]
    ):
        # (Snapshots are checked whole when taken; the last entry vouches.)
        return 0
    held = offset
    for entry in disk.entries:
        if held >= len(history):
            break
        expected = history[held]
        if entry is not expected and entry != expected:
            break
        held += 1
    return held
