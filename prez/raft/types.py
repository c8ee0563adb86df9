"""Value types shared by the Raft core, storage and the wire codec.

Plain data, no behaviour: log entries, the durable hard state, the point a
snapshot covers and the messages nodes exchange. The wire codec (`prez._core.wire`) and the WAL
(`prez.storage`) encode exactly these fields. Also the cluster membership
(`Membership`, with the byte encoding a CONFIG entry carries) and a requested
change to it (`ConfChange`); the rules for changing it live in
prez.raft.confchange. And a node's `Role`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Role(StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "precandidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class EntryKind(IntEnum):
    NORMAL = 0  # a client command for the state machine
    NOOP = 1  # appended by a new leader at the start of its term
    CONFIG = 2  # a membership change: data is the whole new Membership.encode()


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


# A Membership's encoding: one line per member, sorted by name, the role
# flag first. Sorted so that equal memberships encode to equal bytes.
_VOTER_FLAG = b"v "
_LEARNER_FLAG = b"l "


@dataclass(slots=True, frozen=True)
class Membership:
    """A cluster configuration: the voters (who elect and form majorities)
    and the learners (who receive the log and never vote). Names only; how
    to reach a member is the driver's business (nodes.conf)."""

    voters: frozenset[str]
    learners: frozenset[str] = frozenset()

    @property
    def members(self) -> frozenset[str]:
        return self.voters | self.learners

    def encode(self) -> bytes:
        """The data of a CONFIG entry (and of a snapshot's membership):
        deterministic, so every node writes the same bytes for it."""
        lines = [(name, _VOTER_FLAG) for name in self.voters]
        lines += [(name, _LEARNER_FLAG) for name in self.learners]
        return b"\n".join(flag + name.encode() for name, flag in sorted(lines))

    @classmethod
    def decode(cls, data: bytes) -> Membership:
        voters: set[str] = set()
        learners: set[str] = set()
        for line in data.split(b"\n") if data else []:
            flag, name = line[:2], line[2:].decode()
            if not name or name in voters or name in learners:
                raise ValueError(f"bad membership member {line!r}")
            if flag == _VOTER_FLAG:
                voters.add(name)
            elif flag == _LEARNER_FLAG:
                learners.add(name)
            else:
                raise ValueError(f"bad membership role in {line!r}")
        return cls(frozenset(voters), frozenset(learners))


class ConfChangeKind(StrEnum):
    ADD_VOTER = "add_voter"
    ADD_LEARNER = "add_learner"
    PROMOTE = "promote"  # a learner becomes a voter
    REMOVE = "remove"  # a voter or a learner leaves


@dataclass(slots=True, frozen=True)
class ConfChange:
    """One single-server membership change (`RaftNode.propose_conf_change`)."""

    kind: ConfChangeKind
    name: str


@dataclass(slots=True, frozen=True)
class SnapshotMeta:
    """The point a state machine snapshot covers: every entry up to `index`,
    the one at `index` having `term`. Only the Raft metadata; the bytes are
    the driver's (prez.storage).

    `config` is the membership in effect at `index` (None: the bootstrap
    membership of RaftConfig, for snapshots of clusters that never changed).
    It does not take part in equality: by Log Matching, (index, term) alone
    determines the log up to there, and so the membership.
    """

    index: int
    term: int
    config: Membership | None = field(default=None, compare=False)


# The largest term and index a node accepts from the network. A term must
# leave room to be incremented (a campaign's term + 1 must still fit the u64
# of the hard-state file and the wire) and an index room to be counted past,
# so both stop far below 2**63: one message with term 2**64 - 1 once made
# every node that took it crash at its next election, again after each
# restart. 2**62 is still more elections or entries than a cluster can see.
MAX_TERM = 1 << 62
MAX_INDEX = 1 << 62


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
