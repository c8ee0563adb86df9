"""The Raft node: a deterministic state machine driven by ticks, messages and
proposals, read out through Ready (modelled on etcd-io/raft's RawNode).

No I/O lives here: no asyncio, socket, time, os, module-level `random`,
prez.server, prez.storage or prez.kv. Randomness comes from the
`random.Random` handed to the constructor, time from `tick()` calls.

The driver contract
-------------------
The server's Ready loop (and the simulator in prez.testing.sim) does, for
each Ready, strictly in this order::

    rd = node.ready()
    send(rd.messages)                          # 1. may leave before anything is durable
    if rd.snapshot: make it the durable base   # 2. before the entries (see below)
    persist(rd.hard_state, rd.entries); fsync  # 3. one write + one fsync (group commit)
    send(rd.persisted_messages)                # 4. only once steps 2-3 are durable
    if rd.snapshot: load it into the state machine
    apply(rd.committed_entries)                # 5. in order, after the snapshot
    node.advance(rd)                           # 6. tells the node steps 2-5 are done

- `rd.entries` may start at or below the durable last index: the durable log
  is then truncated from `rd.entries[0].index` before appending (a follower's
  conflict repair, §5.3). Entries are written before the hard state.
- `rd.messages` holds only what is safe to send before the node's own write
  is durable: the leader's AppendEntries, heartbeats and SNAPSHOT messages
  (the leader writes its log in parallel with replication, Raft thesis
  §10.2.1) and pre-votes, which promise nothing. Everything that promises
  something about durable state (votes, vote requests, append and heartbeat
  answers) is in `rd.persisted_messages`, so term and vote are on disk
  before any of them leaves the node.
- The leader counts its own log towards a majority only up to the last entry
  that an `advance()` reported durable, so an acknowledged write is on a
  majority's disks, the leader's included.
- `tick()`, `step()`, `propose()`, `compact()` and `report_snapshot()` may be
  called between `ready()` and `advance()` (for example while the fsync runs
  in an executor); `ready()` must not be called again before the previous
  Ready was advanced.
- `rd.soft_state` is set when the role, known leader or term changed: a
  driver fails its waiting clients ("outcome unknown") when leadership is
  lost, even if it was regained in a later term between two Readys.

Snapshots and compaction (Raft §7, etcd style: the core decides, the driver
moves the bytes):

- Compaction: once the driver has durably written a state machine snapshot
  covering the entries up to `index` (at most the applied index), it calls
  `node.compact(index)`; the node drops those entries and from then on
  names (index, term at index) as its snapshot point. The driver may then
  drop the WAL segments the snapshot covers. On restart it passes the
  newest durable snapshot's point and the durable log to the constructor,
  with `applied` = that snapshot's index (see RaftNode for what it skips).
- Leader: a follower that needs an entry at or below the snapshot point gets
  ONE message of type SNAPSHOT in `rd.messages` (index/log_term = the
  snapshot point, term = the leader's). The driver does not send it as a
  message: it streams its newest snapshot file (covering at least
  msg.index) to that follower in chunks, and MUST end every such transfer
  with `node.report_snapshot(peer, ok)`: True once the follower holds the
  whole verified file, False when the transfer broke, timed out, could not
  start or the follower refused the file (the leader then waits
  `snapshot_retry_ticks` and probes again, sending a new SNAPSHOT if still
  needed). Meanwhile appends to that follower pause; heartbeats go on. The
  follower's answer (an APPEND_RESP) resumes replication after the snapshot,
  whether or not the report came first.
- Follower: when the driver holds a complete, verified file, it steps
  `Message(SNAPSHOT, term=<the leader's SNAPSHOT message term>,
  src=<leader>, dst=<self>, index=<file's last index>, log_term=<its
  term>)` into the node (see below for when to discard the file). A stale
  term gets the usual stale-leader answer; a snapshot at
  or below the commit index is answered with the commit index and changes
  nothing. Otherwise the node installs it: if its log holds the entry
  (index, log_term) it keeps the entries after it, else it discards its
  whole log; commit becomes index. The next Ready then carries
  `rd.snapshot = SnapshotMeta(index, term)` and, in the same Ready:
  * `rd.entries` holds EVERY entry the node keeps after the snapshot (the
    retained suffix is handed out again) and nothing at or below
    snapshot.index. Step 2 is therefore: make the received file the newest
    durable snapshot (rename it into place) and reset the WAL to an empty
    log starting at snapshot.index + 1 (dropping every old entry, kept or
    not); step 3 then writes rd.entries onto it.
  * `rd.committed_entries` never include an entry at or below
    snapshot.index; the state machine is replaced by the snapshot before
    they are applied.
  * The answer (APPEND_RESP, index = snapshot.index) is in
    `rd.persisted_messages`: it leaves only once the reset is durable.
  A Ready handed out before the snapshot was installed may still be in
  flight: finish it by the contract (its committed entries all precede the
  snapshot), then take the next one. Keep every received file until the
  Ready carrying its point (or a later one) was handled: a second transfer
  may be installed meanwhile. After the step, `node.snapshot` equal to the
  file's point says the node installed it; otherwise discard the file.
- Never step a SNAPSHOT message as it comes off the network (nor pass the
  leader's on as a plain message): to the core it means "the whole file is
  here and verified", and stepping one without the file would skip the
  entries it covers in the state machine.

Reads (thesis 6.4): `node.read_index(context)` asks for a read index for
the client reads that arrived before the call; a driver batches them, one
context (opaque bytes, unique among its pending requests) per batch.

- The answer is a `ReadState(index, context)` in `rd.read_states` of a later
  Ready. It needs nothing durable: handle it whenever the Ready is taken.
  Serve that batch from the state machine once applied >= index (usually
  after step 5 of a later Ready; the state may be further on, which is
  fine). A node that restarts has lost its requests: fail their clients.
- `ReadState(READ_FAILED, context)` (index -1, `.failed`) ends a request
  that cannot be answered: no leader known, the node's role, leader or
  term changed while it waited (a leader stepping down, a follower whose
  leader changed), the leader refused it, or no answer came within two
  election timeouts (a lost READ_INDEX, a leader cut off from its majority
  without CheckQuorum). Answer those clients with an error (safe to retry:
  a read changed nothing). Every request gets exactly one ReadState.
- Leader: a read index is the commit index once an entry of its own term
  has committed (a new leader queues requests until its no-op commits), and
  is handed out when a majority answered a heartbeat round sent after the
  request (rounds are numbered in the heartbeat `context`, which followers
  echo; one round confirms every request before it). Requests since the
  last Ready share one round, sent by `ready()`. In `read_mode="lease"`,
  while a majority answered a heartbeat sent less than `election_ticks -
  lease_drift_ticks` ticks ago, the answer comes at once with no message
  (see RaftConfig.lease_drift_ticks for the clock assumption).
- Follower: the request goes to the leader as READ_INDEX; the leader
  confirms it as above and answers READ_INDEX_RESP; the follower hands out
  the ReadState and the driver serves from its own state machine. The
  READ_INDEX counts as its sender's answer (it was made in the leader's
  term after the reads it covers arrived), so where the sender and the
  leader are a majority (three voters) the leader answers with no round.
  Contexts must therefore never repeat, across restarts included: a late
  duplicate could otherwise answer a newer request.

Leadership transfer (thesis 3.10): `node.transfer_leader(target)` on the
leader. Until the transfer ends, `propose()` raises LeadershipTransferring
(a NotLeader whose `leader` is the target; a driver answers as for "no
leader", safe to retry) and `node.transferring_to` names the target. The
leader brings the target's log up to date, sends it TIMEOUT_NOW (in
`rd.messages`), and the target campaigns at once without PreVote, its vote
requests flagged (`context == TRANSFER_CONTEXT`) so voters grant them even
while they hear from the leader. The leader learns of the new term and steps
down (soft_state); if no new leader took over within an election timeout,
`transferring_to` becomes None and proposals are accepted again. Lease reads
stop for the rest of the leader's term once a transfer started.

Membership (thesis ch. 4, single-server changes; see propose_conf_change
for why not joint consensus): `node.propose_conf_change(ConfChange(kind,
name))` on the leader appends a CONFIG entry whose data is the whole new
`Membership` (voters and learners, names only). `node.membership` is the
newest CONFIG entry in the log, committed or not, else the snapshot's, else
the bootstrap one (RaftConfig.peers/learners); `conf_change_pending` says
it is not committed yet (no other change is accepted meanwhile).

- Effective when appended, on every node; a truncated CONFIG entry reverts
  it. `rd.membership` is set in the Ready whose entries changed it: once
  step 3 is durable, rewrite nodes.conf to it and connect to its members.
- Restart: the constructor derives it from the recovered log and the
  snapshot's `SnapshotMeta.config` (None: the bootstrap one). So the
  bootstrap membership must be the same on every node and must not follow
  the rewritten nodes.conf: keep the original one durable (or make sure the
  snapshot names one). A joining node is started as a learner (its own name
  in RaftConfig.learners, the cluster's bootstrap voters as peers).
- Snapshots: when writing a state machine snapshot at `index`, record
  `node.membership_at(index)` in the file; `node.snapshot.config` is the
  membership of the compacted point. A leader's SNAPSHOT message carries its
  snapshot point's membership in `context` (informational), and the
  follower's driver steps the received file in with `context =
  file_membership.encode()` (empty: the bootstrap membership).
- CONFIG entries come through `committed_entries` like any other: the
  state machine skips them (as it skips NOOP).
- Learners receive the log, never campaign, and never count toward a
  majority or a vote (a candidate counts only its voters). A node removed
  from its newest membership stops campaigning once the removal is
  committed; until then it may still be needed and campaigns without
  counting itself (thesis 4.2.2). Vote requests from nodes that are neither
  voters nor uncommitted-removed voters here are dropped, so a removed
  node cannot raise the members' terms (with PreVote it never raises its
  own either). A leader that removed itself keeps leading, counting commits
  without its own copy, and steps down when the removal commits.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from prez.errors import PrezError
from prez.raft.log import RaftLog
from prez.raft.types import (
    MAX_TERM,
    READ_FAILED,
    TRANSFER_CONTEXT,
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

if TYPE_CHECKING:
    # Only the type: randomness is the caller's seeded instance, never the
    # module-level generator.
    import random

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


class Role(StrEnum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "precandidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class NotLeader(PrezError):
    """propose() on a node that is not the leader; `leader` is the one it
    knows of (None during an election), for redirects."""

    def __init__(self, leader: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader or 'unknown'})")
        self.leader = leader


class LeadershipTransferring(NotLeader):
    """propose() on a leader that is handing leadership to `leader` (the
    transfer target): writes stop for at most an election timeout."""

    def __init__(self, target: str) -> None:
        PrezError.__init__(self, f"leadership is being transferred to {target}")
        self.leader = target


class ConfChangeRefused(PrezError):
    """propose_conf_change() with a change that makes no sense for the
    current membership (adding a member, promoting a non-learner, removing a
    stranger or the last voter). Retrying will not help."""


class ConfChangeInProgress(ConfChangeRefused):
    """propose_conf_change() while a change is not settled: an earlier one is
    still uncommitted, or this leader has not yet committed an entry of its
    own term (thesis 4.1). Retry once it has committed."""


class RaftSafetyError(PrezError):
    """A Raft invariant broke (for example a committed entry would be
    overwritten). The node must stop; continuing would corrupt data."""


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
    """One batch of work for the driver; see the module docstring for the
    order in which its parts must be handled."""

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


class ProgressState(StrEnum):
    # Probe: the matching point is unknown; one append at a time, paused
    # until it is answered (or a heartbeat answer shows the follower alive).
    PROBE = "probe"
    # Replicate: the follower is in step; appends are pipelined, up to
    # max_inflight of them unanswered.
    REPLICATE = "replicate"
    # Snapshot: the follower needs entries that were compacted; one SNAPSHOT
    # message went out and appends stay paused until the follower answers
    # or the driver reports the transfer (heartbeats continue).
    SNAPSHOT = "snapshot"


class Progress:
    """The leader's view of one follower (etcd tracker.Progress, trimmed).

    Invariant: match < next. `inflight` holds the last index of every append
    sent in replicate state and not yet acknowledged, oldest first.
    `pending_snapshot` is the index of the snapshot sent in snapshot state;
    `retry_wait` counts down the ticks before probing again after a failed
    snapshot transfer (appends stay paused meanwhile).
    """

    __slots__ = (
        "match",
        "next",
        "state",
        "paused",
        "inflight",
        "recent_active",
        "sent_commit",
        "pending_snapshot",
        "retry_wait",
        "read_ack",
        "lease_tick",
    )

    def __init__(self, next_index: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.paused = False
        self.inflight: deque[int] = deque()
        # Set by any answer from the follower; CheckQuorum clears it once per
        # election timeout. True at the start so a new leader gets one full
        # timeout before it can conclude it lost its quorum.
        self.recent_active = True
        self.sent_commit = 0  # commit index carried by the last append sent
        self.pending_snapshot = 0
        self.retry_wait = 0
        # The newest heartbeat round the follower answered (ReadIndex), and
        # the tick at which the newest answered round we still date was sent
        # (the lease); None until one is answered.
        self.read_ack = 0
        self.lease_tick: int | None = None

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.paused = False
        self.inflight.clear()
        self.pending_snapshot = 0

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.paused = False
        self.inflight.clear()
        self.pending_snapshot = 0
        self.retry_wait = 0  # it answered in step: no transfer to retry

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.paused = True
        self.inflight.clear()
        self.pending_snapshot = index


class _ReadRequest:
    """A read_index() request the leader holds: from itself or, by
    READ_INDEX, from `requester`."""

    __slots__ = ("requester", "context", "since", "index", "round")

    def __init__(self, requester: str, context: bytes, since: int) -> None:
        self.requester = requester
        self.context = context
        self.since = since  # tick it arrived, for the timeout
        self.index = 0  # the commit index recorded for it
        self.round = 0  # the heartbeat round whose majority answer confirms it


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
        self._reads_waiting: deque[_ReadRequest] = deque()  # for their round
        self._reads_before_commit: list[_ReadRequest] = []  # for our no-op
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

    def membership_at(self, index: int) -> Membership:
        """The membership in effect at `index`, which must lie between the
        snapshot point and the last index: what a snapshot of the state
        machine at `index` must record (the driver's snapshot file)."""
        if not self.log.offset <= index <= self.log.last_index:
            raise ValueError(
                f"membership at {index}: the log holds {self.log.offset}.."
                f"{self.log.last_index}"
            )
        position = bisect_right(self._config_entries, index, key=_first)
        if position == 0:
            return self._base_membership
        return self._config_entries[position - 1][1]

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

    def campaign(self) -> None:
        """Start an election now (etcd's MsgHup); a no-op on a leader and on
        a node that takes no part in elections (see `_electoral`)."""
        if self._role is Role.LEADER or not self._electoral():
            return
        if self._pre_vote:
            self._become_pre_candidate()
        else:
            self._become_candidate()

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

    def propose_conf_change(self, change: ConfChange) -> int:
        """Append a CONFIG entry holding the membership after `change`;
        returns its index.

        Single-server changes (thesis ch. 4) rather than joint consensus:
        any majority of the old and of the new voters overlap, so one change
        at a time needs no intermediate configuration, and the log carries
        one entry per change. The new membership is in effect as soon as the
        entry is appended, here and on every follower (the leader counts
        commits by it at once: a leader removing itself counts without its
        own copy, and steps down once the entry commits); a truncated entry
        reverts it.

        Raises NotLeader (LeadershipTransferring during a transfer),
        ConfChangeInProgress while an earlier change is uncommitted or no
        entry of this leader's term has committed yet (the fix of thesis
        4.1: otherwise a change appended by a new leader could overlap one
        an earlier leader left uncommitted), ConfChangeRefused for a change
        that does not fit the membership.
        """
        if self._role is not Role.LEADER:
            raise NotLeader(self._leader)
        if self._transfer_target is not None:
            raise LeadershipTransferring(self._transfer_target)
        if not self._term_committed:
            raise ConfChangeInProgress(
                "the leader has not yet committed an entry of its term"
            )
        if self.conf_change_pending:
            raise ConfChangeInProgress(
                f"the membership change at index {self.membership_index} "
                "is not committed yet"
            )
        membership = _changed_membership(self._membership, change)
        log = self.log
        index = log.last_index + 1
        log.entries.append(Entry(index, self._term, CONFIG, membership.encode()))
        self._config_entries.append((index, membership))
        self._set_membership(membership)
        self._bcast_new_entries = True
        # A smaller majority may already hold entries the old one did not.
        self._maybe_commit()
        return index

    def read_index(self, context: bytes) -> None:
        """Ask for a read index for the reads that arrived before this call
        (one request per batch of reads; `context` is opaque and must be
        unique among this node's pending requests).

        The answer is a `ReadState(index, context)` in a later Ready: serve
        the batch from the state machine once it has applied `index`; or
        `ReadState(READ_FAILED, context)` (index -1) when leadership was
        lost, no leader is known, or no answer came within two election
        timeouts: answer those reads with an error, never let them hang.

        Leader: no read is served before an entry of its term has committed;
        then the commit index is recorded and confirmed by a heartbeat round
        that a majority answers (one round confirms every request before
        it), or at once in lease mode while the lease holds. Follower: the
        request goes to the leader (READ_INDEX), which answers with the
        index once confirmed the same way.
        """
        if self._role is Role.LEADER:
            self._leader_read(_ReadRequest(self._name, context, self._ticks))
        elif self._leader is None:
            self._read_states.append(ReadState(READ_FAILED, context))
        else:
            self._forwarded_reads[context] = (self._leader, self._ticks)
            self._msgs.append(
                Message(
                    READ_INDEX, self._term, self._name, self._leader, context=context
                )
            )

    def transfer_leader(self, target: str) -> None:
        """Hand leadership to `target` (thesis 3.10, etcd's TimeoutNow).

        The leader stops taking proposals (LeadershipTransferring, a
        NotLeader), brings the target's log up to date, then sends it
        TIMEOUT_NOW, upon which the target campaigns at once, skipping
        PreVote, with a vote request that voters grant even though they hear
        from this leader. If no new leader took over within an election
        timeout, the transfer is abandoned and proposals resume. A transfer
        to this node itself cancels the one in progress; a new target
        replaces the old one. Lease reads stop for the rest of the term.
        """
        if self._role is not Role.LEADER:
            raise NotLeader(self._leader)
        if target == self._name:
            self._transfer_target = None
            return
        if target not in self._voters or target not in self._progress:
            raise ValueError(f"cannot transfer leadership to non-voter {target!r}")
        if self._transfer_target == target:
            return
        self._transfer_target = target
        self._transfer_elapsed = 0
        self._timeout_now_sent = False
        self._lease_revoked = True
        if self._progress[target].match == self.log.last_index:
            self._send_timeout_now(target)
        else:
            self._pending_sends[target] = True

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
        del entries[: bisect_right(entries, index, key=_first)]
        self._set_membership(self._membership)

    def report_snapshot(self, peer: str, ok: bool) -> None:
        """The driver's verdict on the snapshot transfer to `peer` that a
        SNAPSHOT message started: `ok` once the follower has the whole file,
        False when the transfer broke or the follower refused it.

        On success the leader waits for the follower's answer (or a
        heartbeat answer) and then probes after the snapshot; on failure it
        probes again after `snapshot_retry_ticks`, which sends a new
        SNAPSHOT if the follower still needs one. Ignored when this node is
        no longer leader or `peer` is not waiting for a snapshot.
        """
        progress = self._progress.get(peer)
        if progress is None or progress.state is not ProgressState.SNAPSHOT:
            return
        pending = progress.pending_snapshot
        progress.become_probe()
        progress.paused = True
        if ok:
            progress.next = max(progress.match + 1, pending + 1)
        else:
            progress.next = progress.match + 1
            progress.retry_wait = self.config.snapshot_retry_ticks

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
                self._leader_read(_ReadRequest(msg.src, msg.context, self._ticks))
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
        must follow the module's driver contract and then call `advance`.
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

    # -- elections -------------------------------------------------------------

    def _votes_won(self) -> bool:
        return sum(self._votes.values()) >= self._quorum

    def _electoral(self, name: str | None = None) -> bool:
        """Whether `name` (default: this node) takes part in elections here:
        a voter, or a node whose removal is not committed yet (thesis 4.2.2:
        it may still be needed, say a leader that removed itself and crashed
        holding the newest log; it does not count its own vote then). This
        node campaigns only if it does, and ignores vote requests from nodes
        that do not (a removed node cannot disrupt)."""
        if name is None:
            name = self._name
        return name in self._voters or name in self.membership_at(self._commit).voters

    def _own_vote(self) -> dict[str, bool]:
        return {self._name: True} if self._name in self._voters else {}

    def _other_voters(self) -> list[str]:
        return [peer for peer in self.peers if peer != self._name]

    def _poll(self, voter: str, granted: bool) -> None:
        if voter not in self._voters:
            return  # a learner's or a stranger's answer counts for nothing
        self._votes.setdefault(voter, granted)
        granted_count = sum(self._votes.values())
        if granted_count >= self._quorum:
            if self._role is Role.PRE_CANDIDATE:
                self._become_candidate()
            else:
                self._become_leader()
        elif len(self._votes) - granted_count >= self._quorum:
            self._become_follower(self._term, None)

    def _log_is_up_to_date(self, index: int, term: int) -> bool:
        """§5.4.1: grant only to a candidate whose log is at least as
        up-to-date as ours (later last term, or same term and not shorter)."""
        last_term = self.log.last_term
        return term > last_term or (term == last_term and index >= self.log.last_index)

    def _handle_vote_request(self, msg: Message) -> None:
        is_pre_vote = msg.type == PRE_VOTE
        # One vote per term (§5.2): repeat the vote we gave, or give a fresh
        # one if we have neither voted nor heard from a leader this term. A
        # pre-vote for a later term promises nothing, so it is always free.
        can_vote = (
            self._vote == msg.src
            or (self._vote == "" and self._leader is None)
            or (is_pre_vote and msg.term > self._term)
        )
        resp_type = PRE_VOTE_RESP if is_pre_vote else VOTE_RESP
        # Whatever our own membership says (thesis 4.2.1): a candidate counts
        # only the voters of its membership, and a node whose log does not
        # yet say it was promoted may be one of them; refusing would leave a
        # cluster that needs its vote without a leader to tell it.
        if can_vote and self._log_is_up_to_date(msg.index, msg.log_term):
            if not is_pre_vote:
                self._election_elapsed = 0
                self._vote = msg.src
            # Answer in the asked term: a pre-candidate counts grants for the
            # term it is about to enter.
            self._persisted_msgs.append(
                Message(resp_type, msg.term, self._name, msg.src)
            )
        else:
            self._persisted_msgs.append(
                Message(resp_type, self._term, self._name, msg.src, reject=True)
            )

    # -- follower side of replication -----------------------------------------

    def _handle_append(self, msg: Message) -> None:
        entries = msg.entries
        prev_index = msg.index
        if entries and (
            entries[0].index != prev_index + 1
            or entries[-1].index != prev_index + len(entries)
            or entries[-1].term > msg.term
            or entries[0].term < msg.log_term
        ):
            return  # garbage: not a contiguous run following prev
        if prev_index < self._commit:
            # Everything up to commit is settled; tell the leader so it can
            # skip ahead (a delayed or duplicated old append).
            self._persisted_msgs.append(
                Message(
                    APPEND_RESP, self._term, self._name, msg.src, index=self._commit
                )
            )
            return
        log = self.log
        if log.term_at(prev_index) == msg.log_term:
            last_new = prev_index + len(entries)
            if entries:
                conflict = log.find_conflict(entries)
                if conflict:
                    if conflict <= self._commit:
                        # A consecutive run after prev (>= commit) cannot get
                        # here; one with a stray index in the middle can. No
                        # leader sent it: drop it rather than stop the node.
                        return
                    appended = entries[conflict - prev_index - 1 :]
                    # Parsed before anything changes: one entry that does not
                    # parse must leave the log as it was, not stop the node.
                    configs = _config_entries(appended)
                    if configs is None:
                        return
                    log.truncate_and_append(appended)
                    self._on_log_rewritten(conflict, configs)
            # Only up to last_new is known to match the leader; a longer tail
            # here may still be a stale leftover.
            commit = min(msg.commit, last_new)
            if commit > self._commit:
                self._commit = commit
            self._persisted_msgs.append(
                Message(APPEND_RESP, self._term, self._name, msg.src, index=last_new)
            )
            return
        hint_index, hint_term = log.find_conflict_by_term(
            min(prev_index, log.last_index), msg.log_term
        )
        self._persisted_msgs.append(
            Message(
                APPEND_RESP,
                self._term,
                self._name,
                msg.src,
                index=prev_index,
                reject=True,
                reject_hint=hint_index,
                hint_term=hint_term,
            )
        )

    def _handle_snapshot(self, msg: Message) -> None:
        """InstallSnapshot (§7), once the driver holds the whole file."""
        index, snapshot_term = msg.index, msg.log_term
        if index < 1 or snapshot_term < 1 or snapshot_term > msg.term:
            return  # garbage: no snapshot covers nothing or a future term
        if index <= self._commit:
            # Nothing new (a stale or duplicated transfer): say how far we
            # are, as for an old append, so the leader skips ahead.
            self._persisted_msgs.append(
                Message(
                    APPEND_RESP, self._term, self._name, msg.src, index=self._commit
                )
            )
            return
        try:
            # The driver passes the file's membership; none means the
            # bootstrap one (a cluster whose membership never changed).
            base = Membership.decode(msg.context) if msg.context else self._bootstrap
        except ValueError:
            return  # garbage: a snapshot's membership that does not parse
        kept = self.log.restore(index, snapshot_term)
        self._base_membership = base
        if kept:
            entries = self._config_entries
            del entries[: bisect_right(entries, index, key=_first)]
        else:
            self._config_entries = []
        self._set_membership(self._current_membership())
        self._commit = index
        # The state machine is loaded from the snapshot instead of applying
        # the entries it covers (index > commit >= what was handed out).
        self._applying = index
        self._pending_snapshot = SnapshotMeta(index, snapshot_term, base)
        # Acknowledge the snapshot point only: a kept suffix may still be a
        # stale leftover that the next append repairs.
        self._persisted_msgs.append(
            Message(APPEND_RESP, self._term, self._name, msg.src, index=index)
        )

    def _handle_heartbeat(self, msg: Message) -> None:
        # The leader sends min(match, commit), so this prefix agrees with it.
        commit = min(msg.commit, self.log.last_index)
        if commit > self._commit:
            self._commit = commit
        # context is echoed: the ReadIndex seam (a later issue).
        self._persisted_msgs.append(
            Message(
                HEARTBEAT_RESP, self._term, self._name, msg.src, context=msg.context
            )
        )

    # -- reads (thesis 6.4) and leadership transfer ----------------------------

    def _leader_read(self, request: _ReadRequest) -> None:
        if not self._term_committed:
            # Our commit index may still lag entries an earlier leader
            # committed; it is known to be current only once an entry of our
            # own term commits (the no-op appended on election).
            self._reads_before_commit.append(request)
            return
        request.index = self._commit
        needed = self._acks_needed()
        if request.requester != self._name and request.requester in self._voters:
            # The READ_INDEX itself vouches for its sender: it was made, in
            # our term, after the reads it covers arrived there, so at that
            # moment the sender had voted for no later leader. If it and we
            # make a majority (three voters), no later leader could exist
            # then, after those reads began, and our commit index now holds
            # every write acknowledged before them: answer with no round.
            needed -= 1
        if needed <= 0 or (self._read_mode == "lease" and self._lease_holds()):
            self._answer_read(request, request.index)
            return
        # Confirmed by the next round: its heartbeats leave after this
        # request arrived, so a majority answering it proves we still led.
        request.round = self._round + 1
        self._reads_waiting.append(request)
        self._round_due = True

    def _acks_needed(self) -> int:
        """How many other voters complete a majority (a leader that removed
        itself counts without its own vote)."""
        return self._quorum - (self._name in self._voters)

    def _voter_progress(self) -> list[Progress]:
        progress = self._progress
        return [progress[peer] for peer in self.peers if peer in progress]

    def _release_reads(self) -> None:
        needed = self._acks_needed()
        if needed <= 0:
            confirmed = self._round
        else:
            acks = sorted((p.read_ack for p in self._voter_progress()), reverse=True)
            if len(acks) < needed:
                return
            confirmed = acks[needed - 1]  # with our own (if we vote), a majority
        waiting = self._reads_waiting
        while waiting and waiting[0].round <= confirmed:
            request = waiting.popleft()
            self._answer_read(request, request.index)

    def _lease_holds(self) -> bool:
        """A majority answered a heartbeat sent less than the lease ago, so
        none of them grants a vote yet: no other leader can exist."""
        if self._lease_revoked:
            return False
        needed = self._acks_needed()
        if needed <= 0:
            return True
        dates = sorted(
            (p.lease_tick for p in self._voter_progress() if p.lease_tick is not None),
            reverse=True,
        )
        if len(dates) < needed:
            return False
        return self._ticks - dates[needed - 1] < self._lease_ticks

    def _answer_read(self, request: _ReadRequest, index: int) -> None:
        if request.requester == self._name:
            self._read_states.append(ReadState(index, request.context))
        else:
            self._msgs.append(
                Message(
                    READ_INDEX_RESP,
                    self._term,
                    self._name,
                    request.requester,
                    # The wire carries indexes unsigned: a failure is a
                    # reject with index 0, never READ_FAILED itself.
                    index=max(index, 0),
                    reject=index == READ_FAILED,
                    context=request.context,
                )
            )

    def _fail_reads(self) -> None:
        for request in self._reads_before_commit:
            self._answer_read(request, READ_FAILED)
        for request in self._reads_waiting:
            self._answer_read(request, READ_FAILED)
        self._reads_before_commit = []
        self._reads_waiting.clear()
        for context in self._forwarded_reads:
            self._read_states.append(ReadState(READ_FAILED, context))
        self._forwarded_reads = {}

    def _expire_reads(self) -> None:
        """Fail requests unanswered for two election timeouts (a lost
        message, or a leader that cannot reach a majority without
        CheckQuorum to make it step down)."""
        deadline = self._ticks - self._read_timeout
        if self._reads_before_commit and self._reads_before_commit[0].since <= deadline:
            kept = []
            for request in self._reads_before_commit:
                if request.since <= deadline:
                    self._answer_read(request, READ_FAILED)
                else:
                    kept.append(request)
            self._reads_before_commit = kept
        waiting = self._reads_waiting
        if waiting and min(request.since for request in waiting) <= deadline:
            kept_waiting: deque[_ReadRequest] = deque()
            for request in waiting:
                if request.since <= deadline:
                    self._answer_read(request, READ_FAILED)
                else:
                    kept_waiting.append(request)
            self._reads_waiting = kept_waiting
        forwarded = self._forwarded_reads
        while forwarded:
            context, (_, since) = next(iter(forwarded.items()))
            if since > deadline:
                break
            del forwarded[context]
            self._read_states.append(ReadState(READ_FAILED, context))

    def _handle_read_index_response(self, msg: Message) -> None:
        pending = self._forwarded_reads.get(msg.context)
        if pending is None or pending[0] != msg.src:
            return  # answered already, timed out, or not asked of this node
        del self._forwarded_reads[msg.context]
        index = READ_FAILED if msg.reject else msg.index
        self._read_states.append(ReadState(index, msg.context))

    def _send_timeout_now(self, target: str) -> None:
        self._timeout_now_sent = True
        self._msgs.append(Message(TIMEOUT_NOW, self._term, self._name, target))

    # -- leader side of replication -----------------------------------------

    def _tick_leader(self) -> None:
        for peer, progress in self._progress.items():
            if progress.retry_wait:
                progress.retry_wait -= 1
                if not progress.retry_wait:
                    progress.paused = False
                    self._pending_sends[peer] = True
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._transfer_target is not None:
            self._transfer_elapsed += 1
            if self._transfer_elapsed >= self._election_ticks:
                # The target did not take over in time: lead on.
                self._transfer_target = None
        if self._election_elapsed >= self._election_ticks:
            self._election_elapsed = 0
            if self._check_quorum and not self._quorum_active():
                # We may be the stale side of a partition: step down so that
                # clients go elsewhere instead of waiting forever.
                self._become_follower(self._term, None)
                return
        if self._heartbeat_elapsed >= self._heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def _quorum_active(self) -> bool:
        voters = self._voters
        active = int(self._name in voters)
        for peer, progress in self._progress.items():
            if progress.recent_active and peer in voters:
                active += 1
            progress.recent_active = False
        return active >= self._quorum

    def _bcast_heartbeat(self) -> None:
        # Every round is numbered and dated: an answer to round r confirms
        # every read waiting for a round <= r and dates the lease.
        self._round += 1
        self._round_due = False
        sent = self._round_sent
        sent[self._round] = self._ticks
        # Answers older than a lease are of no use for it.
        horizon = self._ticks - self._election_ticks
        while len(sent) > 1:
            oldest = next(iter(sent))
            if sent[oldest] >= horizon:
                break
            del sent[oldest]
        context = self._round.to_bytes(8, "big")
        commit = self._commit
        msgs = self._msgs
        for peer, progress in self._progress.items():
            msgs.append(
                Message(
                    HEARTBEAT,
                    self._term,
                    self._name,
                    peer,
                    commit=min(progress.match, commit),
                    context=context,
                )
            )

    def _flush_sends(self) -> None:
        if self._bcast_new_entries:
            self._bcast_new_entries = False
            pending = self._pending_sends
            for peer in self._others:
                pending.setdefault(peer, False)
        if self._pending_sends:
            pending = self._pending_sends
            self._pending_sends = {}
            for peer, allow_empty in pending.items():
                self._send_append(peer, allow_empty)

    def _send_append(self, peer: str, allow_empty: bool) -> None:
        progress = self._progress[peer]
        log = self.log
        last_index = log.last_index
        if progress.retry_wait:
            return  # a snapshot transfer failed: wait before probing again
        replicate = progress.state is ProgressState.REPLICATE
        while True:
            if progress.paused:  # always so in snapshot state
                return
            if replicate and len(progress.inflight) >= self._max_inflight:
                return
            prev_index = progress.next - 1
            prev_term = log.term_at(prev_index)
            if prev_term is None:
                if prev_index < log.offset:
                    # The follower needs entries we no longer hold.
                    self._send_snapshot(peer, progress)
                return
            entries = (
                log.slice(progress.next, last_index + 1, self._max_bytes)
                if progress.next <= last_index
                else []
            )
            if not entries and not allow_empty:
                return
            progress.sent_commit = self._commit
            self._msgs.append(
                Message(
                    APPEND,
                    self._term,
                    self._name,
                    peer,
                    index=prev_index,
                    log_term=prev_term,
                    commit=self._commit,
                    entries=entries,
                )
            )
            if not replicate:
                progress.paused = True
                return
            if not entries:
                return
            progress.next = entries[-1].index + 1
            progress.inflight.append(progress.next - 1)
            allow_empty = False

    def _send_snapshot(self, peer: str, progress: Progress) -> None:
        log = self.log
        progress.become_snapshot(log.offset)
        # One message; the driver streams the file and reports the outcome
        # with report_snapshot().
        self._msgs.append(
            Message(
                SNAPSHOT,
                self._term,
                self._name,
                peer,
                index=log.offset,
                log_term=log.offset_term,
                commit=self._commit,
                # For the driver: the membership its snapshot file records.
                context=self._base_membership.encode(),
            )
        )

    def _handle_append_response(self, msg: Message) -> None:
        progress = self._progress.get(msg.src)
        if progress is None:
            return  # not (or no longer) a member
        progress.recent_active = True
        if msg.reject:
            if progress.state is ProgressState.SNAPSHOT:
                return  # no append went out since: an answer to an older one
            rejected = msg.index
            if progress.state is ProgressState.REPLICATE:
                if rejected <= progress.match:
                    return  # stale answer to an append we already moved past
                # The follower lost the pipelined appends (or restarted):
                # fall back to probing just after what it acknowledged.
                progress.next = progress.match + 1
            else:
                if rejected != progress.next - 1:
                    return  # answer to an older probe
                probe = msg.reject_hint
                if msg.hint_term > 0:
                    # Skip the follower's whole diverging term at once (§5.3).
                    probe, _ = self.log.find_conflict_by_term(
                        msg.reject_hint, msg.hint_term
                    )
                progress.next = max(min(rejected, probe + 1), progress.match + 1)
            progress.become_probe()
            self._pending_sends[msg.src] = True
            return
        index = msg.index
        if index <= progress.match or index > self.log.last_index:
            return  # duplicate or reordered answer (or nonsense)
        progress.match = index
        if progress.next <= index:
            progress.next = index + 1
        if progress.state is ProgressState.PROBE:
            progress.become_replicate()
        elif progress.state is ProgressState.SNAPSHOT:
            # Usually the answer to the snapshot; any answer will do once
            # the log holds everything after what the follower matches.
            if index >= self.log.offset:
                progress.become_replicate()
        else:
            inflight = progress.inflight
            while inflight and inflight[0] <= index:
                inflight.popleft()
        if not self._maybe_commit():
            # More to send, or a commit index this follower has not heard
            # (it was paused in probe when the commit moved).
            stale_commit = progress.sent_commit < self._commit
            if stale_commit or msg.src not in self._pending_sends:
                self._pending_sends[msg.src] = stale_commit
        if (
            msg.src == self._transfer_target
            and not self._timeout_now_sent
            and progress.match == self.log.last_index
        ):
            self._send_timeout_now(msg.src)

    def _handle_heartbeat_response(self, msg: Message) -> None:
        progress = self._progress.get(msg.src)
        if progress is None:
            return  # not (or no longer) a member
        progress.recent_active = True
        if len(msg.context) == 8:
            answered = int.from_bytes(msg.context, "big")
            if answered > progress.read_ack and answered <= self._round:
                progress.read_ack = answered
                sent = self._round_sent.get(answered)
                if sent is not None and (
                    progress.lease_tick is None or sent > progress.lease_tick
                ):
                    progress.lease_tick = sent
                if self._reads_waiting:
                    self._release_reads()
        if progress.state is ProgressState.SNAPSHOT or progress.retry_wait:
            return  # a transfer is running, or we wait before the next one
        progress.paused = False
        if progress.state is ProgressState.REPLICATE and (
            len(progress.inflight) >= self._max_inflight
        ):
            # Appends may have been lost; let one more through so the
            # follower's rejection moves it back to probing.
            progress.inflight.popleft()
        if progress.match < self.log.last_index:
            self._pending_sends[msg.src] = True

    def _is_committable(self, index: int) -> bool:
        """§5.4.2: a leader commits by counting replicas only entries of its
        own term; earlier ones follow implicitly (Figure 8)."""
        return self.log.term_at(index) == self._term

    def _maybe_commit(self) -> bool:
        """Raise commit to the highest index a majority holds durably; on
        success every follower hears of it at the next ready().

        Counts the voters of the membership in effect, this node only if it
        is one of them. A leader that removed itself steps down once that
        change commits, after telling the followers the commit index."""
        matches = [progress.match for progress in self._voter_progress()]
        if self._name in self._voters:
            matches.append(self.log.persisted)
        matches.sort(reverse=True)
        candidate = matches[self._quorum - 1]
        if candidate <= self._commit or not self._is_committable(candidate):
            return False
        self._commit = candidate
        if not self._term_committed:
            self._term_committed = True
            if self._reads_before_commit:
                waiting = self._reads_before_commit
                self._reads_before_commit = []
                for request in waiting:
                    self._leader_read(request)
        pending = self._pending_sends
        for peer in self._others:
            pending[peer] = True
        if self._name not in self._voters and self.membership_index <= self._commit:
            self._flush_sends()
            self._become_follower(self._term, None)
        return True

    # -- membership (thesis ch. 4) ----------------------------------------------

    def _track_config_entries(self, entries: list[Entry]) -> None:
        """Adopt the CONFIG entries of the log recovered from storage: one
        that does not parse there is corruption. (Entries from a leader are
        parsed before they are appended, and dropped if one does not.)"""
        for entry in entries:
            if entry.kind == CONFIG:
                try:
                    membership = Membership.decode(entry.data)
                except ValueError as error:
                    raise RaftSafetyError(
                        f"{self._name}: CONFIG entry {entry.index} does not "
                        f"parse: {error}"
                    ) from error
                self._config_entries.append((entry.index, membership))

    def _current_membership(self) -> Membership:
        entries = self._config_entries
        return entries[-1][1] if entries else self._base_membership

    def _on_log_rewritten(
        self, first: int, configs: list[tuple[int, Membership]]
    ) -> None:
        """The log was truncated from `first` and entries written there whose
        CONFIG entries are `configs`: CONFIG entries truncated revert their
        change, new ones take effect."""
        entries = self._config_entries
        del entries[bisect_left(entries, first, key=_first) :]
        entries.extend(configs)
        self._set_membership(self._current_membership())

    def _set_membership(self, membership: Membership, force: bool = False) -> None:
        # Whom we take messages from: every member of a membership the log
        # still records (a leader that removed itself leads on until the
        # change commits); a removed node is forgotten once compacted away.
        known = set(self._base_membership.members)
        for _, recorded in self._config_entries:
            known |= recorded.members
        known.discard(self._name)
        self._known = frozenset(known)
        if membership == self._membership and not force:
            return
        self._membership = membership
        self._voters = membership.voters
        self.peers = sorted(membership.voters)
        self._others = sorted(membership.members - {self._name})
        self._quorum = len(membership.voters) // 2 + 1
        if self._role is not Role.LEADER:
            return
        progress = self._progress
        members = set(self._others)
        for peer in list(progress):
            if peer not in members:
                del progress[peer]
                self._pending_sends.pop(peer, None)
        next_index = self.log.last_index + 1
        for peer in self._others:
            if peer not in progress:
                # Probe from the end; the answer's hint finds the match.
                progress[peer] = Progress(next_index)
                self._pending_sends[peer] = True
        if (
            self._transfer_target is not None
            and self._transfer_target not in self._voters
        ):
            self._transfer_target = None


def _config_entries(entries: list[Entry]) -> list[tuple[int, Membership]] | None:
    """The (index, membership) of each CONFIG entry in `entries`, or None if
    one of them does not parse."""
    configs = []
    for entry in entries:
        if entry.kind == CONFIG:
            try:
                configs.append((entry.index, Membership.decode(entry.data)))
            except ValueError:
                return None
    return configs


def _changed_membership(current: Membership, change: ConfChange) -> Membership:
    """The membership after `change`, or ConfChangeRefused if it does not
    apply to `current`."""
    name, kind = change.name, change.kind
    voters, learners = current.voters, current.learners
    if not name or "\n" in name:
        raise ConfChangeRefused(f"invalid node name {name!r}")
    if kind in (ConfChangeKind.ADD_VOTER, ConfChangeKind.ADD_LEARNER):
        if name in voters or name in learners:
            raise ConfChangeRefused(f"node {name!r} is already a member")
        if kind == ConfChangeKind.ADD_VOTER:
            return Membership(voters | {name}, learners)
        return Membership(voters, learners | {name})
    if kind == ConfChangeKind.PROMOTE:
        if name not in learners:
            raise ConfChangeRefused(f"node {name!r} is not a learner")
        return Membership(voters | {name}, learners - {name})
    if kind == ConfChangeKind.REMOVE:
        if name in learners:
            return Membership(voters, learners - {name})
        if name not in voters:
            raise ConfChangeRefused(f"node {name!r} is not a member")
        if len(voters) == 1:
            raise ConfChangeRefused(f"cannot remove {name!r}, the last voter")
        return Membership(voters - {name}, learners)
    raise ConfChangeRefused(f"unknown membership change {kind!r}")


def _first(pair: tuple[int, Membership]) -> int:
    return pair[0]


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
