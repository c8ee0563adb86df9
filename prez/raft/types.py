"""Value types shared by the Raft core, storage and the wire codec.

Plain data, no behaviour: log entries, the durable hard state, the point a
snapshot covers and the messages nodes exchange. The wire codec (`prez._core.wire`) and the WAL
(`prez.storage`) encode exactly these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class EntryKind(IntEnum):
    NORMAL = 0  # a client command for the state machine
    NOOP = 1  # appended by a new leader at the start of its term
    CONFIG = 2  # a membership change (a later issue)


@dataclass(slots=True)
class Entry:
    index: int
    term: int
    kind: int = EntryKind.NORMAL
    data: bytes = b""


@dataclass(slots=True)
class HardState:
    """What must be durable before a node answers a vote or an append."""

    term: int = 0
    vote: str = ""  # "" = voted for nobody this term
    commit: int = 0


@dataclass(slots=True, frozen=True)
class SnapshotMeta:
    """The point a state machine snapshot covers: every entry up to `index`,
    the one at `index` having `term`. Only the Raft metadata; the bytes are
    the driver's (prez.storage)."""

    index: int
    term: int


class MessageType(IntEnum):
    VOTE = 1
    VOTE_RESP = 2
    APPEND = 3  # AppendEntries, also used as heartbeat (no entries)
    APPEND_RESP = 4
    PRE_VOTE = 5
    PRE_VOTE_RESP = 6
    TIMEOUT_NOW = 7
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    SNAPSHOT = 10  # InstallSnapshot: the leader's snapshot point, see Message
    # Driver-to-driver, never stepped into the core: a follower pulling the
    # leader's snapshot file (prez.server.snapshots). FETCH: index/log_term name
    # the snapshot, commit is the byte offset wanted. CHUNK: the same, context
    # the bytes, reject_hint the file size, hint_term 1 on the last chunk,
    # reject when that snapshot is gone.
    SNAPSHOT_FETCH = 11
    SNAPSHOT_CHUNK = 12
    # ReadIndex from a follower: READ_INDEX asks the leader for a read index
    # (context = the follower's token); READ_INDEX_RESP answers it (index,
    # the same context; reject=True when the leader cannot serve it).
    READ_INDEX = 13
    READ_INDEX_RESP = 14


# The context of a VOTE a leadership transfer started (thesis 3.10).
TRANSFER_CONTEXT = b"transfer"

# ReadState.index of a read request that failed (lost leadership, no leader,
# timed out): the driver answers its clients with an error.
READ_FAILED = -1


@dataclass(slots=True, frozen=True)
class ReadState:
    """The answer to `RaftNode.read_index(context)`: once the state machine
    has applied `index`, reads that arrived before the request may be
    served from it. `index == READ_FAILED` (-1) means the request failed."""

    index: int
    context: bytes

    @property
    def failed(self) -> bool:
        return self.index < 0


@dataclass(slots=True)
class Message:
    """One peer message; which fields matter depends on `type`.

    APPEND: index/log_term = prev log index/term, entries, commit.
    APPEND_RESP: index = last index matched (success) or the rejected
      prev index (reject=True) with reject_hint = the follower's suggested
      next probe index and hint_term = the term at that index (the
      conflict-term optimisation of Raft §5.3).
    VOTE / PRE_VOTE: index/log_term = candidate's last log index/term.
    VOTE_RESP / PRE_VOTE_RESP: reject.
    HEARTBEAT / HEARTBEAT_RESP: commit; context carries the leader's
      heartbeat round token (8 bytes), echoed back: it confirms leadership
      for ReadIndex and dates the leader's lease.
    TIMEOUT_NOW: leadership transfer; the target campaigns at once.
    VOTE with context == TRANSFER_CONTEXT: a vote the leader asked for by
      TIMEOUT_NOW, granted even while the voter hears from that leader.
    READ_INDEX / READ_INDEX_RESP: context is the follower's opaque token;
      the answer's index is the read index, reject=True a refusal.
    SNAPSHOT: index/log_term = the last index and term a snapshot covers,
      commit = the leader's commit index. The leader's core emits it when a
      follower needs compacted entries (index/log_term = the leader's
      snapshot point); the follower's driver steps one in, built from the
      received file's metadata with the leader's term and name, once the
      file is complete and verified. The answer is an APPEND_RESP (index =
      the snapshot index, or the follower's commit when that is further).
    """

    type: int
    term: int
    src: str
    dst: str
    index: int = 0
    log_term: int = 0
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    hint_term: int = 0
    entries: list[Entry] = field(default_factory=list)
    context: bytes = b""
