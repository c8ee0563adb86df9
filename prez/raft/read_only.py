"""Linearizable reads without a log entry (thesis 6.4; etcd's read_only.go):
ReadIndex, its lease variant, and forwarding a follower's reads.

`node.read_index(context)` asks for a read index for the client reads that
arrived before the call; a driver batches them, one context (opaque bytes,
unique among its pending requests) per batch.

- The answer is a `ReadState(index, context)` in `rd.read_states` of a later
  Ready. It needs nothing durable: handle it whenever the Ready is taken.
  Serve that batch from the state machine once applied >= index (usually
  after a later Ready was applied; the state may be further on, which is
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
  duplicate could otherwise answer a newer request. `take_messages()`
  lets a driver send the leader's answer without a Ready-loop pass.

The heartbeat rounds themselves are sent and counted by the leader's
replication (prez.raft.replication); the majority of answered rounds and
lease dates is prez.raft.quorum.quorum_index. The functions taking `self: RaftNode` are
RaftNode's methods, bound in its class body (prez.raft.core says why).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from prez.raft.quorum import quorum_index
from prez.raft.types import READ_FAILED, Message, MessageType, ReadState, Role

if TYPE_CHECKING:
    from prez.raft.core import RaftNode

READ_INDEX = MessageType.READ_INDEX
READ_INDEX_RESP = MessageType.READ_INDEX_RESP


class ReadRequest:
    """A read_index() request the leader holds: from itself or, by
    READ_INDEX, from `requester`."""

    __slots__ = ("requester", "context", "since", "index", "round")

    def __init__(self, requester: str, context: bytes, since: int) -> None:
        self.requester = requester
        self.context = context
        self.since = since  # tick it arrived, for the timeout
        self.index = 0  # the commit index recorded for it
        self.round = 0  # the heartbeat round whose majority answer confirms it


def read_index(self: RaftNode, context: bytes) -> None:
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
        self._leader_read(ReadRequest(self._name, context, self._ticks))
    elif self._leader is None:
        self._read_states.append(ReadState(READ_FAILED, context))
    else:
        self._forwarded_reads[context] = (self._leader, self._ticks)
        self._msgs.append(
            Message(READ_INDEX, self._term, self._name, self._leader, context=context)
        )


def handle_read_index_response(self: RaftNode, msg: Message) -> None:
    pending = self._forwarded_reads.get(msg.context)
    if pending is None or pending[0] != msg.src:
        return  # answered already, timed out, or not asked of this node
    del self._forwarded_reads[msg.context]
    index = READ_FAILED if msg.reject else msg.index
    self._read_states.append(ReadState(index, msg.context))


def leader_read(self: RaftNode, request: ReadRequest) -> None:
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


def acks_needed(self: RaftNode) -> int:
    """How many other voters complete a majority (a leader that removed
    itself counts without its own vote)."""
    return self._quorum - (self._name in self._voters)


def release_reads(self: RaftNode) -> None:
    needed = self._acks_needed()
    if needed <= 0:
        confirmed = self._round
    else:
        # With our own (if we vote), a majority.
        newest = quorum_index((p.read_ack for p in self._voter_progress()), needed)
        if newest is None:
            return
        confirmed = newest
    waiting = self._reads_waiting
    while waiting and waiting[0].round <= confirmed:
        request = waiting.popleft()
        self._answer_read(request, request.index)


def lease_holds(self: RaftNode) -> bool:
    """A majority answered a heartbeat sent less than the lease ago, so
    none of them grants a vote yet: no other leader can exist."""
    if self._lease_revoked:
        return False
    needed = self._acks_needed()
    if needed <= 0:
        return True
    # The date of the newest round that a majority answered.
    sent = quorum_index(
        (p.lease_tick for p in self._voter_progress() if p.lease_tick is not None),
        needed,
    )
    if sent is None:
        return False
    return self._ticks - sent < self._lease_ticks


def answer_read(self: RaftNode, request: ReadRequest, index: int) -> None:
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


def fail_reads(self: RaftNode) -> None:
    for request in self._reads_before_commit:
        self._answer_read(request, READ_FAILED)
    for request in self._reads_waiting:
        self._answer_read(request, READ_FAILED)
    self._reads_before_commit = []
    self._reads_waiting.clear()
    for context in self._forwarded_reads:
        self._read_states.append(ReadState(READ_FAILED, context))
    self._forwarded_reads = {}


def expire_reads(self: RaftNode) -> None:
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
        kept_waiting: deque[ReadRequest] = deque()
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
