"""The Raft node: a deterministic state machine driven by ticks, messages and
proposals, read out through Ready (modelled on etcd-io/raft's RawNode).

No I/O lives here: no asyncio, socket, time, os, module-level `random`,
prez.server, prez.storage or prez.kv. Randomness comes from the
`random.Random` handed to the constructor, time from `tick()` calls.

How a driver takes a Ready through persist, send, apply and advance (the
driver contract) is written once, in code, in prez.raft.ready_loop; every
driver runs it. What a driver does for snapshots, reads, leadership
transfer and membership changes is in the docstring of the module that
implements each.

The core in modules (etcd keeps them apart the same way):

- core (here): `RaftConfig`, `Ready`, `SoftState` and `RaftNode`'s own
  part: construction, the public inputs and outputs (`tick`, `propose`,
  `compact`, `step`, `has_ready`, `ready`, `advance`) and the role changes.
- prez.raft.replication: log replication, both sides, and snapshots.
- prez.raft.election: elections, PreVote and leadership transfer.
- prez.raft.read_only: ReadIndex, the lease and forwarded reads.
- prez.raft.confchange: membership changes and the memberships in the log.
- prez.raft.progress: the leader's `Progress` per follower.
- prez.raft.quorum: every majority computation.
- prez.raft.log: the in-memory log; prez.raft.types: the value types.
- prez.errors: the errors the core raises (re-exported here).

`RaftNode` is one class with one set of attributes, but most of its
methods are written in the module of their job, as functions taking the
node as `self: RaftNode`, and bound in the class body below
(`_handle_append = replication.handle_append`): each is then an ordinary
method. Not helper objects, because the parts share almost all of the
node's state (term, log, commit index, the outgoing message lists), which
would have to be split up or reached through one more attribute on every
access; as bound methods the hot path (`step` into `_handle_append` and
`_handle_append_response`, `_send_append`, `_maybe_commit`) costs what it
did in one class, and a test can still patch `RaftNode._handle_snapshot`.
Not mixin classes, because mypy (prez.raft is --strict) cannot check a
mixin's methods against the attributes of the class that mixes it in;
a function's `self: RaftNode` it can.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prez.errors import (
    ConfChangeInProgress,
    ConfChangeRefused,
    LeadershipTransferring,
    NotLeader,
    RaftSafetyError,
)
from prez.raft import confchange, election, read_only, replication
from prez.raft.confchange import config_index
from prez.raft.log import RaftLog
from prez.raft.progress import Progress, ProgressState
from prez.raft.read_only import ReadRequest
from prez.raft.types import (
    MAX_TERM,
    TRANSFER_CONTEXT,
    Entry,
    EntryKind,
    HardState,
    Membership,
    Message,
    MessageType,
    ReadState,
    Role,
    SnapshotMeta,
)

if TYPE_CHECKING:
    # Only the type: randomness is the caller's seeded instance, never the
    # module-level generator.
    import random

# Importers of prez.raft.core (the server, the simulator, tests) find these
# here, wherever they live now.
__all__ = [
    "ConfChangeInProgress",
    "ConfChangeRefused",
    "LeadershipTransferring",
    "NotLeader",
    "Progress",
    "ProgressState",
    "RaftConfig",
    "RaftNode",
    "RaftSafetyError",
    "Ready",
    "Role",
    "SoftState",
]

APPEND = MessageType.APPEND
APPEND_RESP = MessageType.APPEND_RESP
VOTE = MessageType.VOTE
VOTE_RESP = MessageType.VOTE_RESP
PRE_VOTE = MessageType.PRE_VOTE
PRE_VOTE_RESP = MessageType.PRE_VOTE_RESP
HEARTBEAT = MessageType.HEARTBEAT
HEARTBEAT_RESP = MessageType.HEARTBEAT_RESP
SNAPSHOT = MessageType.SNAPSHOT
TIMEOUT_NOW = MessageType.TIMEOUT_NOW
READ_INDEX = MessageType.READ_INDEX
READ_INDEX_RESP = MessageType.READ_INDEX_RESP
_HANDLED_TYPES = frozenset(
    {
        APPEND,
        APPEND_RESP,
        VOTE,
        VOTE_RESP,
        PRE_VOTE,
        PRE_VOTE_RESP,
        HEARTBEAT,
        HEARTBEAT_RESP,
        SNAPSHOT,
        TIMEOUT_NOW,
        READ_INDEX,
        READ_INDEX_RESP,
    }
)
READ_MODES = ("linearizable", "lease")
# What a leader sends to its followers; a follower takes the sender as its
# leader, and a stale one is told the current term.
_FROM_LEADER = (APPEND, HEARTBEAT, SNAPSHOT)
NORMAL = EntryKind.NORMAL
NOOP = EntryKind.NOOP
CONFIG = EntryKind.CONFIG


@dataclass
class RaftConfig:
    name: str
    # The bootstrap membership: every voter, and the learners. Used until
    # the log (or a snapshot) says otherwise, so it must be the same on
    # every node that starts with an empty log; a node that joins a running
    # cluster is started as a learner (its name in `learners`) and learns
    # the real membership from the leader.
    peers: list[str]
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    max_append_bytes: int = 1 << 20  # payload bytes per AppendEntries
    max_inflight: int = 256  # appends in flight per follower in replicate state
    # After a failed snapshot transfer, wait this long before the next one,
    # so that a transfer that keeps breaking does not loop hot.
    snapshot_retry_ticks: int = 10
    pre_vote: bool = True
    check_quorum: bool = True
    # How read_index() confirms that this node still leads (thesis 6.4):
    # "linearizable": ReadIndex, one heartbeat round to a majority per batch
    # of requests. "lease": answer at once while the leader holds a lease,
    # else fall back to ReadIndex. Every node of a cluster must use the same
    # mode (in lease mode a restarted node also honours the lease it may
    # have granted before the crash).
    read_mode: str = "linearizable"
    # The lease (read_mode "lease") rests on the followers' election timers:
    # a follower that answered a heartbeat refuses votes for election_ticks
    # ticks (CheckQuorum). The leader trusts its lease only for
    # election_ticks - lease_drift_ticks ticks after SENDING the heartbeat
    # that a majority answered. One tick of this margin absorbs the rounding
    # of time to whole ticks; every further tick lets the nodes' clocks run
    # apart by one tick period per election timeout (2: 10% with 10 ticks).
    # The assumption: no clock in the cluster runs faster than the others by
    # more than that, and no process pauses longer (a paused leader's lease
    # may have expired when it wakes up).
    lease_drift_ticks: int = 2
    learners: list[str] = field(default_factory=list)

    def validate(self) -> None:
        members = self.peers + self.learners
        if self.name not in members:
            raise ValueError(
                f"node {self.name!r} is not among peers {self.peers} "
                f"or learners {self.learners}"
            )
        if len(set(members)) != len(members) or "" in members or not self.peers:
            raise ValueError(
                f"peer names must be unique and non-empty, with one voter at "
                f"least: {self.peers}, learners {self.learners}"
            )
        if any("\n" in name for name in members):
            raise ValueError("peer names must not contain a newline")
        if self.heartbeat_ticks < 1:
            raise ValueError("heartbeat_ticks must be >= 1")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("election_ticks must be greater than heartbeat_ticks")
        if self.max_inflight < 1 or self.max_append_bytes < 1:
            raise ValueError("max_inflight and max_append_bytes must be >= 1")
        if self.snapshot_retry_ticks < 1:
            raise ValueError("snapshot_retry_ticks must be >= 1")
        if self.read_mode not in READ_MODES:
            raise ValueError(f"read_mode must be one of {READ_MODES}")
        if self.read_mode == "lease":
            if not 1 <= self.lease_drift_ticks < self.election_ticks - 1:
                raise ValueError(
                    "lease_drift_ticks must be >= 1 and leave a lease of 2 ticks"
                )
            if not self.check_quorum:
                # Followers refuse disruptive votes only with CheckQuorum;
                # without it a new leader may rise while the lease holds.
                raise ValueError("read_mode lease needs check_quorum")


@dataclass(slots=True)
class SoftState:
    """Volatile state a driver reacts to; never persisted."""

    role: Role
    leader: str | None
    term: int


@dataclass(slots=True)
class Ready:
    """One batch of work for the driver; prez.raft.ready_loop says in which
    order its parts must be handled."""

    hard_state: HardState | None  # persist when not None
    entries: list[Entry]  # append (truncating from entries[0].index) and persist
    messages: list[Message]  # may be sent before the write is durable
    persisted_messages: list[Message]  # send only once the write is durable
    committed_entries: list[Entry]  # apply in order
    soft_state: SoftState | None = None  # set when role, leader or term changed
    # Set when a snapshot from the leader was installed: make it the durable
    # base of the log, then load it into the state machine before applying
    # committed_entries (all of which come after it).
    snapshot: SnapshotMeta | None = None
    # Answers to read_index(), in request order per context: serve the reads
    # of a context once applied >= index; a failed one (index == -1) means
    # answering those reads with an error. Needs no write: handle any time.
    read_states: list[ReadState] = field(default_factory=list)
    # Set when the membership changed (a CONFIG entry appended or truncated,
    # a snapshot installed): the new one, as the log written in this Ready
    # says. Once step 3 is durable, rewrite nodes.conf to it and connect to
    # the new members (and drop the removed ones).
    membership: Membership | None = None


class RaftNode:
    """One Raft participant. Not thread-safe: call everything from one thread.

    Restart it from what storage recovered: the persisted hard state, the
    newest durable snapshot's point (`snapshot`, None when there is none)
    and every durable log entry after it, in index order. Entries at or
    below the snapshot index are skipped, so a log segment the snapshot
    already covers may be passed too; a log holding a different entry at
    the snapshot index is dropped whole (what a crash before the WAL reset
    of an InstallSnapshot leaves); a log that starts past
    `snapshot.index + 1` is a gap (ValueError). `applied` is how far the caller's state machine
    already is, at least the snapshot it loaded; the first Ready re-delivers
    committed entries after it.
    """

    def __init__(
        self,
        config: RaftConfig,
        rng: random.Random,
        hard_state: HardState,
        entries: list[Entry],
        applied: int = 0,
        snapshot: SnapshotMeta | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self._name = config.name
        self._rng = rng
        self._election_ticks = config.election_ticks
        self._heartbeat_ticks = config.heartbeat_ticks
        self._max_bytes = config.max_append_bytes
        self._max_inflight = config.max_inflight
        self._pre_vote = config.pre_vote
        self._check_quorum = config.check_quorum

        if snapshot is None:
            self.log = RaftLog(entries)
        else:
            self.log = RaftLog(
                _entries_after(snapshot, entries), snapshot.index, snapshot.term
            )
        self._term = hard_state.term
        self._vote = hard_state.vote
        # A snapshot covers only committed entries, so commit and applied
        # are at least its index. A hard state written ahead of its entries
        # (a driver that broke the entries-first order) must not claim more
        # than the log holds.
        offset = self.log.offset
        self._commit = min(max(hard_state.commit, offset), self.log.last_index)
        self._applied = min(max(applied, offset), self._commit)
        self._applying = self._applied  # last index handed out in a Ready
        # A snapshot installed from the leader and not yet handed out in a
        # Ready (the driver must make it the durable base).
        self._pending_snapshot: SnapshotMeta | None = None
        self._role = Role.FOLLOWER
        self._leader: str | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = 0
        self._reset_randomized_timeout()
        self._votes: dict[str, bool] = {}
        self._progress: dict[str, Progress] = {}

        self._msgs: list[Message] = []
        self._persisted_msgs: list[Message] = []
        # Leader only: followers whose append is deferred to the next ready()
        # (value: send even with no entries, to carry commit or probe), and a
        # flag for "new proposals: send to everyone". Deferring batches every
        # proposal and answer since the last Ready into one AppendEntries.
        self._pending_sends: dict[str, bool] = {}
        self._bcast_new_entries = False

        # Reads (thesis 6.4). `_ticks` counts every tick of this node's life:
        # the clock of read timeouts and of the lease.
        self._ticks = 0
        self._read_mode = config.read_mode
        self._lease_ticks = config.election_ticks - config.lease_drift_ticks
        self._read_timeout = 2 * config.election_ticks
        self._read_states: list[ReadState] = []
        # Leader: heartbeat rounds are numbered (the context of a HEARTBEAT,
        # echoed by the answer) and dated, to confirm reads and the lease.
        self._round = 0
        self._round_sent: dict[int, int] = {}  # round -> tick it was sent
        self._round_due = False  # reads wait: send a round at the next ready()
        self._reads_waiting: deque[ReadRequest] = deque()  # for their round
        self._reads_before_commit: list[ReadRequest] = []  # for our no-op
        self._term_committed = False  # an entry of our term has committed
        self._lease_revoked = False  # TIMEOUT_NOW may have gone out this term
        # Follower: requests forwarded by READ_INDEX, context -> (leader,
        # tick sent), in the order they were sent.
        self._forwarded_reads: dict[bytes, tuple[str, int]] = {}
        # Lease mode: after a restart, behave for one election timeout as if
        # we had just heard from a leader, since we may have promised one
        # (by answering its heartbeat) before the crash.
        self._restart_guard = config.read_mode == "lease" and hard_state.term > 0
        # Leadership transfer (thesis 3.10), on the leader.
        self._transfer_target: str | None = None
        self._transfer_elapsed = 0
        self._timeout_now_sent = False

        # Membership (thesis ch. 4): the one at the snapshot point, plus
        # every CONFIG entry in the log after it, (index, membership) in
        # index order; the newest in the log is in effect.
        self._bootstrap = Membership(
            frozenset(config.peers), frozenset(config.learners)
        )
        self._base_membership = self._bootstrap
        if snapshot is not None and snapshot.config is not None:
            self._base_membership = snapshot.config
        self._config_entries: list[tuple[int, Membership]] = []
        self._track_config_entries(self.log.entries)
        self._membership = self._base_membership
        self._known: frozenset[str] = frozenset()
        self._voters: frozenset[str] = frozenset()
        self.peers: list[str] = []  # the voters, this node included if it is one
        self._others: list[str] = []  # every other member, learners included
        self._quorum = 1
        self._set_membership(self._current_membership(), force=True)

        self._prev_hard = (self._term, self._vote, self._commit)
        self._prev_soft: tuple[Role, str | None, int] = (
            self._role,
            self._leader,
            self._term,
        )
        self._prev_membership = self._membership

    # -- read-only state ---------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def role(self) -> Role:
        return self._role

    @property
    def term(self) -> int:
        return self._term

    @property
    def vote(self) -> str:
        return self._vote

    @property
    def leader(self) -> str | None:
        return self._leader

    @property
    def commit_index(self) -> int:
        return self._commit

    @property
    def applied_index(self) -> int:
        return self._applied

    @property
    def last_index(self) -> int:
        return self.log.last_index

    @property
    def persisted_index(self) -> int:
        return self.log.persisted

    @property
    def snapshot(self) -> SnapshotMeta | None:
        """The point the log was compacted to (the newest snapshot this node
        holds and would send to a lagging follower), with the membership in
        effect there; None if it never was."""
        log = self.log
        if not log.offset:
            return None
        return SnapshotMeta(log.offset, log.offset_term, self._base_membership)

    @property
    def membership(self) -> Membership:
        """The membership in effect: the newest CONFIG entry in the log
        (committed or not), else the snapshot's, else the bootstrap one."""
        return self._membership

    @property
    def membership_index(self) -> int:
        """The index of the CONFIG entry that set the membership in effect
        (0 when it comes from a snapshot or the bootstrap configuration)."""
        return self._config_entries[-1][0] if self._config_entries else 0

    @property
    def conf_change_pending(self) -> bool:
        """Whether the membership in effect is not yet committed: no other
        change may be proposed until it is."""
        return self.membership_index > self._commit

    @property
    def transferring_to(self) -> str | None:
        """The target of the leadership transfer in progress (None if none):
        proposals are refused meanwhile."""
        return self._transfer_target

    @property
    def lease_valid(self) -> bool:
        """Leader in lease mode: whether a read would be answered at once."""
        return (
            self._role is Role.LEADER
            and self._read_mode == "lease"
            and self._term_committed
            and self._lease_holds()
        )

    def progress_of(self, peer: str) -> Progress | None:
        """The leader's replication state for `peer` (None when not leader)."""
        return self._progress.get(peer)

    # -- inputs --------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self._ticks += 1
        if self._forwarded_reads or self._reads_waiting or self._reads_before_commit:
            self._expire_reads()
        if self._role is Role.LEADER:
            self._tick_leader()
        else:
            self._election_elapsed += 1
            # A node that takes no part in elections lets the timer run on:
            # past a timeout without a leader it no longer shields one, so
            # it answers vote requests (a learner may be needed for a vote
            # as soon as its promotion is appended elsewhere).
            if self._election_elapsed >= self._randomized_timeout and self._electoral():
                self._election_elapsed = 0
                self.campaign()

    def propose(self, data: bytes) -> int:
        """Append `data` to the leader's log; returns the entry's index.

        The entry is sent to followers at the next `ready()`, batched with
        every other proposal since the last one. A proposal is not a promise:
        it commits only if this node stays leader long enough (a driver
        watches `Ready.soft_state` and the term for that).
        """
        if self._role is not Role.LEADER:
            raise NotLeader(self._leader)
        if self._transfer_target is not None:
            raise LeadershipTransferring(self._transfer_target)
        log = self.log
        index = log.offset + len(log.entries) + 1
        log.entries.append(Entry(index, self._term, NORMAL, data))
        self._bcast_new_entries = True
        return index

    def compact(self, index: int) -> None:
        """Drop the log entries up to `index`, which the driver's durable
        state machine snapshot now covers.

        Call it once the snapshot file is durable; any time, also between
        `ready()` and `advance()`. `index` must be applied (so committed) and
        durable here; an index at or below the current snapshot is a no-op.
        From now on a follower that needs an entry up to `index` gets a
        SNAPSHOT message naming (index, term at index).
        """
        if index <= self.log.offset:
            return
        if index > self._applied:
            raise ValueError(f"cannot compact to {index}: only {self._applied} applied")
        base = self.membership_at(index)
        self.log.compact(index)
        self._base_membership = base
        entries = self._config_entries
        del entries[: bisect_right(entries, index, key=config_index)]
        self._set_membership(self._membership)

    def step(self, msg: Message) -> None:
        """Feed one message from a peer.

        Messages not addressed to this node, from itself or nobody, of
        unknown types or with a nonsensical term (negative, or over
        MAX_TERM: it could not be incremented) are dropped, as are vote
        requests from nodes that are not voters here (a removed node must
        not disrupt the cluster), messages of an older term (answered only
        when that helps a stale leader or pre-candidate learn the current
        term) and, on a leader, messages from strangers (named by no
        membership its log records). Other nodes take messages from anyone
        (thesis 4.2.1: whatever their membership says): a lagging follower
        or a learner that just joined may not know the current leader yet,
        and a leader that removed itself leads on until the change commits.

        No message stops the node: an APPEND whose run would rewrite
        committed entries or holds a CONFIG entry that does not parse is
        dropped. Its entries are otherwise taken to be the consecutive,
        term-ordered run that `prez._core.wire.decode_message` lets through
        (only the ends are checked here: a full pass would double the cost of
        a follower's append).
        """
        msg_type = msg.type
        src = msg.src
        if (
            msg.dst != self._name
            or msg.term < 0
            # A term that could not be incremented (and persisted) again.
            or msg.term > MAX_TERM
            or msg_type not in _HANDLED_TYPES
            or (msg_type in (VOTE, PRE_VOTE) and not self._electoral(src))
        ):
            return
        if src == self._name or not src:
            return
        if self._role is Role.LEADER and src not in self._known:
            return
        if msg.term > self._term:
            # While this node hears from a leader it ignores requests that
            # would disrupt it: a partitioned node rejoining with a higher
            # term cannot depose a healthy leader (thesis §4.2.3; this
            # "lease" is only sound together with CheckQuorum).
            if (
                msg_type in (VOTE, PRE_VOTE)
                and self._check_quorum
                and (self._leader is not None or self._restart_guard)
                and self._election_elapsed < self._election_ticks
                # The leader itself asked for this one (TIMEOUT_NOW).
                and not (msg_type == VOTE and msg.context == TRANSFER_CONTEXT)
            ):
                return
            if msg_type == PRE_VOTE or (msg_type == PRE_VOTE_RESP and not msg.reject):
                # A pre-vote is asked and granted for a term nobody entered
                # yet; it must not move our term (thesis §9.6).
                pass
            elif msg_type in _FROM_LEADER:
                self._become_follower(msg.term, msg.src)
            else:
                self._become_follower(msg.term, None)
        elif msg.term < self._term:
            if msg_type in _FROM_LEADER:
                # A stale leader. With CheckQuorum or PreVote a node with a
                # higher term may never win an election to tell it, so answer
                # with our term and let it step down; so must a node that
                # never campaigns (a lagging member whose term a removed
                # node raised, before it learnt of the removal).
                if self._check_quorum or self._pre_vote or not self._electoral():
                    self._persisted_msgs.append(
                        Message(APPEND_RESP, self._term, self._name, msg.src)
                    )
            elif msg_type == PRE_VOTE:
                self._persisted_msgs.append(
                    Message(PRE_VOTE_RESP, self._term, self._name, msg.src, reject=True)
                )
            elif msg_type == READ_INDEX:
                # Refuse, in our term: the follower learns it is behind.
                self._msgs.append(
                    Message(
                        READ_INDEX_RESP,
                        self._term,
                        self._name,
                        msg.src,
                        reject=True,
                        context=msg.context,
                    )
                )
            return

        if msg_type in (VOTE, PRE_VOTE):
            self._handle_vote_request(msg)
            return
        if msg_type == READ_INDEX_RESP:
            self._handle_read_index_response(msg)
            return

        role = self._role
        if msg_type == READ_INDEX:
            if role is Role.LEADER:
                self._leader_read(ReadRequest(msg.src, msg.context, self._ticks))
            else:
                self._msgs.append(
                    Message(
                        READ_INDEX_RESP,
                        self._term,
                        self._name,
                        msg.src,
                        reject=True,
                        context=msg.context,
                    )
                )
            return
        if msg_type == TIMEOUT_NOW:
            if role is not Role.LEADER and self._electoral():
                # The leader hands over: campaign now, no pre-vote (it would
                # fail while the voters still hear from the leader).
                self._become_candidate(transfer=True)
            return
        if role is Role.LEADER:
            if msg_type == APPEND_RESP:
                self._handle_append_response(msg)
            elif msg_type == HEARTBEAT_RESP:
                self._handle_heartbeat_response(msg)
            # Another leader's APPEND in our term cannot exist (§5.2: one
            # vote per term); late vote answers are moot.
            return
        if msg_type in _FROM_LEADER:
            if role is not Role.FOLLOWER:
                # A leader won this term; a candidate steps back (§5.2).
                self._become_follower(self._term, msg.src)
            self._election_elapsed = 0
            self._leader = msg.src
            if msg_type == APPEND:
                self._handle_append(msg)
            elif msg_type == HEARTBEAT:
                self._handle_heartbeat(msg)
            else:
                self._handle_snapshot(msg)
        elif (msg_type == VOTE_RESP and role is Role.CANDIDATE) or (
            msg_type == PRE_VOTE_RESP
            and role is Role.PRE_CANDIDATE
            # Grants name the term being asked for; rejects carry ours.
            and (msg.reject or msg.term == self._term + 1)
        ):
            self._poll(msg.src, not msg.reject)

    # -- output --------------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._persisted_msgs
            or self._pending_sends
            or self._bcast_new_entries
            or self.log.unstable_from <= self.log.last_index
            or self._commit > self._applying
            or self._prev_hard != (self._term, self._vote, self._commit)
            or self._prev_soft != (self._role, self._leader, self._term)
            or self._pending_snapshot is not None
            or self._read_states
            or self._round_due
            or self._prev_membership is not self._membership
        )

    def ready(self) -> Ready:
        """Collect everything to persist, send and apply since the last call.

        Hands each entry, message and committed entry out once; the caller
        must follow the driver contract (prez.raft.ready_loop) and then call
        `advance`.
        """
        if self._role is Role.LEADER:
            self._flush_sends()
            if self._round_due:
                # One round for every read request since the last Ready.
                self._bcast_heartbeat()
        hard = (self._term, self._vote, self._commit)
        hard_state = None
        if hard != self._prev_hard:
            hard_state = HardState(self._term, self._vote, self._commit)
            self._prev_hard = hard
        soft = (self._role, self._leader, self._term)
        soft_state = None
        if soft != self._prev_soft:
            soft_state = SoftState(self._role, self._leader, self._term)
            self._prev_soft = soft
        membership = None
        if self._prev_membership is not self._membership:
            if self._prev_membership != self._membership:
                membership = self._membership
            self._prev_membership = self._membership
        committed: list[Entry] = []
        if self._commit > self._applying:
            committed = self.log.slice(self._applying + 1, self._commit + 1)
            self._applying = self._commit
        rd = Ready(
            hard_state,
            self.log.unstable_entries(),
            self._msgs,
            self._persisted_msgs,
            committed,
            soft_state,
            self._pending_snapshot,
            self._read_states,
            membership,
        )
        self._msgs = []
        self._persisted_msgs = []
        self._read_states = []
        self._pending_snapshot = None
        return rd

    def take_messages(self) -> list[Message]:
        """Hand out now what the next Ready would carry in `messages` (those
        that wait for nothing durable), so that a driver can answer a
        READ_INDEX without a Ready-loop pass. Safe at any time, a Ready
        outstanding included: these may overtake its persisted_messages,
        and Raft tolerates reordering."""
        messages, self._msgs = self._msgs, []
        return messages

    def advance(self, ready: Ready) -> None:
        """Acknowledge that `ready` was handled: its entries and hard state
        are durable, its snapshot loaded and its committed entries applied."""
        if ready.snapshot is not None:
            self._applied = max(self._applied, ready.snapshot.index)
        if ready.entries and self._pending_snapshot is None:
            # (With a snapshot installed after this Ready was handed out, the
            # log is rewritten behind it in the next Ready: what this one
            # wrote no longer counts.)
            last = ready.entries[-1]
            if (
                self.log.mark_persisted(last.index, last.term)
                and self._role is Role.LEADER
            ):
                # The leader's own durable copy now counts towards commit.
                self._maybe_commit()
        if ready.committed_entries:
            self._applied = ready.committed_entries[-1].index

    # -- role transitions ----------------------------------------------------

    def _reset_randomized_timeout(self) -> None:
        # Randomized in [election_ticks, 2 * election_ticks) so that split
        # votes resolve quickly (§5.2).
        self._randomized_timeout = self._election_ticks + self._rng.randrange(
            self._election_ticks
        )

    def _reset(self, term: int) -> None:
        if term != self._term:
            self._term = term
            self._vote = ""
            # An append answer of the old term not yet handed out may name
            # entries the new term's leader is about to truncate here (before
            # they were ever written): it would then leave acknowledging what
            # is not on disk. Dropping a message is always safe.
            self._persisted_msgs = [
                m
                for m in self._persisted_msgs
                if m.type != APPEND_RESP or m.reject or m.term == term
            ]
        # Every role change ends the reads in flight: a leader's requests
        # lose the leadership that would confirm them, a follower's the
        # leader that would answer them.
        self._fail_reads()
        self._restart_guard = False
        self._transfer_target = None
        self._round_due = False
        self._leader = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._reset_randomized_timeout()
        self._votes = {}
        self._progress = {}
        self._pending_sends = {}
        self._bcast_new_entries = False

    def _become_follower(self, term: int, leader: str | None) -> None:
        self._reset(term)
        self._role = Role.FOLLOWER
        self._leader = leader

    def _become_pre_candidate(self) -> None:
        # Neither term nor vote change: a pre-candidate only asks whether it
        # could win, so a node cut off from the majority does not inflate its
        # term and depose the leader when it rejoins (thesis §9.6).
        self._reset(self._term)
        self._role = Role.PRE_CANDIDATE
        self._votes = self._own_vote()
        if self._votes_won():
            self._become_candidate()
            return
        msgs = self._msgs
        next_term = self._term + 1
        last_index = self.log.last_index
        last_term = self.log.last_term
        for peer in self._other_voters():
            msgs.append(
                Message(
                    PRE_VOTE,
                    next_term,
                    self._name,
                    peer,
                    index=last_index,
                    log_term=last_term,
                )
            )

    def _become_candidate(self, transfer: bool = False) -> None:
        self._reset(self._term + 1)
        self._role = Role.CANDIDATE
        self._vote = self._name
        self._votes = self._own_vote()
        if self._votes_won():
            self._become_leader()
            return
        # Persisted messages: our term and self-vote are durable before any
        # request leaves, so a restart cannot vote twice in this term.
        msgs = self._persisted_msgs
        last_index = self.log.last_index
        last_term = self.log.last_term
        context = TRANSFER_CONTEXT if transfer else b""
        for peer in self._other_voters():
            msgs.append(
                Message(
                    VOTE,
                    self._term,
                    self._name,
                    peer,
                    index=last_index,
                    log_term=last_term,
                    context=context,
                )
            )

    def _become_leader(self) -> None:
        self._reset(self._term)
        self._role = Role.LEADER
        self._leader = self._name
        next_index = self.log.last_index + 1
        self._progress = {peer: Progress(next_index) for peer in self._others}
        self._term_committed = False
        self._lease_revoked = False
        self._round_sent = {}
        # A no-op of the new term: entries of earlier terms commit only
        # indirectly, once an entry of the current term does (§5.4.2), so a
        # leader appends one at once instead of waiting for a client write.
        self.log.append([Entry(next_index, self._term, NOOP, b"")])
        self._bcast_new_entries = True

    # -- replication (§5.3) and snapshots (§7): prez.raft.replication ------------

    _handle_append = replication.handle_append
    _handle_snapshot = replication.handle_snapshot
    _handle_heartbeat = replication.handle_heartbeat
    report_snapshot = replication.report_snapshot
    _tick_leader = replication.tick_leader
    _quorum_active = replication.quorum_active
    _bcast_heartbeat = replication.bcast_heartbeat
    _flush_sends = replication.flush_sends
    _send_append = replication.send_append
    _send_snapshot = replication.send_snapshot
    _handle_append_response = replication.handle_append_response
    _handle_heartbeat_response = replication.handle_heartbeat_response
    _voter_progress = replication.voter_progress
    _is_committable = replication.is_committable
    _maybe_commit = replication.maybe_commit

    # -- elections and leadership transfer: prez.raft.election -------------------

    campaign = election.campaign
    transfer_leader = election.transfer_leader
    _send_timeout_now = election.send_timeout_now
    _votes_won = election.votes_won
    _electoral = election.electoral
    _own_vote = election.own_vote
    _other_voters = election.other_voters
    _poll = election.poll
    _log_is_up_to_date = election.log_is_up_to_date
    _handle_vote_request = election.handle_vote_request

    # -- reads (thesis 6.4): prez.raft.read_only ---------------------------------

    read_index = read_only.read_index
    _handle_read_index_response = read_only.handle_read_index_response
    _leader_read = read_only.leader_read
    _acks_needed = read_only.acks_needed
    _release_reads = read_only.release_reads
    _lease_holds = read_only.lease_holds
    _answer_read = read_only.answer_read
    _fail_reads = read_only.fail_reads
    _expire_reads = read_only.expire_reads

    # -- membership (thesis ch. 4): prez.raft.confchange -------------------------

    membership_at = confchange.membership_at
    propose_conf_change = confchange.propose_conf_change
    _track_config_entries = confchange.track_config_entries
    _current_membership = confchange.current_membership
    _on_log_rewritten = confchange.on_log_rewritten
    _set_membership = confchange.set_membership


def _entries_after(snapshot: SnapshotMeta, entries: list[Entry]) -> list[Entry]:
    """The recovered entries that continue the log after `snapshot`.

    Those it covers are skipped (a WAL drops only whole segments). When the
    log holds a different entry at the snapshot's index, none of it follows
    the snapshot: a crash between making a leader's snapshot durable and
    resetting the WAL leaves the old, diverging log behind, and nothing in
    it past that point can be committed (Log Matching), so it all goes.
    """
    position = bisect_left(entries, snapshot.index, key=_index_of)
    if position < len(entries) and entries[position].index == snapshot.index:
        if entries[position].term != snapshot.term:
            return []
        position += 1
    kept = entries[position:]
    if kept and kept[0].index != snapshot.index + 1:
        raise ValueError(
            f"gap between the snapshot (last index {snapshot.index}) and the "
            f"log after it (first index {kept[0].index})"
        )
    return kept


def _index_of(entry: Entry) -> int:
    return entry.index
