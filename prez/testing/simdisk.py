"""The simulator's storage and vocabulary: a node's simulated disk (`Disk`:
what completed writes left behind, an unsynced write that a crash loses,
the snapshot base), snapshot files (`SnapshotFile`: the applied prefix),
how a snapshot is taken, the bootstrap membership, and how a message is
printed in a trace. Used by both harnesses (prez.testing.sim, .network)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prez.raft.core import (
    RaftConfig,
)
from prez.raft.types import (
    Entry,
    EntryKind,
    HardState,
    Membership,
    Message,
    MessageType,
    SnapshotMeta,
)
from prez.testing.invariants import InvariantViolation

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
